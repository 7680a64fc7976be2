//! A network link emulator for `bench/run`, for kernels without `sch_netem`.
//!
//! Each link is a pair of TAP devices (`<name>0`, `<name>1`); the harness
//! bridges each to one side of the link. Frames read from one TAP are written
//! to the other after the link's one-way delay, optionally dropped at random
//! and serialised at a rate through a drop-tail queue.
//!
//! Usage: wire LINK...   where LINK is name:delay_ms[:loss_pct[:rate_mbit[:queue_ms]]]
//! e.g.   wire A:7.5:0.1:1000:45 B:5 C:10
//!
//! Links without loss or rate carry GSO frames whole (IFF_VNET_HDR with
//! offloads), so TCP/UDP bursts cost one read and one write; lossy or
//! rate-limited links get one packet per frame, so loss and pacing are per
//! packet as on a real wire. Built by `bench/run` with plain `rustc -O`; std
//! only (ioctl is declared below).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

unsafe extern "C" {
    fn ioctl(fd: i32, request: u64, ...) -> i32;
}

const TUNSETIFF: u64 = 0x4004_54ca;
const TUNSETOFFLOAD: u64 = 0x4004_54d0;
const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;
const IFF_VNET_HDR: i16 = 0x4000;
// TUN_F_CSUM | TSO4 | TSO6 | TSO_ECN | USO4 | USO6
const OFFLOADS: u64 = 0x01 | 0x02 | 0x04 | 0x08 | 0x20 | 0x40;

fn open_tap(name: &str, gso: bool) -> File {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .expect("open /dev/net/tun");
    let mut ifreq = [0u8; 40];
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = IFF_TAP | IFF_NO_PI | if gso { IFF_VNET_HDR } else { 0 };
    ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
    let fd = file.as_raw_fd();
    // SAFETY: ifreq is a valid, large enough `struct ifreq`.
    assert_eq!(unsafe { ioctl(fd, TUNSETIFF, ifreq.as_mut_ptr()) }, 0, "TUNSETIFF {name}");
    if gso {
        // SAFETY: TUNSETOFFLOAD takes an unsigned long by value.
        let without_uso = OFFLOADS & !(0x20 | 0x40);
        if unsafe { ioctl(fd, TUNSETOFFLOAD, OFFLOADS) } != 0 {
            assert_eq!(unsafe { ioctl(fd, TUNSETOFFLOAD, without_uso) }, 0, "TUNSETOFFLOAD");
        }
    }
    file
}

struct Link {
    delay: Duration,
    loss: f64,
    /// Nanoseconds per byte; 0: no rate limit.
    ns_per_byte: f64,
    queue: Duration,
}

/// xorshift64*: loss decisions need speed, not quality.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How long before a frame is due the delay thread stops sleeping, when
/// the link is nearly idle.
const SPIN: Duration = Duration::from_micros(300);
/// "Nearly idle": at most this many frames in flight on the link.
const FEW_FRAMES: usize = 4;

fn direction(link: &Link, mut from: File, mut to: File, seed: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut in_flight = std::collections::VecDeque::new();
        loop {
            if in_flight.is_empty() {
                match rx.recv() {
                    Ok(frame) => in_flight.push_back(frame),
                    Err(_) => return,
                }
            }
            in_flight.extend(rx.try_iter());
            let Some((due, frame)) = in_flight.pop_front() else {
                continue;
            };
            let now = Instant::now();
            if in_flight.len() < FEW_FRAMES {
                // A sleeping thread wakes late by this VM's scheduling
                // latency (0.1-0.2 ms per crossing, 2 ms over a TTFB
                // exchange), which would count against every path: sleep
                // until shortly before the frame is due and spin the rest.
                if due > now + SPIN {
                    std::thread::sleep(due - now - SPIN);
                }
                while Instant::now() < due {
                    std::hint::spin_loop();
                }
            } else if due > now {
                // Under a stream of frames spinning would burn a core that
                // the paths' own processes need; a late wake-up here delays
                // a burst, not a round trip, and what fell due meanwhile is
                // written at once.
                std::thread::sleep(due - now);
            }
            let _ = to.write(&frame);
        }
    });
    let mut rng = Rng(seed | 1);
    let mut line_free = Instant::now();
    let mut buf = vec![0u8; 65_600];
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(_) => return,
        };
        if link.loss > 0.0 && rng.unit() * 100.0 < link.loss {
            continue;
        }
        let now = Instant::now();
        let mut sent = now;
        if link.ns_per_byte > 0.0 {
            let start = line_free.max(now);
            if start - now > link.queue {
                continue; // drop-tail: the queue is full
            }
            // Wire bytes: Ethernet frame plus preamble and gap.
            line_free = start + Duration::from_nanos((link.ns_per_byte * (n + 24) as f64) as u64);
            sent = line_free;
        }
        if tx.send((sent + link.delay, buf[..n].to_vec())).is_err() {
            return;
        }
    }
}

fn main() {
    let mut threads = Vec::new();
    for (i, spec) in std::env::args().skip(1).enumerate() {
        let parts: Vec<&str> = spec.split(':').collect();
        let num = |k: usize| parts.get(k).map_or(0.0, |v| v.parse::<f64>().expect("number"));
        let link = Link {
            delay: Duration::from_secs_f64(num(1) / 1e3),
            loss: num(2),
            ns_per_byte: if num(3) > 0.0 { 8e3 / num(3) } else { 0.0 },
            queue: Duration::from_secs_f64(if num(4) > 0.0 { num(4) } else { 50.0 } / 1e3),
        };
        let gso = link.loss == 0.0 && link.ns_per_byte == 0.0;
        let a = open_tap(&format!("{}0", parts[0]), gso);
        let b = open_tap(&format!("{}1", parts[0]), gso);
        let (a2, b2) = (a.try_clone().expect("dup"), b.try_clone().expect("dup"));
        let link = std::sync::Arc::new(link);
        for (from, to, seed) in [(a, b2, 2 * i as u64 + 1), (b, a2, 2 * i as u64 + 2)] {
            let link = std::sync::Arc::clone(&link);
            let seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            threads.push(std::thread::spawn(move || direction(&link, from, to, seed)));
        }
    }
    println!("ready");
    for t in threads {
        let _ = t.join();
    }
}
