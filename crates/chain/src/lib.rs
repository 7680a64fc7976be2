#![doc = include_str!("../README.md")]

pub mod anvil;
pub mod contract;
pub mod follow;
