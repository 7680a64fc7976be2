//! TLS 1.3 configurations. Relays authenticate with their long-term key; the
//! client accepts a relay only if the handshake proves the key it pinned from
//! the relay list. Names and certificate dates play no part: there is no web
//! PKI to trust.

use std::sync::Arc;

use openrelay_types::KeyPin;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::ALPN_H3;
use crate::identity::{Identity, IdentityError};

/// Why a TLS configuration could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The key material.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

impl openrelay_types::HasKind for TlsError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        match self {
            TlsError::Identity(e) => e.kind(),
            TlsError::Rustls(_) => openrelay_types::ErrorKind::Internal,
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Server configuration for a relay: TLS 1.3 only, ALPN `h3`.
pub fn server_config(identity: &Identity) -> Result<rustls::ServerConfig, TlsError> {
    let (cert, key) = identity.certificate()?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)?;
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    config.max_early_data_size = 0;
    Ok(config)
}

/// Client configuration that accepts exactly the relay holding `pin`.
pub fn client_config(pin: KeyPin) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let verifier = PinnedKeyVerifier {
        spki: pin.spki_der(),
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_H3.to_vec()];
    // Resumption tickets would let the ingress link two connections of one client.
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

/// Accepts a server certificate iff its SubjectPublicKeyInfo is the pinned key,
/// then checks the handshake signature with that key (so possession is proven).
#[derive(Debug)]
struct PinnedKeyVerifier {
    spki: Vec<u8>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedKeyVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = webpki::EndEntityCert::try_from(end_entity).map_err(|_| {
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding)
        })?;
        if cert.subject_public_key_info().as_ref() == self.spki.as_slice() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        // QUIC requires TLS 1.3 (RFC 9001 §4.2); never reached.
        Err(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::Tls12NotOffered,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ED25519]
    }
}
