//! `openrelay issuer`: accounts and access tokens.
//!
//! - Accounts are OPAQUE (RFC 9807) registrations: the issuer stores a
//!   password file from which the password cannot be read, and a login proves
//!   knowledge of the password without sending it. No email, no other data.
//!   Both sides bind the exchange to openrelay ([`OPAQUE_CONTEXT`]) and to
//!   the account name and the issuer's name ([`opaque_identifiers`]).
//! - A registration costs a proof of work ([`puzzle`]); logins are slowed
//!   per account and per address, and pending logins bounded per address and
//!   in total ([`logins`], [`limiter`]).
//! - A login yields a session key on both sides; the client derives a bearer
//!   credential from it ([`session_bearer`]) that authorises token requests
//!   for a short while.
//! - Tokens are Privacy Pass publicly verifiable tokens (RFC 9578 §6, type
//!   0x0002), at most `tokens_per_period` per account and period (429 above).
//!   The issuer signs blinded messages: it cannot tell which token it issued
//!   when a relay later sees it.
//! - Token keys rotate ([`keys::KeyRing`]); the public keys are served in the
//!   issuer directory (RFC 9578 §4), which relays fetch and follow
//!   ([`keyfeed`]), and written to `issuer-directory.json` for relays that
//!   read a local copy.
//! - Key consistency (RFC 9576 §6, [`consistency`]): with `[publish]` and
//!   `[directory]` the issuer publishes its keys, signed by its identity key,
//!   to the registry and every validator ([`publish`]), signs tokens only
//!   with keys the validator-signed directory lists for it, and hands
//!   clients that ask a copy of that directory (`GET /v1/directory`).
//!   Clients and relays that follow the directory accept only listed keys.
//! - Relays settle collected payment tokens for their operator; only relays
//!   listed for that operator may ([`relays`]: the validator-signed
//!   directory, or a configured list), and only they may read its ledger.
//!
//! [`service`] is the HTTP/3 server (on `transport::server`). What both
//! sides share (the OPAQUE suite and context, the paths, the registration
//! puzzle's format, key consistency) and the client API a wallet and the
//! relays use are in `openrelay-issuer-client`, which clients link without
//! this crate.
//!
//! [`OPAQUE_CONTEXT`]: openrelay_issuer_client::OPAQUE_CONTEXT
//! [`opaque_identifiers`]: openrelay_issuer_client::opaque_identifiers
//! [`puzzle`]: openrelay_issuer_client::puzzle
//! [`session_bearer`]: openrelay_issuer_client::session_bearer
//! [`keyfeed`]: openrelay_issuer_client::keyfeed
//! [`consistency`]: openrelay_issuer_client::consistency

pub mod keys;
pub mod limiter;
pub mod logins;
pub mod publish;
pub mod relays;
pub mod service;
pub mod sessions;
mod store;
#[cfg(feature = "testing")]
pub mod testing;

pub use service::{IssuerService, ServiceError};
