//! Fixed names for the errors of QUIC and HTTP/3 libraries, for logs.
//!
//! A relay logs error kinds, never an error's `Display`: h3 quotes the
//! offending header bytes of a malformed request (RFC 9114 §4.1.2 errors;
//! a malformed `:authority` is a destination), and a peer's CONNECTION_CLOSE
//! reason phrase is whatever the peer wrote. These functions keep the
//! distinctions an operator needs and drop everything a peer chose.

use h3::quic::ConnectionErrorIncoming;
use openrelay_wire::h3frame::code;

use crate::h3guard::GuardError;

/// A fixed name for an h3 stream error.
pub fn stream(error: &h3::error::StreamError) -> &'static str {
    use h3::error::StreamError;
    if let Some(guard) = GuardError::in_stream_error(error) {
        return guard.kind_name();
    }
    match error {
        StreamError::StreamError { code, .. } => h3_code(code.value()),
        StreamError::RemoteTerminate { .. } => "reset_by_peer",
        StreamError::ConnectionError(error) => connection(error),
        StreamError::HeaderTooBig { .. } => "header_too_big",
        StreamError::RemoteClosing => "peer_closing",
        StreamError::Undefined(_) => "transport_error",
        _ => "other",
    }
}

/// A fixed name for an h3 connection error.
pub fn connection(error: &h3::error::ConnectionError) -> &'static str {
    use h3::error::{ConnectionError, LocalError};
    if let Some(guard) = GuardError::in_connection_error(error) {
        return guard.kind_name();
    }
    match error {
        ConnectionError::Local {
            error: LocalError::Application { code, .. },
        } => h3_code(code.value()),
        ConnectionError::Local { .. } => "closing",
        ConnectionError::Remote(ConnectionErrorIncoming::ApplicationClose { error_code }) => {
            match *error_code {
                code::H3_NO_ERROR => "closed_by_peer",
                _ => "closed_by_peer_with_error",
            }
        }
        ConnectionError::Remote(ConnectionErrorIncoming::Timeout) | ConnectionError::Timeout => {
            "idle_timeout"
        }
        ConnectionError::Remote(_) => "transport_error",
        _ => "other",
    }
}

/// A fixed name for a QUIC connection error (quinn's `Display` of a close
/// carries the peer's reason phrase).
pub fn quic(error: &quinn::ConnectionError) -> &'static str {
    use quinn::ConnectionError;
    match error {
        ConnectionError::VersionMismatch => "version_mismatch",
        ConnectionError::TransportError(_) => "transport_error",
        ConnectionError::ConnectionClosed(_) => "closed_by_peer_transport",
        ConnectionError::ApplicationClosed(_) => "closed_by_peer",
        ConnectionError::Reset => "reset",
        ConnectionError::TimedOut => "idle_timeout",
        ConnectionError::LocallyClosed => "locally_closed",
        ConnectionError::CidsExhausted => "connection_ids_exhausted",
    }
}

/// The name of an HTTP/3 or QPACK error code (RFC 9114 §8.1, RFC 9204 §6).
pub fn h3_code(code: u64) -> &'static str {
    match code {
        0x100 => "no_error",
        0x101 => "general_protocol_error",
        0x102 => "internal_error",
        0x103 => "stream_creation_error",
        0x104 => "closed_critical_stream",
        0x105 => "frame_unexpected",
        0x106 => "frame_error",
        0x107 => "excessive_load",
        0x108 => "id_error",
        0x109 => "settings_error",
        0x10a => "missing_settings",
        0x10b => "request_rejected",
        0x10c => "request_cancelled",
        0x10d => "request_incomplete",
        0x10e => "message_error",
        0x10f => "connect_error",
        0x110 => "version_fallback",
        0x200 => "qpack_decompression_failed",
        0x201 => "qpack_encoder_stream_error",
        0x202 => "qpack_decoder_stream_error",
        _ => "other_code",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_request_is_named_by_its_code_only() {
        let error = h3::error::StreamError::StreamError {
            code: h3::error::Code::H3_MESSAGE_ERROR,
            reason: "invalid header value: \":authority\" secret.example:443".to_owned(),
        };
        assert_eq!(stream(&error), "message_error");
    }

    #[test]
    fn guard_errors_keep_their_names() {
        let guard = GuardError::BodyTimeout;
        let error = h3::error::StreamError::Undefined(Box::new(guard));
        assert_eq!(stream(&error), "body_timeout");
    }
}
