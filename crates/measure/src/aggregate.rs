//! The network's figure for one relay in one epoch: the stake-weighted
//! low-median of the validators' reachable capacity reports.
//!
//! The rule, exactly: sort the reachable reports by capacity (ties by
//! validator id, which does not change the value); with `W` the total
//! weight of those reports, the aggregate is the first capacity at which
//! the running weight reaches half of `W` (`2 · running ≥ W`). With equal
//! weights that is the median of an odd count and the lower of the two
//! middle values of an even count (Tor's bandwidth authorities take the
//! low-median the same way, so that a tie favours the smaller figure).
//! Validators that sent no report, or reported the relay unreachable, are
//! not in `W`: a missing report is not a zero.
//!
//! Why it resists lying: reports below the smallest honest value weigh at
//! most the liars' weight, and the honest reports weigh more than half, so
//! the running weight cannot reach `W/2` before the smallest honest value
//! nor stay below it past the largest. A coalition under half of the
//! reporting weight (a fortiori under a third of the validators' stake)
//! cannot move the aggregate outside `[min honest, max honest]`.

use crate::report::ValidatorId;

/// One reachable report as aggregation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightedCapacity {
    /// Who reported it.
    pub validator: ValidatorId,
    /// That validator's weight (its stake).
    pub weight: u128,
    /// The capacity it measured, bits per second.
    pub capacity_bps: u64,
}

/// The stake-weighted low-median of `reports` (module docs), or `None` when
/// no report has positive weight.
pub fn weighted_low_median(reports: &[WeightedCapacity]) -> Option<u64> {
    let mut sorted: Vec<&WeightedCapacity> = reports.iter().filter(|r| r.weight > 0).collect();
    sorted.sort_by(|a, b| {
        a.capacity_bps
            .cmp(&b.capacity_bps)
            .then(a.validator.cmp(&b.validator))
    });
    let total: u128 = sorted
        .iter()
        .fold(0u128, |sum, r| sum.saturating_add(r.weight));
    let mut running: u128 = 0;
    for r in sorted {
        running = running.saturating_add(r.weight);
        if running.saturating_mul(2) >= total {
            return Some(r.capacity_bps);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn wc(v: u8, weight: u128, capacity_bps: u64) -> WeightedCapacity {
        WeightedCapacity {
            validator: ValidatorId([v; 32]),
            weight,
            capacity_bps,
        }
    }

    #[test]
    fn equal_weights_give_the_median_and_the_low_median() {
        assert_eq!(weighted_low_median(&[]), None);
        assert_eq!(weighted_low_median(&[wc(1, 0, 5)]), None);
        assert_eq!(weighted_low_median(&[wc(1, 1, 5)]), Some(5));
        assert_eq!(
            weighted_low_median(&[wc(1, 1, 30), wc(2, 1, 10), wc(3, 1, 20)]),
            Some(20)
        );
        assert_eq!(
            weighted_low_median(&[wc(1, 1, 30), wc(2, 1, 10), wc(3, 1, 20), wc(4, 1, 40)]),
            Some(20)
        );
        assert_eq!(weighted_low_median(&[wc(1, 1, 30), wc(2, 1, 10)]), Some(10));
    }

    #[test]
    fn weight_decides() {
        // One validator with more than half the weight sets the figure.
        assert_eq!(
            weighted_low_median(&[wc(1, 6, 100), wc(2, 2, 10), wc(3, 2, 20)]),
            Some(100)
        );
    }

    fn in_honest_range(honest: &[u64], liars: &[u64], honest_w: u128, liar_w: &[u128]) -> bool {
        let mut all: Vec<WeightedCapacity> = honest
            .iter()
            .enumerate()
            .map(|(i, &c)| wc(i as u8, honest_w, c))
            .collect();
        all.extend(
            liars
                .iter()
                .zip(liar_w)
                .enumerate()
                .map(|(i, (&c, &w))| wc(100 + i as u8, w, c)),
        );
        let agg = weighted_low_median(&all).expect("reports");
        let lo = *honest.iter().min().expect("honest");
        let hi = *honest.iter().max().expect("honest");
        lo <= agg && agg <= hi
    }

    proptest! {
        /// One lying validator of three (equal weights) stays inside the honest range.
        #[test]
        fn one_liar_of_three_cannot_leave_the_honest_range(
            a in any::<u64>(), b in any::<u64>(), lie in any::<u64>(),
        ) {
            prop_assert!(in_honest_range(&[a, b], &[lie], 1, &[1]));
        }

        /// Any coalition under a third of the total weight, any weights.
        #[test]
        fn a_coalition_under_a_third_cannot_leave_the_honest_range(
            honest in proptest::collection::vec(any::<u64>(), 1..8),
            honest_w in 1u128..1_000_000,
            liars in proptest::collection::vec((any::<u64>(), 1u128..1_000_000), 0..6),
        ) {
            let honest_total = honest_w * honest.len() as u128;
            // Keep the coalition strictly under a third of all weight: 3L < H + L.
            let mut budget = (honest_total - 1) / 2;
            let mut lie_values = Vec::new();
            let mut lie_weights = Vec::new();
            for (v, w) in liars {
                let w = w.min(budget);
                if w == 0 { break; }
                budget -= w;
                lie_values.push(v);
                lie_weights.push(w);
            }
            prop_assert!(in_honest_range(&honest, &lie_values, honest_w, &lie_weights));
        }
    }
}
