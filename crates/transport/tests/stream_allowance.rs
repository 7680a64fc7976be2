//! A connection's request-stream allowance follows its use (issue 11
//! item 3): quinn keeps a slot in two hash tables for every stream a peer
//! may open, so a server that allowed its whole maximum from the start
//! paid for 1,024 slots on every idle egress connection (about 120 KiB).
//! A fresh connection may now open only a few request streams; the server
//! raises the allowance as the connection's requests grow, never past the
//! maximum, and never for heads that do not arrive. Memory per idle connection is measured in docs/BENCHMARKS.md
//! (`openrelay-abuse attack --attacks connections`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openrelay_transport::endpoint::{self, INNER_MTU, Tuning};
use openrelay_transport::identity::Identity;
use openrelay_transport::limits::ServerLimits;
use openrelay_transport::server::{
    self, RequestContext, RequestHandler, ServerCounters, ServerStream,
};
use openrelay_transport::{h3guard, udp};
use tokio::sync::watch;
use tokio::time::timeout;

/// The server's maximum of request streams per connection.
const MAX: u32 = 100;
/// What "a few" means for a fresh connection.
const SMALL: usize = 40;

/// Answers every request with 200 and holds its stream open until released.
struct Hold {
    release: watch::Receiver<bool>,
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
                let _ = release.wait_for(|released| *released).await;
            }
        }
    }
}

async fn connect(addr: SocketAddr, identity: &Identity) -> quinn::Connection {
    let endpoint = udp::endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), None).unwrap();
    let tuning = Tuning::client(Duration::from_secs(30), Duration::from_secs(5), INNER_MTU);
    endpoint
        .connect_with(
            endpoint::client_config(identity.pin(), &tuning).unwrap(),
            addr,
            "127.0.0.1",
        )
        .unwrap()
        .await
        .unwrap()
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
    let served = tokio::spawn(server::serve(
        listener,
        Arc::new(Hold { release: released }),
        Arc::new(ServerCounters::default()),
        std::future::pending(),
    ));

    // An idle connection is allowed a few request streams, not the maximum.
    let idle = connect(addr, &identity).await;
    let fresh = credit(&idle).await;
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
    let more = credit(&idle).await;
    assert!(
        more.is_empty(),
        "{} more request streams for {} incomplete heads",
        more.len(),
        slow.len()
    );

    // Requests opened together all get through: the allowance grows with
    // them, up to the maximum.
    let busy = connect(addr, &identity).await;
    let (mut driver, requests) = h3guard::client(&busy).await.unwrap();
    let driving = tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    let held = futures_util::future::join_all((0..MAX).map(|i| {
        let mut requests = requests.clone();
        async move {
            let request = http::Request::get(format!("https://{addr}/hold/{i}"))
                .body(())
                .unwrap();
            let mut stream = requests.send_request(request).await.unwrap();
            stream.finish().await.unwrap();
            let response = stream.recv_response().await.unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            stream
        }
    }));
    let held = timeout(Duration::from_secs(20), held)
        .await
        .expect("every request of a growing connection is answered");
    assert_eq!(held.len(), MAX as usize);

    // ... and never beyond it.
    let beyond = credit(&busy).await;
    assert!(
        beyond.is_empty(),
        "{} request streams beyond the maximum of {MAX}",
        beyond.len()
    );

    release.send(true).unwrap();
    drop((slow, more, beyond, held, requests));
    driving.abort();
    served.abort();
}
