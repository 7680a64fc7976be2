//! DNS messages (RFC 1035 §4.1), only as far as relaying them needs: a query
//! is checked before it is forwarded (its type and class read, a reverse
//! name recognised), an answer is matched to its query (RFC 5452 §9.1: ID
//! and question), the addresses in an answer can be filtered out of it
//! ([`filter_answer`]), and a failure becomes a SERVFAIL or REFUSED the app
//! understands. Messages travel whole, in the DNS-over-HTTPS wire format
//! (RFC 8484 §4.1: `application/dns-message`), or length-prefixed over TCP
//! (RFC 1035 §4.2.2).
//!
//! Names are never printed: errors name what is wrong, not the input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
/// Authentic data (RFC 4035 §3.2.3), in the fourth header byte.
const AD: u8 = 0x20;
const TC: u8 = 0x02;
const RCODE_SERVFAIL: u8 = 2;
/// RFC 1035 §4.1.1: "The name server refuses to perform the specified
/// operation for policy reasons."
const RCODE_REFUSED: u8 = 5;
/// The longest name, in wire form with its final zero (RFC 1035 §3.1).
const MAX_NAME: usize = 255;

/// Resource record types (RFC 1035 §3.2.2 and the IANA registry) that
/// relaying needs to know.
pub mod types {
    /// IPv4 address (RFC 1035).
    pub const A: u16 = 1;
    /// Authoritative name server (RFC 1035).
    pub const NS: u16 = 2;
    /// Canonical name (RFC 1035).
    pub const CNAME: u16 = 5;
    /// Start of authority (RFC 1035).
    pub const SOA: u16 = 6;
    /// Domain name pointer (RFC 1035).
    pub const PTR: u16 = 12;
    /// Mail exchange (RFC 1035).
    pub const MX: u16 = 15;
    /// Text (RFC 1035).
    pub const TXT: u16 = 16;
    /// IPv6 address (RFC 3596).
    pub const AAAA: u16 = 28;
    /// Service location (RFC 2782).
    pub const SRV: u16 = 33;
    /// Naming authority pointer (RFC 3403).
    pub const NAPTR: u16 = 35;
    /// Delegation signer (RFC 4034).
    pub const DS: u16 = 43;
    /// SSH key fingerprint (RFC 4255).
    pub const SSHFP: u16 = 44;
    /// DNSSEC key (RFC 4034).
    pub const DNSKEY: u16 = 48;
    /// TLS certificate association, DANE (RFC 6698).
    pub const TLSA: u16 = 52;
    /// Service binding (RFC 9460).
    pub const SVCB: u16 = 64;
    /// Service binding for HTTPS (RFC 9460).
    pub const HTTPS: u16 = 65;
    /// Certification authority authorization (RFC 8659).
    pub const CAA: u16 = 257;
}

/// The Internet class (RFC 1035 §3.2.4).
pub const CLASS_IN: u16 = 1;

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
    /// A record of the answer is malformed (a name, a length, a pointer).
    #[error("malformed DNS record")]
    Record,
    /// The rewritten answer would be longer than a DNS message may be.
    #[error("rewritten DNS answer too long")]
    TooLong,
}

/// What a reverse-lookup name (RFC 1035 §3.5, RFC 3596 §2.5) asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseName {
    /// One whole address: `4.3.2.1.in-addr.arpa`, or 32 nibbles of
    /// `ip6.arpa`.
    Address(IpAddr),
    /// Some other name in those trees: a network, a zone, RFC 2317 names.
    Incomplete,
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
        self.error_answer(query, RCODE_SERVFAIL)
    }

    /// A REFUSED answer to `query` (RFC 1035 §4.1.1, RCODE 5: refused "for
    /// policy reasons"): its ID, opcode and RD bit, its question, no records.
    pub fn refused(&self, query: &[u8]) -> Vec<u8> {
        self.error_answer(query, RCODE_REFUSED)
    }

    fn error_answer(&self, query: &[u8], rcode: u8) -> Vec<u8> {
        let mut answer = Vec::with_capacity(self.question_end);
        answer.extend_from_slice(query.get(..2).unwrap_or(&[0, 0]));
        answer.push(QR | (query.get(2).copied().unwrap_or(0) & (OPCODE_MASK | RD)));
        answer.push(RA | rcode);
        answer.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        answer.extend_from_slice(self.question(query));
        answer
    }

    /// The question's type (QTYPE).
    pub fn question_type(&self, query: &[u8]) -> u16 {
        self.question_field(query, 4)
    }

    /// The question's class (QCLASS).
    pub fn question_class(&self, query: &[u8]) -> u16 {
        self.question_field(query, 2)
    }

    /// The 16-bit field `from_end` bytes before the question's end.
    fn question_field(&self, query: &[u8], from_end: usize) -> u16 {
        let at = self.question_end.saturating_sub(from_end);
        match query.get(at..at + 2) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    /// What the question's name asks about if it is in a reverse-lookup
    /// tree (`in-addr.arpa`, `ip6.arpa`, names compared without case);
    /// `None` for any other name.
    pub fn reverse_name(&self, query: &[u8]) -> Option<ReverseName> {
        let question = self.question(query);
        let name = question.get(..question.len().checked_sub(4)?)?;
        let labels = labels(name)?;
        let tree = |suffix: &[&[u8]]| {
            labels.len() >= suffix.len()
                && labels[labels.len() - suffix.len()..]
                    .iter()
                    .zip(suffix)
                    .all(|(label, want)| label.eq_ignore_ascii_case(want))
        };
        if tree(&[b"in-addr", b"arpa"]) {
            return Some(reverse_v4(&labels[..labels.len() - 2]));
        }
        if tree(&[b"ip6", b"arpa"]) {
            return Some(reverse_v6(&labels[..labels.len() - 2]));
        }
        None
    }
}

/// The labels of an uncompressed name in wire form (without the root).
fn labels(name: &[u8]) -> Option<Vec<&[u8]>> {
    let mut labels = Vec::new();
    let mut at = 0;
    loop {
        let len = usize::from(*name.get(at)?);
        if len == 0 {
            return Some(labels);
        }
        labels.push(name.get(at + 1..at + 1 + len)?);
        at += 1 + len;
    }
}

/// `d.c.b.a` (below `in-addr.arpa`) as `a.b.c.d`: four decimal octets.
fn reverse_v4(labels: &[&[u8]]) -> ReverseName {
    let octet = |label: &[u8]| {
        let text = std::str::from_utf8(label).ok()?;
        let canonical = (1..=3).contains(&text.len())
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text == "0" || !text.starts_with('0'));
        canonical.then(|| text.parse::<u8>().ok()).flatten()
    };
    match labels {
        [d, c, b, a] => match (octet(a), octet(b), octet(c), octet(d)) {
            (Some(a), Some(b), Some(c), Some(d)) => {
                ReverseName::Address(IpAddr::V4(Ipv4Addr::new(a, b, c, d)))
            }
            _ => ReverseName::Incomplete,
        },
        _ => ReverseName::Incomplete,
    }
}

/// 32 hex nibbles, least significant first (below `ip6.arpa`).
fn reverse_v6(labels: &[&[u8]]) -> ReverseName {
    if labels.len() != 32 {
        return ReverseName::Incomplete;
    }
    let mut bits = 0u128;
    for label in labels.iter().rev() {
        let nibble = match label {
            [digit] => char::from(*digit).to_digit(16),
            _ => None,
        };
        let Some(nibble) = nibble else {
            return ReverseName::Incomplete;
        };
        bits = (bits << 4) | u128::from(nibble);
    }
    ReverseName::Address(IpAddr::V6(Ipv6Addr::from_bits(bits)))
}

/// What [`filter_answer`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filtered {
    /// Every address was kept: the answer stands as it was.
    Unchanged,
    /// Addresses were removed: the answer rewritten.
    Rewritten(Vec<u8>),
}

/// Removes the addresses `keep` refuses from a DNS answer: A and AAAA
/// records (RFC 1035 §3.4.1, RFC 3596 §2.2) in any section, and the
/// `ipv4hint`/`ipv6hint` addresses of SVCB and HTTPS records (RFC 9460
/// §7.3; a hint left empty is removed, since it must not be empty).
///
/// The rewritten answer keeps the header (ID, flags, RCODE) with the
/// counts updated and the AD bit cleared (RFC 4035 §3.2.3: the data is no
/// longer what was validated), the question as it was, and every other
/// record in its place. Its names are written anew, so no compression
/// pointer can point into a removed record: an owner name seen before (the
/// question's, or an earlier record's) as a pointer to it (RFC 1035
/// §4.1.4), so the answer stays about as small as it was; every other name
/// uncompressed. An answer whose records do not parse is an error: it must
/// not be passed on unchecked.
pub fn filter_answer(
    answer: &[u8],
    mut keep: impl FnMut(IpAddr) -> bool,
) -> Result<Filtered, DnsError> {
    if !(HEADER_LEN..=MAX_MESSAGE).contains(&answer.len()) {
        return Err(DnsError::Length);
    }
    let count = |at: usize| usize::from(u16::from_be_bytes([answer[at], answer[at + 1]]));
    let mut at = HEADER_LEN;
    for _ in 0..count(4) {
        at = question_end_at(answer, at)?;
    }
    let questions_end = at;
    // (section, record, what to do with it)
    let mut records = Vec::new();
    let mut changed = false;
    for (section, count_at) in [(0usize, 6usize), (1, 8), (2, 10)] {
        for _ in 0..count(count_at) {
            let record = Record::parse(answer, at)?;
            at = record.end;
            let verdict = record.judge(answer, &mut keep)?;
            changed |= !matches!(verdict, Verdict::Keep);
            records.push((section, record, verdict));
        }
    }
    if !changed {
        return Ok(Filtered::Unchanged);
    }
    let mut out = Vec::with_capacity(answer.len());
    out.extend_from_slice(&answer[..HEADER_LEN]);
    out[3] &= !AD;
    out.extend_from_slice(&answer[HEADER_LEN..questions_end]);
    // Owner names written in full, and where: a name written again is a
    // pointer to its first occurrence (the question's, mostly).
    let mut written: Vec<(Vec<u8>, usize)> = Vec::new();
    if count(4) == 1 {
        let name = answer
            .get(HEADER_LEN..questions_end.saturating_sub(4))
            .unwrap_or_default();
        written.push((name.to_vec(), HEADER_LEN));
    }
    let mut counts = [0u16; 3];
    for (section, record, verdict) in &records {
        let rdata = match verdict {
            Verdict::Drop => continue,
            Verdict::Keep => record.rdata_uncompressed(answer)?,
            Verdict::Hints(rdata) => rdata.clone(),
        };
        let owner = read_name(answer, record.owner)?.0;
        match written.iter().find(|(name, _)| *name == owner) {
            Some(&(_, at)) => {
                let pointer = u16::try_from(at).unwrap_or(0) | 0xc000;
                out.extend_from_slice(&pointer.to_be_bytes());
            }
            None => {
                if out.len() < 0x4000 {
                    written.push((owner.clone(), out.len()));
                }
                out.extend_from_slice(&owner);
            }
        }
        out.extend_from_slice(&answer[record.fixed..record.fixed + 8]);
        let len = u16::try_from(rdata.len()).map_err(|_| DnsError::TooLong)?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&rdata);
        counts[*section] += 1;
    }
    for (i, n) in counts.iter().enumerate() {
        out[6 + 2 * i..8 + 2 * i].copy_from_slice(&n.to_be_bytes());
    }
    if out.len() > MAX_MESSAGE {
        return Err(DnsError::TooLong);
    }
    Ok(Filtered::Rewritten(out))
}

/// One resource record (RFC 1035 §4.1.3), located in its message.
#[derive(Debug)]
struct Record {
    /// Where its owner name starts.
    owner: usize,
    /// Where TYPE, CLASS, TTL, RDLENGTH start.
    fixed: usize,
    rtype: u16,
    rdata: std::ops::Range<usize>,
    end: usize,
}

/// What happens to a record.
#[derive(Debug)]
enum Verdict {
    Keep,
    Drop,
    /// Kept with these RDATA (its address hints filtered).
    Hints(Vec<u8>),
}

impl Record {
    fn parse(message: &[u8], at: usize) -> Result<Record, DnsError> {
        let fixed = read_name(message, at)?.1;
        let field = |offset: usize| -> Result<u16, DnsError> {
            match message.get(fixed + offset..fixed + offset + 2) {
                Some(&[high, low]) => Ok(u16::from_be_bytes([high, low])),
                _ => Err(DnsError::Record),
            }
        };
        let rtype = field(0)?;
        let len = usize::from(field(8)?);
        let start = fixed + 10;
        let end = start + len;
        if end > message.len() {
            return Err(DnsError::Record);
        }
        Ok(Record {
            owner: at,
            fixed,
            rtype,
            rdata: start..end,
            end,
        })
    }

    fn class(&self, message: &[u8]) -> u16 {
        match message.get(self.fixed + 2..self.fixed + 4) {
            Some(&[high, low]) => u16::from_be_bytes([high, low]),
            _ => 0,
        }
    }

    fn judge(
        &self,
        message: &[u8],
        keep: &mut impl FnMut(IpAddr) -> bool,
    ) -> Result<Verdict, DnsError> {
        let rdata = message.get(self.rdata.clone()).ok_or(DnsError::Record)?;
        let internet = self.class(message) == CLASS_IN;
        let address = match (self.rtype, rdata.len()) {
            (types::A, 4) if internet => Some(IpAddr::V4(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (types::AAAA, 16) if internet => {
                let mut bytes = [0u8; 16];
                bytes.copy_from_slice(rdata);
                Some(IpAddr::V6(Ipv6Addr::from(bytes)))
            }
            (types::A | types::AAAA, _) if internet => return Err(DnsError::Record),
            (types::SVCB | types::HTTPS, _) => {
                return Ok(match filter_hints(message, self.rdata.clone(), keep)? {
                    Some(rdata) => Verdict::Hints(rdata),
                    None => Verdict::Keep,
                });
            }
            _ => None,
        };
        Ok(match address {
            Some(ip) if !keep(ip) => Verdict::Drop,
            _ => Verdict::Keep,
        })
    }

    /// The RDATA with every name expanded, for the record types whose RDATA
    /// may hold compressed names (RFC 3597 §4: those of RFC 1035, and RP,
    /// AFSDB, RT, PX, NAPTR, SRV, KX from older practice); other RDATA as it
    /// is.
    fn rdata_uncompressed(&self, message: &[u8]) -> Result<Vec<u8>, DnsError> {
        // (bytes before the first name, names, then the rest as it is)
        let (prefix, names) = match self.rtype {
            // NS, MD, MF, CNAME, MB, MG, MR, PTR, DNAME (RFC 6672)
            2..=5 | 7..=9 | 12 | 39 => (0, 1),
            // SOA: MNAME, RNAME, then five numbers; MINFO, RP: two names
            6 | 14 | 17 => (0, 2),
            // MX, AFSDB, RT, KX: preference, name
            15 | 18 | 21 | 36 => (2, 1),
            // PX: preference, two names
            26 => (2, 2),
            // SRV: priority, weight, port, target
            types::SRV => (6, 1),
            types::NAPTR => return self.naptr_uncompressed(message),
            _ => {
                return Ok(message
                    .get(self.rdata.clone())
                    .ok_or(DnsError::Record)?
                    .to_vec());
            }
        };
        let mut out = message
            .get(self.rdata.start..self.rdata.start + prefix)
            .ok_or(DnsError::Record)?
            .to_vec();
        let mut at = self.rdata.start + prefix;
        for _ in 0..names {
            let (name, end) = read_name(message, at)?;
            out.extend_from_slice(&name);
            at = end;
        }
        if at > self.rdata.end {
            return Err(DnsError::Record);
        }
        out.extend_from_slice(&message[at..self.rdata.end]);
        Ok(out)
    }

    /// NAPTR (RFC 3403 §4.1): order, preference, three character strings,
    /// then the replacement name.
    fn naptr_uncompressed(&self, message: &[u8]) -> Result<Vec<u8>, DnsError> {
        let mut at = self.rdata.start + 4;
        for _ in 0..3 {
            at += 1 + usize::from(*message.get(at).ok_or(DnsError::Record)?);
        }
        let head = message.get(self.rdata.start..at).ok_or(DnsError::Record)?;
        let (name, end) = read_name(message, at)?;
        if end != self.rdata.end {
            return Err(DnsError::Record);
        }
        Ok([head, &name].concat())
    }
}

/// SvcParamKeys of the address hints (RFC 9460 §14.3.2).
const IPV4HINT: u16 = 4;
const IPV6HINT: u16 = 6;

/// The SVCB/HTTPS RDATA at `rdata` (RFC 9460 §2.2: priority, target name,
/// then key, length, value for each parameter) with refused hint addresses
/// removed; `None` if every hint is kept. The target name is written
/// uncompressed.
fn filter_hints(
    message: &[u8],
    rdata: std::ops::Range<usize>,
    keep: &mut impl FnMut(IpAddr) -> bool,
) -> Result<Option<Vec<u8>>, DnsError> {
    let priority = message
        .get(rdata.start..rdata.start + 2)
        .ok_or(DnsError::Record)?;
    let (target, mut at) = read_name(message, rdata.start + 2)?;
    if at > rdata.end {
        return Err(DnsError::Record);
    }
    let mut out = [priority, &target].concat();
    let mut changed = false;
    while at < rdata.end {
        let head = message.get(at..at + 4).ok_or(DnsError::Record)?;
        let key = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = message
            .get(at + 4..at + 4 + len)
            .filter(|_| at + 4 + len <= rdata.end)
            .ok_or(DnsError::Record)?;
        at += 4 + len;
        let width = match key {
            IPV4HINT => 4,
            IPV6HINT => 16,
            _ => {
                out.extend_from_slice(head);
                out.extend_from_slice(value);
                continue;
            }
        };
        if value.is_empty() || value.len() % width != 0 {
            return Err(DnsError::Record);
        }
        let kept: Vec<u8> = value
            .chunks_exact(width)
            .filter(|address| {
                let ip = match *address {
                    [a, b, c, d] => IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d)),
                    v6 => {
                        let mut bytes = [0u8; 16];
                        bytes.copy_from_slice(v6);
                        IpAddr::V6(Ipv6Addr::from(bytes))
                    }
                };
                keep(ip)
            })
            .flatten()
            .copied()
            .collect();
        changed |= kept.len() != value.len();
        if !kept.is_empty() {
            out.extend_from_slice(&key.to_be_bytes());
            let len = u16::try_from(kept.len()).map_err(|_| DnsError::Record)?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&kept);
        }
    }
    Ok(changed.then_some(out))
}

/// Reads the (possibly compressed, RFC 1035 §4.1.4) name at `at`: the name
/// in uncompressed wire form, and where it ends in the message. Each
/// pointer must point before where the previous one did (or before the
/// name), so reading ends; the expanded name must fit 255 bytes.
fn read_name(message: &[u8], at: usize) -> Result<(Vec<u8>, usize), DnsError> {
    let mut name = Vec::new();
    let mut pos = at;
    let mut floor = at;
    let mut end = None;
    loop {
        let len = *message.get(pos).ok_or(DnsError::Record)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                name.push(0);
                return Ok((name, end.unwrap_or(pos + 1)));
            }
            0x00 => {
                let label = message
                    .get(pos..pos + 1 + usize::from(len))
                    .ok_or(DnsError::Record)?;
                name.extend_from_slice(label);
                if name.len() + 1 > MAX_NAME {
                    return Err(DnsError::Record);
                }
                pos += label.len();
            }
            0xc0 => {
                let low = *message.get(pos + 1).ok_or(DnsError::Record)?;
                let target = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                if target >= floor {
                    return Err(DnsError::Record);
                }
                end.get_or_insert(pos + 2);
                floor = target;
                pos = target;
            }
            // 0x40, 0x80: extended and reserved label types (RFC 6891 §5).
            _ => return Err(DnsError::Record),
        }
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
    question_end_at(message, HEADER_LEN)
}

/// End of the question (uncompressed name, type, class) at `at`.
fn question_end_at(message: &[u8], at: usize) -> Result<usize, DnsError> {
    let mut at = at;
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

    #[test]
    fn the_question_type_and_class_are_read_and_refused_answers_answer() {
        let mut q = query(9, "example.org");
        let len = q.len();
        q[len - 3] = 65; // HTTPS
        let parsed = Query::parse(&q).unwrap();
        assert_eq!(parsed.question_type(&q), types::HTTPS);
        assert_eq!(parsed.question_class(&q), CLASS_IN);
        let refused = parsed.refused(&q);
        assert_eq!(refused[3] & 0x0f, RCODE_REFUSED);
        assert_eq!(refused[2] & RD, RD);
        parsed.check_answer(&q, &refused).unwrap();
    }

    fn reverse_of(name: &str) -> Option<ReverseName> {
        let q = query(1, name);
        Query::parse(&q).unwrap().reverse_name(&q)
    }

    #[test]
    fn reverse_names_are_recognised() {
        use ReverseName::*;
        let v6 = "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa";
        for (name, want) in [
            (
                "1.0.0.127.in-addr.arpa",
                Some(Address("127.0.0.1".parse().unwrap())),
            ),
            (
                "4.3.2.10.IN-ADDR.Arpa",
                Some(Address("10.2.3.4".parse().unwrap())),
            ),
            ("3.2.10.in-addr.arpa", Some(Incomplete)),
            ("01.0.0.127.in-addr.arpa", Some(Incomplete)),
            ("256.0.0.127.in-addr.arpa", Some(Incomplete)),
            ("0/25.2.0.192.in-addr.arpa", Some(Incomplete)),
            ("in-addr.arpa", Some(Incomplete)),
            (
                v6,
                Some(Address("4321:0:1:2:3:4:567:89ab".parse().unwrap())),
            ),
            ("0.ip6.arpa", Some(Incomplete)),
            ("example.org", None),
            ("arpa", None),
            ("1.0.0.127.in-addr.arpa.example", None),
        ] {
            assert_eq!(reverse_of(name), want, "{name}");
        }
    }

    mod answers {
        use super::super::*;
        use hickory_proto::op::{Message, MessageType, OpCode, Query as HQuery};
        use hickory_proto::rr::rdata::svcb::{IpHint, SVCB, SvcParamKey, SvcParamValue};
        use hickory_proto::rr::rdata::{A, AAAA, CNAME, HTTPS, MX, TXT};
        use hickory_proto::rr::{Name, RData, Record, RecordType};

        pub(crate) fn name(text: &str) -> Name {
            Name::from_ascii(text).unwrap()
        }

        /// An answer to `owner`/A as hickory encodes it (names compressed).
        pub(crate) fn encode(
            answers: &[Record],
            authorities: &[Record],
            additionals: &[Record],
        ) -> Vec<u8> {
            let mut message = Message::new(0x4242, MessageType::Response, OpCode::Query);
            message.metadata.recursion_desired = true;
            message.metadata.recursion_available = true;
            message.metadata.authentic_data = true;
            message.add_query(HQuery::query(name("rebind.example."), RecordType::A));
            message.add_answers(answers.to_vec());
            message.add_authorities(authorities.to_vec());
            message.add_additionals(additionals.to_vec());
            message.to_vec().unwrap()
        }

        pub(crate) fn a(owner: &str, ip: [u8; 4]) -> Record {
            Record::from_rdata(name(owner), 60, RData::A(A::from(Ipv4Addr::from(ip))))
        }

        fn aaaa(owner: &str, ip: &str) -> Record {
            Record::from_rdata(
                name(owner),
                60,
                RData::AAAA(AAAA::from(ip.parse::<Ipv6Addr>().unwrap())),
            )
        }

        fn https(owner: &str, v4: &[[u8; 4]], v6: &[&str]) -> Record {
            let mut params = vec![(
                SvcParamKey::Alpn,
                SvcParamValue::Alpn(hickory_proto::rr::rdata::svcb::Alpn(vec!["h3".into()])),
            )];
            if !v4.is_empty() {
                params.push((
                    SvcParamKey::Ipv4Hint,
                    SvcParamValue::Ipv4Hint(IpHint(
                        v4.iter().map(|ip| A::from(Ipv4Addr::from(*ip))).collect(),
                    )),
                ));
            }
            if !v6.is_empty() {
                params.push((
                    SvcParamKey::Ipv6Hint,
                    SvcParamValue::Ipv6Hint(IpHint(
                        v6.iter()
                            .map(|ip| AAAA::from(ip.parse::<Ipv6Addr>().unwrap()))
                            .collect(),
                    )),
                ));
            }
            Record::from_rdata(
                name(owner),
                60,
                RData::HTTPS(HTTPS(SVCB::new(1, name("svc.rebind.example."), params))),
            )
        }

        /// Refuses loopback and 10/8, as an egress's policy would.
        pub(crate) fn public(ip: IpAddr) -> bool {
            match ip {
                IpAddr::V4(v4) => !(v4.is_loopback() || v4.octets()[0] == 10),
                IpAddr::V6(v6) => !v6.is_loopback(),
            }
        }

        #[test]
        fn refused_addresses_leave_and_the_rest_stays() {
            let answer = encode(
                &[
                    Record::from_rdata(
                        name("rebind.example."),
                        60,
                        RData::CNAME(CNAME(name("target.rebind.example."))),
                    ),
                    a("target.rebind.example.", [127, 0, 0, 1]),
                    a("target.rebind.example.", [93, 184, 215, 14]),
                    a("target.rebind.example.", [10, 0, 0, 1]),
                    aaaa("target.rebind.example.", "::1"),
                    aaaa("target.rebind.example.", "2606:2800:21f:cb07::1"),
                    https(
                        "rebind.example.",
                        &[[127, 0, 0, 1], [93, 184, 215, 14]],
                        &["::1"],
                    ),
                ],
                &[Record::from_rdata(
                    name("rebind.example."),
                    60,
                    RData::MX(MX::new(10, name("mail.rebind.example."))),
                )],
                &[
                    a("mail.rebind.example.", [10, 9, 9, 9]),
                    Record::from_rdata(
                        name("rebind.example."),
                        60,
                        RData::TXT(TXT::new(vec!["v=spf1 -all".into()])),
                    ),
                ],
            );
            let Filtered::Rewritten(rewritten) = filter_answer(&answer, public).unwrap() else {
                panic!("addresses were refused: the answer must change");
            };
            let got = Message::from_vec(&rewritten).unwrap();
            let sent = Message::from_vec(&answer).unwrap();
            assert_eq!(got.metadata.id, 0x4242);
            assert!(!got.metadata.authentic_data, "AD cleared");
            assert_eq!(got.metadata.response_code, sent.metadata.response_code);
            assert_eq!(got.queries, sent.queries);
            let addresses: Vec<IpAddr> = got
                .all_sections()
                .filter_map(|r| match r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                    _ => None,
                })
                .collect();
            assert_eq!(
                addresses,
                [
                    "93.184.215.14".parse::<IpAddr>().unwrap(),
                    "2606:2800:21f:cb07::1".parse().unwrap()
                ]
            );
            // The CNAME, the HTTPS record with only its public hint, the MX
            // and the TXT are all still there, in their sections.
            assert_eq!(got.answers.len(), 4);
            assert_eq!(got.answers[0], sent.answers[0]);
            let RData::HTTPS(HTTPS(svcb)) = &got.answers[3].data else {
                panic!("the HTTPS record stays: {:?}", got.answers[3]);
            };
            assert_eq!(svcb.target_name, name("svc.rebind.example."));
            assert_eq!(
                svcb.svc_params,
                vec![
                    (
                        SvcParamKey::Alpn,
                        SvcParamValue::Alpn(hickory_proto::rr::rdata::svcb::Alpn(vec![
                            "h3".into()
                        ]))
                    ),
                    (
                        SvcParamKey::Ipv4Hint,
                        SvcParamValue::Ipv4Hint(IpHint(vec![A::new(93, 184, 215, 14)]))
                    ),
                ],
                "the empty ipv6hint is gone"
            );
            assert_eq!(got.authorities, sent.authorities);
            assert_eq!(got.additionals, sent.additionals[1..]);
            // Filtering again changes nothing.
            assert_eq!(filter_answer(&rewritten, public), Ok(Filtered::Unchanged));
        }

        #[test]
        fn an_answer_with_nothing_refused_is_unchanged() {
            let answer = encode(&[a("rebind.example.", [93, 184, 215, 14])], &[], &[]);
            assert_eq!(filter_answer(&answer, public), Ok(Filtered::Unchanged));
            // Everything refused: a valid answer without records.
            let answer = encode(&[a("rebind.example.", [127, 0, 0, 1])], &[], &[]);
            let Ok(Filtered::Rewritten(empty)) = filter_answer(&answer, public) else {
                panic!("rewritten");
            };
            let got = Message::from_vec(&empty).unwrap();
            assert!(got.answers.is_empty());
            assert_eq!(got.queries.len(), 1);
            // Records owned by the question's name keep pointing at it: a
            // removed A record costs its 16 bytes, nothing grows.
            let answer = encode(
                &[
                    a("rebind.example.", [93, 184, 215, 14]),
                    a("rebind.example.", [127, 0, 0, 1]),
                    a("rebind.example.", [93, 184, 215, 15]),
                ],
                &[],
                &[],
            );
            let Ok(Filtered::Rewritten(two)) = filter_answer(&answer, public) else {
                panic!("rewritten");
            };
            assert_eq!(two.len(), answer.len() - 16);
        }

        #[test]
        fn malformed_records_are_errors() {
            let good = encode(&[a("rebind.example.", [127, 0, 0, 1])], &[], &[]);
            // The answer's owner name is a pointer to the question (12):
            // make it point at itself, then forward.
            let at = good.len() - 16;
            assert_eq!(&good[at..at + 2], &[0xc0, 12]);
            for target in [at, at + 2, 0x3fff] {
                let mut bad = good.clone();
                bad[at] = 0xc0 | (target >> 8) as u8;
                bad[at + 1] = target as u8;
                assert_eq!(
                    filter_answer(&bad, public),
                    Err(DnsError::Record),
                    "{target}"
                );
            }
            // An A record of 5 bytes; a record cut short; a missing record.
            let mut long = good.clone();
            let rdlength = long.len() - 5;
            long[rdlength] = 5;
            long.push(0);
            assert_eq!(filter_answer(&long, public), Err(DnsError::Record));
            assert_eq!(
                filter_answer(&good[..good.len() - 1], public),
                Err(DnsError::Record)
            );
            let mut extra = good.clone();
            extra[7] = 2;
            assert_eq!(filter_answer(&extra, public), Err(DnsError::Record));
            assert_eq!(filter_answer(&good[..11], public), Err(DnsError::Length));
        }
    }

    proptest! {
        #[test]
        fn any_bytes_parse_or_fail_without_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(q) = Query::parse(&bytes) {
                let fail = q.servfail(&bytes);
                prop_assert!(q.check_answer(&bytes, &fail).is_ok());
                let refused = q.refused(&bytes);
                prop_assert!(q.check_answer(&bytes, &refused).is_ok());
                let _ = q.check_answer(&bytes, &bytes);
                let _ = (q.question_type(&bytes), q.question_class(&bytes), q.reverse_name(&bytes));
            }
            let _ = truncated(&bytes);
        }

        /// Any bytes: an error, unchanged, or a rewrite that is itself a
        /// message whose filtering changes nothing more.
        #[test]
        fn filtering_any_bytes_is_total_and_idempotent(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            seed in any::<u8>(),
        ) {
            let keep = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.octets()[3] ^ seed < 128,
                IpAddr::V6(v6) => v6.octets()[15] ^ seed < 128,
            };
            if let Ok(Filtered::Rewritten(out)) = filter_answer(&bytes, keep) {
                prop_assert!(out.len() <= MAX_MESSAGE);
                prop_assert_eq!(filter_answer(&out, keep), Ok(Filtered::Unchanged));
            }
        }

        /// The type and class read are the ones written.
        #[test]
        fn question_type_and_class_round_trip(qtype in any::<u16>(), qclass in any::<u16>()) {
            let mut q = query(3, "example.org");
            let len = q.len();
            q[len - 4..len - 2].copy_from_slice(&qtype.to_be_bytes());
            q[len - 2..].copy_from_slice(&qclass.to_be_bytes());
            let parsed = Query::parse(&q).unwrap();
            prop_assert_eq!(parsed.question_type(&q), qtype);
            prop_assert_eq!(parsed.question_class(&q), qclass);
        }

        /// Every address's reverse name gives that address back.
        #[test]
        fn reverse_names_give_their_address(v4 in any::<u32>(), v6 in any::<u128>(), upper in any::<bool>()) {
            let v4 = Ipv4Addr::from_bits(v4);
            let [a, b, c, d] = v4.octets();
            let name = format!("{d}.{c}.{b}.{a}.in-addr.arpa");
            let q = query(1, &name);
            prop_assert_eq!(
                Query::parse(&q).unwrap().reverse_name(&q),
                Some(ReverseName::Address(IpAddr::V4(v4)))
            );
            let v6 = Ipv6Addr::from_bits(v6);
            let nibbles: Vec<String> = (0..32)
                .map(|i| format!("{:x}", (v6.to_bits() >> (4 * i)) & 0xf))
                .collect();
            let mut name = format!("{}.ip6.arpa", nibbles.join("."));
            if upper {
                name = name.to_uppercase();
            }
            let q = query(1, &name);
            prop_assert_eq!(
                Query::parse(&q).unwrap().reverse_name(&q),
                Some(ReverseName::Address(IpAddr::V6(v6)))
            );
        }

        /// Answers hickory encodes (compressed names, every section): what
        /// is refused goes, everything else is what hickory decodes from
        /// the original, in order.
        #[test]
        fn filtered_answers_are_the_originals_without_the_refused(
            records in proptest::collection::vec((0u8..3, 0u8..6, any::<u32>(), 0u8..4), 0..12),
            seed in any::<u8>(),
        ) {
            use answers::{a, encode, name};
            use hickory_proto::op::Message;
            use hickory_proto::rr::rdata::{AAAA, CNAME, MX, SRV, TXT};
            use hickory_proto::rr::{RData, Record};

            let owners = ["rebind.example.", "a.rebind.example.", "b.example.net.", "c.a.rebind.example."];
            let mut sections: [Vec<Record>; 3] = Default::default();
            for (section, kind, value, owner) in &records {
                let owner = owners[usize::from(*owner)];
                let target = name(owners[(*value % 4) as usize]);
                let record = match kind {
                    0 => a(owner, value.to_be_bytes()),
                    1 => Record::from_rdata(name(owner), 30, RData::AAAA(AAAA::from(Ipv6Addr::from_bits(u128::from(*value) << 64 | 1)))),
                    2 => Record::from_rdata(name(owner), 30, RData::CNAME(CNAME(target))),
                    3 => Record::from_rdata(name(owner), 30, RData::MX(MX::new(*value as u16, target))),
                    4 => Record::from_rdata(name(owner), 30, RData::SRV(SRV::new(1, 2, *value as u16, target))),
                    _ => Record::from_rdata(name(owner), 30, RData::TXT(TXT::new(vec![value.to_string()]))),
                };
                sections[usize::from(*section)].push(record);
            }
            let answer = encode(&sections[0], &sections[1], &sections[2]);
            let keep = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.octets()[3] ^ seed < 128,
                IpAddr::V6(v6) => (v6.to_bits() >> 64) as u8 ^ seed < 128,
            };
            let kept = |record: &&Record| match &record.data {
                RData::A(a) => keep(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => keep(IpAddr::V6(aaaa.0)),
                _ => true,
            };
            let sent = Message::from_vec(&answer).unwrap();
            let expected: Vec<Vec<Record>> = [&sent.answers, &sent.authorities, &sent.additionals]
                .iter()
                .map(|section| section.iter().filter(kept).cloned().collect())
                .collect();
            let unchanged = expected.iter().map(Vec::len).sum::<usize>() == sent.all_sections().count();
            match filter_answer(&answer, keep).unwrap() {
                Filtered::Unchanged => prop_assert!(unchanged),
                Filtered::Rewritten(out) => {
                    prop_assert!(!unchanged);
                    let got = Message::from_vec(&out).unwrap();
                    prop_assert_eq!(&got.queries, &sent.queries);
                    prop_assert_eq!(&got.answers, &expected[0]);
                    prop_assert_eq!(&got.authorities, &expected[1]);
                    prop_assert_eq!(&got.additionals, &expected[2]);
                    prop_assert_eq!(filter_answer(&out, keep), Ok(Filtered::Unchanged));
                }
            }
        }
    }
}
