//! Validators' measurement reveals (openrelay-measure): untrusted bytes a
//! registry or validator decodes before aggregating them.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use openrelay_measure::{MeasureParams, MeasureState, RelayAdvert, Reveal, verify_reveal};

fuzz_target!(|data: &[u8]| {
    let Ok(reveal) = Reveal::from_bytes(data) else {
        return;
    };
    // Whatever decodes is canonical and verifies against its own commitment.
    assert_eq!(reveal.to_bytes(), data);
    assert_eq!(
        verify_reveal(&reveal.commitment(), data).as_ref(),
        Ok(&reveal)
    );
    // And the verdicts take it without panicking, every relay advertised.
    let validators = BTreeMap::from([(reveal.validator(), 1u128)]);
    let relays: BTreeMap<_, _> = reveal
        .reports()
        .iter()
        .map(|r| {
            (
                r.relay,
                RelayAdvert {
                    advertised_bps: r.probes_sent.into(),
                    operator_stake: u128::from(r.probes_answered),
                    operator_advertised_bps: u128::from(r.probes_sent) * 2,
                },
            )
        })
        .collect();
    let mut state = MeasureState::new(MeasureParams::devnet());
    let outcome = state
        .apply_epoch(reveal.epoch(), &validators, &[reveal], &relays)
        .expect("a reveal of the only validator for its own epoch applies");
    assert_eq!(outcome.explanations.len(), relays.len());
});
