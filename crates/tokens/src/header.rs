//! The `PrivateToken` HTTP authentication scheme (RFC 9577 §2):
//! `WWW-Authenticate: PrivateToken challenge="...", token-key="..."` (§2.1)
//! and `Authorization: PrivateToken token="..."` (§2.2), in the challenge and
//! credentials syntax of RFC 9110 §11.
//!
//! The parsers are total: any input gives a value or a [`HeaderError`].

use crate::b64;
use crate::token::{Token, TokenError};

/// The authentication scheme name (RFC 9577 §6.1); compared case-insensitively.
pub const SCHEME: &str = "PrivateToken";

/// Why a header value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value does not follow the RFC 9110 §11 challenge/credentials syntax.
    #[error("malformed authentication header at byte {0}")]
    Syntax(usize),
    /// A parameter appears twice in one challenge (RFC 9110 §11.2).
    #[error("parameter `{0}` given twice")]
    DuplicateParameter(String),
    /// Credentials of another scheme than `PrivateToken`.
    #[error("not PrivateToken credentials")]
    OtherScheme,
    /// A required parameter is absent.
    #[error("missing parameter `{0}`")]
    MissingParameter(&'static str),
    /// A parameter is not padded base64url (or not a number, for `max-age`).
    #[error("parameter `{0}` is malformed")]
    BadParameter(&'static str),
    /// The token bytes are not a token openrelay accepts.
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// One `PrivateToken` challenge from a `WWW-Authenticate` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateTokenChallenge {
    /// The `TokenChallenge` bytes, exactly as sent (their SHA-256 is the
    /// token's `challenge_digest`); decode with
    /// [`TokenChallenge::decode`](crate::TokenChallenge::decode).
    pub challenge: Vec<u8>,
    /// The issuer public key (`token-key`), if sent (it may be omitted).
    pub token_key: Option<Vec<u8>>,
    /// Seconds for which the origin accepts this challenge (`max-age`).
    pub max_age: Option<u64>,
}

impl PrivateTokenChallenge {
    /// The token type the challenge asks for (its first two bytes).
    pub fn token_type(&self) -> Option<u16> {
        match self.challenge.as_slice() {
            [a, b, ..] => Some(u16::from_be_bytes([*a, *b])),
            _ => None,
        }
    }
}

/// `PrivateToken challenge="...", token-key="..."[, max-age="..."]`.
pub fn build_www_authenticate(challenge: &[u8], token_key: &[u8], max_age: Option<u64>) -> String {
    let mut value = format!(
        "{SCHEME} challenge=\"{}\", token-key=\"{}\"",
        b64::encode(challenge),
        b64::encode(token_key)
    );
    if let Some(max_age) = max_age {
        value.push_str(&format!(", max-age=\"{max_age}\""));
    }
    value
}

/// Every `PrivateToken` challenge in a `WWW-Authenticate` field value, in
/// order; challenges of other schemes (e.g. `Basic`) and unknown parameters
/// are skipped (RFC 9577 §2.1).
pub fn parse_www_authenticate(value: &str) -> Result<Vec<PrivateTokenChallenge>, HeaderError> {
    let mut out = Vec::new();
    for challenge in parse_challenges(value)? {
        if !challenge.scheme.eq_ignore_ascii_case(SCHEME) {
            continue;
        }
        let challenge_bytes = challenge
            .param("challenge")
            .ok_or(HeaderError::MissingParameter("challenge"))?;
        let challenge_bytes =
            b64::decode(challenge_bytes).ok_or(HeaderError::BadParameter("challenge"))?;
        let token_key = challenge
            .param("token-key")
            .map(|key| b64::decode(key).ok_or(HeaderError::BadParameter("token-key")))
            .transpose()?;
        let max_age = challenge
            .param("max-age")
            .map(|age| parse_decimal(age).ok_or(HeaderError::BadParameter("max-age")))
            .transpose()?;
        out.push(PrivateTokenChallenge {
            challenge: challenge_bytes,
            token_key,
            max_age,
        });
    }
    Ok(out)
}

/// `PrivateToken token="..."` (RFC 9577 §2.2).
pub fn build_authorization(token: &Token) -> String {
    format!("{SCHEME} token=\"{}\"", b64::encode(&token.encode()))
}

/// The token in an `Authorization` field value: exactly one set of
/// `PrivateToken` credentials with a `token` parameter (RFC 9577 §2.2).
pub fn parse_authorization(value: &str) -> Result<Token, HeaderError> {
    let credentials = parse_challenges(value)?;
    let [credentials] = credentials.as_slice() else {
        return Err(HeaderError::Syntax(0));
    };
    if !credentials.scheme.eq_ignore_ascii_case(SCHEME) {
        return Err(HeaderError::OtherScheme);
    }
    let token = credentials
        .param("token")
        .ok_or(HeaderError::MissingParameter("token"))?;
    let bytes = b64::decode(token).ok_or(HeaderError::BadParameter("token"))?;
    Ok(Token::decode(&bytes)?)
}

fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// One challenge (or set of credentials): a scheme and its parameters, or a
/// token68 (RFC 9110 §11.2), which is kept as a parameter with an empty name.
#[derive(Debug)]
struct Challenge<'a> {
    scheme: &'a str,
    params: Vec<(&'a str, String)>,
}

impl Challenge<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// `tchar` (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The characters of `token68` before its `=` padding (RFC 9110 §11.2).
fn is_token68_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn take_while(&mut self, accept: impl Fn(u8) -> bool) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(&accept) {
            self.pos += 1;
        }
        // Only ASCII bytes are accepted, so this is a char boundary.
        self.text.get(start..self.pos).unwrap_or("")
    }

    fn error(&self) -> HeaderError {
        HeaderError::Syntax(self.pos)
    }

    /// At the end of a list element: end of input or a comma (after OWS).
    fn at_element_end(&mut self) -> bool {
        self.skip_ows();
        matches!(self.peek(), None | Some(b','))
    }

    /// `quoted-string` (RFC 9110 §5.6.4), unescaped; the opening quote is next.
    fn quoted_string(&mut self) -> Result<String, HeaderError> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) if b == b'\t' || (0x20..0x7f).contains(&b) => {
                            out.push(char::from(b));
                            self.pos += 1;
                        }
                        _ => return Err(self.error()),
                    }
                }
                Some(b) if b == b'\t' || (0x20..0x7f).contains(&b) => {
                    out.push(char::from(b));
                    self.pos += 1;
                }
                _ => return Err(self.error()),
            }
        }
    }

    /// `auth-param` value: `token / quoted-string`.
    fn param_value(&mut self) -> Result<String, HeaderError> {
        if self.peek() == Some(b'"') {
            return self.quoted_string();
        }
        let value = self.take_while(is_tchar);
        if value.is_empty() {
            return Err(self.error());
        }
        Ok(value.to_owned())
    }
}

/// `#challenge` / `credentials` (RFC 9110 §11.2, §11.6.1):
///
/// ```text
/// challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
/// auth-param = token BWS "=" BWS ( token / quoted-string )
/// token68    = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
/// ```
///
/// After a comma, `name =` continues the current challenge's parameters and
/// `scheme` (not followed by `=`) starts the next challenge.
fn parse_challenges(text: &str) -> Result<Vec<Challenge<'_>>, HeaderError> {
    let mut cursor = Cursor { text, pos: 0 };
    let mut challenges: Vec<Challenge<'_>> = Vec::new();
    loop {
        // Empty list elements are allowed (RFC 9110 §5.6.1).
        while matches!(cursor.peek(), Some(b' ' | b'\t' | b',')) {
            cursor.pos += 1;
        }
        if cursor.peek().is_none() {
            break;
        }
        let scheme = cursor.take_while(is_tchar);
        if scheme.is_empty() {
            return Err(cursor.error());
        }
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        if cursor.at_element_end() {
            challenges.push(challenge);
            continue;
        }
        // 1*SP was consumed by at_element_end; it must have been there.
        if !matches!(cursor.text.as_bytes().get(cursor.pos - 1), Some(b' ')) {
            return Err(cursor.error());
        }
        if !word_is_param(&mut cursor) {
            // token68: its characters, then `=` padding, then the element ends.
            let start = cursor.pos;
            if cursor.take_while(is_token68_char).is_empty() {
                return Err(cursor.error());
            }
            cursor.take_while(|b| b == b'=');
            let token68 = cursor.text.get(start..cursor.pos).unwrap_or("");
            if !cursor.at_element_end() {
                return Err(cursor.error());
            }
            challenge.params.push(("", token68.to_owned()));
            challenges.push(challenge);
            continue;
        }
        // #auth-param, until a comma is followed by something that is not one.
        loop {
            let name = cursor.take_while(is_tchar);
            if name.is_empty() {
                return Err(cursor.error());
            }
            cursor.skip_ows();
            if cursor.peek() != Some(b'=') {
                return Err(cursor.error());
            }
            cursor.pos += 1;
            cursor.skip_ows();
            let value = cursor.param_value()?;
            if challenge.param(name).is_some() {
                return Err(HeaderError::DuplicateParameter(name.to_ascii_lowercase()));
            }
            challenge.params.push((name, value));
            if !cursor.at_element_end() {
                return Err(cursor.error());
            }
            // Skip commas and OWS, then see whether a parameter follows.
            let before = cursor.pos;
            while matches!(cursor.peek(), Some(b' ' | b'\t' | b',')) {
                cursor.pos += 1;
            }
            if cursor.peek().is_none() || !word_is_param(&mut cursor) {
                cursor.pos = before;
                break;
            }
        }
        challenges.push(challenge);
    }
    Ok(challenges)
}

/// Whether the cursor is at `token BWS "=" BWS value` (an auth-param) rather
/// than a token68 or a new scheme; the cursor does not move.
fn word_is_param(cursor: &mut Cursor<'_>) -> bool {
    let start = cursor.pos;
    let name = cursor.take_while(is_tchar);
    cursor.skip_ows();
    let is_param = !name.is_empty() && cursor.peek() == Some(b'=') && {
        cursor.pos += 1;
        cursor.skip_ows();
        // `name=` followed by a value; `abc==` or `abc=` at the end is token68 padding.
        matches!(cursor.peek(), Some(b) if b == b'"' || is_tchar(b))
    };
    cursor.pos = start;
    is_param
}
