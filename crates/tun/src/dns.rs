//! DNS from the device, answered through the egress: every query the
//! userspace stack receives on port 53 (UDP, or TCP with its 2-byte length
//! prefix, RFC 1035 §4.2.2), whatever resolver address it was sent to, is
//! sent as `POST /dns-query` (RFC 8484 §4.1, ID 0) on the inner HTTP/3
//! connection to the egress, which asks its own resolver. A query never
//! leaves the host outside the tunnel; a failure becomes SERVFAIL.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use openrelay_client::flow::RequestError;
use openrelay_client::{PathError, PathManager};
use openrelay_wire::dns::{self, MAX_MESSAGE, Query};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;

/// Why a query got no answer through the egress (the app gets SERVFAIL).
#[derive(Debug, thiserror::Error)]
enum AskError {
    /// No path.
    #[error(transparent)]
    NoPath(#[from] PathError),
    /// The request failed.
    #[error(transparent)]
    Request(#[from] RequestError),
    /// The egress answered with an error status.
    #[error("the egress answered HTTP {0}")]
    Status(http::StatusCode),
    /// The answer exceeds a DNS message.
    #[error("answer too large")]
    TooLarge,
    /// The answer is not the answer to the query.
    #[error("answer does not match the query")]
    Mismatch,
}

/// Answers DNS queries through the current path's egress.
#[derive(Debug, Clone)]
pub struct Resolver {
    manager: Arc<PathManager>,
    timeout: Duration,
}

impl Resolver {
    /// A resolver giving up on a query after `timeout`.
    pub fn new(manager: Arc<PathManager>, timeout: Duration) -> Resolver {
        Resolver { manager, timeout }
    }

    /// The answer to `message`, or `None` if it is not a query worth an
    /// answer (malformed: dropped, as a resolver would).
    pub async fn answer(&self, message: &[u8]) -> Option<Vec<u8>> {
        let query = Query::parse(message).ok()?;
        let id = dns::id(message)?;
        let mut anonymous = message.to_vec();
        dns::set_id(&mut anonymous, 0);
        let asked = async {
            // One retry: the first path may die under the query.
            let mut last = AskError::Mismatch;
            for _ in 0..2 {
                match self.ask(&anonymous).await {
                    Ok(answer) if query.check_answer(&anonymous, &answer).is_ok() => {
                        return Ok(answer);
                    }
                    Ok(_) => last = AskError::Mismatch,
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        let mut answer = match tokio::time::timeout(self.timeout, asked).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                debug!(error = %e, "dns query failed; answering SERVFAIL");
                query.servfail(&anonymous)
            }
            Err(_) => {
                debug!("dns query timed out; answering SERVFAIL");
                query.servfail(&anonymous)
            }
        };
        dns::set_id(&mut answer, id);
        Some(answer)
    }

    async fn ask(&self, message: &[u8]) -> Result<Vec<u8>, AskError> {
        let path = self.manager.current().await?;
        let _hold = path.hold();
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(format!("https://{}{}", path.egress.addr, dns::PATH))
            .header(http::header::CONTENT_TYPE, dns::MEDIA_TYPE)
            .header(http::header::ACCEPT, dns::MEDIA_TYPE)
            .body(())
            .map_err(RequestError::from)?;
        let mut requests = path.requests();
        let mut stream = requests
            .send_request(request)
            .await
            .map_err(RequestError::from)?;
        stream
            .send_data(Bytes::copy_from_slice(message))
            .await
            .map_err(RequestError::from)?;
        stream.finish().await.map_err(RequestError::from)?;
        let response = stream.recv_response().await.map_err(RequestError::from)?;
        if response.status() != http::StatusCode::OK {
            return Err(AskError::Status(response.status()));
        }
        let mut body = BytesMut::new();
        while let Some(mut chunk) = stream.recv_data().await.map_err(RequestError::from)? {
            if body.len() + chunk.remaining() > MAX_MESSAGE {
                return Err(AskError::TooLarge);
            }
            body.extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
        Ok(body.to_vec())
    }
}

/// Serves DNS over one TCP connection (RFC 7766 §6.2.1: several queries may
/// follow each other), until the app closes it or sends a bad length.
pub async fn serve_tcp(resolver: &Resolver, stream: impl AsyncRead + AsyncWrite + Unpin) {
    let (mut read, mut write) = tokio::io::split(stream);
    while let Ok(len) = read.read_u16().await {
        let mut message = vec![0u8; usize::from(len)];
        if read.read_exact(&mut message).await.is_err() {
            return;
        }
        let Some(answer) = resolver.answer(&message).await else {
            return;
        };
        let Ok(len) = u16::try_from(answer.len()) else {
            return;
        };
        let mut framed = len.to_be_bytes().to_vec();
        framed.extend_from_slice(&answer);
        if write.write_all(&framed).await.is_err() {
            return;
        }
    }
}
