//! How much a relay counts when a client draws a path (issue 11, item 7).
//!
//! Selection is weighted by bandwidth, and until validators measure it
//! (a later issue) the bandwidth is what the relay *says*. Anyone can make
//! keys and call themselves two operators, so weighting by the raw claim
//! lets one party with two descriptors at `u64::MAX` be both hops of nearly
//! every path. Two rules bound what a claim can buy:
//!
//! 1. **Clipping.** A relay counts with at most
//!    [`MAX_WEIGHTED_BANDWIDTH_BPS`] (10 Gbit/s): more than one relay process
//!    forwards today, so a larger claim is not believable, and it keeps every
//!    sum far from overflowing.
//! 2. **Operator cap.** Within one draw (the relays of one role a path may use
//!    at that step), no operator gets more than
//!    `max(`[`MAX_OPERATOR_SHARE`]`, 1/k)` of the total weight, `k` being the
//!    operators in the draw. The excess is removed by water-filling: capped
//!    operators get exactly the cap, the others keep their weight, and an
//!    operator's relays share its weight in proportion to their own.
//!
//! So two colluding operators (one ingress, one egress) hold both hops of a
//! path with probability at most `MAX_OPERATOR_SHARE²` = 1 % in any network of
//! ten or more operators per role, however much bandwidth they claim.
//! `openrelay-sim` models exactly these rules (policy `capped`).
//!
//! What it costs and what it does not do:
//! - A genuinely large operator gets at most a tenth of a role's paths until
//!   bandwidth is measured.
//! - In a draw among fewer than ten operators the cap is `1/k`, which makes
//!   every operator equal there (the `operator-diverse` policy of the
//!   simulator): bandwidth no longer matters in a small network.
//! - Identities are as cheap as claims: an adversary showing `K` operators,
//!   each at the clip, still gets up to `K` times the cap (as much as its
//!   relays' clipped bandwidth weighs against the honest relays'). Stake
//!   bounds that (rule 3); measured bandwidth will too (a later issue).
//!
//! 3. **Stake** (issue 13, item 5; directories with a chain section). An
//!    operator's relays together weigh at most the bandwidth its on-chain
//!    stake covers, split over them in proportion to their (clipped)
//!    advertised bandwidth: each relay counts `min(advertised, its share of
//!    the cover)` ([`stake_capped_bandwidths`]). Splitting does not pay: an
//!    operator with stake for 1 Gbit/s weighs exactly 1 Gbit/s whether it
//!    lists one relay or a thousand, and `K` operators weigh what their
//!    stakes buy. Directories without a chain section keep rules 1 and 2.
//!
//! 4. **Measurement** (issue 14; directories with a chain section). Before
//!    rule 3, a relay the validators measured counts for min(advertised,
//!    measured), one never measured for the bootstrap weight
//!    min(10 % of advertised, 20 Mbit/s)
//!    ([`openrelay_measure::selection_bandwidth`], the one statement of
//!    the rule, which the validators' verdicts explain with too). A claim
//!    therefore buys nothing beyond what the relay was seen to carry, and
//!    a fresh relay little until it is tested. Relays the validators find
//!    down are not listed at all.

/// The most bandwidth (bits per second) a relay's claim counts for.
pub const MAX_WEIGHTED_BANDWIDTH_BPS: u64 = 10_000_000_000;

/// The largest share of one draw's weight an operator can get, when the draw
/// has at least `1 / MAX_OPERATOR_SHARE` operators.
pub const MAX_OPERATOR_SHARE: f64 = 0.1;

/// A relay's advertised bandwidth as selection counts it: clipped to
/// [`MAX_WEIGHTED_BANDWIDTH_BPS`].
pub fn clipped_bandwidth(advertised_bps: u64) -> u64 {
    advertised_bps.min(MAX_WEIGHTED_BANDWIDTH_BPS)
}

/// One operator's relays as selection counts them under rule 3: each
/// relay's advertised bandwidth clipped ([`clipped_bandwidth`]), and, when
/// they add up to more than `covered_bps` (what the operator's stake
/// covers), scaled down so that they add up to exactly `covered_bps`, each
/// in proportion to its clipped bandwidth (largest remainders get the
/// rounding, the earlier relay on a tie, so the sum is exact and the
/// result deterministic). Never more than a relay's clipped bandwidth.
pub fn stake_capped_bandwidths(advertised_bps: &[u64], covered_bps: u128) -> Vec<u64> {
    let clipped: Vec<u64> = advertised_bps
        .iter()
        .map(|&b| clipped_bandwidth(b))
        .collect();
    let total: u128 = clipped.iter().map(|&b| u128::from(b)).sum();
    if total <= covered_bps {
        return clipped;
    }
    // covered < total ≤ 20 000 · 10^10 here, so every product below is far
    // from overflowing u128 and every share fits the relay's u64.
    let mut shares: Vec<(u64, u128)> = clipped
        .iter()
        .map(|&b| {
            let scaled = u128::from(b) * covered_bps;
            (
                u64::try_from(scaled / total).unwrap_or(u64::MAX),
                scaled % total,
            )
        })
        .collect();
    let given: u128 = shares.iter().map(|&(w, _)| u128::from(w)).sum();
    let left = usize::try_from(covered_bps.saturating_sub(given)).unwrap_or(usize::MAX);
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|&a, &b| shares[b].1.cmp(&shares[a].1).then(a.cmp(&b)));
    for &i in order.iter().take(left) {
        shares[i].0 += 1;
    }
    shares.into_iter().map(|(w, _)| w).collect()
}

/// Each descriptor's selection bandwidth (bits per second, before the
/// operator-share cap of a draw), in the directory's order: with a chain
/// section, rule 4 ([`openrelay_measure::selection_bandwidth`] of the
/// advertised and measured bandwidth) then rule 3 over each operator's
/// relays with the cover the section gives it ([`stake_capped_bandwidths`]);
/// without, rule 1 ([`clipped_bandwidth`]). What
/// [`crate::VerifiedRelay::selection_bandwidth_bps`] returns, and what the
/// simulator reads a directory file with.
pub fn directory_selection_bandwidths(directory: &crate::Directory) -> Vec<u64> {
    selection_bandwidths_of_listed(directory.chain(), &directory.listed_descriptors())
}

/// [`directory_selection_bandwidths`] of the descriptors as `listed`, in
/// order, with the directory's `chain` section. A descriptor whose
/// operator has no profile is covered by nothing, so weighs 0.
pub(crate) fn selection_bandwidths_of_listed(
    chain: Option<&crate::ChainSection>,
    listed: &[crate::directory::ListedDescriptor],
) -> Vec<u64> {
    let Some(chain) = chain else {
        return listed
            .iter()
            .map(|d| clipped_bandwidth(d.bandwidth_bps))
            .collect();
    };
    // The descriptors' indices grouped by operator, in one array: the
    // chain section lists the operators in the profiles' order, and the
    // last group holds descriptors without a profile.
    let unlisted = chain.operators.len();
    let group = |operator: &Option<u32>| operator.map_or(unlisted, |o| o as usize).min(unlisted);
    let mut starts = vec![0usize; unlisted + 2];
    for d in listed {
        starts[group(&d.operator_index) + 1] += 1;
    }
    for g in 1..starts.len() {
        starts[g] += starts[g - 1];
    }
    let mut grouped = vec![0usize; listed.len()];
    let mut next = starts.clone();
    for (i, d) in listed.iter().enumerate() {
        let slot = &mut next[group(&d.operator_index)];
        grouped[*slot] = i;
        *slot += 1;
    }
    let mut out = vec![0; listed.len()];
    for (g, bounds) in starts.windows(2).enumerate() {
        let indices = &grouped[bounds[0]..bounds[1]];
        let covered_bps = chain.operators.get(g).map_or(0, |o| {
            u128::from(o.covered_mbps) * u128::from(crate::BPS_PER_MBPS)
        });
        // The chain section lists the relays in the descriptors' order.
        let carried: Vec<u64> = indices
            .iter()
            .filter_map(|&i| Some((listed.get(i)?, chain.relays.get(i)?)))
            .map(|(d, on_chain)| {
                openrelay_measure::selection_bandwidth(
                    d.bandwidth_bps,
                    on_chain.measured.map(|m| m.measured_bps),
                )
            })
            .collect();
        for (&i, w) in indices
            .iter()
            .zip(stake_capped_bandwidths(&carried, covered_bps))
        {
            if let Some(slot) = out.get_mut(i) {
                *slot = w;
            }
        }
    }
    out
}

/// The share cap that applies to a draw among `operators` operators:
/// `max(max_share, 1/operators)`, so the capped weights always fill the whole.
pub fn effective_cap(max_share: f64, operators: usize) -> f64 {
    if operators == 0 {
        return 1.0;
    }
    max_share.max(1.0 / operators as f64).min(1.0)
}

/// Caps every operator's share of the total at [`effective_cap`]`(max_share,
/// k)`, `k` being the operators with positive mass, by water-filling:
/// operators above the cap are lowered to exactly the cap of the *new* total,
/// the others keep their mass. `masses[i]` is operator `i`'s total weight;
/// the result has the same length and order. Masses that are not positive
/// stay 0.
///
/// Order is kept (a heavier operator never ends up lighter than a lighter
/// one) and the result is the unique allocation where every capped operator
/// sits exactly at the cap and no uncapped one exceeds it.
pub fn cap_shares(masses: &[f64], max_share: f64) -> Vec<f64> {
    let positive = |m: f64| m.is_finite() && m > 0.0;
    let mut order: Vec<usize> = (0..masses.len()).filter(|&i| positive(masses[i])).collect();
    let mut out: Vec<f64> = masses
        .iter()
        .map(|&m| if positive(m) { m } else { 0.0 })
        .collect();
    let k = order.len();
    if k == 0 {
        return out;
    }
    let cap = effective_cap(max_share, k);
    // Heaviest first: the capped operators are always a prefix.
    order.sort_by(|&a, &b| masses[b].total_cmp(&masses[a]));
    let mut rest: f64 = order.iter().map(|&i| masses[i]).sum();
    for capped in 0..k {
        let free = 1.0 - capped as f64 * cap;
        if free <= 0.0 {
            break;
        }
        // The total if the first `capped` operators sit at the cap and the
        // others keep their mass: total = rest + capped · cap · total.
        let total = rest / free;
        let heaviest_uncapped = masses[order[capped]];
        if heaviest_uncapped <= cap * total {
            for &i in &order[..capped] {
                out[i] = cap * total;
            }
            return out;
        }
        rest -= heaviest_uncapped;
    }
    // Only reachable through rounding with every operator capped: all equal.
    for &i in &order {
        out[i] = 1.0;
    }
    out
}
