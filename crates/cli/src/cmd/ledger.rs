//! `openrelay ledger --config egress.toml`: the operator's ledger at the
//! issuer, and the relay's own totals (readable only while the relay is
//! stopped: it holds its ledger file open).
//!
//! The issuer answers only a request signed by one of the operator's relays
//! (`openrelay_tokens::settlement::LedgerRequest`): this relay signs it with
//! its key, for the issuer its payment tokens name, with a fresh nonce.

use std::path::PathBuf;

use anyhow::Context;
use openrelay_config::{EgressRelayConfig, RelayCommon, RelayConfig};
use openrelay_egress::ledger::{Ledger, Total};
use openrelay_tokens::settlement::{LEDGER_READ_SIGNATURE_PREFIX, LedgerRequest, signed_message};
use openrelay_transport::identity::Identity;

use crate::process::runtime;

/// The name the issuer credits this relay's settlements to: its operator's
/// key when it publishes to a registry (the issuer then checks the relay
/// against the validator-signed directory, where operators are keys), else
/// its configured `operator` name.
pub(crate) fn settlement_operator(config: &RelayCommon) -> anyhow::Result<String> {
    match &config.publish {
        Some(publish) => Ok(
            openrelay_registry::keyfile::operator_key(&publish.operator_key_file)?
                .id()
                .to_string(),
        ),
        None => Ok(config.operator.clone()),
    }
}

/// Flags of `openrelay ledger`.
#[derive(Debug, clap::Args)]
pub(crate) struct LedgerArgs {
    /// The egress relay's config file (its `[egress.payment]` names the
    /// issuer it settles at).
    #[arg(long)]
    config: PathBuf,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Load config, ask the issuer, print.
pub(crate) fn run(args: LedgerArgs) -> anyhow::Result<()> {
    let RelayConfig::Egress(config) = RelayConfig::load(&args.config)? else {
        anyhow::bail!("an ingress relay takes no payments: give an egress relay's config");
    };
    runtime(Some(1))?.block_on(show(&config, args.json))
}

async fn show(config: &EgressRelayConfig, json: bool) -> anyhow::Result<()> {
    let payment = config
        .role
        .payment
        .as_ref()
        .context("this relay takes no payments (no [egress.payment] section)")?;
    let config = &config.common;
    let issuer = payment
        .settle_at
        .as_ref()
        .context("[egress.payment] has no settle_at: this relay settles nowhere")?;
    let identity = Identity::load_or_create(&config.state_dir)?;
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
        .map_err(|_| anyhow::anyhow!("no randomness"))?;
    let body = LedgerRequest {
        signer: *identity.pin().as_bytes(),
        issuer: payment.tokens.issuer_name.clone(),
        operator: settlement_operator(config)?,
        issued_at: openrelay_types::unix_now(),
        nonce,
    }
    .encode()
    .context("the operator name is longer than 255 bytes")?;
    let signature = identity.sign(&signed_message(LEDGER_READ_SIGNATURE_PREFIX, &body))?;
    let issuer_client =
        openrelay_issuer_client::client::IssuerClient::connect(issuer.addr, issuer.key).await?;
    let at_issuer = issuer_client.operator_ledger(body, &signature).await?;
    let local = Ledger::open(&config.state_dir).ok().map(|ledger| {
        [
            Total::BytesCarried,
            Total::TokensCollected,
            Total::TokensRedeemed,
            Total::TokensRefused,
        ]
        .map(|t| ledger.total(t).unwrap_or(0))
    });
    if json {
        let local = local.map(|[carried, collected, redeemed, refused]| {
            serde_json::json!({
                "bytes_carried": carried,
                "tokens_collected": collected,
                "tokens_redeemed": redeemed,
                "tokens_refused": refused,
            })
        });
        println!(
            "{}",
            serde_json::json!({ "issuer": at_issuer, "relay": local })
        );
        return Ok(());
    }
    println!(
        "operator {}: {} tokens redeemed, {} bytes reported in {} settlements",
        at_issuer.operator,
        at_issuer.tokens_redeemed,
        at_issuer.bytes_reported,
        at_issuer.settlements
    );
    match local {
        Some([carried, collected, redeemed, refused]) => println!(
            "this relay: {carried} bytes carried, {collected} tokens collected, {redeemed} redeemed, {refused} refused"
        ),
        None => println!("this relay: its ledger is in use (the relay is running)"),
    }
    Ok(())
}
