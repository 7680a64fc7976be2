//! A real ingress in this process on a loopback socket ([`start_ingress`]),
//! a stand-in egress (a UDP socket that records what reaches it), issuer
//! keys in a directory file, and a minimal connect-udp client made of
//! quinn, h3 and the transport crate ([`connect_udp`]).

#![cfg(feature = "harness")]

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use openrelay_config::AdmissionConfig;
use openrelay_ingress::{AdmissionSettings, Ingress, IngressSettings};
use openrelay_tokens::{SigningKey, Token, TokenChallenge};
use openrelay_transport::datagrams::DatagramSender;
use openrelay_transport::endpoint::{self, OUTER_MTU, Tuning};
use openrelay_transport::h3util;
use openrelay_transport::identity::Identity;
use openrelay_transport::udp;
use openrelay_types::KeyPin;
use openrelay_wire::target::Target;
use tokio::sync::oneshot;

/// The issuer the ingresses' tokens name.
pub const ISSUER_NAME: &str = "issuer.test:4450";

/// Now, in Unix seconds.
pub fn now() -> u64 {
    openrelay_types::unix_now()
}

pub use openrelay_tokens::testing::{issuer_key, write_directory};

/// A token from `key` for `challenge`, issued locally.
pub fn token(key: &SigningKey, challenge: &TokenChallenge) -> Token {
    openrelay_tokens::testing::mint(key, challenge)
}

/// A fresh operator key (the operator of the relays a test starts).
pub fn operator() -> KeyPin {
    Identity::generate().unwrap().pin()
}

/// A stand-in egress: a UDP socket whose received datagrams tests inspect.
#[derive(Debug)]
pub struct FakeEgress {
    /// Its socket.
    pub socket: tokio::net::UdpSocket,
}

impl FakeEgress {
    /// Binds it on 127.0.0.1.
    pub async fn start() -> Self {
        FakeEgress {
            socket: tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    /// The next datagram within `limit`, if any.
    pub async fn recv(&self, limit: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(limit, self.socket.recv(&mut buf))
            .await
            .ok()?
            .ok()?;
        buf.truncate(n);
        Some(buf)
    }
}

/// A running ingress; shuts down when dropped.
#[derive(Debug)]
pub struct RunningIngress {
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Its key.
    pub pin: KeyPin,
    /// Its operator's key.
    pub operator: KeyPin,
    stop: Option<oneshot::Sender<()>>,
}

impl RunningIngress {
    /// The challenge of access tokens for this ingress: its operator's.
    pub fn challenge(&self) -> TokenChallenge {
        TokenChallenge::for_ingress_operator(ISSUER_NAME, &self.operator.to_string())
    }
}

impl Drop for RunningIngress {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Admission settings reading keys from `keys`, spending into `redis_url`
/// or the state directory.
pub fn admission(keys: PathBuf, redis_url: Option<String>) -> AdmissionConfig {
    AdmissionConfig {
        issuer_name: ISSUER_NAME.to_owned(),
        issuer: None,
        issuer_keys: Some(keys),
        keys_refresh_secs: 1,
        redis_url,
        spent_path: None,
    }
}

/// Admission settings fetching the keys from the issuer at `addr` with `key`.
pub fn admission_from_issuer(addr: SocketAddr, key: KeyPin) -> AdmissionConfig {
    AdmissionConfig {
        issuer: Some(openrelay_config::ServiceEndpoint { addr, key }),
        issuer_keys: None,
        ..admission(PathBuf::new(), None)
    }
}

/// An ingress of an operator of its own.
pub fn start_ingress(
    egress: SocketAddr,
    admission: Option<AdmissionConfig>,
    state_dir: &Path,
) -> RunningIngress {
    start_ingress_of(operator(), egress, admission, state_dir)
}

/// An ingress admitting tokens of the local [`issuer_key`] (its key set
/// written under `dir`), forwarding to a fresh stand-in egress.
pub async fn start_token_ingress(dir: &Path) -> TokenIngress {
    let keys = dir.join("issuer-directory.json");
    let epoch = write_directory(&keys, issuer_key());
    let egress = FakeEgress::start().await;
    let ingress = start_ingress(egress.addr(), Some(admission(keys, None)), dir);
    TokenIngress {
        epoch,
        egress,
        ingress,
    }
}

/// What [`start_token_ingress`] started.
#[derive(Debug)]
pub struct TokenIngress {
    /// The issuer key the ingress accepts tokens of.
    pub epoch: openrelay_tokens::EpochKey,
    /// Where it forwards.
    pub egress: FakeEgress,
    /// The ingress.
    pub ingress: RunningIngress,
}

/// An ingress of `operator` (e.g. a second one of a fleet, or the same
/// relay restarted).
pub fn start_ingress_of(
    operator: KeyPin,
    egress: SocketAddr,
    admission: Option<AdmissionConfig>,
    state_dir: &Path,
) -> RunningIngress {
    let identity = Identity::generate().unwrap();
    let settings = IngressSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        egress_relays: HashSet::from([egress]),
        max_tunnels_per_client: 16,
        max_tunnels_per_address_with_tokens: 1024,
        tunnel_idle_timeout: Duration::from_secs(30),
        outbound_bind: None,
        admission: admission.map(|tokens| AdmissionSettings {
            tokens,
            operator_key: operator,
            directory: None,
        }),
        state_dir: state_dir.to_owned(),
        congestion: Default::default(),
        limits: openrelay_transport::limits::ServerLimits::ingress(),
        throttle_for_tests: None,
    };
    let ingress = Ingress::bind(settings, &identity).unwrap();
    let addr = ingress.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(ingress.serve(async {
        let _ = stopped.await;
    }));
    RunningIngress {
        addr,
        pin: identity.pin(),
        operator,
        stop: Some(stop),
    }
}

/// The answer to a connect-udp request.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: http::StatusCode,
    /// The response's header fields.
    pub headers: http::HeaderMap,
    /// On 200: sends one payload through the tunnel.
    pub sender: Option<DatagramSender>,
    keep: (quinn::Connection, quinn::Endpoint),
}

impl Answer {
    /// The client's connection to the ingress (its HTTP datagrams carry
    /// what the egress sends back).
    pub fn connection(&self) -> &quinn::Connection {
        &self.keep.0
    }
}

/// Sends connect-udp for `egress` to `ingress`, with `authorization` if given.
pub async fn connect_udp(
    ingress: &RunningIngress,
    egress: SocketAddr,
    authorization: Option<&str>,
) -> Answer {
    connect_udp_with_early(ingress, egress, authorization, &[]).await
}

/// Datagrams a connect-udp client sends before the response
/// ([`connect_udp_with_early`]).
#[derive(Debug, Clone, Copy)]
pub enum Early<'a> {
    /// `payload` on the request's own stream, before the request is sent.
    BeforeRequest(&'a [u8]),
    /// `payload` right behind the request, before its response (RFC 9298 §5).
    AfterRequest(&'a [u8]),
    /// `payload` on request stream `stream_id`, which is never opened.
    NeverRequested(u64, &'a [u8]),
    /// A pause before the request is sent (so that what was sent before
    /// arrives first).
    PauseBeforeRequest(Duration),
}

/// [`connect_udp`], sending `early` datagrams before the response arrives.
/// The request is the connection's first (stream 0).
pub async fn connect_udp_with_early(
    ingress: &RunningIngress,
    egress: SocketAddr,
    authorization: Option<&str>,
    early: &[Early<'_>],
) -> Answer {
    let quic = udp::endpoint(udp::local_for(None, ingress.addr), None).unwrap();
    let tuning = Tuning::client(Duration::from_secs(10), Duration::from_secs(2), OUTER_MTU);
    let config = endpoint::client_config(ingress.pin, &tuning).unwrap();
    let connection = quic
        .connect_with(config, ingress.addr, "ingress")
        .unwrap()
        .await
        .unwrap();
    let (mut driver, mut requests) = openrelay_transport::h3guard::client(&connection)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = std::future::poll_fn(|cx| driver.poll_close(cx)).await;
    });
    assert!(h3util::wait_for_datagram_support(&requests, Duration::from_secs(5)).await);
    let mut request =
        h3util::connect_udp_request(&ingress.addr.to_string(), &Target::from_socket_addr(egress))
            .unwrap();
    if let Some(value) = authorization {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value.parse().unwrap());
    }
    let send = |stream_id: u64, payload: &[u8]| {
        DatagramSender::new(connection.clone(), stream_id)
            .unwrap()
            .send(payload)
            .unwrap();
    };
    for datagram in early {
        match *datagram {
            Early::BeforeRequest(payload) => send(0, payload),
            Early::NeverRequested(stream_id, payload) => send(stream_id, payload),
            Early::PauseBeforeRequest(pause) => tokio::time::sleep(pause).await,
            Early::AfterRequest(_) => {}
        }
    }
    let mut stream = requests.send_request(request).await.unwrap();
    let stream_id = stream.id().into_inner();
    assert_eq!(stream_id, 0, "the connection's first request");
    for datagram in early {
        if let Early::AfterRequest(payload) = *datagram {
            send(stream_id, payload);
        }
    }
    let response = stream.recv_response().await.unwrap();
    let status = response.status();
    let sender = (status == http::StatusCode::OK)
        .then(|| DatagramSender::new(connection.clone(), stream_id).unwrap());
    // Keep the request stream open while the test uses the tunnel.
    tokio::spawn(async move {
        let _ = stream.recv_data().await;
        drop(requests);
    });
    Answer {
        status,
        headers: response.headers().clone(),
        sender,
        keep: (connection, quic),
    }
}
