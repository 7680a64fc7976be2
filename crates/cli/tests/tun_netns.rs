//! The full-device VPN in network namespaces (docs/tun.md). An "internet"
//! namespace made by the test runs `openrelay devnet --client-netns`, which
//! makes the "client host" namespace whose only link (a veth pair) leads to
//! the internet namespace, where the ingresses listen on the link's far
//! side; the egresses, a resolver and the destinations (198.18.0.1) are on
//! the internet namespace's loopback. Packet captures on the client's uplink
//! must show nothing but UDP to the ingresses: no DNS, no destination
//! traffic, no IPv6 — with the VPN up, after an ingress is killed, and after
//! the client itself is killed (the kill switch holds). `down` then leaves
//! routes, rules, firewall and resolver exactly as before `up`.
//!
//! Needs root (namespaces, veth, nftables); skipped with a message otherwise.
//! Touches nothing outside the namespaces it creates (and /etc/netns/NAME,
//! which `ip netns exec` reads), and removes them even when it fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use openrelay_testkit as kit;
use openrelay_testkit::netns::{in_ns, is_root, must, sh};
use openrelay_testkit::scripts::{TUN_CLIENT as CLIENT_PY, TUN_INTERNET as INTERNET_PY};

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_openrelay");
const DEST: &str = "198.18.0.1";
const CLIENT_ADDR: &str = "10.231.0.100";
const UPLINK: &str = "uplink0";
/// Every namespace this test makes starts with this, then the test's pid.
const PREFIX: &str = "orc-tun-";

/// Everything the test made; removed on drop, in reverse.
struct World {
    internet: String,
    client: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    /// The ingresses' QUIC addresses: the only place the client's packets
    /// may go.
    ingresses: Vec<SocketAddr>,
}

impl Drop for World {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            // Each child leads its own process group (the devnet's children too).
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
        // The devnet removes the client namespace itself; this is for a
        // devnet that died early.
        for ns in [&self.client, &self.internet] {
            let _ = sh("ip", &["netns", "delete", ns]);
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(ns));
        }
    }
}

fn spawn_group(program: &str, args: &[&str], stdout: Stdio, stderr: &Path) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(std::fs::File::create(stderr).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
}

/// Reads lines from `child`'s stdout until one starts with `ready`.
fn wait_ready(child: &mut Child, limit: Duration, what: &str, log: &Path) -> String {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.starts_with("ready") => return line,
            Ok(_) => {}
            Err(_) => panic!(
                "{what} not ready within {limit:?}; stderr:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            ),
        }
    }
}

/// A packet capture on the client's uplink of what the client host sends.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(world: &World, name: &str) -> Capture {
        let file = world.dir.path().join(format!("{name}.pcap"));
        let log = world.dir.path().join(format!("{name}.tcpdump.log"));
        let mut child = spawn_group(
            "ip",
            &[
                "netns",
                "exec",
                &world.client,
                "tcpdump",
                "-i",
                UPLINK,
                "-Q",
                "out",
                "-nn",
                "-U",
                "-w",
                file.to_str().unwrap(),
            ],
            Stdio::null(),
            &log,
        );
        kit::wait_until_capturing(&mut child, &log);
        Capture { child, file }
    }

    /// Stops the capture and returns every packet that is neither UDP from
    /// the client to an ingress's QUIC address and port nor link mechanics
    /// (ARP, IPv6 neighbour discovery): the leaks. Also returns the count of
    /// tunnel packets.
    fn stop(mut self, world: &World) -> (Vec<String>, usize) {
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill")
            .args(["-s", "INT", "--", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let file = self.file.to_str().unwrap();
        let ingresses: Vec<String> = world
            .ingresses
            .iter()
            .map(|a| format!("(dst host {} and dst port {})", a.ip(), a.port()))
            .collect();
        let tunnel = format!(
            "udp and src host {CLIENT_ADDR} and ({})",
            ingresses.join(" or ")
        );
        let ndp = "icmp6 and (ip6[40] == 135 or ip6[40] == 136)";
        let filter = format!("not arp and not ({ndp}) and not ({tunnel})");
        let read = |filter: &str| -> Vec<String> {
            must("tcpdump", &["-r", file, "-nn", filter])
                .lines()
                .filter(|l| !l.starts_with("reading from"))
                .map(str::to_owned)
                .collect()
        };
        (read(&filter), read(&tunnel).len())
    }
}

fn curl(world: &World, url: &str, extra: &[&str]) -> (bool, String) {
    let mut args = vec![
        "netns",
        "exec",
        &world.client,
        "curl",
        "-sS",
        "--max-time",
        "8",
    ];
    args.extend_from_slice(extra);
    args.push(url);
    sh("ip", &args)
}

fn client_py(world: &World, args: &[&str]) -> (bool, String) {
    let mut all = vec!["python3", CLIENT_PY];
    all.extend_from_slice(args);
    in_ns(&world.client, &all)
}

/// What `down` must restore, as text.
fn snapshot(world: &World) -> String {
    let mut text = String::new();
    for args in [
        &["ip", "-4", "route", "show", "table", "all"][..],
        &["ip", "-6", "route", "show", "table", "all"],
        &["ip", "-4", "rule"],
        &["ip", "-6", "rule"],
        &["nft", "list", "ruleset"],
        &["cat", "/etc/resolv.conf"],
    ] {
        let (_, out) = in_ns(&world.client, args);
        text += &format!("$ {}\n{out}\n", args.join(" "));
    }
    text
}

fn pid_of(state: &Path, component: &str) -> u32 {
    let pids = std::fs::read_to_string(state.join("devnet.pids")).unwrap();
    pids.lines()
        .find_map(|l| {
            let (name, pid) = l.split_once(' ')?;
            (name == component).then(|| pid.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no pid for {component} in {pids}"))
}

/// Removes the namespaces (and /etc/netns entries) an earlier run of this
/// test left when it was killed: those of our prefix whose pid is gone.
fn remove_leftovers_of_killed_runs() {
    let (_, list) = sh("ip", &["netns", "list"]);
    for name in list.split_whitespace().filter(|n| n.starts_with(PREFIX)) {
        let pid = name.rsplit('-').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = sh("ip", &["netns", "delete", name]);
            let _ = std::fs::remove_dir_all(Path::new("/etc/netns").join(name));
        }
    }
}

/// The ingresses' addresses in the devnet's client config.
fn ingresses_of(state: &Path) -> Vec<SocketAddr> {
    let config =
        openrelay_config::ClientConfig::load(&state.join("configs").join("client.toml")).unwrap();
    config
        .relays
        .iter()
        .filter(|r| r.role == openrelay_types::RelayRole::Ingress)
        .map(|r| r.addr)
        .collect()
}

/// Serialises the tests of this file: each runs a devnet with a VPN, and
/// two at once on two cores make both slow.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The test's internet namespace with its servers, and the name of the
/// client namespace the devnet is to make (None: not root).
fn internet(name: &str) -> Option<World> {
    if !is_root() {
        eprintln!("SKIPPED: the full-device VPN tests need root (network namespaces, nftables)");
        return None;
    }
    remove_leftovers_of_killed_runs();
    let pid = std::process::id();
    let mut world = World {
        internet: format!("{PREFIX}{name}-i-{pid}"),
        client: format!("{PREFIX}{name}-c-{pid}"),
        dir: tempfile::tempdir().unwrap(),
        children: Vec::new(),
        ingresses: Vec::new(),
    };
    let inet = world.internet.clone();
    must("ip", &["netns", "add", &inet]);
    must("ip", &["-n", &inet, "link", "set", "lo", "up"]);
    must(
        "ip",
        &[
            "-n",
            &inet,
            "addr",
            "add",
            &format!("{DEST}/32"),
            "dev",
            "lo",
        ],
    );
    let log = world.dir.path().join("internet.log");
    let mut servers = spawn_group(
        "ip",
        &["netns", "exec", &inet, "python3", INTERNET_PY],
        Stdio::piped(),
        &log,
    );
    wait_ready(
        &mut servers,
        Duration::from_secs(10),
        "the internet's servers",
        &log,
    );
    world.children.push(servers);
    Some(world)
}

/// Runs `openrelay devnet --client-netns` in the internet namespace, with
/// state in `run` under the test's directory, until it is ready (it is then
/// the last of `world.children`); returns its state directory.
fn start_devnet(world: &mut World, run: &str) -> PathBuf {
    let state = world.dir.path().join(run);
    let log = world.dir.path().join(format!("{run}.log"));
    let netns_path = format!("--net=/run/netns/{}", world.internet);
    let mut devnet = spawn_group(
        "nsenter",
        &[
            &netns_path,
            "--",
            BIN,
            "devnet",
            "--client-netns",
            &world.client,
            "--no-registry",
            "--operators",
            "3",
            "--dns-resolver",
            "127.0.0.1:53",
            "--state-dir",
            state.to_str().unwrap(),
            "--log-dir",
            world
                .dir
                .path()
                .join(format!("{run}-logs"))
                .to_str()
                .unwrap(),
        ],
        Stdio::piped(),
        &log,
    );
    let ready = wait_ready(&mut devnet, Duration::from_secs(60), "the devnet", &log);
    assert!(
        ready.contains("tun="),
        "the devnet's client runs the VPN: {ready}"
    );
    world.children.push(devnet);
    world.ingresses = ingresses_of(&state);
    assert_eq!(world.ingresses.len(), 3);
    state
}

fn setup(name: &str) -> Option<(World, PathBuf)> {
    let mut world = internet(name)?;
    let state = start_devnet(&mut world, "devnet");
    Some((world, state))
}

#[test]
fn vpn_in_a_namespace_leaks_nothing_fails_closed_and_restores_the_system() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let Some((world, state)) = setup("leak") else {
        return;
    };

    // 1. With the VPN up: TCP by IP and by name, DNS to any resolver over
    //    UDP and TCP, UDP flows; the destination sees an egress, never the
    //    client; IPv6 does not leave outside the tunnel.
    let capture = Capture::start(&world, "up");
    for url in [format!("http://{DEST}/"), "http://dest.test/".to_owned()] {
        let (ok, body) = curl(&world, &url, &[]);
        assert!(
            ok && body.contains("hello from the destination"),
            "{url}: {body}"
        );
        assert!(
            !body.contains(CLIENT_ADDR),
            "the destination saw the client: {body}"
        );
    }
    for resolver in ["10.231.0.254", "192.0.2.53"] {
        let (ok, out) = client_py(&world, &["dns", resolver, "dest.test"]);
        assert!(ok && out.trim() == DEST, "dns via {resolver}: {out}");
    }
    let (ok, out) = client_py(&world, &["dns-tcp", "192.0.2.53", "dest.test"]);
    assert!(ok && out.trim() == DEST, "dns over tcp: {out}");
    let (ok, out) = in_ns(&world.client, &["getent", "hosts", "dest.test"]);
    assert!(ok && out.contains(DEST), "the system resolver: {out}");
    let (ok, out) = client_py(&world, &["udp", DEST, "7", "ping"]);
    assert!(ok && out.starts_with("ping from 127."), "udp echo: {out}");
    let (ok, out) = curl(&world, "http://[fd00:6f72:e7::fe]/", &["--max-time", "3"]);
    assert!(
        !ok,
        "IPv6 to the link's far side must not get through: {out}"
    );
    // The client's own (marked) packets go to the ingresses' QUIC ports
    // only: not to the gateway (where an issuer or registry could be), any
    // other address, or another port of an ingress.
    let ingress = world.ingresses[0];
    for (host, port) in [
        ("10.231.0.254".to_owned(), 4450),
        ("192.0.2.1".to_owned(), 443),
        (ingress.ip().to_string(), ingress.port() + 1),
        ("fd00:6f72:e7::fe".to_owned(), 443),
    ] {
        let (ok, out) = client_py(&world, &["marked-udp", &host, &port.to_string()]);
        assert!(
            ok && out.trim() == "refused",
            "a marked datagram to {host} port {port}: {out}"
        );
    }
    let (_, set) = in_ns(
        &world.client,
        &["nft", "list", "set", "inet", "openrelay", "ingresses_v4"],
    );
    for ingress in &world.ingresses {
        assert!(
            set.contains(&format!("{} . {}", ingress.ip(), ingress.port())),
            "the kill switch admits {ingress}:\n{set}"
        );
    }
    let (leaks, tunnel) = capture.stop(&world);
    assert!(
        leaks.is_empty(),
        "packets outside the tunnel:\n{}",
        leaks.join("\n")
    );
    assert!(tunnel > 0, "the capture saw the tunnel");

    // 2. Kill the ingress in use: traffic comes back through another path,
    //    and nothing leaks meanwhile.
    let status: serde_json::Value = serde_json::from_str(&must(
        BIN,
        &["status", "--state-dir", state.to_str().unwrap(), "--json"],
    ))
    .unwrap();
    let ingress = status["ingress"]["name"].as_str().unwrap().to_owned();
    let capture = Capture::start(&world, "failover");
    must(
        "kill",
        &["-s", "KILL", "--", &pid_of(&state, &ingress).to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (ok, body) = curl(&world, "http://dest.test/", &["--max-time", "4"]);
        if ok && body.contains("hello") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no connectivity after {ingress} died: {body}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let (leaks, _) = capture.stop(&world);
    assert!(
        leaks.is_empty(),
        "leaks during failover:\n{}",
        leaks.join("\n")
    );

    // 3. Kill the client: the kill switch holds (nothing leaves, nothing
    //    works) until `down`.
    let client_pid = pid_of(&state, "client");
    let capture = Capture::start(&world, "dead");
    must("kill", &["-s", "KILL", "--", &client_pid.to_string()]);
    std::thread::sleep(Duration::from_millis(300));
    let (ok, _) = curl(&world, &format!("http://{DEST}/"), &["--max-time", "3"]);
    assert!(!ok, "traffic got through with the client dead");
    let (ok, _) = client_py(&world, &["dns", "10.231.0.254", "dest.test"]);
    assert!(!ok, "DNS got an answer with the client dead");
    let (ok, _) = curl(&world, "http://[fd00:6f72:e7::fe]/", &["--max-time", "3"]);
    assert!(!ok);
    let (leaks, _) = capture.stop(&world);
    assert!(
        leaks.is_empty(),
        "leaks with the client dead:\n{}",
        leaks.join("\n")
    );

    // 4. `down` after the crash undoes everything; then `up` and `down`
    //    again leave the system exactly as before `up`.
    let client_state = state.join("client");
    let (ok, out) = in_ns(
        &world.client,
        &[BIN, "down", "--state-dir", client_state.to_str().unwrap()],
    );
    assert!(ok, "down after a crash: {out}");
    let before = snapshot(&world);
    assert!(
        !before.contains("table inet openrelay"),
        "kill switch lifted:\n{before}"
    );
    assert!(
        !before.contains("28530") && before.contains("nameserver 10.231.0.254"),
        "{before}"
    );
    let config = state.join("configs").join("client.toml");
    let (ok, out) = in_ns(
        &world.client,
        &[BIN, "up", "--config", config.to_str().unwrap()],
    );
    assert!(ok && out.starts_with("ready"), "up: {out}");
    let during = snapshot(&world);
    assert!(during.contains("table inet openrelay") && during.contains("nameserver 10.89.0.1"));
    let (ok, body) = curl(&world, "http://dest.test/", &[]);
    assert!(ok && body.contains("hello"), "after up: {body}");
    let (ok, out) = in_ns(
        &world.client,
        &[BIN, "down", "--config", config.to_str().unwrap()],
    );
    assert!(ok, "down: {out}");
    assert_eq!(
        snapshot(&world),
        before,
        "down restores routes, rules, firewall and resolver"
    );

    eprintln!("tun namespace test took {:?}", started.elapsed());
}

/// Issue 11, item 20: what a killed run leaves behind (a link holding the
/// devnet's link addresses, a namespace, its firewall table) does not break
/// the next `devnet --client-netns`: the leftovers of a devnet that is gone
/// are removed (its owner record names a dead pid), and the link addresses
/// are held so that a leftover nobody owns cannot shadow them.
#[test]
fn a_killed_runs_leftovers_do_not_break_the_next_devnet() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let Some(mut world) = internet("left") else {
        return;
    };
    // A link with the devnet's addresses that no devnet owns (as an earlier
    // version, killed, left one).
    let inet = world.internet.clone();
    let ip = |args: &str| {
        let mut all = vec!["-n", inet.as_str()];
        all.extend(args.split(' '));
        must("ip", &all);
    };
    ip("link add orcstale0 type veth peer name orcstale1");
    ip("addr add 10.231.0.254/24 dev orcstale0");
    ip("addr add 10.231.0.1/24 dev orcstale0");
    ip("link set orcstale0 up");
    ip("link set orcstale1 up");

    // A devnet of this version, killed outright: its namespace, link,
    // firewall table and the client's kill switch stay behind.
    start_devnet(&mut world, "killed");
    let killed = world.children.pop().unwrap();
    signal_group_kill(killed);
    let (_, namespaces) = sh("ip", &["netns", "list"]);
    assert!(
        namespaces.contains(&world.client),
        "the killed devnet's namespace is left over: {namespaces}"
    );

    // The next devnet, with the same client namespace name, works.
    start_devnet(&mut world, "next");
    for url in [format!("http://{DEST}/"), "http://dest.test/".to_owned()] {
        let (ok, body) = curl(&world, &url, &[]);
        assert!(
            ok && body.contains("hello from the destination"),
            "{url} after a killed run: {body}"
        );
    }

    // A live devnet's namespace is not a leftover: a second devnet in the
    // same network namespace is refused, and the first keeps working.
    let other = format!("{PREFIX}left-x-{}", std::process::id());
    let (ok, out) = sh(
        "nsenter",
        &[
            &format!("--net=/run/netns/{inet}"),
            "--",
            BIN,
            "devnet",
            "--client-netns",
            &other,
            "--no-registry",
            "--operators",
            "3",
        ],
    );
    let pid = pid_of_devnet(&world);
    assert!(
        !ok && out.contains(&format!("another devnet (pid {pid})")),
        "a second devnet beside a live one: {out}"
    );
    let (_, namespaces) = sh("ip", &["netns", "list"]);
    assert!(!namespaces.contains(&other), "{namespaces}");
    let (ok, body) = curl(&world, &format!("http://{DEST}/"), &[]);
    assert!(
        ok && body.contains("hello"),
        "the live devnet still works: {body}"
    );
}

/// The pid of the devnet last started (its process group leader is
/// `nsenter`, which execs the devnet: the same pid).
fn pid_of_devnet(world: &World) -> u32 {
    world.children.last().unwrap().id()
}

/// Kills `child`'s whole process group at once, as a crash or `kill -9`
/// would, and reaps it.
fn signal_group_kill(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}
