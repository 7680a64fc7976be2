//! `[log]`: logging settings shared by every process.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Logging settings shared by every process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter directive, e.g. `info` or `openrelay_egress=debug`.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// Append logs to this file instead of standard error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

fn default_log_level() -> String {
    "info".to_owned()
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_log_level(),
            file: None,
        }
    }
}
