//! The `lifecycle` block shared by entries that start and stop.

use std::time::Duration;

use serde::Deserialize;

use super::ManifestDuration;

fn yes() -> bool {
    true
}

/// `lifecycle: { auto_start, depends_on, restart }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Start at boot (default true).
    #[serde(default = "yes")]
    pub auto_start: bool,
    /// Entries that must boot first, beyond the ones this entry references.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Restart policy (`process.service` only).
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Lifecycle {
            auto_start: true,
            depends_on: Vec::new(),
            restart: None,
        }
    }
}

/// How a service is restarted after a failure (error, panic, kill).
///
/// The n-th restart within `window` waits `initial_delay * backoff^(n-1)`,
/// capped at `max_delay`; past `max_restarts` restarts within `window` the
/// service gives up.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// The delay before the first restart.
    pub initial_delay: ManifestDuration,
    /// The longest delay between restarts.
    pub max_delay: ManifestDuration,
    /// The factor the delay grows by per restart.
    pub backoff: f64,
    /// Restarts allowed per window before the service gives up.
    pub max_restarts: u32,
    /// The window `max_restarts` counts in.
    pub window: ManifestDuration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_delay: ManifestDuration(Duration::from_millis(100)),
            max_delay: ManifestDuration(Duration::from_secs(10)),
            backoff: 2.0,
            max_restarts: 10,
            window: ManifestDuration(Duration::from_secs(60)),
        }
    }
}

impl RestartPolicy {
    /// The delay before the `n`-th restart in the current window (n >= 1).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = self
            .backoff
            .max(1.0)
            .powi(n.saturating_sub(1).min(64) as i32);
        let secs = self.initial_delay.0.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_delay.0.as_secs_f64()))
    }
}
