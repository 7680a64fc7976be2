//! Relay populations: which operator runs which relays, with what advertised
//! bandwidth (the stake is proportional to it), and which operators the one
//! adversary controls.
//!
//! Compromise is a property of operators, not of single relays (an operator
//! sees the traffic of all its relays), so a population is a list of
//! operators, each with its ingress and egress relays given by their
//! bandwidths.

use std::path::Path;

use crate::error::{PopulationError, SimError};

/// At most this many relays (ingress and egress together) in a population:
/// every relay costs memory in the Monte Carlo sampler, and a typo such as
/// `ingress = 100000000000` must be an error, not an allocation failure.
pub const MAX_RELAYS: usize = 1_000_000;

/// Advertised bandwidth of a relay when the file does not give one. Only
/// ratios matter; the number reads as Mbit/s.
pub const DEFAULT_BANDWIDTH: f64 = 100.0;

/// What a relay does on a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// First hop: sees the client.
    Ingress,
    /// Second hop: sees the destination.
    Egress,
}

/// One operator identity and its relays.
#[derive(Debug, Clone, PartialEq)]
pub struct Operator {
    /// Unique within the population.
    pub name: String,
    /// Whether the adversary controls this operator (it then sees what all
    /// its relays see).
    pub adversary: bool,
    /// Advertised bandwidth of each ingress relay.
    pub ingress: Vec<f64>,
    /// Advertised bandwidth of each egress relay.
    pub egress: Vec<f64>,
}

impl Operator {
    /// The bandwidths of the relays of one role.
    pub fn relays(&self, role: Role) -> &[f64] {
        match role {
            Role::Ingress => &self.ingress,
            Role::Egress => &self.egress,
        }
    }
}

/// A validated population: at least one ingress and one egress relay, at
/// least one adversary operator, unique non-empty names, every bandwidth
/// finite and positive, at most [`MAX_RELAYS`] relays.
#[derive(Debug, Clone, PartialEq)]
pub struct Population {
    operators: Vec<Operator>,
}

/// Counts and shares of a population, for reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// Operator identities.
    pub operators: usize,
    /// Of which the adversary controls.
    pub adversary_operators: usize,
    /// Ingress relays.
    pub ingress: usize,
    /// Egress relays.
    pub egress: usize,
    /// Ingress relays of the adversary.
    pub adversary_ingress: usize,
    /// Egress relays of the adversary.
    pub adversary_egress: usize,
    /// The adversary's share of the ingress bandwidth (stake).
    pub adversary_ingress_stake: f64,
    /// The adversary's share of the egress bandwidth (stake).
    pub adversary_egress_stake: f64,
}

impl Population {
    /// Validates a list of operators. Errors name the field as a population
    /// file would (`operator[i]…`, numbered from 1).
    pub fn new(operators: Vec<Operator>) -> Result<Self, PopulationError> {
        if operators.is_empty() {
            return Err(PopulationError::field(
                "operator",
                "at least one [[operator]] is needed",
            ));
        }
        let mut total = 0usize;
        let mut names = std::collections::HashSet::new();
        for (i, op) in operators.iter().enumerate() {
            let at = format!("operator[{}]", i + 1);
            if op.name.trim().is_empty() {
                return Err(PopulationError::field(
                    format!("{at}.name"),
                    "must not be empty",
                ));
            }
            if !names.insert(op.name.as_str()) {
                return Err(PopulationError::field(
                    format!("{at}.name"),
                    format!(
                        "\"{}\" is used by an earlier operator; operator identities must be unique",
                        op.name
                    ),
                ));
            }
            for (role, key) in [(Role::Ingress, "ingress"), (Role::Egress, "egress")] {
                for (j, &bw) in op.relays(role).iter().enumerate() {
                    if !(bw.is_finite() && bw > 0.0) {
                        return Err(PopulationError::field(
                            format!("{at}.{key}[{}]", j + 1),
                            "bandwidth must be a positive finite number",
                        ));
                    }
                }
                total = total.saturating_add(op.relays(role).len());
            }
            if total > MAX_RELAYS {
                return Err(PopulationError::field(
                    at,
                    format!("the population would exceed {MAX_RELAYS} relays"),
                ));
            }
        }
        if operators.iter().all(|op| op.ingress.is_empty()) {
            return Err(PopulationError::field(
                "operator",
                "no operator has an ingress relay",
            ));
        }
        if operators.iter().all(|op| op.egress.is_empty()) {
            return Err(PopulationError::field(
                "operator",
                "no operator has an egress relay",
            ));
        }
        if !operators.iter().any(|op| op.adversary) {
            return Err(PopulationError::field(
                "operator",
                "no operator has `adversary = true`; mark the operators the adversary controls",
            ));
        }
        Ok(Population { operators })
    }

    /// The operators, in order.
    pub fn operators(&self) -> &[Operator] {
        &self.operators
    }

    /// A population of `operators × relays_per_operator` relays per role, all
    /// of bandwidth [`DEFAULT_BANDWIDTH`], of which the adversary holds
    /// `round(adversary_share × operators × relays_per_operator)` in one
    /// operator identity (`"adversary"`), whatever its size; honest operators
    /// hold `relays_per_operator` each (the last one possibly fewer).
    ///
    /// Why this shape: the adversary's share of servers is then exact
    /// whenever `adversary_share × operators × relays_per_operator` is an
    /// integer (2% of 100 × 10 is 20), so the random policy reproduces
    /// the published `(1 - s²)ⁿ = 1 - p` figure exactly, and the single
    /// adversary identity is the case operator diversity defeats.
    pub fn uniform(
        operators: usize,
        relays_per_operator: usize,
        adversary_share: f64,
    ) -> Result<Self, SimError> {
        if operators < 2 {
            return Err(SimError::parameter(
                "--operators",
                "at least 2 operators are needed",
            ));
        }
        if relays_per_operator == 0 {
            return Err(SimError::parameter(
                "--relays-per-operator",
                "at least 1 relay per operator is needed",
            ));
        }
        let per_role = operators
            .checked_mul(relays_per_operator)
            .filter(|&n| n.saturating_mul(2) <= MAX_RELAYS)
            .ok_or_else(|| {
                SimError::parameter(
                    "--relays-per-operator",
                    format!(
                        "{operators} operators × {relays_per_operator} relays exceeds {} relays per role",
                        MAX_RELAYS / 2
                    ),
                )
            })?;
        check_share(adversary_share)?;
        // Exact for per_role ≤ MAX_RELAYS (far below 2^53).
        let adversary = (adversary_share * per_role as f64).round() as usize;
        if adversary == 0 {
            return Err(SimError::parameter(
                "--adversary-share",
                format!(
                    "{adversary_share} of {per_role} relays rounds to none; use more operators or relays"
                ),
            ));
        }
        if adversary >= per_role {
            return Err(SimError::parameter(
                "--adversary-share",
                format!("{adversary_share} of {per_role} relays leaves no honest relay"),
            ));
        }
        let mut list = Vec::new();
        let mut honest = per_role - adversary;
        while honest > 0 {
            let n = honest.min(relays_per_operator);
            list.push(Operator {
                name: format!("operator-{}", list.len() + 1),
                adversary: false,
                ingress: vec![DEFAULT_BANDWIDTH; n],
                egress: vec![DEFAULT_BANDWIDTH; n],
            });
            honest -= n;
        }
        list.push(Operator {
            name: "adversary".to_owned(),
            adversary: true,
            ingress: vec![DEFAULT_BANDWIDTH; adversary],
            egress: vec![DEFAULT_BANDWIDTH; adversary],
        });
        Ok(Population::new(list)?)
    }

    /// The same relays with the adversary's operators replaced by `identities`
    /// Sybil identities (`sybil-1`, …), its ingress and its egress relays each
    /// dealt round-robin among them, bandwidth unchanged: the adversary's
    /// servers and stake are conserved, only the number of operator
    /// identities it shows changes. Honest operators are untouched.
    ///
    /// `identities = 1` merges colluding adversary operators into one.
    pub fn split_adversary(&self, identities: usize) -> Result<Self, SimError> {
        let ingress: Vec<f64> = self.adversary_relays(Role::Ingress);
        let egress: Vec<f64> = self.adversary_relays(Role::Egress);
        let most = ingress.len().max(egress.len());
        if identities == 0 || identities > most {
            return Err(SimError::parameter(
                "--sybil-identities",
                format!(
                    "must be between 1 and {most} (the adversary's relays per role), not {identities}"
                ),
            ));
        }
        let mut list: Vec<Operator> = self
            .operators
            .iter()
            .filter(|op| !op.adversary)
            .cloned()
            .collect();
        let taken: std::collections::HashSet<&str> =
            list.iter().map(|op| op.name.as_str()).collect();
        let mut sybils: Vec<Operator> = (1..=identities)
            .map(|k| {
                let mut name = format!("sybil-{k}");
                while taken.contains(name.as_str()) {
                    name.push('\'');
                }
                Operator {
                    name,
                    adversary: true,
                    ingress: Vec::new(),
                    egress: Vec::new(),
                }
            })
            .collect();
        for (j, bw) in ingress.into_iter().enumerate() {
            if let Some(op) = sybils.get_mut(j % identities) {
                op.ingress.push(bw);
            }
        }
        for (j, bw) in egress.into_iter().enumerate() {
            if let Some(op) = sybils.get_mut(j % identities) {
                op.egress.push(bw);
            }
        }
        list.append(&mut sybils);
        Ok(Population::new(list)?)
    }

    fn adversary_relays(&self, role: Role) -> Vec<f64> {
        self.operators
            .iter()
            .filter(|op| op.adversary)
            .flat_map(|op| op.relays(role).iter().copied())
            .collect()
    }

    /// Counts and shares.
    pub fn summary(&self) -> Summary {
        let count = |role: Role, adversary_only: bool| -> usize {
            self.operators
                .iter()
                .filter(|op| op.adversary || !adversary_only)
                .map(|op| op.relays(role).len())
                .sum()
        };
        let stake_share = |role: Role| -> f64 {
            let sum = |adversary_only: bool| -> f64 {
                self.operators
                    .iter()
                    .filter(|op| op.adversary || !adversary_only)
                    .flat_map(|op| op.relays(role).iter())
                    .sum()
            };
            sum(true) / sum(false)
        };
        Summary {
            operators: self.operators.len(),
            adversary_operators: self.operators.iter().filter(|op| op.adversary).count(),
            ingress: count(Role::Ingress, false),
            egress: count(Role::Egress, false),
            adversary_ingress: count(Role::Ingress, true),
            adversary_egress: count(Role::Egress, true),
            adversary_ingress_stake: stake_share(Role::Ingress),
            adversary_egress_stake: stake_share(Role::Egress),
        }
    }

    /// Reads a population file (format: [`Population::from_toml`]).
    pub fn load(path: &Path) -> Result<Self, PopulationError> {
        let text = std::fs::read_to_string(path).map_err(|source| PopulationError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|e| e.with_origin(&path.display().to_string()))
    }

    /// The population a directory lists (`openrelay sim --directory FILE`):
    /// one operator per listed operator (named by its key), its relays
    /// weighted by what clients weigh them by
    /// ([`openrelay_directory::weight::directory_selection_bandwidths`]:
    /// clipped, and capped by stake in a directory with a chain section), in
    /// Mbit/s. The adversary is `adversaries` (operator keys, `ed25519:…`),
    /// or when none is given the operator whose relays weigh most (ties:
    /// the lowest key): the single operator a client should fear most.
    ///
    /// `bytes` is a signed directory (as cached or served) or a bare
    /// directory body. Signatures are **not** verified: the simulator
    /// studies a population, it does not decide whom to trust.
    pub fn from_directory(bytes: &[u8], adversaries: &[String]) -> Result<Self, PopulationError> {
        use openrelay_directory::{Directory, OperatorId, SignedDirectory};
        let malformed = |e: openrelay_directory::FormatError| {
            PopulationError::field("directory", format!("not a directory: {e}"))
        };
        let directory = match SignedDirectory::from_bytes(bytes) {
            Ok(signed) => Directory::from_bytes(&signed.directory).map_err(malformed)?,
            Err(_) => Directory::from_bytes(bytes).map_err(malformed)?,
        };
        let weights = openrelay_directory::weight::directory_selection_bandwidths(&directory);
        let mut operators: Vec<(OperatorId, Operator)> = directory
            .operators()
            .iter()
            .map(|p| {
                let id = p.profile().operator();
                (
                    id,
                    Operator {
                        name: id.to_string(),
                        adversary: false,
                        ingress: Vec::new(),
                        egress: Vec::new(),
                    },
                )
            })
            .collect();
        for (signed, bps) in directory.descriptors().iter().zip(weights) {
            let d = signed.descriptor();
            // Sorted by operator id, as the directory lists them.
            let Ok(i) = operators.binary_search_by(|(id, _)| id.cmp(&d.operator())) else {
                continue;
            };
            let Some((_, op)) = operators.get_mut(i) else {
                continue;
            };
            // Population bandwidths read as Mbit/s; a relay that weighs
            // nothing is never drawn and is left out.
            if bps > 0 {
                let mbps = bps as f64 / 1e6;
                match d.role() {
                    openrelay_types::RelayRole::Ingress => op.ingress.push(mbps),
                    openrelay_types::RelayRole::Egress => op.egress.push(mbps),
                }
            }
        }
        let mut operators: Vec<Operator> = operators.into_iter().map(|(_, op)| op).collect();
        if adversaries.is_empty() {
            let weight = |op: &Operator| op.ingress.iter().chain(&op.egress).sum::<f64>();
            let heaviest = operators
                .iter()
                .enumerate()
                .max_by(|(i, a), (j, b)| weight(a).total_cmp(&weight(b)).then(j.cmp(i)))
                .map(|(i, _)| i);
            if let Some(op) = heaviest.and_then(|i| operators.get_mut(i)) {
                op.adversary = true;
            }
        }
        for (n, key) in adversaries.iter().enumerate() {
            let id = OperatorId::parse(key).map_err(|e| {
                PopulationError::field(format!("--adversary[{}]", n + 1), e.to_string())
            })?;
            let name = id.to_string();
            let op = operators
                .iter_mut()
                .find(|op| op.name == name)
                .ok_or_else(|| {
                    PopulationError::field(
                        format!("--adversary[{}]", n + 1),
                        format!("operator {name} is not listed in the directory"),
                    )
                })?;
            op.adversary = true;
        }
        // Operators without relays carry no weight and no risk.
        operators.retain(|op| !op.ingress.is_empty() || !op.egress.is_empty());
        Population::new(operators)
    }

    /// Parses a population file:
    ///
    /// ```toml
    /// [[operator]]
    /// name = "alpha"          # optional, default "operator-<i>"; unique
    /// ingress = 10            # 10 ingress relays of `bandwidth` each
    /// egress = [100, 50]      # or one relay per entry, with its bandwidth
    /// bandwidth = 100         # optional, default 100 (Mbit/s; only ratios matter)
    /// adversary = false       # optional, default false
    /// ```
    ///
    /// Strict: unknown keys, wrong types, negative counts and non-positive
    /// bandwidths are errors naming the field (`operator[i].key`, operators
    /// numbered from 1). Never panics, whatever the text.
    pub fn from_toml(text: &str) -> Result<Self, PopulationError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| PopulationError::Syntax {
            origin: String::new(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        for key in table.keys() {
            if key != "operator" {
                return Err(PopulationError::field(
                    key.as_str(),
                    "unknown field (expected only [[operator]] tables)",
                ));
            }
        }
        let entries = match table.get("operator") {
            None => {
                return Err(PopulationError::field(
                    "operator",
                    "missing: add one [[operator]] table per operator",
                ));
            }
            Some(toml::Value::Array(entries)) => entries,
            Some(_) => {
                return Err(PopulationError::field(
                    "operator",
                    "must be an array of tables ([[operator]])",
                ));
            }
        };
        let mut operators = Vec::with_capacity(entries.len().min(1024));
        let mut total = 0usize;
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("operator[{}]", i + 1);
            let toml::Value::Table(fields) = entry else {
                return Err(PopulationError::field(at, "must be a table"));
            };
            for key in fields.keys() {
                if !matches!(
                    key.as_str(),
                    "name" | "ingress" | "egress" | "bandwidth" | "adversary"
                ) {
                    return Err(PopulationError::field(
                        format!("{at}.{key}"),
                        "unknown field (expected name, ingress, egress, bandwidth, adversary)",
                    ));
                }
            }
            let name = match fields.get("name") {
                None => format!("operator-{}", i + 1),
                Some(toml::Value::String(s)) => s.clone(),
                Some(_) => {
                    return Err(PopulationError::field(
                        format!("{at}.name"),
                        "must be a string",
                    ));
                }
            };
            let adversary = match fields.get("adversary") {
                None => false,
                Some(toml::Value::Boolean(b)) => *b,
                Some(_) => {
                    return Err(PopulationError::field(
                        format!("{at}.adversary"),
                        "must be true or false",
                    ));
                }
            };
            let bandwidth = match fields.get("bandwidth") {
                None => DEFAULT_BANDWIDTH,
                Some(value) => positive_number(value)
                    .ok_or_else(|| PopulationError::field(format!("{at}.bandwidth"), POSITIVE))?,
            };
            let mut relays = |key: &str| -> Result<Vec<f64>, PopulationError> {
                let field = format!("{at}.{key}");
                let list = match fields.get(key) {
                    None => {
                        return Err(PopulationError::field(
                            field,
                            "missing: the number of relays (0 for none) or a list of their bandwidths",
                        ));
                    }
                    Some(toml::Value::Integer(n)) => {
                        let n = usize::try_from(*n)
                            .ok()
                            .filter(|&n| n <= MAX_RELAYS.saturating_sub(total))
                            .ok_or_else(|| {
                                PopulationError::field(
                                    field.as_str(),
                                    format!(
                                        "must be a relay count from 0 to {}, not {n}",
                                        MAX_RELAYS.saturating_sub(total)
                                    ),
                                )
                            })?;
                        vec![bandwidth; n]
                    }
                    Some(toml::Value::Array(items)) => {
                        if items.len() > MAX_RELAYS.saturating_sub(total) {
                            return Err(PopulationError::field(
                                field,
                                format!("the population would exceed {MAX_RELAYS} relays"),
                            ));
                        }
                        items
                            .iter()
                            .enumerate()
                            .map(|(j, item)| {
                                positive_number(item).ok_or_else(|| {
                                    PopulationError::field(format!("{field}[{}]", j + 1), POSITIVE)
                                })
                            })
                            .collect::<Result<Vec<f64>, _>>()?
                    }
                    Some(_) => {
                        return Err(PopulationError::field(
                            field,
                            "must be a relay count or a list of relay bandwidths",
                        ));
                    }
                };
                total += list.len();
                Ok(list)
            };
            let ingress = relays("ingress")?;
            let egress = relays("egress")?;
            operators.push(Operator {
                name,
                adversary,
                ingress,
                egress,
            });
        }
        Population::new(operators)
    }
}

const POSITIVE: &str = "must be a positive finite number (advertised bandwidth)";

fn positive_number(value: &toml::Value) -> Option<f64> {
    let x = match value {
        toml::Value::Integer(n) => *n as f64,
        toml::Value::Float(x) => *x,
        _ => return None,
    };
    (x.is_finite() && x > 0.0).then_some(x)
}

pub(crate) fn check_share(share: f64) -> Result<(), SimError> {
    if share.is_finite() && share > 0.0 && share < 1.0 {
        Ok(())
    } else {
        Err(SimError::parameter(
            "--adversary-share",
            format!("must be strictly between 0 and 1, not {share}"),
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn field_of(text: &str) -> String {
        match Population::from_toml(text) {
            Err(PopulationError::Field { field, .. }) => field,
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    #[test]
    fn parses_counts_lists_defaults() {
        let pop = Population::from_toml(
            r#"
            [[operator]]
            name = "alpha"
            ingress = 2
            egress = [10, 20.5]
            bandwidth = 50

            [[operator]]
            ingress = 0
            egress = 1
            adversary = true
            "#,
        )
        .unwrap();
        let ops = pop.operators();
        assert_eq!(ops[0].ingress, vec![50.0, 50.0]);
        assert_eq!(ops[0].egress, vec![10.0, 20.5]);
        assert!(!ops[0].adversary);
        assert_eq!(ops[1].name, "operator-2");
        assert_eq!(ops[1].egress, vec![DEFAULT_BANDWIDTH]);
        assert!(ops[1].adversary);
    }

    #[test]
    fn the_example_file_parses() {
        let pop = Population::from_toml(include_str!("../examples/population.toml")).unwrap();
        let s = pop.summary();
        assert!(s.adversary_operators >= 2, "{s:?}");
        assert!(s.ingress > s.adversary_ingress);
    }

    #[test]
    fn errors_name_the_field() {
        let ok_tail = "\n[[operator]]\ningress = 1\negress = 1\nadversary = true\n";
        let cases: &[(&str, &str)] = &[
            ("", "operator"),
            ("operator = 3", "operator"),
            ("operators = []", "operators"),
            ("[[operator]]\negress = 1", "operator[1].ingress"),
            (
                "[[operator]]\ningress = -1\negress = 1",
                "operator[1].ingress",
            ),
            (
                "[[operator]]\ningress = \"x\"\negress = 1",
                "operator[1].ingress",
            ),
            (
                "[[operator]]\ningress = 1\negress = [1, 0]",
                "operator[1].egress[2]",
            ),
            (
                "[[operator]]\ningress = 1\negress = [1, nan]",
                "operator[1].egress[2]",
            ),
            (
                "[[operator]]\ningress = 1\negress = 1\nbandwidth = 0",
                "operator[1].bandwidth",
            ),
            (
                "[[operator]]\ningress = 1\negress = 1\nbandwidht = 3",
                "operator[1].bandwidht",
            ),
            (
                "[[operator]]\ningress = 1\negress = 1\nadversary = 1",
                "operator[1].adversary",
            ),
            (
                "[[operator]]\ningress = 1\negress = 1\nname = 7",
                "operator[1].name",
            ),
            (
                "[[operator]]\ningress = 1\negress = 1\nname = \"\"",
                "operator[1].name",
            ),
            (
                "[[operator]]\nname = \"a\"\ningress = 1\negress = 1\n[[operator]]\nname = \"a\"\ningress = 1\negress = 1",
                "operator[2].name",
            ),
            (
                "[[operator]]\ningress = 99999999999\negress = 1",
                "operator[1].ingress",
            ),
            ("[[operator]]\ningress = 1\negress = 1", "operator"), // no adversary
            (
                "[[operator]]\ningress = 0\negress = 1\nadversary = true",
                "operator",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(&field_of(text), field, "for {text:?}");
        }
        // A later error names the later operator.
        assert_eq!(
            field_of(&format!(
                "{ok_tail}[[operator]]\ningress = 1\negress = true"
            )),
            "operator[2].egress"
        );
        let e = Population::from_toml("[[operator]]\ningress = 1\negress = [1, 0]").unwrap_err();
        assert!(e.to_string().contains("operator[1].egress[2]"), "{e}");
    }

    #[test]
    fn syntax_errors_are_reported_with_the_file_name() {
        let dir = std::env::temp_dir().join(format!("openrelay-sim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[[operator]\n").unwrap();
        let e = Population::load(&path).unwrap_err();
        assert!(matches!(e, PopulationError::Syntax { .. }), "{e:?}");
        assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        );
        let missing = Population::load(&dir.join("missing.toml")).unwrap_err();
        assert!(matches!(missing, PopulationError::Read { .. }));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn uniform_population_has_the_exact_share() {
        let pop = Population::uniform(100, 10, 0.02).unwrap();
        let s = pop.summary();
        assert_eq!((s.ingress, s.egress), (1000, 1000));
        assert_eq!((s.adversary_ingress, s.adversary_egress), (20, 20));
        assert_eq!(s.adversary_operators, 1);
        assert_eq!(s.operators, 99);
        assert!(Population::uniform(1, 10, 0.02).is_err());
        assert!(Population::uniform(100, 0, 0.02).is_err());
        assert!(Population::uniform(10, 10, 0.001).is_err()); // rounds to 0
        assert!(Population::uniform(10, 10, 1.0).is_err());
        assert!(Population::uniform(10, 10, f64::NAN).is_err());
        assert!(Population::uniform(usize::MAX, 2, 0.5).is_err());
    }

    #[test]
    fn splitting_conserves_relays_and_stake() {
        let pop = Population::uniform(100, 10, 0.02).unwrap();
        let split = pop.split_adversary(7).unwrap();
        let (a, b) = (pop.summary(), split.summary());
        assert_eq!(b.adversary_operators, 7);
        assert_eq!(b.operators, a.operators + 6);
        assert_eq!(
            (a.ingress, a.egress, a.adversary_ingress, a.adversary_egress),
            (b.ingress, b.egress, b.adversary_ingress, b.adversary_egress)
        );
        assert_eq!(a.adversary_ingress_stake, b.adversary_ingress_stake);
        assert!(pop.split_adversary(0).is_err());
        assert!(pop.split_adversary(21).is_err());
        assert!(pop.split_adversary(20).is_ok());
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = Population::from_toml(&text);
        }

        #[test]
        fn arbitrary_operator_tables_never_panic(
            entries in proptest::collection::vec(
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("name"), Just("ingress"), Just("egress"),
                            Just("bandwidth"), Just("adversary"), Just("x"),
                        ],
                        prop_oneof![
                            Just("1".to_owned()), Just("0".to_owned()), Just("-3".to_owned()),
                            Just("true".to_owned()), Just("\"n\"".to_owned()),
                            Just("[1, 2.5]".to_owned()), Just("[]".to_owned()),
                            Just("[0]".to_owned()), Just("inf".to_owned()), Just("nan".to_owned()),
                            Just("1e308".to_owned()), Just("9223372036854775807".to_owned()),
                            Just("{}".to_owned()),
                            any::<i64>().prop_map(|n| n.to_string()),
                            any::<f64>().prop_map(|x| format!("{x:?}")),
                        ],
                    ),
                    0..6,
                ),
                0..5,
            )
        ) {
            let mut text = String::new();
            for fields in &entries {
                text.push_str("[[operator]]\n");
                let mut seen = std::collections::HashSet::new();
                for (key, value) in fields {
                    if seen.insert(*key) {
                        text.push_str(&format!("{key} = {value}\n"));
                    }
                }
            }
            match Population::from_toml(&text) {
                Ok(pop) => {
                    let s = pop.summary();
                    prop_assert!(s.ingress > 0 && s.egress > 0 && s.adversary_operators > 0);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }
}
