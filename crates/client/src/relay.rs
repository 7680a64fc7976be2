//! The one record of a relay the client may use: [`Relay`]. It is made
//! once, where the relay enters the client (a verified directory,
//! [`Relay::from_directory`]; or the config's `[[relay]]` entries,
//! [`from_config`]), and the same record flows on to selection, the path
//! controller, the path builder, the account and the status output.
//!
//! Nothing in it is a string standing for "unknown": an operator is either
//! known by its key or explicitly [`Operator::Unlisted`] (a config entry
//! without `operator_key`), an unknown network or place is `None`.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use openrelay_config::RelayEntry;
use openrelay_directory::{
    DirectoryError, KeyError, ListedRelay, Network, OperatorId, RelayMeasurement, VerifiedRelay,
};
use openrelay_types::error::{ErrorKind, HasKind};
use openrelay_types::{KeyPin, RelayRole};

use crate::attestation::{Attestation, AttestationVerdict};

/// Bandwidth given to relays whose bandwidth is not known (config entries
/// without `bandwidth_bps`): every such relay weighs the same.
pub const UNKNOWN_BANDWIDTH: u64 = 1;

/// Identifies a relay to the client: the QUIC key its TLS handshake must
/// prove (a descriptor's `quic_pin`, a `[[relay]]` entry's `key`). The same
/// whether the relay came from the config or from a directory (where names
/// differ), so a directory refresh keeps paths and exclusions. Ordered by
/// the key's bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RelayId(KeyPin);

impl RelayId {
    /// The relay pinned to `pin`.
    pub fn from_pin(pin: KeyPin) -> Self {
        RelayId(pin)
    }

    /// The key the relay must prove.
    pub fn pin(&self) -> KeyPin {
        self.0
    }
}

impl Ord for RelayId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_bytes().cmp(other.0.as_bytes())
    }
}

impl PartialOrd for RelayId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for RelayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for RelayId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelayId({})", self.0)
    }
}

/// Who runs a relay; a path never has two relays of one operator.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// Known by its key: every directory relay, and `[[relay]]` entries
    /// with `operator_key`. Access tokens for its ingresses are scoped to
    /// this key.
    Known(OperatorId),
    /// Named by a `[[relay]]` entry without `operator_key`: the name is all
    /// the client knows, and relays naming it are one operator. No access
    /// token can be scoped to it.
    Unlisted(String),
}

impl Operator {
    /// The operator's key, if known.
    pub fn id(&self) -> Option<&OperatorId> {
        match self {
            Operator::Known(id) => Some(id),
            Operator::Unlisted(_) => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operator::Known(id) => fmt::Display::fmt(id, f),
            Operator::Unlisted(name) => f.write_str(name),
        }
    }
}

/// Where a relay is, as far as known. The names are shared
/// ([`PlaceNames`]): a client holds one record per relay.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Region {
    /// ISO 3166-1 alpha-2 country code (compared case-insensitively).
    pub country: Option<Arc<str>>,
    /// City name (compared case-insensitively).
    pub city: Option<Arc<str>>,
}

/// The country and city names of the relay records made from one
/// directory, each held once: at 100,000 relays that is one allocation
/// per place instead of two per relay.
#[derive(Debug, Default)]
pub struct PlaceNames(HashSet<Arc<str>>);

impl PlaceNames {
    /// `name`, shared with every record that names it.
    fn shared(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.0.get(name) {
            return Arc::clone(shared);
        }
        let shared: Arc<str> = Arc::from(name);
        self.0.insert(Arc::clone(&shared));
        shared
    }
}

impl Region {
    /// Whether this is in `country` (ISO codes are case-insensitive).
    pub fn in_country(&self, country: &str) -> bool {
        self.country
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(country))
    }

    /// Whether this is in `city` of `country`.
    pub fn in_city(&self, country: &str, city: &str) -> bool {
        self.in_country(country)
            && self
                .city
                .as_deref()
                .is_some_and(|c| c.to_lowercase() == city.to_lowercase())
    }
}

/// A relay the client may put on a path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Relay {
    /// Identifies the relay (its pinned QUIC key). Exclusions and plans
    /// refer to relays by id and role.
    pub id: RelayId,
    /// A name for status output and logs: the entry's name, or for a
    /// directory relay its role and the start of its relay id.
    pub name: String,
    /// Ingress or egress.
    pub role: RelayRole,
    /// The operator running it; never the same on both hops.
    pub operator: Operator,
    /// Autonomous system or hosting network; never the same on both hops.
    /// `None`: unknown, conflicts with nothing.
    pub network: Option<Network>,
    /// Where it is.
    pub region: Region,
    /// The bandwidth selection weighs it by, in bits per second: a config
    /// entry's `bandwidth_bps` ([`UNKNOWN_BANDWIDTH`] when not known); a
    /// directory relay's advertised bandwidth clipped, and in a directory
    /// with a chain section capped by its operator's stake
    /// ([`VerifiedRelay::selection_bandwidth_bps`]; measured relays by at
    /// most their measurement, unmeasured ones by the bootstrap weight).
    pub bandwidth_bps: u64,
    /// Its latest measured bandwidth and when that epoch ended, as the
    /// directory carries it (`None`: never measured, or not from a
    /// chain-backed directory); `openrelay status` shows it.
    pub measured: Option<RelayMeasurement>,
    /// Its QUIC address.
    pub addr: SocketAddr,
    /// Whether it proved, with TEE evidence, that it runs an approved
    /// release ([`crate::attestation::judge`]), judged when selection
    /// first considers the relay; `[trust] attestation` decides what
    /// selection makes of it.
    pub attestation: Attestation,
    /// The directory listing it (`None`: a config entry): its own
    /// signatures are checked through it before its first use
    /// ([`Relay::check_listing`]).
    pub listing: Option<ListedRelay>,
}

impl Relay {
    /// The key the relay's TLS handshake must prove.
    pub fn pin(&self) -> KeyPin {
        self.id.pin()
    }

    /// Checks, before the relay's first use, the signatures a client leaves
    /// unchecked when it accepts a directory (the relay's descriptor by the
    /// relay, its operator and its QUIC key; the operator's profile);
    /// cached in the directory. A config entry has nothing to check.
    pub fn check_listing(&self) -> Result<(), DirectoryError> {
        self.listing
            .as_ref()
            .map_or(Ok(()), ListedRelay::check_signatures)
    }

    /// Whether `self` and `other` may be the two hops of one path: different
    /// operators, and different networks when both are known. Roles are not
    /// checked here.
    pub fn compatible_with(&self, other: &Relay) -> bool {
        self.operator != other.operator
            && match (&self.network, &other.network) {
                (Some(a), Some(b)) => a != b,
                _ => true,
            }
    }

    /// The record of a verified directory's relay reached at `addr` (one of
    /// its endpoints), with its attestation verdict: named by its role and
    /// the start of its relay id, operated by the operator whose key signed
    /// it (names can be claimed by anyone; keys cannot).
    pub fn from_directory(
        relay: &VerifiedRelay<'_>,
        addr: SocketAddr,
        attestation: impl Into<Attestation>,
    ) -> Self {
        Self::from_directory_sharing(relay, addr, attestation, &mut PlaceNames::default())
    }

    /// [`Relay::from_directory`], the names of places shared through
    /// `places` with the other records made from the directory.
    pub fn from_directory_sharing(
        relay: &VerifiedRelay<'_>,
        addr: SocketAddr,
        attestation: impl Into<Attestation>,
        places: &mut PlaceNames,
    ) -> Self {
        // `<role>-<first ten characters of the relay id>`, built in one
        // allocation: a client builds 100,000 of these per directory.
        let role = relay.role();
        let mut name = String::with_capacity(20);
        name.push_str(role.as_str());
        name.push('-');
        KeyPin::from_ed25519(relay.id().to_bytes()).push_abbreviated(&mut name);
        let region = relay.region();
        Relay {
            id: RelayId::from_pin(relay.quic_pin()),
            name,
            role,
            operator: Operator::Known(relay.operator_id()),
            network: Some(relay.network().clone()),
            region: Region {
                country: Some(places.shared(region.country.as_str())),
                city: (!region.city.is_empty()).then(|| places.shared(&region.city)),
            },
            bandwidth_bps: relay.selection_bandwidth_bps(),
            measured: relay.measured(),
            addr,
            attestation: attestation.into(),
            listing: Some(relay.listed()),
        }
    }
}

/// Why the config's relays do not make a relay list.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayConfigError {
    /// An `operator_key` is not an Ed25519 operator key.
    #[error("relay {relay:?}: operator_key: {source}")]
    OperatorKey {
        /// The entry's name.
        relay: String,
        /// Why the key is unusable.
        source: KeyError,
    },
    /// Two entries name one operator but disagree on its key (one gives
    /// none, or another): the client could not tell whether they are one
    /// operator, on which the rule "never one operator on both hops" rests.
    #[error(
        "relays {first:?} and {second:?} name operator {operator:?} with different operator_key \
         values (or one without): give every relay of an operator the same operator_key"
    )]
    OperatorKeyMismatch {
        /// The operator's name.
        operator: String,
        /// The first entry naming it.
        first: String,
        /// An entry that disagrees with it.
        second: String,
    },
}

impl HasKind for RelayConfigError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Config
    }
}

/// The config's `[[relay]]` entries as relay records. What an entry does
/// not say stays unknown: no country or city (a request for a region finds
/// no egress there), no network (conflicts with nothing), bandwidth
/// [`UNKNOWN_BANDWIDTH`]. An entry with `operator_key` names its operator
/// by key; entries naming one operator must agree on its key.
pub fn from_config(entries: &[RelayEntry]) -> Result<Vec<Relay>, RelayConfigError> {
    for (i, first) in entries.iter().enumerate() {
        if let Some(second) = entries[..i]
            .iter()
            .find(|e| e.operator == first.operator && e.operator_key != first.operator_key)
        {
            return Err(RelayConfigError::OperatorKeyMismatch {
                operator: first.operator.clone(),
                first: second.name.clone(),
                second: first.name.clone(),
            });
        }
    }
    entries.iter().map(Relay::from_entry).collect()
}

impl Relay {
    /// One `[[relay]]` entry's relay (see [`from_config`], which also
    /// checks the entries against each other).
    pub fn from_entry(entry: &RelayEntry) -> Result<Relay, RelayConfigError> {
        let operator = match entry.operator_key {
            Some(pin) => Operator::Known(OperatorId::try_from(pin).map_err(|source| {
                RelayConfigError::OperatorKey {
                    relay: entry.name.clone(),
                    source,
                }
            })?),
            None => Operator::Unlisted(entry.operator.clone()),
        };
        Ok(Relay {
            id: RelayId::from_pin(entry.key),
            name: entry.name.clone(),
            role: entry.role,
            operator,
            network: entry.network.as_deref().map(parse_network),
            region: Region {
                country: entry.country.as_deref().map(Arc::from),
                city: entry.city.as_deref().map(Arc::from),
            },
            bandwidth_bps: entry.bandwidth_bps.unwrap_or(UNKNOWN_BANDWIDTH),
            measured: None,
            addr: entry.addr,
            // A config entry has no descriptor, so no evidence.
            attestation: AttestationVerdict::NoEvidence.into(),
            listing: None,
        })
    }
}

/// A config's network label: `AS<number>` (any case) is that AS, as in
/// the directory, so `as64500` and `AS64500` are one network; anything
/// else is a label.
pub fn parse_network(text: &str) -> Network {
    let asn = text
        .get(..2)
        .filter(|p| p.eq_ignore_ascii_case("as"))
        .and_then(|_| text.get(2..))
        .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|digits| digits.parse::<u32>().ok());
    match asn {
        Some(asn) => Network::Asn(asn),
        None => Network::Label(text.to_owned()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use openrelay_directory::OperatorKey;

    use super::*;

    fn entry(name: &str, operator: &str, key: Option<KeyPin>) -> RelayEntry {
        RelayEntry {
            name: name.into(),
            role: RelayRole::Ingress,
            operator: operator.into(),
            operator_key: key,
            addr: "192.0.2.1:4433".parse().unwrap(),
            key: KeyPin::from_ed25519([name.len() as u8; 32]),
            country: None,
            city: None,
            network: None,
            bandwidth_bps: None,
        }
    }

    #[test]
    fn config_entries_become_records_with_typed_unknowns() {
        let key = KeyPin::from(OperatorKey::from_bytes(&[3; 32]).id());
        let mut keyed = entry("a", "op", Some(key));
        keyed.network = Some("as64500".into());
        keyed.country = Some("DE".into());
        let relays = from_config(&[keyed, entry("bb", "other", None)]).unwrap();
        assert_eq!(
            relays[0].operator.id().map(|id| KeyPin::from(*id)),
            Some(key)
        );
        assert_eq!(relays[0].network, Some(Network::Asn(64_500)));
        assert!(relays[0].region.in_country("de"));
        assert_eq!(relays[1].operator, Operator::Unlisted("other".into()));
        assert_eq!(relays[1].network, None);
        assert_eq!(relays[1].bandwidth_bps, UNKNOWN_BANDWIDTH);
        assert_eq!(relays[1].region, Region::default());
        assert!(relays[0].compatible_with(&relays[1]));
    }

    #[test]
    fn entries_that_disagree_on_an_operators_key_are_refused() {
        let key = KeyPin::from(OperatorKey::from_bytes(&[3; 32]).id());
        let other = KeyPin::from(OperatorKey::from_bytes(&[4; 32]).id());
        for second in [None, Some(other)] {
            let err =
                from_config(&[entry("a", "op", Some(key)), entry("b", "op", second)]).unwrap_err();
            assert!(
                matches!(&err, RelayConfigError::OperatorKeyMismatch { operator, .. } if operator == "op"),
                "{err}"
            );
            assert_eq!(err.kind(), ErrorKind::Config);
        }
        // A key that is no Ed25519 key.
        let err = from_config(&[entry("a", "op", Some(KeyPin::from_ed25519([0; 32])))]);
        assert!(matches!(err, Err(RelayConfigError::OperatorKey { .. })));
    }

    #[test]
    fn networks_parse_as_in_the_directory() {
        assert_eq!(parse_network("AS13335"), Network::Asn(13_335));
        assert_eq!(parse_network("as1"), Network::Asn(1));
        assert_eq!(parse_network("as-in0"), Network::Label("as-in0".into()));
        assert_eq!(parse_network("AS"), Network::Label("AS".into()));
        assert_eq!(parse_network("hoster"), Network::Label("hoster".into()));
    }
}
