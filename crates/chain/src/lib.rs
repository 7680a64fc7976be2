#![doc = include_str!("../README.md")]

pub mod anvil;
pub mod contract;
pub mod deploy;
pub mod follow;
pub mod measure;
pub mod operator;
pub mod release;
pub mod rpc;
