//! Reproducible release builds of openrelay (issue 15, docs/releases.md).
//!
//! - [`inputs`]: what a build reads: every source file of the checkout with
//!   its SHA-256, `Cargo.lock` among them, and the pinned toolchain.
//! - [`build`]: `cargo build --release --locked` in a clean environment
//!   (fixed `SOURCE_DATE_EPOCH`, paths remapped, no `HOME`), so the binary is
//!   bit-identical across checkouts, users and times.
//! - [`manifest`]: the release manifest, a DSSE envelope ([`dsse`]) holding
//!   an in-toto Statement v1 with a SLSA Provenance v1 predicate, signed by
//!   release keys; its [`ReleaseId`] is what validators vote on.
//! - [`verify`](mod@verify): rebuild from a checkout and say exactly what
//!   differs (inputs first, then the binary's ELF sections).
//! - [`measurement`]: what a TEE reports for a release's executable.
//!
//! I/O (files, `git`, `cargo`) happens only in [`inputs::collect`],
//! [`build::build`] and [`verify::verify`]; the rest works on bytes.

pub mod build;
pub mod dsse;
pub mod elf;
#[cfg(feature = "testing")]
pub mod fixture;
pub mod inputs;
pub mod manifest;
pub mod measurement;
pub mod verify;

pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use manifest::{Manifest, ManifestError, ReleaseId};
pub use verify::{Report, verify};
