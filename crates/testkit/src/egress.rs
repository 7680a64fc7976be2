//! An egress relay in this process built from config text
//! ([`start_egress`]), and HTTP/3 sessions to it ([`Session`]: CONNECT,
//! POST, DNS queries).

#![cfg(feature = "harness")]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, Bytes};
use hickory_proto::op::Message;
use openrelay_config::RelayConfig;
use openrelay_egress::{Egress, EgressSettings};
use openrelay_transport::endpoint::{OUTER_MTU, Tuning, client_config};
use openrelay_transport::identity::Identity;
use openrelay_transport::task::AbortOnDrop;
use openrelay_transport::udp;

/// An egress serving in this process until dropped.
#[derive(Debug)]
pub struct RunningEgress {
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its identity (the key clients pin).
    pub identity: Identity,
    /// Its state directory.
    pub state: tempfile::TempDir,
    _task: AbortOnDrop<()>,
}

/// Starts an egress on 127.0.0.1 whose config ends with `rest` (an
/// `[egress]` section and whatever follows it).
pub fn start_egress(rest: &str) -> RunningEgress {
    let state = tempfile::tempdir().unwrap();
    let config = RelayConfig::from_toml(&format!(
        "role = \"egress\"\noperator = \"test\"\nlisten = \"127.0.0.1:0\"\nstate_dir = \"{}\"\n\n{rest}",
        state.path().display()
    ))
    .unwrap();
    let identity = Identity::load_or_create(state.path()).unwrap();
    let egress = Egress::bind(
        EgressSettings::from_config(&egress_config(config)).unwrap(),
        &identity,
    )
    .unwrap();
    let addr = egress.local_addr().unwrap();
    let task = AbortOnDrop(tokio::spawn(egress.serve(std::future::pending())));
    RunningEgress {
        addr,
        identity,
        state,
        _task: task,
    }
}

type Requests = openrelay_transport::h3guard::ClientRequests;
type Stream = openrelay_transport::h3guard::ClientStream;

/// A client's session with an egress: one QUIC connection, any requests.
pub struct Session {
    /// The QUIC connection.
    pub connection: quinn::Connection,
    requests: Requests,
    _driver: AbortOnDrop<()>,
    _endpoint: quinn::Endpoint,
}

/// An answer: status, Proxy-Status, body; for a CONNECT that succeeded, the
/// tunnel's stream (dropping it ends the tunnel).
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The response's header fields.
    pub headers: http::HeaderMap,
    /// The body (empty for a tunnel).
    pub body: Vec<u8>,
    /// A CONNECT's open stream.
    pub tunnel: Option<Stream>,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("tunnel", &self.tunnel.is_some())
            .finish()
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("connection", &self.connection)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The Proxy-Status field (RFC 9209), or "".
    pub fn proxy_status(&self) -> String {
        self.headers
            .get("proxy-status")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

impl Session {
    /// Opens a session to `egress` (pinning its key).
    pub async fn open(egress: &RunningEgress) -> Session {
        let endpoint = udp::endpoint(udp::local_for(None, egress.addr), None).unwrap();
        let tuning = Tuning::client(Duration::from_secs(30), Duration::from_secs(2), OUTER_MTU);
        let config = client_config(egress.identity.pin(), &tuning).unwrap();
        let connection = endpoint
            .connect_with(config, egress.addr, &egress.addr.ip().to_string())
            .unwrap()
            .await
            .unwrap();
        let (mut driver, requests) = openrelay_transport::h3guard::client(&connection)
            .await
            .unwrap();
        let driver = AbortOnDrop(tokio::spawn(async move {
            let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
        }));
        Session {
            connection,
            requests,
            _driver: driver,
            _endpoint: endpoint,
        }
    }

    /// `CONNECT authority` (RFC 9114 §4.4).
    pub async fn connect(&self, authority: &str) -> Answer {
        let request = http::Request::builder()
            .method(http::Method::CONNECT)
            .uri(authority)
            .body(())
            .unwrap();
        self.send(request, Vec::new(), true).await
    }

    /// `POST path` with `headers` and `body`.
    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
        let mut request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("https://openrelay.test{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request.body(()).unwrap(), body, false).await
    }

    async fn send(&self, request: http::Request<()>, body: Vec<u8>, tunnel: bool) -> Answer {
        let mut stream = self.requests.clone().send_request(request).await.unwrap();
        if !tunnel {
            if !body.is_empty() {
                let _ = stream.send_data(Bytes::from(body)).await;
            }
            let _ = stream.finish().await;
        }
        let response = stream.recv_response().await.unwrap();
        let status = response.status().as_u16();
        if tunnel && status == 200 {
            return Answer {
                status,
                headers: response.headers().clone(),
                body: Vec::new(),
                tunnel: Some(stream),
            };
        }
        let mut received = Vec::new();
        while let Ok(Some(mut chunk)) = stream.recv_data().await {
            while chunk.has_remaining() {
                let piece = chunk.chunk().to_vec();
                chunk.advance(piece.len());
                received.extend_from_slice(&piece);
            }
        }
        Answer {
            status,
            headers: response.headers().clone(),
            body: received,
            tunnel: None,
        }
    }

    /// A DNS query through the egress (`POST /dns-query`, RFC 8484 §4.1);
    /// the answer's HTTP status and DNS message.
    pub async fn dns(&self, query: &Message) -> (u16, Option<Message>) {
        let answer = self
            .post(
                openrelay_wire::dns::PATH,
                &[("content-type", openrelay_wire::dns::MEDIA_TYPE)],
                query.to_vec().unwrap(),
            )
            .await;
        (answer.status, Message::from_vec(&answer.body).ok())
    }
}

/// The egress's config, which `config` is.
fn egress_config(config: RelayConfig) -> openrelay_config::EgressRelayConfig {
    match config {
        RelayConfig::Egress(egress) => egress,
        other => panic!("not an egress: {other:?}"),
    }
}
