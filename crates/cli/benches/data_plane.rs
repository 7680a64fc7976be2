//! Data-plane benchmark: a single 1 GiB TCP download and the time to first
//! byte of new connections, direct and through a devnet (two relays), measured
//! in one run with curl as the client. Prints each figure and its ratio to
//! direct. Run with `cargo bench -p openrelay --bench data_plane`
//! (`-- --size-mib N --ttfb-runs N` to change the workload).
#![allow(clippy::print_stdout, clippy::print_stderr, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Serves `GET /bytes/<n>` with n bytes from a repeated block, one thread per
/// connection: fast enough that the direct path measures curl and the kernel.
fn start_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream));
        }
    });
    addr
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut head = Vec::new();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    let head = String::from_utf8_lossy(&head);
    let len: u64 = head
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/bytes/"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let header = format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    if stream.write_all(header.as_bytes()).is_err() {
        return;
    }
    let block = vec![0x5au8; 256 * 1024];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len() as u64) as usize;
        if stream.write_all(&block[..n]).is_err() {
            return;
        }
        left -= n as u64;
    }
}

struct Devnet {
    child: Child,
    socks: String,
    state: tempfile::TempDir,
}

impl Devnet {
    /// CPU time (user + system, seconds) used so far by each component.
    fn cpu_seconds(&self) -> Vec<(String, f64)> {
        let pids = std::fs::read_to_string(self.state.path().join("devnet.pids")).unwrap();
        pids.lines()
            .filter_map(|line| {
                let (name, pid) = line.split_once(' ')?;
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                // Fields after the command name (which may contain spaces).
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let ticks: f64 =
                    fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                // /proc reports USER_HZ ticks, 100 per second on Linux.
                Some((name.to_owned(), ticks / 100.0))
            })
            .collect()
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        // Closing stdin stops the devnet's children; then stop the devnet.
        drop(self.child.stdin.take());
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

/// A devnet of two operators, with `extra` devnet flags.
fn start_devnet(extra: &[&str]) -> Devnet {
    let state = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_openrelay"))
        .arg("devnet")
        .args(extra)
        .args([
            // The measured path and one spare pair; no registry or
            // validators competing for the two cores.
            "--operators",
            "2",
            "--no-registry",
            "--socks",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
        ])
        .arg("--state-dir")
        .arg(state.path())
        .arg("--log-dir")
        .arg(state.path().join("logs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let socks = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("socks="))
        .unwrap_or_else(|| panic!("devnet did not become ready: {line:?}"))
        .to_owned();
    Devnet {
        child,
        socks,
        state,
    }
}

struct Transfer {
    seconds: f64,
    bytes: f64,
    ttfb: f64,
}

fn curl(url: &str, socks: Option<&str>) -> Transfer {
    let mut command = Command::new("curl");
    command.args([
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{time_total} %{size_download} %{time_starttransfer}",
    ]);
    if let Some(socks) = socks {
        command.args(["--socks5-hostname", socks]);
    }
    let output = command.arg(url).output().unwrap();
    assert!(
        output.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let fields: Vec<f64> = text
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .collect();
    Transfer {
        seconds: fields[0],
        bytes: fields[1],
        ttfb: fields[2],
    }
}

/// Time to the first response byte of a new TCP connection, opened from this
/// process back to back (no process start-up between samples), directly or
/// through the SOCKS5 proxy with the name resolved at the egress.
fn ttfb_back_to_back(server: SocketAddr, socks: Option<SocketAddr>, runs: usize) -> Vec<f64> {
    use openrelay_wire::socks5;
    use openrelay_wire::target::Target;
    use std::io::Read;
    let request = b"GET /bytes/1 HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut samples: Vec<f64> = (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            let mut stream = match socks {
                None => TcpStream::connect(server).unwrap(),
                Some(socks) => {
                    let mut stream = TcpStream::connect(socks).unwrap();
                    let target =
                        Target::parse_authority(&format!("localhost:{}", server.port())).unwrap();
                    let mut hello = Vec::new();
                    socks5::encode_greeting(&[socks5::METHOD_NO_AUTH], &mut hello);
                    socks5::encode_request(socks5::Command::Connect, &target, &mut hello);
                    stream.write_all(&hello).unwrap();
                    // Method selection (2 bytes) then a reply with an IPv4 address (10 bytes).
                    let mut reply = [0u8; 12];
                    stream.read_exact(&mut reply).unwrap();
                    assert_eq!(reply[3], socks5::Reply::Succeeded as u8, "socks reply");
                    stream
                }
            };
            stream.set_nodelay(true).unwrap();
            stream.write_all(request).unwrap();
            let mut first = [0u8; 1];
            stream.read_exact(&mut first).unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples
}

fn gbit_per_s(t: &Transfer) -> f64 {
    t.bytes * 8.0 / t.seconds / 1e9
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[index]
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo test --benches` runs benches with --bench absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("data_plane: skipped (run with `cargo bench`)");
        return;
    }
    let size = arg("--size-mib", 1024) << 20;
    let runs = arg("--ttfb-runs", 50) as usize;
    let server = start_server();
    let devnet = start_devnet(&["--log-level", "warn"]);
    let socks = devnet.socks.as_str();
    let bulk_url = format!("http://127.0.0.1:{}/bytes/{size}", server.port());
    // `localhost` so the egress resolves the name, as for real traffic.
    let bulk_url_relay = format!("http://localhost:{}/bytes/{size}", server.port());
    let small_url = format!("http://localhost:{}/bytes/1", server.port());

    // Warm the path (first flow builds nothing now, but fills caches).
    curl(&small_url, Some(socks));

    println!("single {} MiB download, best of 3 (Gbit/s):", size >> 20);
    let best = |socks: Option<&str>, url: &str| {
        (0..3)
            .map(|_| gbit_per_s(&curl(url, socks)))
            .fold(0.0f64, f64::max)
    };
    let direct = best(None, &bulk_url);
    let cpu_before = devnet.cpu_seconds();
    let relay = best(Some(socks), &bulk_url_relay);
    let cpu_after = devnet.cpu_seconds();
    println!("  direct            {direct:8.2}");
    println!(
        "  openrelay 2 hops  {relay:8.2}   ratio to direct {:.3}",
        relay / direct
    );

    println!("CPU seconds per GiB carried, by component (each hop's own cost):");
    let gib = 3.0 * size as f64 / f64::from(1u32 << 30);
    for ((name, before), (_, after)) in cpu_before.iter().zip(&cpu_after) {
        if after > before {
            println!("  {name:<17} {:6.2}", (after - before) / gib);
        }
    }

    println!("time to first byte of a new connection, {runs} runs, one curl process each (ms):");
    let sample = |socks: Option<&str>| {
        let mut ttfb: Vec<f64> = (0..runs)
            .map(|_| curl(&small_url, socks).ttfb * 1e3)
            .collect();
        ttfb.sort_by(f64::total_cmp);
        ttfb
    };
    let direct_ttfb = sample(None);
    let relay_ttfb = sample(Some(socks));
    for (name, t) in [("direct", &direct_ttfb), ("openrelay 2 hops", &relay_ttfb)] {
        println!(
            "  {name:<17} median {:6.3}  p90 {:6.3}",
            percentile(t, 0.5),
            percentile(t, 0.9)
        );
    }
    let (d, r) = (percentile(&direct_ttfb, 0.5), percentile(&relay_ttfb, 0.5));
    println!(
        "  added by the relays (median): {:.3} ms   ratio to direct {:.2}",
        r - d,
        r / d
    );

    // curl starts a process per sample, leaving every relay idle for a few
    // milliseconds in between; on a VM, waking an idle process costs up to a
    // millisecond, once per process on the path. Back-to-back connections
    // from one process measure the relays' own cost.
    println!(
        "time to first byte of a new connection, {runs} runs back to back from one process (ms):"
    );
    let socks_addr: SocketAddr = socks.parse().unwrap();
    let direct_loop = ttfb_back_to_back(server, None, runs);
    let relay_loop = ttfb_back_to_back(server, Some(socks_addr), runs);
    for (name, t) in [("direct", &direct_loop), ("openrelay 2 hops", &relay_loop)] {
        println!(
            "  {name:<17} median {:6.3}  p90 {:6.3}",
            percentile(t, 0.5),
            percentile(t, 0.9)
        );
    }
    let (d, r) = (percentile(&direct_loop, 0.5), percentile(&relay_loop, 0.5));
    println!(
        "  added by the relays (median): {:.3} ms   ratio to direct {:.2}",
        r - d,
        r / d
    );
    drop(devnet);

    // Admission: a tunnel request carries a Privacy Pass token, which the
    // ingress verifies before it forwards anything. Paths rotate every
    // second, so each devnet builds a fresh path (outer handshake,
    // connect-udp, inner handshake) about once a second; the client logs
    // how long each took.
    let builds = arg("--setup-runs", 20) as usize;
    println!(
        "tunnel set-up (new path: outer handshake, connect-udp, inner handshake), {builds} builds (ms):"
    );
    let mut medians = Vec::new();
    for (name, tokens) in [("without admission", false), ("with admission", true)] {
        let mut flags = vec!["--rotation-secs", "1", "--log-level", "info"];
        if !tokens {
            flags.push("--no-tokens");
        }
        let devnet = start_devnet(&flags);
        let setups = path_setups(&devnet, &small_url, builds);
        println!(
            "  {name:<18} median {:6.3}  p90 {:6.3}  ({} builds)",
            percentile(&setups, 0.5),
            percentile(&setups, 0.9),
            setups.len()
        );
        medians.push(percentile(&setups, 0.5));
    }
    println!(
        "  added by admission (median): {:.3} ms",
        medians[1] - medians[0]
    );
}

/// Set-up times (ms, sorted) of the paths `devnet`'s client builds while a
/// flow to `url` starts about once a second, `builds` of them after the
/// first.
fn path_setups(devnet: &Devnet, url: &str, builds: usize) -> Vec<f64> {
    let log = devnet.state.path().join("logs").join("client.log");
    let read = || -> Vec<f64> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("path established"))
            .filter_map(|l| {
                l.split("setup_us=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<f64>()
                    .ok()
            })
            .map(|us| us / 1e3)
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(3 * builds as u64 + 10);
    while read().len() <= builds && std::time::Instant::now() < deadline {
        curl(url, Some(&devnet.socks));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let mut setups: Vec<f64> = read().into_iter().skip(1).collect();
    setups.sort_by(f64::total_cmp);
    setups
}
