#![doc = include_str!("../README.md")]

mod call;
pub mod follow;
pub mod measurements;
pub mod paths;

pub use call::{CallError, RegistryClient};
