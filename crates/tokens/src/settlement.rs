//! Settlement: an egress relay redeems the payment tokens it collected at the
//! issuer, for its operator.
//!
//! `POST /v1/settle`, body a [`Settlement`], with the relay's Ed25519
//! signature over the body in the `openrelay-relay-signature` header
//! (base64url). Payment tokens are scoped to one relay by their challenge's
//! `origin_info` ([`crate::TokenChallenge::for_relay`]), and only the holder
//! of that relay's key can sign a settlement for it, so a token can be
//! redeemed only by the operator whose relay collected it, and only once.
//! The issuer answers with a [`Receipt`] (JSON). `GET /v1/ledger?operator=NAME`
//! answers an operator's [`OperatorLedger`] (JSON): tokens redeemed and the
//! bytes its relays reported carrying.
//!
//! # Encoding (all integers big-endian)
//! ```text
//! relay key (32) ‖ operator length (1) ‖ operator (UTF-8) ‖
//! bytes carried since the last settlement (8) ‖ token count (2) ‖
//! count × (token length (2) ‖ token, RFC 9577 §2.2.1)
//! ```

use serde::{Deserialize, Serialize};

use crate::Token;

/// Where relays settle.
pub const SETTLE_PATH: &str = "/v1/settle";
/// Where operators read their ledger (`?operator=NAME`).
pub const LEDGER_PATH: &str = "/v1/ledger";
/// The header carrying the relay's signature over the body.
pub const SIGNATURE_HEADER: &str = "openrelay-relay-signature";
/// Most tokens in one settlement.
pub const MAX_TOKENS: usize = 512;
/// Longest operator name.
pub const MAX_OPERATOR: usize = 255;

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
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], SettlementError> {
            if rest.len() < n {
                return Err(SettlementError::Truncated);
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let mut relay = [0u8; 32];
        relay.copy_from_slice(take(32)?);
        let operator_len = usize::from(take(1)?[0]);
        let operator = std::str::from_utf8(take(operator_len)?)
            .ok()
            .filter(|o| !o.is_empty())
            .ok_or(SettlementError::Operator)?
            .to_owned();
        let mut carried = [0u8; 8];
        carried.copy_from_slice(take(8)?);
        let count = take(2)?;
        let count = usize::from(u16::from_be_bytes([count[0], count[1]]));
        if count > MAX_TOKENS {
            return Err(SettlementError::TooMany);
        }
        let mut tokens = Vec::with_capacity(count);
        for index in 0..count {
            let len = take(2)?;
            let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
            let token = Token::decode(take(len)?).map_err(|e| SettlementError::Token {
                index,
                reason: e.to_string(),
            })?;
            tokens.push(token);
        }
        if !rest.is_empty() {
            return Err(SettlementError::Trailing);
        }
        Ok(Settlement {
            relay,
            operator,
            bytes_carried: u64::from_be_bytes(carried),
            tokens,
        })
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

    proptest! {
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
