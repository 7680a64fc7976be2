//! A measuring validator's tokens (issue 14, "use ordinary tokens and
//! paths"; docs/measurement.md, "Tokens on probes"): the probes show access
//! tokens and pay egresses exactly as a client's browsing paths do, from an
//! ordinary account at an ordinary issuer ([`ProbeAccount`], the client's
//! [`Account`] and [`Wallet`]), so a relay cannot tell a test from a
//! user's session by its tokens.
//!
//! * **Key consistency** (RFC 9576 §6): the account checks the issuer's
//!   keys against the validator-signed directory the validator follows,
//!   with the client's own code ([`Account::checked_against`]). An issuer
//!   that signed the validator's tokens under a key of their own (shown to
//!   nobody else) would let every relay recognise probes by that key and
//!   serve them faster than users; a key the directory does not list is
//!   therefore refused for the prober as for clients.
//! * **When**: tokens are fetched when the epoch's tests are planned, for
//!   the whole plan at once ([`tokens_for_plan`]), never right before a
//!   test: payment tokens name the egress they pay, so an issuer working
//!   with a relay would otherwise learn when that relay is about to be
//!   tested. The issuer learns only that the validator will test the
//!   relays of the directory some time this epoch, which is public.
//! * **Directly**: the prober reaches the issuer from its own address,
//!   not through relays as clients refill: a validator's address is
//!   public (it is in the directory's validator set), and its account is
//!   known to be a validator's anyway (its larger quota names it). What
//!   must stay hidden is the time of each test, which the fetch does not
//!   carry.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openrelay_client::account::{Account, AccountError};
use openrelay_client::directory::VerifiedDirectorySource;
use openrelay_client::login::{AccountSecret, LoginError, sign_in};
use openrelay_client::relay::Relay;
use openrelay_client::wallet::{Wallet, WalletError};
use openrelay_config::{AccountConfig, ProbeAccountConfig};
use openrelay_issuer_client::client::{IssuerClient, IssuerClientError, Session};
use openrelay_tokens::TokenChallenge;
use openrelay_types::RelayRole;
use openrelay_types::error::{ErrorKind, HasKind};
use openrelay_types::unix_now;
use tracing::info;

/// The prober's wallet's directory inside the validator's state directory.
pub const PROBER_WALLET_DIR: &str = "prober";

/// Partner hops a test's token estimate covers: the compatible relays of
/// the other role the directory weighs most (the test picks among the
/// highest-weighted at test time). Bounds the estimate to
/// `MAX_COVERED_PARTNERS` access or payment pools per test.
pub const MAX_COVERED_PARTNERS: usize = 8;

/// The payment quantum an egress is assumed to charge: the default
/// `[egress.payment] quantum_mib` (256 MiB). An egress with a smaller one
/// is paid what the estimate holds; a test shorter than its grace window
/// (10 s by default) completes either way.
const ASSUMED_QUANTUM_BYTES: u64 = 256 << 20;

/// The most payment tokens one test is given for one egress (a test of
/// 6 s at 10 Gbit/s needs 29 at 256 MiB).
const MAX_PAYMENTS_PER_TEST: usize = 32;

/// Why the prober's account could not be opened or stocked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeAccountError {
    /// The prober's wallet directory.
    #[error("the prober's wallet directory {path}: {source}")]
    WalletDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The wallet.
    #[error("the prober's wallet: {0}")]
    Wallet(#[from] WalletError),
    /// Registering or logging in (boxed: a login's error is large).
    #[error("the prober's account: {0}")]
    Login(Box<LoginError>),
    /// Reaching the issuer, checking its keys, fetching.
    #[error("the prober's tokens: {0}")]
    Account(#[from] AccountError),
}

impl From<LoginError> for ProbeAccountError {
    fn from(error: LoginError) -> Self {
        ProbeAccountError::Login(Box::new(error))
    }
}

impl HasKind for ProbeAccountError {
    fn kind(&self) -> ErrorKind {
        match self {
            ProbeAccountError::WalletDir { .. } => ErrorKind::Local,
            ProbeAccountError::Wallet(e) => e.kind(),
            ProbeAccountError::Login(e) => e.kind(),
            ProbeAccountError::Account(e) => e.kind(),
        }
    }
}

/// One planned test as its tokens see it: the relay tested, the partner
/// hops it may be paired with, and the most its path can carry.
#[derive(Debug, Clone)]
pub struct PlannedTest {
    /// The relay under test.
    pub target: Relay,
    /// Partner hops the test may use ([`partner_candidates`]).
    pub partners: Vec<Relay>,
    /// The most the test carries, bits per second (the target's advertised
    /// bandwidth, clipped as the verdicts clip it).
    pub carried_bps: u64,
}

/// The partner hops a test of `target` may use: relays of the other role,
/// compatible with it (another operator and network), the
/// [`MAX_COVERED_PARTNERS`] the directory weighs most.
pub fn partner_candidates(target: &Relay, relays: &[Relay]) -> Vec<Relay> {
    let partner_role = match target.role {
        RelayRole::Ingress => RelayRole::Egress,
        RelayRole::Egress => RelayRole::Ingress,
    };
    let mut partners: Vec<Relay> = relays
        .iter()
        .filter(|r| r.role == partner_role && r.compatible_with(target))
        .cloned()
        .collect();
    partners.sort_by_key(|p| std::cmp::Reverse(p.bandwidth_bps));
    partners.truncate(MAX_COVERED_PARTNERS);
    partners
}

/// Payment tokens one test carrying `carried_bps` for `test_time` spends
/// at one egress: one when the path opens, one more per quantum carried.
fn payments_per_test(carried_bps: u64, test_time: Duration) -> usize {
    let bytes = u128::from(carried_bps) * test_time.as_millis() / 8_000;
    let quanta = bytes.div_ceil(u128::from(ASSUMED_QUANTUM_BYTES));
    usize::try_from(quanta)
        .unwrap_or(usize::MAX)
        .saturating_add(1)
        .min(MAX_PAYMENTS_PER_TEST)
}

/// The tokens an epoch's `tests` need, pool by pool (before what the
/// wallet holds): each test one access token for its ingress's operator
/// and payment for its egress, whichever partner it gets, i.e. for an
/// egress test an access token for every partner ingress's operator, for
/// an ingress test payment for every partner egress. Generous (each test
/// uses one partner; what is left stays in the wallet for the next epoch,
/// whose fetch is reduced by it) and bounded: at most
/// `MAX_COVERED_PARTNERS × 32` tokens per test.
pub fn tokens_for_plan(
    account: &Account,
    tests: &[PlannedTest],
    test_time: Duration,
) -> Vec<(TokenChallenge, usize)> {
    let mut need: Vec<(TokenChallenge, usize)> = Vec::new();
    let mut add =
        |pool: TokenChallenge, count: usize| match need.iter_mut().find(|(p, _)| *p == pool) {
            Some((_, have)) => *have = have.saturating_add(count),
            None => need.push((pool, count)),
        };
    for test in tests {
        let payments = payments_per_test(test.carried_bps, test_time);
        let (ingresses, egresses): (Vec<&Relay>, Vec<&Relay>) = match test.target.role {
            RelayRole::Ingress => (vec![&test.target], test.partners.iter().collect()),
            RelayRole::Egress => (test.partners.iter().collect(), vec![&test.target]),
        };
        // One access token per operator covers any of its ingresses.
        let mut operators: Vec<TokenChallenge> = Vec::new();
        for challenge in ingresses.iter().filter_map(|i| account.access_challenge(i)) {
            if !operators.contains(&challenge) {
                operators.push(challenge);
            }
        }
        for challenge in operators {
            add(challenge, 1);
        }
        for egress in egresses {
            add(account.payment_challenge(egress), payments);
        }
    }
    need
}

/// A measuring validator's account at its issuer (`[measure.account]`).
#[derive(Debug)]
pub struct ProbeAccount {
    account: Arc<Account>,
    username: String,
    password_file: PathBuf,
}

impl ProbeAccount {
    /// The account of `config`, its wallet in [`PROBER_WALLET_DIR`] under
    /// `state_dir`, the issuer's keys checked against `directory` (the
    /// validator-signed directory the validator follows).
    pub fn open(
        config: &ProbeAccountConfig,
        state_dir: &Path,
        directory: Arc<dyn VerifiedDirectorySource>,
    ) -> Result<Self, ProbeAccountError> {
        let dir = state_dir.join(PROBER_WALLET_DIR);
        create_private_dir(&dir).map_err(|source| ProbeAccountError::WalletDir {
            path: dir.clone(),
            source,
        })?;
        let wallet = Wallet::open(&dir)?;
        let settings = AccountConfig {
            issuer: config.issuer.clone(),
            issuer_name: config.issuer_name.clone(),
            // The client's refill settings: unused, the prober stocks by
            // its plan.
            batch: 1,
            low_water: 0,
            refill_delay_min_secs: 1,
            refill_delay_max_secs: 1,
        };
        Ok(ProbeAccount {
            account: Arc::new(
                Account::new(settings, Arc::new(wallet)).checked_against(Some(directory)),
            ),
            username: config.username.clone(),
            password_file: config.password_file(state_dir),
        })
    }

    /// The account (for [`crate::Prober::start`]).
    pub fn account(&self) -> &Arc<Account> {
        &self.account
    }

    /// What `need` asks beyond what the wallet holds.
    pub fn missing(&self, need: &[(TokenChallenge, usize)]) -> Vec<(TokenChallenge, usize)> {
        let pools: Vec<TokenChallenge> = need.iter().map(|(c, _)| c.clone()).collect();
        let counts = self.account.wallet().counts(&pools);
        need.iter()
            .zip(counts)
            .filter_map(|((pool, want), have)| {
                let short = want.saturating_sub(have);
                (short > 0).then(|| (pool.clone(), short))
            })
            .collect()
    }

    /// Fetches what `need` asks beyond what the wallet holds, directly
    /// from the issuer (see the module documentation), logging in (and
    /// on the very first start registering) as needed, and again when
    /// the issuer forgot the session. Returns the tokens added.
    pub async fn stock(
        &self,
        need: &[(TokenChallenge, usize)],
    ) -> Result<usize, ProbeAccountError> {
        // Tokens under keys the directory no longer lists are dropped
        // first: they would be refused, or single the prober out.
        self.account.enforce_listing();
        let missing = self.missing(need);
        if missing.is_empty() {
            return Ok(0);
        }
        let link = self.account.connect_issuer_directly().await?;
        let fetched = self.fetch(&link.client, &missing).await;
        link.close();
        fetched
    }

    async fn fetch(
        &self,
        client: &IssuerClient,
        missing: &[(TokenChallenge, usize)],
    ) -> Result<usize, ProbeAccountError> {
        let wallet = self.account.wallet();
        let session = match wallet.session(unix_now()) {
            Some(bearer) => Session::from_bearer(bearer),
            None => self.sign_in(client).await?,
        };
        match self.account.fetch(client, &session, missing).await {
            // The issuer no longer knows the session (expired, restarted).
            Err(AccountError::Issuer(IssuerClientError::NotLoggedIn)) => {
                wallet.clear_session()?;
                let session = self.sign_in(client).await?;
                Ok(self.account.fetch(client, &session, missing).await?)
            }
            fetched => Ok(fetched?),
        }
    }

    /// Logs in; on the first start registers the account with a fresh
    /// random password kept in the password file.
    async fn sign_in(&self, client: &IssuerClient) -> Result<Session, ProbeAccountError> {
        let secret = AccountSecret::load_or_create(&self.password_file)?;
        let register = !secret.registered();
        let signed = sign_in(
            &self.account,
            client,
            &self.username,
            secret.password(),
            register,
        )
        .await;
        let session = match signed {
            // An earlier registration with this password landed but its
            // answer was lost: the account is ours if the login works.
            Err(LoginError::Register {
                source: IssuerClientError::Taken,
                ..
            }) => {
                sign_in(
                    &self.account,
                    client,
                    &self.username,
                    secret.password(),
                    false,
                )
                .await?
            }
            signed => signed?,
        };
        if register {
            secret.mark_registered()?;
            info!(username = %self.username, "the prober's account is registered at the issuer");
        }
        Ok(session)
    }
}

/// Creates `dir` (mode 0700 on Unix: it holds the wallet and its key).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_test_pays_one_token_to_open_and_one_per_quantum_bounded() {
        let three = Duration::from_secs(3);
        // 40 Mbit/s for 3 s: 15 MB, within one quantum.
        assert_eq!(payments_per_test(40_000_000, three), 2);
        // 2 Gbit/s for 3 s: 750 MB, three quanta.
        assert_eq!(payments_per_test(2_000_000_000, three), 4);
        assert_eq!(payments_per_test(0, three), 1);
        assert_eq!(
            payments_per_test(u64::MAX, Duration::from_secs(3600)),
            MAX_PAYMENTS_PER_TEST
        );
    }
}
