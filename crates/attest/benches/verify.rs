//! Time of one verification per platform on the real samples
//! (`cargo bench -p openrelay-attest`).
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use openrelay_attest::{
    DcapEvidence, DcapPolicy, DcapTcbStatus, Evidence, InsecureSimulatedTee, Policy,
    SevSnpEvidence, SnpProduct, verify,
};

const SAMPLE_NOW: u64 = 1_750_334_400;

fn dcap(quote: &[u8], json: &[u8]) -> DcapEvidence {
    DcapEvidence {
        quote: quote.to_vec(),
        collateral: serde_json::from_slice(json).unwrap(),
    }
}

fn bench(c: &mut Criterion) {
    let report: [u8; 1184] = include_bytes!("../tests/vectors/sev/report_milan.bin").to_owned();
    let snp = Evidence::SevSnp(SevSnpEvidence {
        product: SnpProduct::Milan,
        report: Box::new(report),
        vcek_der: include_bytes!("../tests/vectors/sev/vcek_milan.der").to_vec(),
        ask_der: None,
    });
    let snp_data: [u8; 64] = report[0x50..0x90].try_into().unwrap();
    c.bench_function("verify sev-snp (Milan sample)", |b| {
        b.iter(|| verify(&snp, &snp_data, &Policy::default(), 0).unwrap())
    });

    let tdx_quote = include_bytes!("../tests/vectors/dcap/tdx_quote");
    let tdx = Evidence::Tdx(dcap(
        tdx_quote,
        include_bytes!("../tests/vectors/dcap/tdx_quote_collateral.json"),
    ));
    let tdx_data: [u8; 64] = tdx_quote[48 + 520..48 + 584].try_into().unwrap();
    c.bench_function("verify tdx (sample)", |b| {
        b.iter(|| verify(&tdx, &tdx_data, &Policy::default(), SAMPLE_NOW).unwrap())
    });

    let sgx_quote = include_bytes!("../tests/vectors/dcap/sgx_quote");
    let sgx = Evidence::Sgx(dcap(
        sgx_quote,
        include_bytes!("../tests/vectors/dcap/sgx_quote_collateral.json"),
    ));
    let sgx_data: [u8; 64] = sgx_quote[48 + 320..48 + 384].try_into().unwrap();
    let sgx_policy = Policy {
        sgx: DcapPolicy {
            accepted_statuses: vec![DcapTcbStatus::ConfigurationAndSWHardeningNeeded],
            accepted_advisories: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
            ..DcapPolicy::default()
        },
        ..Policy::default()
    };
    c.bench_function("verify sgx (sample)", |b| {
        b.iter(|| verify(&sgx, &sgx_data, &sgx_policy, SAMPLE_NOW).unwrap())
    });

    let tee = InsecureSimulatedTee::new(SigningKey::from_bytes(&[1; 32]));
    let simulated = tee.evidence(&[2; 64], &[3; 48]);
    let devnet = Policy {
        insecure_simulated_root: Some(tee.root()),
        ..Policy::default()
    };
    c.bench_function("verify insecure-simulated", |b| {
        b.iter(|| verify(&simulated, &[2; 64], &devnet, 0).unwrap())
    });

    let encoded = tdx.to_bytes();
    c.bench_function("decode tdx evidence", |b| {
        b.iter(|| Evidence::from_bytes(&encoded).unwrap())
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
