//! Harness for tests of the egress on real sockets: an egress in this
//! process built from config text, HTTP/3 sessions to it (CONNECT, POST), a
//! DNS server whose answers the test writes (encoded by hickory-proto, an
//! independent implementation), a nameserver that never answers, and
//! network namespaces made for one test ([`netns`]).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod netns;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes};
use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{RData, Record, RecordType};
use openrelay_config::RelayConfig;
use openrelay_egress::{Egress, EgressSettings};
use openrelay_transport::endpoint::{OUTER_MTU, Tuning, client_config};
use openrelay_transport::identity::Identity;
use openrelay_transport::task::AbortOnDrop;
use openrelay_transport::udp;
use tokio::net::UdpSocket;

/// An egress serving in this process until dropped.
pub struct RunningEgress {
    pub addr: SocketAddr,
    pub identity: Identity,
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
    pub connection: quinn::Connection,
    requests: Requests,
    _driver: AbortOnDrop<()>,
    _endpoint: quinn::Endpoint,
}

/// An answer: status, Proxy-Status, body; for a CONNECT that succeeded, the
/// tunnel's stream (dropping it ends the tunnel).
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub tunnel: Option<Stream>,
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

/// The A and AAAA records a [`DnsServer`] gives each name (lowercase, with
/// the final dot), in order.
pub type Zone = HashMap<String, Vec<IpAddr>>;

/// A running [`dns_server`].
pub struct DnsServer {
    pub addr: SocketAddr,
    /// Queries received.
    pub queries: Arc<AtomicUsize>,
    _task: AbortOnDrop<()>,
}

/// A DNS server on a UDP socket of `ip`: A and AAAA queries for names in
/// its zone get those records (answer names compressed, as servers do),
/// anything else an empty NOERROR answer.
pub async fn dns_server(ip: IpAddr, zone: Zone) -> DnsServer {
    let socket = UdpSocket::bind((ip, 0)).await.unwrap();
    let addr = socket.local_addr().unwrap();
    let zone = Arc::new(zone);
    let queries = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&queries);
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let answer = answer(&query, &zone);
            let _ = socket.send_to(&answer.to_vec().unwrap(), from).await;
        }
    });
    DnsServer {
        addr,
        queries,
        _task: AbortOnDrop(task),
    }
}

fn answer(query: &Message, zone: &Zone) -> Message {
    let mut answer = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    answer.metadata.response_code = ResponseCode::NoError;
    for question in &query.queries {
        answer.add_query(question.clone());
        let name = question.name().to_ascii().to_ascii_lowercase();
        for ip in zone.get(&name).into_iter().flatten() {
            let data = match (question.query_type(), ip) {
                (RecordType::A, IpAddr::V4(v4)) => RData::A(A::from(*v4)),
                (RecordType::AAAA, IpAddr::V6(v6)) => RData::AAAA(AAAA::from(*v6)),
                _ => continue,
            };
            answer.add_answer(Record::from_rdata(question.name().clone(), 60, data));
        }
    }
    answer
}

/// A nameserver that takes queries and never answers (the socket is held,
/// so queries are not refused by ICMP either).
pub async fn silent_nameserver(addr: SocketAddr) -> UdpSocket {
    UdpSocket::bind(addr).await.unwrap()
}

/// A zone from (name, addresses) pairs.
pub fn zone(entries: &[(&str, &[&str])]) -> Zone {
    entries
        .iter()
        .map(|(name, ips)| {
            (
                (*name).to_owned(),
                ips.iter().map(|ip| ip.parse().unwrap()).collect(),
            )
        })
        .collect()
}

/// A query for `name` of type `qtype`, class `class`, recursion desired.
pub fn query(name: &str, qtype: u16, class: u16) -> Message {
    let mut message = Message::query();
    message.metadata.recursion_desired = true;
    let mut question = hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii(name).unwrap(),
        RecordType::from(qtype),
    );
    question.set_query_class(hickory_proto::rr::DNSClass::from(class));
    message.add_query(question);
    message
}

/// The A and AAAA addresses in a message's answer section.
pub fn addresses(message: &Message) -> Vec<IpAddr> {
    message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
            _ => None,
        })
        .collect()
}

/// The egress's config, which `config` is.
fn egress_config(config: RelayConfig) -> openrelay_config::EgressRelayConfig {
    match config {
        RelayConfig::Egress(egress) => egress,
        other => panic!("not an egress: {other:?}"),
    }
}
