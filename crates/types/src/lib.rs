#![doc = include_str!("../README.md")]

pub mod clock;
pub mod error;
mod pin;
mod role;

pub use clock::{unix_now, unix_now_millis};
pub use error::{ErrorKind, HasKind};
pub use pin::{KeyPin, KeyPinError};
pub use role::RelayRole;
