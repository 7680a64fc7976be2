#![doc = include_str!("../README.md")]

pub mod clock;
mod pin;
mod role;

pub use clock::unix_now;
pub use pin::{KeyPin, KeyPinError};
pub use role::RelayRole;
