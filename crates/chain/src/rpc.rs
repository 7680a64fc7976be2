//! JSON-RPC over HTTP with every answer bounded in size.
//!
//! Alloy's HTTP transport reads a node's answer whole, however large: a
//! broken or malicious node could answer `eth_getLogs` with gigabytes, or
//! with a body that never ends, and the registry or a validator would
//! hold it all (the follower's `poll_timeout` bounds time, not memory).
//! [`BoundedHttp`] is the same transport (reqwest, no TLS) reading the
//! body chunk by chunk and giving up at a byte limit with the typed
//! [`ResponseTooLarge`].

use std::task::{Context, Poll};

use alloy::providers::{DynProvider, Provider as _, ProviderBuilder};
use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::reqwest::{self, Url};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut, TransportResult};

/// Most bytes of one answer by default: a poll's batch of 100 block
/// headers (each with its transactions' hashes: a few hundred bytes to
/// ~70 KB on busy chains) or of logs up to the follower's
/// `max_logs_per_poll` (10,000 logs of about 1 KB of JSON each) fits with
/// room to spare; anything larger is a node to stop reading from.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;

/// How much of an answer that is not JSON-RPC goes into the error (and so
/// into logs).
const BODY_IN_ERROR_BYTES: usize = 512;

/// A node's answer was longer than the limit (or announced to be): the
/// rest was not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the node's answer exceeds the limit of {limit} bytes")]
pub struct ResponseTooLarge {
    /// The limit, bytes.
    pub limit: usize,
}

impl ResponseTooLarge {
    /// The bound in `error`, if that is why a call failed.
    pub fn in_error(error: &TransportError) -> Option<ResponseTooLarge> {
        error
            .as_transport_err()?
            .as_custom()?
            .downcast_ref::<ResponseTooLarge>()
            .copied()
    }
}

/// JSON-RPC over plain HTTP (reqwest), reading at most `max_response_bytes`
/// of each answer.
#[derive(Debug, Clone)]
pub struct BoundedHttp {
    client: reqwest::Client,
    url: Url,
    max_response_bytes: usize,
}

impl BoundedHttp {
    /// The transport to `url`.
    pub fn new(url: Url, max_response_bytes: usize) -> BoundedHttp {
        BoundedHttp {
            client: reqwest::Client::new(),
            url,
            max_response_bytes,
        }
    }

    async fn request(self, request: RequestPacket) -> TransportResult<ResponsePacket> {
        let body = serde_json::to_vec(&request).map_err(TransportError::ser_err)?;
        let mut response = self
            .client
            .post(self.url)
            .headers(request.headers())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(TransportErrorKind::custom)?;
        let limit = self.max_response_bytes;
        let too_large = || TransportErrorKind::custom(ResponseTooLarge { limit });
        if response
            .content_length()
            .is_some_and(|announced| announced > limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(TransportErrorKind::custom)? {
            if body.len().saturating_add(chunk.len()) > limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        let status = response.status();
        if !status.is_success() {
            // As alloy's transport: some nodes answer a JSON-RPC error (a
            // revert) with an HTTP error status; it stays a JSON-RPC error.
            if let Ok(packet) = serde_json::from_slice::<ResponsePacket>(&body)
                && packet.is_error()
            {
                return Ok(packet);
            }
            return Err(TransportErrorKind::http_error(
                status.as_u16(),
                start_of(&body),
            ));
        }
        serde_json::from_slice(&body).map_err(|e| TransportError::deser_err(e, start_of(&body)))
    }
}

/// The start of an answer, as text for an error message.
fn start_of(body: &[u8]) -> String {
    String::from_utf8_lossy(body.get(..BODY_IN_ERROR_BYTES).unwrap_or(body)).into_owned()
}

impl tower::Service<RequestPacket> for BoundedHttp {
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        Box::pin(self.clone().request(request))
    }
}

/// An RPC client to `url` whose answers are bounded to
/// `max_response_bytes`.
pub fn bounded_client(url: Url, max_response_bytes: usize) -> RpcClient {
    let local = alloy::transports::utils::guess_local_url(url.as_str());
    ClientBuilder::default().transport(BoundedHttp::new(url, max_response_bytes), local)
}

/// A read-only provider to `url` whose answers are bounded to
/// `max_response_bytes` (the follower's).
pub fn bounded_provider(url: Url, max_response_bytes: usize) -> DynProvider {
    ProviderBuilder::new()
        .connect_client(bounded_client(url, max_response_bytes))
        .erased()
}
