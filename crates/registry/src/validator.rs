//! A validator: fetches the registry's proposal, checks every descriptor in
//! it (both signatures, validity windows, operator profiles) with the same
//! code clients use, and signs it. Clients accept a directory only when
//! enough independent validators did this.

use std::future::Future;
use std::time::Duration;

use openrelay_directory::{Directory, DirectoryDigest, ValidatorKey};
use tracing::{info, warn};

use crate::http::RegistryClient;
use crate::service::{paths, unix_now};

/// Checks and signs proposals every `poll` until `shutdown`.
pub async fn run(
    registry: RegistryClient,
    key: ValidatorKey,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    info!(validator = %key.id(), "validator started");
    let mut signed: Option<DirectoryDigest> = None;
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("validator stopped");
                return;
            }
            () = tokio::time::sleep(poll) => {}
        }
        if let Some(digest) = check_and_sign(&registry, &key, signed).await {
            signed = Some(digest);
        }
    }
}

/// One round; returns the digest it signed, if any.
async fn check_and_sign(
    registry: &RegistryClient,
    key: &ValidatorKey,
    already: Option<DirectoryDigest>,
) -> Option<DirectoryDigest> {
    let body = match registry
        .call(http::Method::GET, paths::PROPOSAL, Vec::new())
        .await
    {
        Ok((200, body)) => body,
        Ok(_) => return None, // Nothing to sign.
        Err(e) => {
            warn!(error = %e, "cannot fetch the proposal");
            return None;
        }
    };
    let directory = match Directory::from_bytes(&body) {
        Ok(directory) => directory,
        Err(e) => {
            warn!(error = %e, "refusing a malformed proposal");
            return None;
        }
    };
    let digest = directory.digest();
    if already == Some(digest) {
        return None;
    }
    if let Err(e) = directory.check_contents(unix_now()) {
        warn!(error = %e, sequence = directory.sequence(), "refusing to sign a proposal");
        return None;
    }
    let signature = key.sign_directory(&directory);
    let mut body = signature.validator.as_bytes().to_vec();
    body.extend_from_slice(signature.signature.as_bytes());
    match registry
        .call(http::Method::POST, paths::SIGNATURES, body)
        .await
    {
        Ok((204, _)) => {
            info!(
                sequence = directory.sequence(),
                relays = directory.descriptors().len(),
                "signed a directory"
            );
            Some(digest)
        }
        Ok((status, reply)) => {
            warn!(status, reply = %String::from_utf8_lossy(&reply).trim(), "signature not accepted");
            None
        }
        Err(e) => {
            warn!(error = %e, "cannot post the signature");
            None
        }
    }
}
