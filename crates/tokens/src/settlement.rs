//! Settlement: an egress relay redeems the payment tokens it collected at the
//! issuer, for its operator.
//!
//! `POST /v1/settle`, body a [`Settlement`], with the relay's Ed25519
//! signature over [`SETTLEMENT_SIGNATURE_PREFIX`] ‖ body in the
//! `openrelay-relay-signature` header (base64url). Payment tokens are scoped
//! to one relay by their challenge's `origin_info`
//! ([`crate::TokenChallenge::for_relay`]), and only the holder of that
//! relay's key can sign a settlement for it, so a token can be redeemed only
//! by the operator whose relay collected it, and only once; the issuer also
//! takes settlements only from relays listed for the operator they name.
//! The issuer answers with a [`Receipt`] (JSON).
//!
//! `POST /v1/ledger`, body a [`LedgerRequest`] signed the same way (prefix
//! [`LEDGER_READ_SIGNATURE_PREFIX`]) by one of the operator's relays (or, with
//! a directory, the operator key), answers the operator's [`OperatorLedger`]
//! (JSON): tokens redeemed and the bytes its relays reported carrying. The
//! request names the issuer, is fresh ([`LEDGER_REQUEST_MAX_AGE_SECS`]) and
//! carries a nonce the issuer accepts once, so it cannot be replayed.
//!
//! Every signature covers a prefix naming its purpose (ASCII, one NUL, its
//! last byte; as in `docs/directory-format.md`), so a signature made for one
//! purpose, or for a directory descriptor with the same key, never verifies
//! for another.
//!
//! # Settlement encoding (all integers big-endian)
//! ```text
//! relay key (32) ‖ operator length (1) ‖ operator (UTF-8) ‖
//! bytes carried since the last settlement (8) ‖ token count (2) ‖
//! count × (token length (2) ‖ token, RFC 9577 §2.2.1)
//! ```
//!
//! # Ledger request encoding
//! ```text
//! version (1) = 1 ‖ signer key (32) ‖ issuer length (1) ‖ issuer name ‖
//! operator length (1) ‖ operator ‖ issued at, Unix seconds (8) ‖ nonce (16)
//! ```

use serde::{Deserialize, Serialize};

use crate::Token;
use crate::token::TOKEN_LEN;

/// Where relays settle.
pub const SETTLE_PATH: &str = "/v1/settle";
/// Where operators read their ledger (a signed [`LedgerRequest`]).
pub const LEDGER_PATH: &str = "/v1/ledger";
/// The header carrying the signature over the prefixed body.
pub const SIGNATURE_HEADER: &str = "openrelay-relay-signature";
/// Most tokens in one settlement.
pub const MAX_TOKENS: usize = 512;
/// Longest operator name.
pub const MAX_OPERATOR: usize = 255;
/// The longest settlement encoding (a full batch of [`MAX_TOKENS`]): what the
/// issuer must accept as a settlement body.
pub const MAX_ENCODED_LEN: usize = 32 + 1 + MAX_OPERATOR + 8 + 2 + MAX_TOKENS * (2 + TOKEN_LEN);
/// What a relay signs a settlement under.
pub const SETTLEMENT_SIGNATURE_PREFIX: &[u8] = b"openrelay settlement v1\0";
/// What a relay (or operator) signs a ledger read under.
pub const LEDGER_READ_SIGNATURE_PREFIX: &[u8] = b"openrelay ledger read v1\0";
/// How far a ledger request's `issued_at` may be from the issuer's clock.
pub const LEDGER_REQUEST_MAX_AGE_SECS: u64 = 300;
/// The longest ledger request encoding.
pub const MAX_LEDGER_REQUEST_LEN: usize = 1 + 32 + 1 + 255 + 1 + MAX_OPERATOR + 8 + 16;

/// The message signed for `body` under `prefix` (one of the prefixes above).
pub fn signed_message(prefix: &[u8], body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(prefix.len() + body.len());
    message.extend_from_slice(prefix);
    message.extend_from_slice(body);
    message
}

/// Why a settlement does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettlementError {
    /// The body ends early.
    #[error("settlement truncated")]
    Truncated,
    /// Bytes after the last token.
    #[error("trailing bytes after the settlement")]
    Trailing,
    /// The operator name is not UTF-8 or empty.
    #[error("operator name must be non-empty UTF-8")]
    Operator,
    /// The issuer name of a ledger request is not UTF-8 or empty.
    #[error("issuer name must be non-empty UTF-8")]
    Issuer,
    /// A ledger request of an unknown version.
    #[error("unknown ledger request version")]
    Version,
    /// More tokens than [`MAX_TOKENS`].
    #[error("at most {MAX_TOKENS} tokens per settlement")]
    TooMany,
    /// A token does not parse.
    #[error("token {index}: {reason}")]
    Token {
        /// Its position.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// One relay's settlement request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The relay's Ed25519 public key (what clients pin).
    pub relay: [u8; 32],
    /// Its operator, credited in the issuer's ledger.
    pub operator: String,
    /// Payload bytes carried for paying sessions since its last settlement.
    pub bytes_carried: u64,
    /// Collected tokens.
    pub tokens: Vec<Token>,
}

impl Settlement {
    /// The encoding above; `None` if a limit is exceeded.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let operator = self.operator.as_bytes();
        if operator.is_empty() || operator.len() > MAX_OPERATOR || self.tokens.len() > MAX_TOKENS {
            return None;
        }
        let mut out = Vec::with_capacity(32 + 1 + operator.len() + 10 + self.tokens.len() * 360);
        out.extend_from_slice(&self.relay);
        out.push(u8::try_from(operator.len()).ok()?);
        out.extend_from_slice(operator);
        out.extend_from_slice(&self.bytes_carried.to_be_bytes());
        out.extend_from_slice(&u16::try_from(self.tokens.len()).ok()?.to_be_bytes());
        for token in &self.tokens {
            let bytes = token.encode();
            out.extend_from_slice(&u16::try_from(bytes.len()).ok()?.to_be_bytes());
            out.extend_from_slice(&bytes);
        }
        Some(out)
    }

    /// Parses the encoding above.
    pub fn decode(bytes: &[u8]) -> Result<Self, SettlementError> {
        let mut reader = Reader(bytes);
        let relay = reader.array::<32>()?;
        let operator = reader.text(SettlementError::Operator)?;
        let bytes_carried = u64::from_be_bytes(reader.array()?);
        let count = usize::from(u16::from_be_bytes(reader.array()?));
        if count > MAX_TOKENS {
            return Err(SettlementError::TooMany);
        }
        let mut tokens = Vec::with_capacity(count);
        for index in 0..count {
            let len = usize::from(u16::from_be_bytes(reader.array()?));
            let token = Token::decode(reader.take(len)?).map_err(|e| SettlementError::Token {
                index,
                reason: e.to_string(),
            })?;
            tokens.push(token);
        }
        reader.end()?;
        Ok(Settlement {
            relay,
            operator,
            bytes_carried,
            tokens,
        })
    }
}

/// A cursor over untrusted bytes; every read is bounds-checked.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SettlementError> {
        if self.0.len() < n {
            return Err(SettlementError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SettlementError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// A `u8`-length-prefixed, non-empty UTF-8 string; `invalid` otherwise.
    fn text(&mut self, invalid: SettlementError) -> Result<String, SettlementError> {
        let [len] = self.array::<1>()?;
        std::str::from_utf8(self.take(usize::from(len))?)
            .ok()
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .ok_or(invalid)
    }

    fn end(&self) -> Result<(), SettlementError> {
        match self.0.is_empty() {
            true => Ok(()),
            false => Err(SettlementError::Trailing),
        }
    }
}

/// A signed request for an operator's ledger; see the [module
/// documentation](self).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRequest {
    /// The signing key: one of the operator's relays (its pinned QUIC key),
    /// or, with a directory, the operator key.
    pub signer: [u8; 32],
    /// The issuer asked (its `issuer_name`), so a request cannot be replayed
    /// at another issuer.
    pub issuer: String,
    /// The operator whose ledger is asked for.
    pub operator: String,
    /// When the request was made (Unix seconds).
    pub issued_at: u64,
    /// Random; the issuer accepts each once.
    pub nonce: [u8; 16],
}

impl LedgerRequest {
    const VERSION: u8 = 1;

    /// The encoding above; `None` if a name is empty or too long.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let (issuer, operator) = (self.issuer.as_bytes(), self.operator.as_bytes());
        let mut out = Vec::with_capacity(MAX_LEDGER_REQUEST_LEN);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.signer);
        for name in [issuer, operator] {
            if name.is_empty() {
                return None;
            }
            out.push(u8::try_from(name.len()).ok()?);
            out.extend_from_slice(name);
        }
        out.extend_from_slice(&self.issued_at.to_be_bytes());
        out.extend_from_slice(&self.nonce);
        Some(out)
    }

    /// Parses the encoding above.
    pub fn decode(bytes: &[u8]) -> Result<Self, SettlementError> {
        let mut reader = Reader(bytes);
        if reader.array::<1>()? != [Self::VERSION] {
            return Err(SettlementError::Version);
        }
        let request = LedgerRequest {
            signer: reader.array()?,
            issuer: reader.text(SettlementError::Issuer)?,
            operator: reader.text(SettlementError::Operator)?,
            issued_at: u64::from_be_bytes(reader.array()?),
            nonce: reader.array()?,
        };
        reader.end()?;
        Ok(request)
    }
}

/// A token the issuer did not redeem, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedToken {
    /// Its position in the settlement.
    pub index: usize,
    /// Why, e.g. "already redeemed", "not collected by this relay".
    pub reason: String,
}

/// The issuer's answer to a settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Tokens redeemed for the operator.
    pub redeemed: usize,
    /// Tokens refused.
    pub refused: Vec<RefusedToken>,
}

/// An operator's contribution, as the issuer keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperatorLedger {
    /// The operator.
    pub operator: String,
    /// Tokens redeemed for it.
    pub tokens_redeemed: u64,
    /// Payload bytes its relays reported carrying for paying sessions.
    pub bytes_reported: u64,
    /// Settlements received.
    pub settlements: u64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::testing::unsigned_token as token;

    #[test]
    fn round_trip_and_limits() {
        let settlement = Settlement {
            relay: [7; 32],
            operator: "operator-1".into(),
            bytes_carried: 1 << 40,
            tokens: vec![token(1), token(2)],
        };
        let bytes = settlement.encode().unwrap();
        assert_eq!(Settlement::decode(&bytes).unwrap(), settlement);
        assert_eq!(
            Settlement::decode(&bytes[..bytes.len() - 1]),
            Err(SettlementError::Truncated)
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(
            Settlement::decode(&trailing),
            Err(SettlementError::Trailing)
        );
        let empty_operator = Settlement {
            operator: String::new(),
            ..settlement.clone()
        };
        assert_eq!(empty_operator.encode(), None);
        let too_many = Settlement {
            tokens: vec![token(1); MAX_TOKENS + 1],
            ..settlement
        };
        assert_eq!(too_many.encode(), None);
    }

    #[test]
    fn a_full_batch_fits_the_bound() {
        let full = Settlement {
            relay: [7; 32],
            operator: "o".repeat(MAX_OPERATOR),
            bytes_carried: u64::MAX,
            tokens: vec![token(1); MAX_TOKENS],
        };
        assert_eq!(full.encode().unwrap().len(), MAX_ENCODED_LEN);
    }

    #[test]
    fn prefixes_name_one_purpose_each() {
        // One NUL, the last byte: neither is a prefix of the other, nor of
        // the directory's prefixes (which start "openrelay d"/"openrelay o").
        for prefix in [SETTLEMENT_SIGNATURE_PREFIX, LEDGER_READ_SIGNATURE_PREFIX] {
            assert_eq!(prefix.iter().filter(|b| **b == 0).count(), 1);
            assert_eq!(prefix.last(), Some(&0));
        }
        assert!(!SETTLEMENT_SIGNATURE_PREFIX.starts_with(LEDGER_READ_SIGNATURE_PREFIX));
        assert!(!LEDGER_READ_SIGNATURE_PREFIX.starts_with(SETTLEMENT_SIGNATURE_PREFIX));
        assert_eq!(
            signed_message(SETTLEMENT_SIGNATURE_PREFIX, b"body"),
            b"openrelay settlement v1\0body"
        );
    }

    #[test]
    fn ledger_requests_round_trip_and_refuse_bad_input() {
        let request = LedgerRequest {
            signer: [3; 32],
            issuer: "issuer.example:4450".into(),
            operator: "operator-1".into(),
            issued_at: 1_700_000_000,
            nonce: [9; 16],
        };
        let bytes = request.encode().unwrap();
        assert_eq!(LedgerRequest::decode(&bytes).unwrap(), request);
        let mut version = bytes.clone();
        version[0] = 2;
        assert_eq!(
            LedgerRequest::decode(&version),
            Err(SettlementError::Version)
        );
        assert_eq!(
            LedgerRequest::decode(&bytes[..bytes.len() - 1]),
            Err(SettlementError::Truncated)
        );
        let mut trailing = bytes;
        trailing.push(0);
        assert_eq!(
            LedgerRequest::decode(&trailing),
            Err(SettlementError::Trailing)
        );
        let no_issuer = LedgerRequest {
            issuer: String::new(),
            ..request
        };
        assert_eq!(no_issuer.encode(), None);
    }

    proptest! {
        #[test]
        fn ledger_request_decoding_never_panics_and_is_canonical(
            bytes in proptest::collection::vec(any::<u8>(), 0..MAX_LEDGER_REQUEST_LEN + 8)
        ) {
            if let Ok(request) = LedgerRequest::decode(&bytes) {
                prop_assert_eq!(request.encode(), Some(bytes));
            }
        }

        #[test]
        fn decoding_never_panics_and_is_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(settlement) = Settlement::decode(&bytes) {
                prop_assert_eq!(settlement.encode(), Some(bytes));
            }
        }

        #[test]
        fn what_encodes_decodes(
            relay in any::<[u8; 32]>(),
            operator in "[a-z0-9 -]{1,40}",
            bytes_carried in any::<u64>(),
            tokens in proptest::collection::vec(any::<u8>(), 0..6),
        ) {
            let settlement = Settlement {
                relay,
                operator,
                bytes_carried,
                tokens: tokens.into_iter().map(token).collect(),
            };
            let encoded = settlement.encode().unwrap();
            prop_assert_eq!(Settlement::decode(&encoded).unwrap(), settlement);
        }
    }
}
