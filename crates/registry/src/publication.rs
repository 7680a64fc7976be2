//! The publication endpoints, served alike by the registry and by every
//! validator (relays publish to all of them): `POST /v1/profiles` and
//! `POST /v1/descriptors`. Parsing, signature checks and the store write run
//! on a blocking thread, never on the async runtime.

use std::sync::Arc;

use bytes::Bytes;
use openrelay_transport::server::{self, ServerStream};

use crate::service::paths;
use crate::{PublishError, RedbStore, Registry};

/// Largest published object accepted (descriptors and profiles are < 1 KiB).
pub(crate) const MAX_PUBLICATION: usize = 16 * 1024;

/// Serves one publication request (`path` is [`paths::PROFILES`] or
/// [`paths::DESCRIPTORS`]) against `registry`.
pub(crate) async fn serve(
    registry: Arc<Registry<RedbStore>>,
    path: &str,
    mut stream: ServerStream,
    now: u64,
) {
    let Some(body) = server::read_body(&mut stream, MAX_PUBLICATION).await else {
        return reply(stream, 413, "body too large or cut off", None).await;
    };
    let profile = path == paths::PROFILES;
    let outcome = tokio::task::spawn_blocking(move || {
        if profile {
            registry.publish_profile(&body, now).map(|_| ())
        } else {
            registry.publish_descriptor(&body, now).map(|_| ())
        }
    })
    .await;
    match outcome {
        Ok(Ok(())) => {
            server::respond(stream, http::StatusCode::NO_CONTENT, Bytes::new()).await;
        }
        Ok(Err(e)) => {
            // A full registry may have room once relays leave (RFC 9110
            // §10.2.3: when to retry).
            let retry = matches!(e, PublishError::Full { .. }).then_some(60);
            reply(stream, e.status(), &e.to_string(), retry).await;
        }
        Err(_) => reply(stream, 500, "publication failed", None).await,
    }
}

/// Answers with `status` and `text` (and `retry-after`, seconds).
pub(crate) async fn reply(stream: ServerStream, status: u16, text: &str, retry_after: Option<u64>) {
    let mut response = http::Response::builder().status(
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR),
    );
    if let Some(secs) = retry_after {
        response = response.header(http::header::RETRY_AFTER, secs);
    }
    if let Ok(response) = response.body(()) {
        server::send(stream, response, Bytes::from(format!("{text}\n"))).await;
    }
}
