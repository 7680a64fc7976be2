//! The kill switch on a real kernel, each test in a network namespace of
//! its own thread (`unshare`; it vanishes with the thread, so a killed run
//! leaves nothing behind): the client's marked packets reach the listed
//! ingress addresses and ports and nothing else, and replacing the list
//! never opens a gap for an ingress that stays listed. Undoing a journal
//! deletes TUN devices only. Needs root; skipped with a message otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::panic
)]

use std::collections::BTreeSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use openrelay_client::IngressFilter;
use openrelay_tun::ingresses::KillSwitchIngresses;
use openrelay_tun::journal::Change;
use openrelay_tun::plan::{self, Settings};
use openrelay_tun::system::{System, UndoScope};

/// Moves this thread into a fresh network namespace with a veth pair whose
/// near end holds 198.51.100.254/24 (TEST-NET-2); false if not root.
fn own_namespace() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: the kill switch tests need root (network namespaces, nftables)");
        return false;
    }
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
    for args in [
        "link set lo up",
        "link add orcv0 type veth peer name orcv1",
        "addr add 198.51.100.254/24 dev orcv0",
        "link set orcv0 up",
        "link set orcv1 up",
        // No ARP for the test's addresses: sends complete at once.
        "neigh add 198.51.100.1 lladdr 02:00:00:00:00:01 dev orcv0",
        "neigh add 198.51.100.2 lladdr 02:00:00:00:00:01 dev orcv0",
        "neigh add 198.51.100.3 lladdr 02:00:00:00:00:01 dev orcv0",
        "neigh add 198.51.100.9 lladdr 02:00:00:00:00:01 dev orcv0",
    ] {
        let status = Command::new("ip").args(args.split(' ')).status().unwrap();
        assert!(status.success(), "ip {args}");
    }
    true
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// Sends one datagram from `socket` to `to`: Ok(true) if it left, Ok(false)
/// if the firewall refused it (EPERM).
fn send(socket: &UdpSocket, to: SocketAddr) -> Result<bool, std::io::Error> {
    match socket.send_to(b"marked", to) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Ok(false),
        Err(e) => Err(e),
    }
}

/// The kill switch as the VPN installs it, journalled in `dir`, admitting
/// `ingresses`; 198.51.100.0/24 is excluded from the tunnel (a bypass the
/// client's marked packets must not use).
fn install(dir: &std::path::Path, ingresses: &BTreeSet<SocketAddr>) -> System {
    let settings = Settings {
        device: "orctun0".into(),
        exclude: vec!["198.51.100.0/24".parse().unwrap()],
        lan_access: false,
        kill_switch: true,
    };
    let system = System::new(dir);
    system
        .apply(
            &Change::Firewall {
                table: plan::FIREWALL_TABLE.into(),
            },
            Some(&plan::kill_switch(&settings, ingresses)),
        )
        .unwrap();
    system
}

#[test]
fn marked_packets_reach_listed_ingresses_only_and_updates_open_no_gap() {
    if !own_namespace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (x, y, z) = (
        addr("198.51.100.1:4433"),
        addr("198.51.100.2:4433"),
        addr("198.51.100.3:4433"),
    );
    let system = install(dir.path(), &[x].into());
    openrelay_transport::udp::set_socket_mark(plan::MARK);
    let socket = openrelay_transport::udp::bind_std(addr("0.0.0.0:0")).unwrap();

    assert!(send(&socket, x).unwrap(), "the listed ingress");
    for refused in [y, addr("198.51.100.1:4434"), addr("198.51.100.9:53000")] {
        assert!(
            !send(&socket, refused).unwrap(),
            "{refused}: not a listed ingress"
        );
    }

    // Replace the list 200 times, X in every version, while another thread
    // sends to X without pause: not one datagram may be refused.
    let filter = KillSwitchIngresses::new([x].into());
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, refused) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sender = {
        let socket = socket.try_clone().unwrap();
        let (stop, sent, refused) = (Arc::clone(&stop), Arc::clone(&sent), Arc::clone(&refused));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match send(&socket, x) {
                    Ok(true) => sent.fetch_add(1, Ordering::Relaxed),
                    Ok(false) => refused.fetch_add(1, Ordering::Relaxed),
                    Err(e) => panic!("send: {e}"),
                };
            }
        })
    };
    for round in 0..200 {
        let other = if round % 2 == 0 { y } else { z };
        filter.replace(&[x, other].into()).unwrap();
        assert!(
            send(&socket, other).unwrap(),
            "round {round}: {other} admitted"
        );
        let gone = if round % 2 == 0 { z } else { y };
        assert!(
            !send(&socket, gone).unwrap(),
            "round {round}: {gone} dropped"
        );
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let (sent, refused) = (
        sent.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    eprintln!(
        "{sent} datagrams to the ingress that stayed listed during 200 updates, {refused} refused"
    );
    assert!(sent > 1000, "the sender ran throughout: {sent}");
    assert_eq!(refused, 0, "an update opened a gap");

    // The trait the path manager calls; an ingress that left is dropped.
    filter.admit_only(&[z].into());
    assert!(!send(&socket, x).unwrap() && send(&socket, z).unwrap());
    system.undo_all(&UndoScope::new(None)).unwrap();
}

#[test]
fn undoing_a_journal_deletes_tun_devices_only() {
    if !own_namespace() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let tun = Command::new("ip")
        .args(["tuntap", "add", "dev", "orctun9", "mode", "tun"])
        .status()
        .unwrap();
    assert!(tun.success());
    let system = System::new(dir.path());
    for name in ["orcv1", "orctun9"] {
        system
            .apply(&Change::Device { name: name.into() }, None)
            .unwrap();
    }
    assert_eq!(system.undo_all(&UndoScope::new(None)).unwrap(), 2);
    let exists = |name: &str| {
        Command::new("ip")
            .args(["link", "show", "dev", name])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(exists("orcv1"), "a veth named in the journal is left alone");
    assert!(!exists("orctun9"), "the TUN device is deleted");
}

#[test]
fn the_ruleset_and_its_updates_load_with_ipv6_ingresses_too() {
    if !own_namespace() {
        return;
    }
    let settings = Settings {
        device: "orctun0".into(),
        exclude: vec!["2001:db8:9::/48".parse().unwrap()],
        lan_access: true,
        kill_switch: true,
    };
    let ingresses: BTreeSet<SocketAddr> =
        [addr("[2001:db8::1]:4433"), addr("192.0.2.1:443")].into();
    let nft = |script: &str| {
        openrelay_command::run_command("nft", &["-f", "-"], Some(script)).unwrap();
    };
    nft(&plan::kill_switch(&settings, &ingresses));
    let filter = KillSwitchIngresses::new(ingresses);
    filter.replace(&[addr("[2001:db8::2]:443")].into()).unwrap();
    filter.replace(&BTreeSet::new()).unwrap();
    filter
        .replace(&[addr("[2001:db8::3]:443"), addr("192.0.2.3:443")].into())
        .unwrap();
    let listed = Command::new("nft")
        .args(["list", "table", "inet", plan::FIREWALL_TABLE])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.contains("2001:db8::3 . 443") && listed.contains("192.0.2.3 . 443"),
        "{listed}"
    );
    assert!(!listed.contains("2001:db8::2 . 443"), "{listed}");
}
