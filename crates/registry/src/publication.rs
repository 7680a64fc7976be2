//! The publication endpoints, served alike by the registry and by every
//! validator (relays and issuers publish to all of them): `POST
//! /v1/profiles`, `POST /v1/descriptors` and `POST /v1/issuer-keys`.
//! Parsing, signature checks and the store write run on a blocking thread,
//! never on the async runtime.

use std::sync::Arc;

use bytes::Bytes;
use openrelay_registry_client::paths;
use openrelay_transport::server::{self, ServerStream};

use crate::{PublishError, RedbStore, Registry};

/// Largest published object accepted (descriptors and profiles are < 1 KiB,
/// issuer key sets at most 2 KiB).
pub(crate) const MAX_PUBLICATION: usize = 16 * 1024;

/// What a publication is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Publication {
    /// An operator profile.
    Profile,
    /// A relay descriptor.
    Descriptor,
    /// An issuer key set.
    KeySet,
}

impl Publication {
    /// The publication `path` takes, if any.
    pub(crate) fn at(path: &str) -> Option<Self> {
        match path {
            paths::PROFILES => Some(Publication::Profile),
            paths::DESCRIPTORS => Some(Publication::Descriptor),
            paths::ISSUER_KEYS => Some(Publication::KeySet),
            _ => None,
        }
    }
}

/// Serves one publication request of kind `what` against `registry`; a key
/// set goes to `key_set` (the registry holds a set a current vote names
/// whatever its age; validators take only newer ones).
pub(crate) async fn serve(
    registry: Arc<Registry<RedbStore>>,
    what: Publication,
    mut stream: ServerStream,
    now: u64,
    key_set: impl FnOnce(&Registry<RedbStore>, &[u8], u64) -> Result<(), PublishError> + Send + 'static,
) {
    let Some(body) = server::read_body(&mut stream, MAX_PUBLICATION).await else {
        return reply(stream, 413, "body too large or cut off", None).await;
    };
    let outcome = tokio::task::spawn_blocking(move || match what {
        Publication::Profile => registry.publish_profile(&body, now).map(|_| ()),
        Publication::Descriptor => registry.publish_descriptor(&body, now).map(|_| ()),
        Publication::KeySet => key_set(&registry, &body, now),
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
