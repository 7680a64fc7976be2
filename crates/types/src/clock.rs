//! The one place openrelay reads the wall clock for Unix time: signatures,
//! directories, tokens and puzzles all carry Unix seconds, and every process
//! takes "now" from here (pure code takes `now` as an argument instead).

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch (0 if the clock is set before it).
#[allow(clippy::disallowed_methods)] // The one place (clippy.toml).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Nanoseconds since the Unix epoch, truncated to 64 bits (1 if the clock is
/// set before it): a seed for spreading retries, not a time to compare.
#[allow(clippy::disallowed_methods)] // The one place (clippy.toml).
pub fn unix_nanos_seed() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
}

/// Milliseconds since the Unix epoch (0 if the clock is set before it):
/// for schedules finer than a second (measurement tests in an epoch).
#[allow(clippy::disallowed_methods)] // The one place (clippy.toml).
pub fn unix_now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
