//! A connection's request-stream allowance follows its use (issue 11
//! item 3): quinn keeps a slot in two hash tables for every stream a peer
//! may open, so a server that allowed its whole maximum from the start
//! paid for 1,024 slots on every idle egress connection (about 120 KiB).
//! A fresh connection may now open only a few request streams; the server
//! raises the allowance as the connection's requests grow, never past the
//! maximum, and never for heads that do not arrive. Memory per idle
//! connection is measured in docs/BENCHMARKS.md (`openrelay-abuse attack
//! --attacks connections`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use openrelay_transport::call::PinnedConnection;
use openrelay_transport::endpoint::{INNER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{
    self, RequestContext, RequestHandler, ServerCounters, ServerStream,
};
use openrelay_transport::testing::RawClient;
use openrelay_transport::udp;
use tokio::sync::watch;
use tokio::time::timeout;

/// The server's maximum of request streams per connection.
const MAX: u32 = 100;
/// What "a few" means for a fresh connection.
const SMALL: usize = 40;

/// Answers every request with 200 and holds its stream open until
/// released, counting the requests it holds.
struct Hold {
    release: watch::Receiver<bool>,
    held: AtomicU32,
}

impl RequestHandler for Hold {
    fn handle(
        self: Arc<Self>,
        _request: http::Request<()>,
        mut stream: ServerStream,
        _context: RequestContext,
    ) -> impl Future<Output = ()> + Send + 'static {
        let mut release = self.release.clone();
        async move {
            if server::respond_ok(&mut stream, false).await {
                self.held.fetch_add(1, Ordering::SeqCst);
                let _ = release.wait_for(|released| *released).await;
                let _ = stream.finish().await;
            }
        }
    }
}

/// Bidirectional streams `connection` may open now: opened (never written,
/// so the server sees none of them) until the next one would wait.
async fn credit(connection: &quinn::Connection) -> Vec<(quinn::SendStream, quinn::RecvStream)> {
    let mut opened = Vec::new();
    while let Ok(Ok(streams)) = timeout(Duration::from_millis(200), connection.open_bi()).await {
        opened.push(streams);
    }
    opened
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connections_stream_allowance_starts_small_and_follows_its_requests() {
    let identity = Identity::generate().unwrap();
    let listener = server::bind(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        &identity,
        &Tuning::relay(Duration::from_secs(30), INNER_MTU),
        ServerLimits::egress(MAX),
    )
    .unwrap();
    let addr = listener.local_addr().unwrap();
    let (release, released) = watch::channel(false);
    let hold = Arc::new(Hold {
        release: released,
        held: AtomicU32::new(0),
    });
    let served = tokio::spawn(server::serve(
        listener,
        Arc::clone(&hold),
        Arc::new(ServerCounters::default()),
        std::future::pending(),
    ));

    // An idle connection is allowed a few request streams, not the maximum.
    let idle = RawClient::connect(addr, identity.pin(), INNER_MTU, None)
        .await
        .unwrap();
    let fresh = credit(&idle.connection).await;
    assert!(
        (4..=SMALL).contains(&fresh.len()),
        "a fresh connection may open {} request streams at once (expected a few, at most {SMALL}; the maximum is {MAX})",
        fresh.len()
    );

    // Heads that never complete (slowloris) do not raise it: they would
    // raise it to the maximum for free, and it never shrinks.
    let mut slow = fresh;
    for (send, _) in &mut slow {
        // A HEADERS frame (type 0x01) declaring 100 bytes, of which one
        // arrives (RFC 9114 §7.1, §7.2.2).
        send.write_all(&[0x01, 0x40, 0x64, 0x00]).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let more = credit(&idle.connection).await;
    assert!(
        more.is_empty(),
        "{} more request streams for {} incomplete heads",
        more.len(),
        slow.len()
    );

    // Requests opened together all get through: the allowance grows with
    // them, up to the maximum.
    let quic = udp::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let busy = PinnedConnection::connect(&quic, addr, identity.pin(), INNER_MTU)
        .await
        .unwrap();
    let paths: Vec<String> = (0..MAX).map(|i| format!("/hold/{i}")).collect();
    let answered = futures_util::future::join_all(
        paths
            .iter()
            .map(|path| busy.request(http::Method::GET, path, &[], Vec::new())),
    );
    tokio::pin!(answered);
    let all_held = async {
        while hold.held.load(Ordering::SeqCst) < MAX {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = &mut answered => panic!("requests ended before they were released"),
        held = timeout(Duration::from_secs(20), all_held) => held.unwrap_or_else(|_| panic!(
            "{} of {MAX} requests of a growing connection reached the server",
            hold.held.load(Ordering::SeqCst)
        )),
    }

    // ... and never beyond it.
    let beyond = credit(busy.connection()).await;
    assert!(
        beyond.is_empty(),
        "{} request streams beyond the maximum of {MAX}",
        beyond.len()
    );

    release.send(true).unwrap();
    let answered = timeout(Duration::from_secs(20), answered).await.unwrap();
    assert!(
        answered
            .iter()
            .all(|r| r.as_ref().is_ok_and(|r| r.status == 200))
    );
    drop((slow, more, beyond));
    served.abort();
}
