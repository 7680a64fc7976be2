//! DNS messages (RFC 1035 §4.1), only as far as relaying them needs: a query
//! is checked before it is forwarded, an answer is matched to its query
//! (RFC 5452 §9.1: ID and question), and a failure becomes a SERVFAIL the
//! app understands. Messages travel whole, in the DNS-over-HTTPS wire format
//! (RFC 8484 §4.1: `application/dns-message`), or length-prefixed over TCP
//! (RFC 1035 §4.2.2).
//!
//! Names are never printed: errors name what is wrong, not the input.

/// The media type of DNS messages over HTTP (RFC 8484 §6).
pub const MEDIA_TYPE: &str = "application/dns-message";
/// The path the egress answers DNS queries on (RFC 8484 §4.1 leaves it to
/// the server; `/dns-query` is the customary one).
pub const PATH: &str = "/dns-query";
/// The header size (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;
/// The largest message (its length must fit the 16-bit TCP prefix).
pub const MAX_MESSAGE: usize = 65_535;

const QR: u8 = 0x80;
const OPCODE_MASK: u8 = 0x78;
const RD: u8 = 0x01;
const RA: u8 = 0x80;
const TC: u8 = 0x02;
const RCODE_SERVFAIL: u8 = 2;

/// Why bytes are not a usable DNS query or answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// Shorter than a header, or longer than 65,535 bytes.
    #[error("DNS message length out of range")]
    Length,
    /// A query must have QR = 0 and an answer QR = 1.
    #[error("DNS message has the wrong direction (QR bit)")]
    Direction,
    /// Only standard queries (OPCODE 0) with exactly one question are relayed.
    #[error("not a standard query with one question")]
    NotStandardQuery,
    /// The question's name or fields are malformed.
    #[error("malformed DNS question")]
    Question,
    /// The answer's ID or question is not the query's.
    #[error("DNS answer does not match the query")]
    Mismatch,
}

/// A checked query: where its question ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Query {
    question_end: usize,
}

impl Query {
    /// Checks a standard query: header, one question with an uncompressed
    /// name (RFC 1035 §3.1: labels ≤ 63 bytes, name ≤ 255), type and class.
    pub fn parse(message: &[u8]) -> Result<Query, DnsError> {
        if !(HEADER_LEN..=MAX_MESSAGE).contains(&message.len()) {
            return Err(DnsError::Length);
        }
        if message[2] & QR != 0 {
            return Err(DnsError::Direction);
        }
        if message[2] & OPCODE_MASK != 0 || u16::from_be_bytes([message[4], message[5]]) != 1 {
            return Err(DnsError::NotStandardQuery);
        }
        Ok(Query {
            question_end: question_end(message)?,
        })
    }

    /// The question section (name, type, class) of `message`, the query
    /// this was parsed from.
    pub fn question<'a>(&self, message: &'a [u8]) -> &'a [u8] {
        message
            .get(HEADER_LEN..self.question_end)
            .unwrap_or_default()
    }

    /// Checks that `answer` answers `query` (the message this was parsed
    /// from): QR set, same ID, one question equal to the query's (names
    /// compared case-insensitively, RFC 4343 §3).
    pub fn check_answer(&self, query: &[u8], answer: &[u8]) -> Result<(), DnsError> {
        if !(HEADER_LEN..=MAX_MESSAGE).contains(&answer.len()) {
            return Err(DnsError::Length);
        }
        if answer[2] & QR == 0 {
            return Err(DnsError::Direction);
        }
        if answer[..2] != query[..2] || u16::from_be_bytes([answer[4], answer[5]]) != 1 {
            return Err(DnsError::Mismatch);
        }
        let end = question_end(answer).map_err(|_| DnsError::Mismatch)?;
        let (theirs, ours) = (&answer[HEADER_LEN..end], self.question(query));
        // Names compare without case, type and class (the last 4 bytes) exactly.
        let split = ours.len().saturating_sub(4);
        if theirs.len() != ours.len()
            || !theirs[..split].eq_ignore_ascii_case(&ours[..split])
            || theirs[split..] != ours[split..]
        {
            return Err(DnsError::Mismatch);
        }
        Ok(())
    }

    /// A SERVFAIL answer to `query` (RFC 1035 §4.1.1, RCODE 2): its ID,
    /// opcode and RD bit, its question, no records.
    pub fn servfail(&self, query: &[u8]) -> Vec<u8> {
        let mut answer = Vec::with_capacity(self.question_end);
        answer.extend_from_slice(&query[..2]);
        answer.push(QR | (query[2] & (OPCODE_MASK | RD)));
        answer.push(RA | RCODE_SERVFAIL);
        answer.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        answer.extend_from_slice(self.question(query));
        answer
    }
}

/// The message's ID.
pub fn id(message: &[u8]) -> Option<u16> {
    Some(u16::from_be_bytes([*message.first()?, *message.get(1)?]))
}

/// Sets the message's ID (RFC 8484 §4.1 asks DoH clients to send ID 0, so
/// the app's ID is put back into the answer).
pub fn set_id(message: &mut [u8], id: u16) {
    if let Some(head) = message.get_mut(..2) {
        head.copy_from_slice(&id.to_be_bytes());
    }
}

/// Whether an answer was truncated (TC bit): it must be asked again over TCP
/// (RFC 7766 §5).
pub fn truncated(message: &[u8]) -> bool {
    message.get(2).is_some_and(|b| b & TC != 0)
}

/// End of the one question that follows the header.
fn question_end(message: &[u8]) -> Result<usize, DnsError> {
    let mut at = HEADER_LEN;
    let mut name_len = 0usize;
    loop {
        let len = usize::from(*message.get(at).ok_or(DnsError::Question)?);
        // 0xC0.. are compression pointers, 0x40/0x80 reserved label types:
        // neither belongs in the question of a query.
        if len > 63 {
            return Err(DnsError::Question);
        }
        name_len += len + 1;
        if name_len > 255 {
            return Err(DnsError::Question);
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    // QTYPE and QCLASS.
    let end = at + 4;
    if end > message.len() {
        return Err(DnsError::Question);
    }
    Ok(end)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A query for `name` (dotted), type A, class IN, ID `id`.
    fn query(id: u16, name: &str) -> Vec<u8> {
        let mut m = id.to_be_bytes().to_vec();
        m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        m
    }

    #[test]
    fn a_query_parses_and_its_servfail_answers_it() {
        let q = query(0x1234, "example.org");
        let parsed = Query::parse(&q).unwrap();
        assert_eq!(parsed.question(&q).len(), 13 + 4);
        let fail = parsed.servfail(&q);
        assert_eq!(id(&fail), Some(0x1234));
        assert_eq!(fail[3] & 0x0f, RCODE_SERVFAIL);
        assert_eq!(fail[2] & RD, RD);
        parsed.check_answer(&q, &fail).unwrap();
        assert!(!truncated(&fail));
    }

    #[test]
    fn answers_must_match_id_and_question() {
        let q = query(7, "example.org");
        let parsed = Query::parse(&q).unwrap();
        let mut other = Query::parse(&query(7, "example.net"))
            .unwrap()
            .servfail(&query(7, "example.net"));
        assert_eq!(parsed.check_answer(&q, &other), Err(DnsError::Mismatch));
        let mut same = parsed.servfail(&q);
        set_id(&mut same, 8);
        assert_eq!(parsed.check_answer(&q, &same), Err(DnsError::Mismatch));
        // Case differences are not mismatches (RFC 4343).
        let upper = query(7, "EXAMPLE.org");
        let fail = Query::parse(&upper).unwrap().servfail(&upper);
        parsed.check_answer(&q, &fail).unwrap();
        // A query is not an answer.
        assert_eq!(parsed.check_answer(&q, &q), Err(DnsError::Direction));
        other.truncate(5);
        assert_eq!(parsed.check_answer(&q, &other), Err(DnsError::Length));
    }

    #[test]
    fn malformed_queries_are_refused() {
        let q = query(1, "example.org");
        assert_eq!(Query::parse(&q[..11]), Err(DnsError::Length));
        assert_eq!(Query::parse(&q[..q.len() - 1]), Err(DnsError::Question));
        let mut answer = q.clone();
        answer[2] |= QR;
        assert_eq!(Query::parse(&answer), Err(DnsError::Direction));
        let mut two = q.clone();
        two[5] = 2;
        assert_eq!(Query::parse(&two), Err(DnsError::NotStandardQuery));
        let mut pointer = q.clone();
        pointer[12] = 0xc0;
        assert_eq!(Query::parse(&pointer), Err(DnsError::Question));
        let long = vec!["a"; 130].join(".");
        assert_eq!(Query::parse(&query(1, &long)), Err(DnsError::Question));
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(q) = Query::parse(&bytes) {
                let fail = q.servfail(&bytes);
                prop_assert!(q.check_answer(&bytes, &fail).is_ok());
                let _ = q.check_answer(&bytes, &bytes);
            }
            let _ = truncated(&bytes);
        }
    }
}
