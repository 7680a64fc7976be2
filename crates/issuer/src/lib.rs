#![doc = include_str!("../README.md")]

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
