//! `GET /v1/measurements` (issue 14, item 4): every relay's latest
//! measurement verdict with its explanation (each validator's report, the
//! aggregate, the tolerance, how far from a slash), as JSON for dashboards
//! and `openrelay operator status`.
//!
//! Query: `relay=<ed25519:…>` (that relay only), or `operator=<ed25519:…>`
//! (the relays of that operator the registry holds), and `after=<relay>`
//! (the next page: relays are in id order, at most
//! [`MAX_EXPLANATIONS_PER_PAGE`] a page, and `next_after` names where to
//! continue). Anything else is a 400 naming the parameter.

use openrelay_measure::{Explanation, MeasureParams, RelayId};
use openrelay_types::KeyPin;
use serde::{Deserialize, Serialize};

/// The most explanations one page carries: an explanation with 64
/// validators' reports is about 20 KB of JSON, so a page stays under
/// about 5 MB.
pub const MAX_EXPLANATIONS_PER_PAGE: usize = 256;

/// The largest page a caller reads, bytes.
pub const MAX_PAGE_BYTES: usize = 8 * 1024 * 1024;

/// One page of `GET /v1/measurements`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementsPage {
    /// The latest settled epoch the registry recorded (`None`: none yet).
    pub epoch: Option<u64>,
    /// When it ended, Unix seconds.
    pub epoch_ended_at: Option<u64>,
    /// The verdict parameters.
    pub params: MeasureParams,
    /// The latest explanation of each relay asked for, by relay id.
    pub explanations: Vec<Explanation>,
    /// More relays follow: ask again with `after=` this.
    pub next_after: Option<RelayId>,
}

/// Which relays a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeasurementsFilter {
    /// Every relay.
    All,
    /// One relay.
    Relay(KeyPin),
    /// The relays of one operator.
    Operator(KeyPin),
}

/// A request's query, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeasurementsQuery {
    /// Which relays.
    pub filter: MeasurementsFilter,
    /// Start after this relay (the previous page's `next_after`).
    pub after: Option<KeyPin>,
}

/// A query the registry refuses (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A parameter this endpoint does not know, or given twice.
    #[error("unknown or repeated query parameter `{0}` (relay, operator, after)")]
    Unknown(String),
    /// A key that does not parse.
    #[error("query parameter `{0}` is not an `ed25519:` key")]
    BadKey(&'static str),
    /// Both `relay` and `operator`.
    #[error("give `relay` or `operator`, not both")]
    BothFilters,
}

impl MeasurementsQuery {
    /// The query string (without `?`; empty for every relay from the start).
    pub fn to_query(&self) -> String {
        let mut parts = Vec::new();
        match self.filter {
            MeasurementsFilter::All => {}
            MeasurementsFilter::Relay(pin) => parts.push(format!("relay={pin}")),
            MeasurementsFilter::Operator(pin) => parts.push(format!("operator={pin}")),
        }
        if let Some(after) = self.after {
            parts.push(format!("after={after}"));
        }
        parts.join("&")
    }

    /// The path and query to request.
    pub fn path(&self) -> String {
        let query = self.to_query();
        if query.is_empty() {
            crate::paths::MEASUREMENTS.to_owned()
        } else {
            format!("{}?{query}", crate::paths::MEASUREMENTS)
        }
    }

    /// Parses a request's query string (`None`: no query).
    pub fn parse(query: Option<&str>) -> Result<Self, QueryError> {
        let (mut relay, mut operator, mut after) = (None, None, None);
        for part in query
            .unwrap_or_default()
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let (slot, name): (&mut Option<KeyPin>, &'static str) = match name {
                "relay" => (&mut relay, "relay"),
                "operator" => (&mut operator, "operator"),
                "after" => (&mut after, "after"),
                _ => return Err(QueryError::Unknown(name.chars().take(32).collect())),
            };
            if slot.is_some() {
                return Err(QueryError::Unknown(name.to_owned()));
            }
            *slot = Some(KeyPin::parse(value).map_err(|_| QueryError::BadKey(name))?);
        }
        let filter = match (relay, operator) {
            (Some(_), Some(_)) => return Err(QueryError::BothFilters),
            (Some(relay), None) => MeasurementsFilter::Relay(relay),
            (None, Some(operator)) => MeasurementsFilter::Operator(operator),
            (None, None) => MeasurementsFilter::All,
        };
        Ok(MeasurementsQuery { filter, after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_round_trip_and_bad_ones_are_named() {
        let pin = KeyPin::from_ed25519([7; 32]);
        for query in [
            MeasurementsQuery {
                filter: MeasurementsFilter::All,
                after: None,
            },
            MeasurementsQuery {
                filter: MeasurementsFilter::Relay(pin),
                after: Some(pin),
            },
            MeasurementsQuery {
                filter: MeasurementsFilter::Operator(pin),
                after: None,
            },
        ] {
            let text = query.to_query();
            assert_eq!(MeasurementsQuery::parse(Some(&text)), Ok(query));
        }
        assert_eq!(
            MeasurementsQuery::parse(Some("relay=x")),
            Err(QueryError::BadKey("relay"))
        );
        assert!(matches!(
            MeasurementsQuery::parse(Some("limit=5")),
            Err(QueryError::Unknown(_))
        ));
        let both = format!("relay={pin}&operator={pin}");
        assert_eq!(
            MeasurementsQuery::parse(Some(&both)),
            Err(QueryError::BothFilters)
        );
        let twice = format!("relay={pin}&relay={pin}");
        assert!(MeasurementsQuery::parse(Some(&twice)).is_err());
    }
}
