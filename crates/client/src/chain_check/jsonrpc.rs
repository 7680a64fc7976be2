//! A minimal JSON-RPC 2.0 client over HTTP/1.1 (RFC 9112) on any byte
//! stream: in the client, a CONNECT flow through the relays (so the node
//! sees an egress relay, never the user); in tests, plain TCP. Plain
//! `http://` only (a TLS stack for this alone is not worth it; the node is
//! the user's own, and the relays see only ciphertext of the inner QUIC
//! connection up to the egress). Batches (JSON-RPC 2.0 §6) keep round
//! trips few; every answer is bounded in size.

use openrelay_types::error::{ErrorKind, HasKind};
use openrelay_wire::target::Target;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// The largest response body taken (a batch of the most calls of
/// [`super::MAX_CALLS_PER_BATCH`] answers is far below it).
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// The largest response head taken.
const MAX_HEAD_BYTES: usize = 16 << 10;
const MAX_HEADERS: usize = 64;

/// A node's JSON-RPC endpoint: `http://host[:port][/path]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcUrl {
    /// Where to connect (port 80 unless given).
    pub target: Target,
    /// The request path (`/` unless given).
    pub path: String,
}

/// Why an RPC URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RpcUrlError {
    /// `https://`: not supported.
    #[error(
        "https:// RPC URLs are not supported (plain http:// only: run the node, or a TLS-terminating \
         proxy, where http:// reaches it)"
    )]
    Https,
    /// Not `http://`.
    #[error("the RPC URL must start with http://")]
    Scheme,
    /// The host and port do not parse.
    #[error("the RPC URL's host and port: {0}")]
    Authority(#[from] openrelay_wire::target::TargetError),
    /// Userinfo, a query or a fragment.
    #[error("the RPC URL may not carry user info, a query or a fragment")]
    Extra,
}

impl HasKind for RpcUrlError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

impl std::str::FromStr for RpcUrl {
    type Err = RpcUrlError;

    fn from_str(url: &str) -> Result<Self, RpcUrlError> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        if lower.starts_with("https://") {
            return Err(RpcUrlError::Https);
        }
        if !lower.starts_with("http://") {
            return Err(RpcUrlError::Scheme);
        }
        let rest = url.get(7..).unwrap_or_default();
        if rest.contains(['@', '?', '#']) {
            return Err(RpcUrlError::Extra);
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        let target = match Target::parse_authority(authority) {
            Ok(target) => target,
            Err(_) => Target::parse_authority(&format!("{authority}:80"))?,
        };
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            return Err(RpcUrlError::Extra);
        }
        Ok(RpcUrl {
            target,
            path: path.to_owned(),
        })
    }
}

/// Why a JSON-RPC exchange failed: the node could not be asked, or its
/// answer is unusable (never a statement about the directory).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// Writing the request or reading the answer failed.
    #[error("RPC connection: {0}")]
    Io(#[from] std::io::Error),
    /// The answer is not HTTP/1.1 this client takes.
    #[error("RPC answer is not valid HTTP/1.1: {0}")]
    Http(&'static str),
    /// The node answered with an HTTP error.
    #[error("RPC node answered HTTP {0}")]
    Status(u16),
    /// The answer is larger than [`MAX_RESPONSE_BYTES`].
    #[error("RPC answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The body is not a JSON-RPC batch answer.
    #[error("RPC answer is not a JSON-RPC batch answer: {0}")]
    Json(&'static str),
    /// One call was answered with a JSON-RPC error (e.g. a pruned node's
    /// missing state).
    #[error("RPC call {method} failed: {message}")]
    Call {
        /// The method.
        method: String,
        /// The node's message.
        message: String,
    },
}

impl HasKind for RpcError {
    fn kind(&self) -> ErrorKind {
        match self {
            RpcError::Io(_) => ErrorKind::Unreachable,
            _ => ErrorKind::Refused,
        }
    }
}

/// One call of a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The method.
    pub method: &'static str,
    /// Its parameters.
    pub params: Value,
}

/// The request body of `calls`, with ids `0..n`.
fn batch_body(calls: &[Call]) -> Vec<u8> {
    let batch: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(id, call)| {
            serde_json::json!({
                "jsonrpc": "2.0",
                "id": id,
                "method": call.method,
                "params": call.params,
            })
        })
        .collect();
    Value::Array(batch).to_string().into_bytes()
}

/// The results of a batch answer, in the order of `calls` (the answer's
/// order is free: JSON-RPC 2.0 §6).
fn batch_results(calls: &[Call], body: &[u8]) -> Result<Vec<Value>, RpcError> {
    let answer: Value = serde_json::from_slice(body).map_err(|_| RpcError::Json("not JSON"))?;
    let Value::Array(answers) = answer else {
        return Err(RpcError::Json("not an array"));
    };
    if answers.len() != calls.len() {
        return Err(RpcError::Json("not one answer per call"));
    }
    let mut results: Vec<Option<Value>> = vec![None; calls.len()];
    for mut answer in answers {
        let id = answer
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|id| usize::try_from(id).ok())
            .filter(|id| *id < calls.len())
            .ok_or(RpcError::Json("an answer with an unknown id"))?;
        let (Some(slot), Some(call)) = (results.get_mut(id), calls.get(id)) else {
            return Err(RpcError::Json("an answer with an unknown id"));
        };
        if slot.is_some() {
            return Err(RpcError::Json("two answers with one id"));
        }
        if let Some(error) = answer.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            return Err(RpcError::Call {
                method: call.method.to_owned(),
                message: message.chars().take(200).collect(),
            });
        }
        *slot = Some(
            answer
                .get_mut("result")
                .map(Value::take)
                .ok_or(RpcError::Json("an answer without result"))?,
        );
    }
    results
        .into_iter()
        .map(|r| r.ok_or(RpcError::Json("a call without answer")))
        .collect()
}

/// Sends `calls` as one batch on `stream` (a connection kept open for the
/// next batch) and returns their results in order.
pub async fn batch<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    url: &RpcUrl,
    calls: &[Call],
) -> Result<Vec<Value>, RpcError> {
    let body = batch_body(calls);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\n\r\n",
        url.path,
        url.target.authority(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    let body = read_response(stream).await?;
    batch_results(calls, &body)
}

/// Reads one HTTP/1.1 response: its body, by `Content-Length` or chunked
/// (RFC 9112 §6.3, §7.1).
async fn read_response<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Vec<u8>, RpcError> {
    let mut buf = Vec::with_capacity(4096);
    let (status, head_len, framing) = loop {
        if read_more(stream, &mut buf, MAX_HEAD_BYTES).await? == 0 {
            return Err(RpcError::Http("connection closed before the response head"));
        }
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let framing = framing(response.headers)?;
                break (response.code.unwrap_or(0), len, framing);
            }
            Ok(httparse::Status::Partial) => {}
            Err(_) => return Err(RpcError::Http("malformed response head")),
        }
    };
    let mut rest = buf.split_off(head_len);
    let body = match framing {
        Framing::Length(len) => {
            if len > MAX_RESPONSE_BYTES {
                return Err(RpcError::TooLarge);
            }
            while rest.len() < len {
                if read_more(stream, &mut rest, len).await? == 0 {
                    return Err(RpcError::Http("connection closed inside the body"));
                }
            }
            rest.truncate(len);
            rest
        }
        Framing::Chunked => read_chunked(stream, rest).await?,
    };
    if !(200..300).contains(&status) {
        return Err(RpcError::Status(status));
    }
    Ok(body)
}

enum Framing {
    Length(usize),
    Chunked,
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, RpcError> {
    let value = |name: &str| {
        headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_ascii_lowercase())
    };
    if let Some(coding) = value("transfer-encoding") {
        return match coding.as_str() {
            "chunked" => Ok(Framing::Chunked),
            _ => Err(RpcError::Http("a transfer coding other than chunked")),
        };
    }
    value("content-length")
        .and_then(|len| len.parse().ok())
        .map(Framing::Length)
        .ok_or(RpcError::Http("neither Content-Length nor chunked"))
}

/// Reads what is available into `buf`, refusing to grow it past `limit`.
async fn read_more<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    limit: usize,
) -> Result<usize, RpcError> {
    if buf.len() >= limit {
        return Err(RpcError::TooLarge);
    }
    let mut chunk = [0u8; 8192];
    let room = (limit - buf.len()).min(chunk.len());
    let n = stream.read(&mut chunk[..room]).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// Decodes a chunked body (RFC 9112 §7.1), `buf` holding what was already
/// read; trailers are skipped.
async fn read_chunked<S: AsyncRead + Unpin>(
    stream: &mut S,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, RpcError> {
    let mut body = Vec::new();
    // Room for the encoded body plus chunk framing.
    let limit = MAX_RESPONSE_BYTES + MAX_HEAD_BYTES;
    loop {
        let size_line = loop {
            if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                break end;
            }
            if read_more(stream, &mut buf, limit).await? == 0 {
                return Err(RpcError::Http("connection closed inside a chunk"));
            }
        };
        let line = std::str::from_utf8(&buf[..size_line])
            .map_err(|_| RpcError::Http("malformed chunk size"))?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| RpcError::Http("malformed chunk size"))?;
        if body.len().saturating_add(size) > MAX_RESPONSE_BYTES {
            return Err(RpcError::TooLarge);
        }
        buf.drain(..size_line + 2);
        if size == 0 {
            // Trailer section: lines up to an empty one.
            loop {
                if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
                    if end == 0 {
                        return Ok(body);
                    }
                    buf.drain(..end + 2);
                    continue;
                }
                if read_more(stream, &mut buf, limit).await? == 0 {
                    return Err(RpcError::Http("connection closed inside the trailers"));
                }
            }
        }
        while buf.len() < size + 2 {
            if read_more(stream, &mut buf, limit).await? == 0 {
                return Err(RpcError::Http("connection closed inside a chunk"));
            }
        }
        if &buf[size..size + 2] != b"\r\n" {
            return Err(RpcError::Http("a chunk not ended by CRLF"));
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_https_is_refused_with_a_message() {
        let url: RpcUrl = "http://127.0.0.1:8545".parse().unwrap();
        assert_eq!(url.target.authority(), "127.0.0.1:8545");
        assert_eq!(url.path, "/");
        let url: RpcUrl = "http://node.example/rpc".parse().unwrap();
        assert_eq!(url.target.authority(), "node.example:80");
        assert_eq!(url.path, "/rpc");
        let https = "https://node.example".parse::<RpcUrl>().unwrap_err();
        assert_eq!(https, RpcUrlError::Https);
        assert!(https.to_string().contains("http://"));
        assert_eq!(
            "ws://x:1".parse::<RpcUrl>().unwrap_err(),
            RpcUrlError::Scheme
        );
        assert_eq!(
            "http://u:p@x:1/".parse::<RpcUrl>().unwrap_err(),
            RpcUrlError::Extra
        );
    }

    fn calls(n: usize) -> Vec<Call> {
        (0..n)
            .map(|_| Call {
                method: "eth_chainId",
                params: serde_json::json!([]),
            })
            .collect()
    }

    async fn answer(response: &[u8], n: usize) -> Result<Vec<Value>, RpcError> {
        let (mut ours, mut theirs) = tokio::io::duplex(1 << 16);
        let response = response.to_vec();
        let server = tokio::spawn(async move {
            let mut request = vec![0u8; 4096];
            let _ = theirs.read(&mut request).await;
            theirs.write_all(&response).await.unwrap();
            // Dropped: the client reads what was written, then the end.
        });
        let url: RpcUrl = "http://127.0.0.1:1".parse().unwrap();
        let result = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            batch(&mut ours, &url, &calls(n)),
        )
        .await
        .expect("answered or failed, not hung");
        server.await.unwrap();
        result
    }

    #[tokio::test]
    async fn answers_in_any_order_are_matched_by_id() {
        let body =
            br#"[{"jsonrpc":"2.0","id":1,"result":"0x2"},{"jsonrpc":"2.0","id":0,"result":"0x1"}]"#;
        let response = [
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len()).as_bytes(),
            body,
        ]
        .concat();
        let results = answer(&response, 2).await.unwrap();
        assert_eq!(results, vec![Value::from("0x1"), Value::from("0x2")]);
    }

    #[tokio::test]
    async fn chunked_answers_decode() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            10\r\n[{\"jsonrpc\":\"2.0\r\n15\r\n\",\"id\":0,\"result\":7}]\r\n0\r\n\r\n";
        assert_eq!(answer(response, 1).await.unwrap(), vec![Value::from(7)]);
    }

    #[tokio::test]
    async fn bad_answers_are_errors() {
        let http = |body: &str| {
            format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
        };
        let error =
            r#"[{"jsonrpc":"2.0","id":0,"error":{"code":-32000,"message":"missing trie node"}}]"#;
        assert!(matches!(
            answer(http(error).as_bytes(), 1).await,
            Err(RpcError::Call { .. })
        ));
        let twice = r#"[{"id":0,"result":1},{"id":0,"result":1}]"#;
        assert!(matches!(
            answer(http(twice).as_bytes(), 2).await,
            Err(RpcError::Json(_))
        ));
        assert!(matches!(
            answer(http("{}").as_bytes(), 1).await,
            Err(RpcError::Json(_))
        ));
        let huge = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n",
            MAX_RESPONSE_BYTES + 1
        );
        assert!(matches!(
            answer(huge.as_bytes(), 1).await,
            Err(RpcError::TooLarge)
        ));
        assert!(matches!(
            answer(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n", 1).await,
            Err(RpcError::Status(503))
        ));
        assert!(matches!(answer(b"", 1).await, Err(RpcError::Http(_))));
    }
}
