//! The `TokenChallenge` structure (RFC 9577 §2.1.1):
//!
//! ```text
//! struct {
//!     uint16_t token_type;
//!     opaque issuer_name<1..2^16-1>;
//!     opaque redemption_context<0..32>;
//!     opaque origin_info<0..2^16-1>;
//! } TokenChallenge;
//! ```
//!
//! Decoding is strict and canonical: `encode(decode(b)) == b`, so the
//! `challenge_digest` computed over a decoded challenge is the digest of the
//! bytes received.

/// Why bytes are not a `TokenChallenge`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChallengeError {
    /// The structure ends before a field does.
    #[error("token challenge truncated")]
    Truncated,
    /// Bytes follow the last field.
    #[error("token challenge has trailing bytes")]
    Trailing,
    /// `issuer_name` is empty or not a server name (RFC 9577 §2.1.1.1).
    #[error("token challenge issuer_name is not a server name")]
    IssuerName,
    /// `redemption_context` is neither 0 nor 32 bytes (RFC 9577 §2.1.1).
    #[error("token challenge redemption_context must be 0 or 32 bytes")]
    RedemptionContext,
    /// `origin_info` is not a comma-separated list of server names.
    #[error("token challenge origin_info is not a list of server names")]
    OriginInfo,
}

/// The prefix of the origin name of access tokens scoped to an ingress
/// operator ([`TokenChallenge::for_ingress_operator`]).
pub const INGRESS_OPERATOR_ORIGIN: &str = "ingress:";

/// A token challenge: which issuer's tokens an origin (here: a relay) takes,
/// and in which context.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenChallenge {
    /// The token type (RFC 9577 §5.2); openrelay uses 0x0002.
    pub token_type: u16,
    /// The issuer's server name, e.g. `issuer.example:8443`.
    pub issuer_name: String,
    /// Empty, or 32 bytes binding tokens to a context (RFC 9577 §2.1.1.2).
    pub redemption_context: Option<[u8; 32]>,
    /// Origin names the token is scoped to; empty for cross-origin tokens.
    pub origin_info: Vec<String>,
}

/// A server name as RFC 9577 §2.1.1.1 uses it: the authority of a URI
/// without userinfo, here kept to printable ASCII without `@`, `,` or spaces.
fn is_server_name(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| b.is_ascii_graphic() && b != b'@' && b != b',')
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ChallengeError> {
        if self.bytes.len() < n {
            return Err(ChallengeError::Truncated);
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, ChallengeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, ChallengeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
}

impl TokenChallenge {
    /// The cross-origin, context-free challenge for `issuer_name` with token
    /// type 0x0002: any relay presenting it accepts the same tokens, so a
    /// client can fetch them ahead of time (RFC 9577 §2.1.1.2, empty context).
    pub fn for_issuer(issuer_name: impl Into<String>) -> Self {
        TokenChallenge {
            token_type: crate::TOKEN_TYPE_BLIND_RSA,
            issuer_name: issuer_name.into(),
            redemption_context: None,
            origin_info: Vec::new(),
        }
    }

    /// The challenge of payment tokens for the relay whose key pin is
    /// `relay` (`ed25519:...`): the issuer's, scoped to that relay by
    /// `origin_info` (RFC 9577 §2.1.1), so a token paid to one egress can be
    /// redeemed only for it. Still context-free, so clients can fetch such
    /// tokens ahead of time; the issuer, which sees them only blinded, never
    /// learns for which relay.
    pub fn for_relay(issuer_name: impl Into<String>, relay: impl Into<String>) -> Self {
        TokenChallenge {
            origin_info: vec![relay.into()],
            ..Self::for_issuer(issuer_name)
        }
    }

    /// The challenge of access tokens for the ingress relays of the operator
    /// whose key pin is `operator` (`ed25519:...`): the issuer's, scoped by
    /// `origin_info` to that operator (RFC 9577 §2.1.1), so a token one
    /// operator's ingress collected opens no tunnel at another operator's
    /// (their spent sets are separate). The operator's key, not its name:
    /// names can be claimed by anyone, a key only by its holder, whose
    /// signature puts each relay under it in the directory. The origin name
    /// is `ingress:<pin>`, so it never equals a payment challenge's (a relay
    /// key alone). Context-free like every openrelay challenge, so clients
    /// fetch these ahead of time and the issuer, seeing them blinded, never
    /// learns for which operator.
    pub fn for_ingress_operator(issuer_name: impl Into<String>, operator: &str) -> Self {
        TokenChallenge {
            origin_info: vec![format!("{INGRESS_OPERATOR_ORIGIN}{operator}")],
            ..Self::for_issuer(issuer_name)
        }
    }

    /// Parses a challenge (RFC 9577 §2.1.1).
    pub fn decode(bytes: &[u8]) -> Result<Self, ChallengeError> {
        let mut r = Reader { bytes };
        let token_type = r.u16()?;
        let len = usize::from(r.u16()?);
        let issuer = r.take(len)?;
        if !is_server_name(issuer) {
            return Err(ChallengeError::IssuerName);
        }
        let redemption_context = match r.u8()? {
            0 => None,
            32 => {
                let mut context = [0u8; 32];
                context.copy_from_slice(r.take(32)?);
                Some(context)
            }
            _ => return Err(ChallengeError::RedemptionContext),
        };
        let len = usize::from(r.u16()?);
        let origins = r.take(len)?;
        if !r.bytes.is_empty() {
            return Err(ChallengeError::Trailing);
        }
        let origin_info = if origins.is_empty() {
            Vec::new()
        } else {
            origins
                .split(|&b| b == b',')
                .map(|name| {
                    is_server_name(name)
                        .then(|| String::from_utf8_lossy(name).into_owned())
                        .ok_or(ChallengeError::OriginInfo)
                })
                .collect::<Result<_, _>>()?
        };
        Ok(TokenChallenge {
            token_type,
            // Checked above: printable ASCII.
            issuer_name: String::from_utf8_lossy(issuer).into_owned(),
            redemption_context,
            origin_info,
        })
    }

    /// The wire form; fails if a field cannot be encoded (empty or too long
    /// names, names that are not server names).
    pub fn encode(&self) -> Result<Vec<u8>, ChallengeError> {
        let issuer = self.issuer_name.as_bytes();
        if !is_server_name(issuer) {
            return Err(ChallengeError::IssuerName);
        }
        let issuer_len = u16::try_from(issuer.len()).map_err(|_| ChallengeError::IssuerName)?;
        if self
            .origin_info
            .iter()
            .any(|name| !is_server_name(name.as_bytes()))
        {
            return Err(ChallengeError::OriginInfo);
        }
        let origins = self.origin_info.join(",");
        let origins_len = u16::try_from(origins.len()).map_err(|_| ChallengeError::OriginInfo)?;
        let mut out = Vec::with_capacity(2 + 2 + issuer.len() + 33 + 2 + origins.len());
        out.extend_from_slice(&self.token_type.to_be_bytes());
        out.extend_from_slice(&issuer_len.to_be_bytes());
        out.extend_from_slice(issuer);
        match &self.redemption_context {
            None => out.push(0),
            Some(context) => {
                out.push(32);
                out.extend_from_slice(context);
            }
        }
        out.extend_from_slice(&origins_len.to_be_bytes());
        out.extend_from_slice(origins.as_bytes());
        Ok(out)
    }

    /// `challenge_digest = SHA-256(TokenChallenge)` (RFC 9577 §2.2.1).
    pub fn digest(&self) -> Result<[u8; 32], ChallengeError> {
        Ok(crate::sha256(&self.encode()?))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn malformed_challenges_are_refused() {
        let good = TokenChallenge::for_issuer("issuer.example")
            .encode()
            .unwrap();
        assert_eq!(
            TokenChallenge::decode(&good).unwrap(),
            TokenChallenge::for_issuer("issuer.example")
        );
        for n in 0..good.len() {
            assert_eq!(
                TokenChallenge::decode(&good[..n]),
                Err(ChallengeError::Truncated)
            );
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(
            TokenChallenge::decode(&trailing),
            Err(ChallengeError::Trailing)
        );
        let mut context = good.clone();
        context[2 + 2 + 14] = 5;
        assert_eq!(
            TokenChallenge::decode(&context),
            Err(ChallengeError::RedemptionContext)
        );
        let at = TokenChallenge::for_issuer("user@issuer.example");
        assert_eq!(at.encode(), Err(ChallengeError::IssuerName));
        let empty = TokenChallenge::for_issuer("");
        assert_eq!(empty.encode(), Err(ChallengeError::IssuerName));
        let mut origins = TokenChallenge::for_issuer("issuer.example");
        origins.origin_info = vec!["a.example".into(), String::new()];
        assert_eq!(origins.encode(), Err(ChallengeError::OriginInfo));
    }

    #[test]
    fn access_challenges_of_two_operators_and_a_payment_challenge_all_differ() {
        let pin = "ed25519:11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let other = "ed25519:PUAXw-hDiVqStwqnTRt-vJyYLM8uxJaMwM1V8Sr0Zgw";
        let access = TokenChallenge::for_ingress_operator("issuer.example", pin);
        let bytes = access.encode().unwrap();
        assert_eq!(TokenChallenge::decode(&bytes).unwrap(), access);
        let digests = [
            access.digest().unwrap(),
            TokenChallenge::for_ingress_operator("issuer.example", other)
                .digest()
                .unwrap(),
            // The same key as a relay's (payment) is another origin.
            TokenChallenge::for_relay("issuer.example", pin)
                .digest()
                .unwrap(),
            TokenChallenge::for_issuer("issuer.example")
                .digest()
                .unwrap(),
        ];
        for (i, a) in digests.iter().enumerate() {
            for b in &digests[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
