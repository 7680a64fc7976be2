//! base64url (RFC 4648 §5) as RFC 9577 uses it: values are sent with padding
//! (RFC 9577 §2.1: "MUST include padding"); received values are accepted with
//! or without it (the RFC's own greasing test vector omits it), but nothing
//! else is lenient: no other alphabet, no whitespace, no non-zero trailing bits.

use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

const ENCODER: GeneralPurpose = base64::engine::general_purpose::URL_SAFE;
const DECODER: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Encodes `bytes` as padded base64url.
pub fn encode(bytes: &[u8]) -> String {
    ENCODER.encode(bytes)
}

/// Decodes base64url, padded or not; `None` if it is not base64url.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    DECODER.decode(text).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn padding_is_sent_and_optional_on_receipt() {
        assert_eq!(encode(b"ab"), "YWI=");
        assert_eq!(decode("YWI=").unwrap(), b"ab");
        assert_eq!(decode("YWI").unwrap(), b"ab");
        assert_eq!(decode("-_8=").unwrap(), [0xfb, 0xff]);
        for bad in ["YW I=", "YWI/", "+/8=", "YWJ=", "Y"] {
            assert!(decode(bad).is_none(), "{bad}");
        }
    }
}
