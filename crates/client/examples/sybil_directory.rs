//! Writes the two directories of docs/collusion.md's Sybil table (issue 13):
//! 99 honest operators, each with stake for, and relays of, 2 Gbit/s (10
//! ingress and 10 egress relays of 100 Mbit/s), and one adversary operator
//! with stake for 1 Gbit/s that lists either
//!
//! - `sybil.dir`: 1,000 relays of 1 Mbit/s (500 ingress, 500 egress), or
//! - `single.dir`: its 1 Gbit/s as one ingress and one egress relay of
//!   500 Mbit/s each,
//!
//! both format 4 directories with a chain section as an honest registry
//! writes it. `openrelay sim --directory FILE` must print the same figures
//! for both.
//!
//! `cargo run -p openrelay-client --example sybil_directory -- OUT_DIR`
#![allow(clippy::unwrap_used, clippy::print_stdout, missing_docs)]

use std::net::SocketAddr;

use openrelay_directory::{
    ChainAnchor, ChainOperator, ChainRelay, ChainSection, CountryCode, DescriptorFields, Directory,
    Network, OperatorKey, OperatorProfile, ProfileFields, QuicKey, Region, RelayDescriptor,
    RelayKey, RelayMeasurement, SignedDescriptor,
};
use openrelay_types::RelayRole;

const T0: u64 = 1_750_000_000;
const MBPS: u64 = 1_000_000;
const STAKE_PER_MBPS: u128 = 1_000_000_000_000_000;

fn seed(tag: u8, n: u32) -> [u8; 32] {
    let mut s = [tag; 32];
    s[28..].copy_from_slice(&n.to_be_bytes());
    s
}

struct Builder {
    profiles: Vec<openrelay_directory::SignedOperatorProfile>,
    descriptors: Vec<SignedDescriptor>,
    operators: Vec<ChainOperator>,
    relays: Vec<ChainRelay>,
    next_relay: u32,
}

impl Builder {
    fn operator(&mut self, n: u32, relays: &[(RelayRole, u64)]) {
        let key = OperatorKey::from_bytes(&seed(0x0a, n));
        let id = key.id();
        // The chain section lists an operator only under the account its
        // signed profile names.
        let account = [u8::try_from(n % 251).unwrap(); 20];
        self.profiles.push(
            key.sign_profile(
                OperatorProfile::new(ProfileFields {
                    operator: id,
                    name: format!("Operator {n}"),
                    contact: format!("mailto:ops{n}@example.org"),
                    jurisdiction: CountryCode::parse("DE").unwrap(),
                    chain_account: Some(account),
                    published_at: T0 - 86_400,
                })
                .unwrap(),
            )
            .unwrap(),
        );
        let mut total_mbps = 0;
        for &(role, mbps) in relays {
            let r = self.next_relay;
            self.next_relay += 1;
            let relay_key = RelayKey::from_bytes(&seed(0x0b, r));
            let quic = QuicKey::from_bytes(&seed(0x0c, r));
            let endpoint = SocketAddr::from(([192, 0, 2, 1], u16::try_from(1024 + r).unwrap()));
            let descriptor = RelayDescriptor::new(DescriptorFields {
                relay: relay_key.id(),
                operator: id,
                role,
                endpoints: vec![endpoint],
                quic_pin: quic.pin(),
                region: Region {
                    country: CountryCode::parse("NL").unwrap(),
                    city: "Amsterdam".to_owned(),
                },
                network: Network::Asn(64_500 + r),
                bandwidth_bps: mbps * MBPS,
                software_version: "openrelay 0.1.0".to_owned(),
                attestation: None,
                not_before: T0 - 3600,
                not_after: T0 + 86_400,
            })
            .unwrap();
            let quic_signature = quic.sign_descriptor(&descriptor);
            self.descriptors.push(
                SignedDescriptor::sign(descriptor, &relay_key, &key, quic_signature).unwrap(),
            );
            self.relays.push(ChainRelay {
                relay: relay_key.id(),
                bandwidth_mbps: u32::try_from(mbps).unwrap(),
                // Measured at what it claims: the example is about stake.
                measured: Some(RelayMeasurement {
                    measured_bps: mbps * 1_000_000,
                    measured_epoch: 1,
                    measured_at: 0,
                }),
            });
            total_mbps += mbps;
        }
        self.operators.push(ChainOperator {
            operator: id,
            account,
            stake_wei: u128::from(total_mbps) * STAKE_PER_MBPS,
            covered_mbps: total_mbps,
        });
    }

    fn directory(self) -> Directory {
        Directory::new(1, T0, T0 + 3600, self.profiles, self.descriptors)
            .unwrap()
            .with_chain(ChainSection {
                anchor: ChainAnchor {
                    chain_id: 31_337,
                    contract: [0x5f; 20],
                    block_number: 1,
                    block_hash: [1; 32],
                },
                validator_epoch: 0,
                operators: self.operators,
                relays: self.relays,
                releases: Vec::new(),
            })
            .unwrap()
    }
}

fn population(adversary: &[(RelayRole, u64)]) -> Directory {
    let mut builder = Builder {
        profiles: Vec::new(),
        descriptors: Vec::new(),
        operators: Vec::new(),
        relays: Vec::new(),
        next_relay: 0,
    };
    let honest: Vec<(RelayRole, u64)> = [RelayRole::Ingress, RelayRole::Egress]
        .into_iter()
        .flat_map(|role| std::iter::repeat_n((role, 100), 10))
        .collect();
    for n in 1..=99 {
        builder.operator(n, &honest);
    }
    builder.operator(0, adversary);
    builder.directory()
}

fn main() {
    let out = std::path::PathBuf::from(std::env::args().nth(1).expect("OUT_DIR"));
    std::fs::create_dir_all(&out).unwrap();
    let sybil: Vec<(RelayRole, u64)> = [RelayRole::Ingress, RelayRole::Egress]
        .into_iter()
        .flat_map(|role| std::iter::repeat_n((role, 1), 500))
        .collect();
    let single = [(RelayRole::Ingress, 500), (RelayRole::Egress, 500)];
    for (name, adversary) in [("sybil.dir", &sybil[..]), ("single.dir", &single[..])] {
        let directory = population(adversary);
        std::fs::write(out.join(name), directory.to_bytes()).unwrap();
        println!(
            "{}: {} relays; adversary operator {}; honest operator 1 {}",
            out.join(name).display(),
            directory.descriptors().len(),
            OperatorKey::from_bytes(&seed(0x0a, 0)).id(),
            OperatorKey::from_bytes(&seed(0x0a, 1)).id()
        );
    }
}
