//! The egress's own ledger (`payment-ledger.redb` in its state directory):
//! the payment tokens it collected and has not yet redeemed at the issuer,
//! and running totals (bytes carried for paying sessions, tokens collected,
//! redeemed and refused at settlement). Tokens are kept until the issuer
//! has answered for them, so a crash or an unreachable issuer loses none.

use std::path::Path;

use openrelay_tokens::{SpendKey, Token};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The ledger's file name in the state directory.
pub const LEDGER_FILE: &str = "payment-ledger.redb";

/// Collected, unsettled tokens: spend key → token bytes (RFC 9577 §2.2.1).
const COLLECTED: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("collected");
/// Totals by name.
const TOTALS: TableDefinition<&str, u64> = TableDefinition::new("totals");

/// Why the ledger failed.
#[derive(Debug, thiserror::Error)]
#[error("payment ledger: {0}")]
pub struct LedgerError(#[from] redb::Error);

impl openrelay_types::HasKind for LedgerError {
    fn kind(&self) -> openrelay_types::ErrorKind {
        openrelay_types::ErrorKind::Storage
    }
}

fn failed(e: impl Into<redb::Error>) -> LedgerError {
    LedgerError(e.into())
}

/// A running total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    /// Payload bytes carried for paying sessions.
    BytesCarried,
    /// Tokens accepted from clients.
    TokensCollected,
    /// Tokens the issuer redeemed for this relay.
    TokensRedeemed,
    /// Tokens the issuer refused at settlement.
    TokensRefused,
    /// Bytes carried that were reported to the issuer at settlement.
    BytesReported,
}

impl Total {
    fn name(self) -> &'static str {
        match self {
            Total::BytesCarried => "bytes_carried",
            Total::TokensCollected => "tokens_collected",
            Total::TokensRedeemed => "tokens_redeemed",
            Total::TokensRefused => "tokens_refused",
            Total::BytesReported => "bytes_reported",
        }
    }
}

/// The ledger.
#[derive(Debug)]
pub struct Ledger {
    db: Database,
}

fn bump(
    totals: &mut redb::Table<'_, &'static str, u64>,
    total: Total,
    by: u64,
) -> Result<(), LedgerError> {
    let now = totals
        .get(total.name())
        .map_err(failed)?
        .map_or(0, |v| v.value());
    totals
        .insert(total.name(), now.saturating_add(by))
        .map_err(failed)?;
    Ok(())
}

impl Ledger {
    /// Opens (or creates) the ledger in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self, LedgerError> {
        std::fs::create_dir_all(state_dir).map_err(failed)?;
        let db = Database::create(state_dir.join(LEDGER_FILE)).map_err(failed)?;
        let write = db.begin_write().map_err(failed)?;
        write.open_table(COLLECTED).map_err(failed)?;
        write.open_table(TOTALS).map_err(failed)?;
        write.commit().map_err(failed)?;
        Ok(Ledger { db })
    }

    /// Keeps a token a client paid with, until it is settled.
    pub fn collect(&self, token: &Token) -> Result<(), LedgerError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut collected = write.open_table(COLLECTED).map_err(failed)?;
            collected
                .insert(&SpendKey::of(token).0, token.encode().as_slice())
                .map_err(failed)?;
            bump(
                &mut write.open_table(TOTALS).map_err(failed)?,
                Total::TokensCollected,
                1,
            )?;
        }
        write.commit().map_err(failed)
    }

    /// Adds `bytes` carried for a paying session.
    pub fn carried(&self, bytes: u64) -> Result<(), LedgerError> {
        let write = self.db.begin_write().map_err(failed)?;
        bump(
            &mut write.open_table(TOTALS).map_err(failed)?,
            Total::BytesCarried,
            bytes,
        )?;
        write.commit().map_err(failed)
    }

    /// Up to `limit` unsettled tokens.
    pub fn unsettled(&self, limit: usize) -> Result<Vec<Token>, LedgerError> {
        let read = self.db.begin_read().map_err(failed)?;
        let collected = read.open_table(COLLECTED).map_err(failed)?;
        let mut tokens = Vec::new();
        for entry in collected.iter().map_err(failed)?.take(limit) {
            let (_, token) = entry.map_err(failed)?;
            // Written by `collect` from a parsed token: it parses again.
            if let Ok(token) = Token::decode(token.value()) {
                tokens.push(token);
            }
        }
        Ok(tokens)
    }

    /// Records the issuer's answer for `tokens`: `redeemed` of them were
    /// redeemed, the rest refused; all leave the unsettled set; `reported`
    /// bytes carried were reported with them.
    pub fn settled(
        &self,
        tokens: &[Token],
        redeemed: u64,
        reported: u64,
    ) -> Result<(), LedgerError> {
        let write = self.db.begin_write().map_err(failed)?;
        {
            let mut collected = write.open_table(COLLECTED).map_err(failed)?;
            for token in tokens {
                collected.remove(&SpendKey::of(token).0).map_err(failed)?;
            }
            let mut totals = write.open_table(TOTALS).map_err(failed)?;
            bump(&mut totals, Total::TokensRedeemed, redeemed)?;
            let refused = u64::try_from(tokens.len())
                .unwrap_or(u64::MAX)
                .saturating_sub(redeemed);
            bump(&mut totals, Total::TokensRefused, refused)?;
            bump(&mut totals, Total::BytesReported, reported)?;
        }
        write.commit().map_err(failed)
    }

    /// A running total.
    pub fn total(&self, total: Total) -> Result<u64, LedgerError> {
        let read = self.db.begin_read().map_err(failed)?;
        let totals = read.open_table(TOTALS).map_err(failed)?;
        Ok(totals
            .get(total.name())
            .map_err(failed)?
            .map_or(0, |v| v.value()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    use openrelay_tokens::testing::unsigned_token as token;

    #[test]
    fn collected_tokens_survive_a_restart_until_settled() {
        let dir = tempfile::tempdir().unwrap();
        {
            let ledger = Ledger::open(dir.path()).unwrap();
            ledger.collect(&token(1)).unwrap();
            ledger.collect(&token(2)).unwrap();
            ledger.collect(&token(2)).unwrap();
            ledger.carried(1000).unwrap();
        }
        let ledger = Ledger::open(dir.path()).unwrap();
        let unsettled = ledger.unsettled(10).unwrap();
        assert_eq!(unsettled.len(), 2);
        ledger.settled(&unsettled[..1], 1, 600).unwrap();
        assert_eq!(ledger.unsettled(10).unwrap(), vec![unsettled[1].clone()]);
        ledger.settled(&unsettled[1..], 0, 0).unwrap();
        assert!(ledger.unsettled(10).unwrap().is_empty());
        assert_eq!(ledger.total(Total::TokensCollected).unwrap(), 3);
        assert_eq!(ledger.total(Total::TokensRedeemed).unwrap(), 1);
        assert_eq!(ledger.total(Total::TokensRefused).unwrap(), 1);
        assert_eq!(ledger.total(Total::BytesCarried).unwrap(), 1000);
        assert_eq!(ledger.total(Total::BytesReported).unwrap(), 600);
    }
}
