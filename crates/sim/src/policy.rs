//! Selection policies: how a client picks the (ingress, egress) pair of a
//! path. A policy is two independent choices, so each effect can be seen on
//! its own: whether ingress and egress must be of different operators, and
//! what a relay's chance of being picked is proportional to.

use std::fmt;
use std::str::FromStr;

use openrelay_directory::weight::{MAX_OPERATOR_SHARE, MAX_WEIGHTED_BANDWIDTH_BPS, cap_shares};

use crate::population::{Operator, Population, Role};

/// [`MAX_WEIGHTED_BANDWIDTH_BPS`] in the simulator's unit (bandwidths read as
/// Mbit/s).
pub const MAX_WEIGHTED_BANDWIDTH: f64 = MAX_WEIGHTED_BANDWIDTH_BPS as f64 / 1e6;

/// What the chance of picking a relay (within a role) is proportional to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Weighting {
    /// Every relay equally likely: the published baseline, where the
    /// adversary's chance is its share of *servers*.
    Relay,
    /// Every operator identity equally likely, then one of its relays
    /// uniformly: what a selection that values operator diversity does
    /// if it treats each operator as one voice. A Sybil that shows many
    /// identities gains selection share by their *count*.
    Operator,
    /// Proportional to advertised bandwidth (the stake backs it): the
    /// adversary's chance is its share of stake, however many identities
    /// it spreads that stake over.
    Stake,
    /// openrelay's client rule while bandwidth is self-declared
    /// (`openrelay_directory::weight`): advertised bandwidth clipped to
    /// [`MAX_WEIGHTED_BANDWIDTH`], and every operator's share of a draw
    /// capped at `max(10 %, 1/k)` for `k` operators in it.
    Capped,
}

impl Weighting {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Weighting::Relay => "relay",
            Weighting::Operator => "operator",
            Weighting::Stake => "stake",
            Weighting::Capped => "capped",
        }
    }

    /// The weight of each relay of `op` in `role` before any operator cap
    /// ([`operator_scales`] gives the factor that applies it). Each is
    /// positive; an operator's relays sum to [`Weighting::operator_mass`].
    pub fn relay_weights(self, op: &Operator, role: Role) -> impl Iterator<Item = f64> + '_ {
        let relays = op.relays(role);
        let n = relays.len() as f64;
        relays.iter().map(move |&bw| match self {
            Weighting::Relay => 1.0,
            Weighting::Operator => 1.0 / n,
            Weighting::Stake => bw,
            Weighting::Capped => bw.min(MAX_WEIGHTED_BANDWIDTH),
        })
    }

    /// The total weight of `op`'s relays in `role` (zero if it has none),
    /// before any operator cap: only operator totals matter for compromise,
    /// as the adversary either holds an operator or not.
    pub fn operator_mass(self, op: &Operator, role: Role) -> f64 {
        let relays = op.relays(role);
        match self {
            _ if relays.is_empty() => 0.0,
            Weighting::Relay => relays.len() as f64,
            Weighting::Operator => 1.0,
            Weighting::Stake | Weighting::Capped => self.relay_weights(op, role).sum(),
        }
    }
}

/// For each operator, the factor its relays' weights in `role` are scaled by
/// when drawing among the operators `eligible` marks: 1 except under
/// [`Weighting::Capped`], where the factor brings the operator's share down
/// to the cap (water-filling over the eligible operators, as a client does
/// over the relays it draws from).
pub fn operator_scales(
    population: &Population,
    weighting: Weighting,
    role: Role,
    eligible: &[bool],
) -> Vec<f64> {
    let ops = population.operators();
    if weighting != Weighting::Capped {
        return vec![1.0; ops.len()];
    }
    let masses: Vec<f64> = ops
        .iter()
        .zip(eligible)
        .map(|(op, &ok)| {
            if ok {
                weighting.operator_mass(op, role)
            } else {
                0.0
            }
        })
        .collect();
    cap_shares(&masses, MAX_OPERATOR_SHARE)
        .iter()
        .zip(&masses)
        .map(|(capped, mass)| if *mass > 0.0 { capped / mass } else { 0.0 })
        .collect()
}

impl FromStr for Weighting {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "relay" => Ok(Weighting::Relay),
            "operator" => Ok(Weighting::Operator),
            "stake" => Ok(Weighting::Stake),
            "capped" => Ok(Weighting::Capped),
            _ => Err(format!(
                "unknown weighting \"{s}\" (expected relay, operator, stake or capped)"
            )),
        }
    }
}

/// A selection policy.
///
/// Paths are drawn as the client draws them, egress first, then ingress:
/// the egress by its weight among the egress relays that can be completed
/// into a path; the ingress by its weight among the ingress relays allowed
/// with that egress (with `operator_diverse`, those of any other operator).
/// Without `operator_diverse` the two draws are independent. Under
/// [`Weighting::Capped`] operator shares are capped over the eligible egress
/// relays and over all ingress relays (then restricted), as in the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Policy {
    /// Never pair an ingress and an egress of the same operator.
    pub operator_diverse: bool,
    /// What picking is proportional to.
    pub weighting: Weighting,
}

impl Policy {
    /// `random`: independent, uniform over relays. With an adversary share `s`
    /// of each role, a path is compromised with probability `s²`.
    pub const RANDOM: Policy = Policy {
        operator_diverse: false,
        weighting: Weighting::Relay,
    };
    /// `operator-diverse`: never the same operator on both hops; operators
    /// equally likely.
    pub const OPERATOR_DIVERSE: Policy = Policy {
        operator_diverse: true,
        weighting: Weighting::Operator,
    };
    /// `stake-weighted`: never the same operator on both hops; relays by
    /// advertised bandwidth, uncapped.
    pub const STAKE_WEIGHTED: Policy = Policy {
        operator_diverse: true,
        weighting: Weighting::Stake,
    };
    /// `capped`: what openrelay clients do (issue 11, item 7): never the same
    /// operator on both hops; relays by clipped bandwidth with every
    /// operator's share of a draw capped.
    pub const CAPPED: Policy = Policy {
        operator_diverse: true,
        weighting: Weighting::Capped,
    };

    /// The policies every report compares.
    pub const COMPARED: [Policy; 4] = [
        Policy::RANDOM,
        Policy::OPERATOR_DIVERSE,
        Policy::STAKE_WEIGHTED,
        Policy::CAPPED,
    ];

    /// The same policy with another weighting.
    pub fn with_weighting(self, weighting: Weighting) -> Policy {
        Policy { weighting, ..self }
    }
}

impl fmt::Display for Policy {
    /// The canonical name, or `random/stake` style for other combinations.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Policy::RANDOM => f.write_str("random"),
            Policy::OPERATOR_DIVERSE => f.write_str("operator-diverse"),
            Policy::STAKE_WEIGHTED => f.write_str("stake-weighted"),
            Policy::CAPPED => f.write_str("capped"),
            Policy {
                operator_diverse,
                weighting,
            } => {
                let base = if operator_diverse {
                    "operator-diverse"
                } else {
                    "random"
                };
                write!(f, "{base}/{}", weighting.as_str())
            }
        }
    }
}

impl FromStr for Policy {
    type Err = String;

    /// `random`, `operator-diverse`, `stake-weighted` or `capped`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "random" => Ok(Policy::RANDOM),
            "operator-diverse" => Ok(Policy::OPERATOR_DIVERSE),
            "stake-weighted" => Ok(Policy::STAKE_WEIGHTED),
            "capped" => Ok(Policy::CAPPED),
            _ => Err(format!(
                "unknown policy \"{s}\" (expected random, operator-diverse, stake-weighted or capped)"
            )),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in Policy::COMPARED {
            assert_eq!(p.to_string().parse::<Policy>().unwrap(), p);
        }
        assert_eq!(
            Policy::RANDOM.with_weighting(Weighting::Stake).to_string(),
            "random/stake"
        );
        assert!("tor".parse::<Policy>().is_err());
        for w in [
            Weighting::Relay,
            Weighting::Operator,
            Weighting::Stake,
            Weighting::Capped,
        ] {
            assert_eq!(w.as_str().parse::<Weighting>().unwrap(), w);
        }
    }
}
