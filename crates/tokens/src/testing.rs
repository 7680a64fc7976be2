//! Test support (feature `testing`): a real `redis-server` on a free loopback
//! port, killed when dropped, so a failing test leaves no process behind;
//! and a local issuer (one key, its directory file, tokens for any
//! challenge) for relays under test.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `redis-server` owned by a test.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    addr: SocketAddr,
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free loopback port;
    /// `None` (with a message on stderr) if the binary is not installed.
    pub fn start() -> Option<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .ok()?
            .port();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                #[allow(clippy::print_stderr)]
                {
                    eprintln!(
                        "SKIPPED: redis-server is not installed (apt-get install redis-server)"
                    );
                }
                return None;
            }
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        let server = RedisServer {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(server.addr).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    /// Its URL for [`RedisSpentTokens::connect`](crate::spent::RedisSpentTokens::connect).
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, as with a hung or overloaded Redis.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    /// Signals this server's process by its pid, with kill(1) (the
    /// workspace forbids `unsafe`).
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args(["-s", signal, "--", &self.child.id().to_string()])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "kill -s {signal} redis-server"
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One issuer key for all tests of a process (RSA key generation takes a
/// while).
#[allow(clippy::unwrap_used)]
pub fn issuer_key() -> &'static crate::SigningKey {
    static KEY: std::sync::OnceLock<crate::SigningKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| crate::SigningKey::generate().unwrap())
}

/// Writes the issuer directory (RFC 9578 §4) with `key` valid now to `path`,
/// as a relay's `issuer_keys` file.
#[allow(clippy::unwrap_used)]
pub fn write_directory(path: &std::path::Path, key: &crate::SigningKey) -> crate::EpochKey {
    let now = openrelay_types::unix_now();
    let epoch = crate::EpochKey::new(key.public().clone(), now - 10, 3600);
    let directory = crate::IssuerDirectory::new("/token-request", std::slice::from_ref(&epoch));
    std::fs::write(path, directory.to_json()).unwrap();
    epoch
}

/// A token from `key` for `challenge`, issued locally (RFC 9578 §6).
#[allow(clippy::unwrap_used)]
pub fn mint(key: &crate::SigningKey, challenge: &crate::TokenChallenge) -> crate::Token {
    let (request, pending) =
        crate::issuance::request(key.public(), challenge.digest().unwrap()).unwrap();
    pending.finalize(&key.sign(&request).unwrap()).unwrap()
}

/// A token that parses (type 0x0002, every byte `n`) but was never signed:
/// for storage and codec tests.
#[allow(clippy::unwrap_used)]
pub fn unsigned_token(n: u8) -> crate::Token {
    let mut bytes = vec![0x00, 0x02];
    bytes.extend_from_slice(&[n; 32 + 32 + 32 + crate::NK]);
    crate::Token::decode(&bytes).unwrap()
}
