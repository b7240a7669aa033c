//! The `lifecycle` block shared by entries that start and stop.
//!
//! Both rippy's and Wippy's keys are accepted: `requires` is merged with
//! `depends_on`; `restart.backoff_factor` is `backoff`; `restart.max_attempts`
//! (0 = forever) stands in for `max_restarts`. `auto_start` defaults to false,
//! as in Wippy.

use std::time::Duration;

use serde::Deserialize;

use super::FieldError;
use super::ManifestDuration;

/// `lifecycle: { auto_start, depends_on, requires, startup, start_timeout,
/// stop_timeout, stable_threshold, restart }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lifecycle {
    /// Start at boot (default false, as in Wippy; `process.service` only).
    #[serde(default)]
    pub auto_start: bool,
    /// Entries that must boot first, beyond the ones this entry references.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Wippy's name for `depends_on`; both lists are merged.
    #[serde(default)]
    pub requires: Vec<String>,
    /// Whether a failure to boot or start this entry fails boot.
    #[serde(default)]
    pub startup: Startup,
    /// Accepted and validated; rippy's start is a synchronous spawn, so
    /// nothing waits on it (see the README's Wippy table).
    #[serde(default)]
    pub start_timeout: Option<ManifestDuration>,
    /// How long shutdown waits for this service before killing it (bounded
    /// by the global grace).
    #[serde(default)]
    pub stop_timeout: Option<ManifestDuration>,
    /// A child that ran this long before failing clears the restart history.
    #[serde(default)]
    pub stable_threshold: Option<ManifestDuration>,
    /// Restart policy (`process.service` only).
    #[serde(default)]
    pub restart: Option<RestartPolicy>,
}

impl Lifecycle {
    /// `depends_on` then `requires`, each with its field path.
    pub fn dependencies(&self) -> impl Iterator<Item = (String, &str)> {
        self.depends_on
            .iter()
            .enumerate()
            .map(|(i, id)| (format!("lifecycle.depends_on[{i}]"), id.as_str()))
            .chain(
                self.requires
                    .iter()
                    .enumerate()
                    .map(|(i, id)| (format!("lifecycle.requires[{i}]"), id.as_str())),
            )
    }

    /// Load-time checks of the block: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (field, d) in [
            ("lifecycle.start_timeout", self.start_timeout),
            ("lifecycle.stop_timeout", self.stop_timeout),
        ] {
            if d.is_some_and(|d| d.get().is_zero()) {
                errors.push(FieldError::at(
                    field,
                    "expected a positive duration, found 0",
                ));
            }
        }
        if let Some(r) = &self.restart {
            errors.extend(r.check());
        }
        errors
    }
}

/// `startup: required | optional`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Startup {
    /// A failure to boot or start fails boot (the default).
    #[default]
    Required,
    /// A failure is logged and boot goes on without the entry.
    Optional,
}

/// How a service is restarted after a failure (error, panic, kill).
///
/// The n-th restart within `window` waits `initial_delay * backoff^(n-1)`,
/// capped at `max_delay`, then spread by `jitter` (a fraction: each delay is
/// multiplied by a random factor in `[1 - jitter, 1 + jitter]`). Past the
/// restart limit within `window` the service gives up: `max_attempts` if
/// given (0 = never give up), else `max_restarts`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartPolicy {
    /// The delay before the first restart.
    pub initial_delay: ManifestDuration,
    /// The longest delay between restarts.
    pub max_delay: ManifestDuration,
    /// The factor the delay grows by per restart (Wippy: `backoff_factor`).
    #[serde(alias = "backoff_factor")]
    pub backoff: f64,
    /// Restarts allowed per window before the service gives up.
    pub max_restarts: u32,
    /// Wippy's limit; 0 means restart forever. Overrides `max_restarts`.
    pub max_attempts: Option<u32>,
    /// Each delay is multiplied by a random factor in `[1 - jitter, 1 + jitter]`.
    pub jitter: f64,
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
            max_attempts: None,
            jitter: 0.0,
            window: ManifestDuration(Duration::from_secs(60)),
        }
    }
}

impl RestartPolicy {
    /// The delay before the `n`-th restart in the current window (n >= 1),
    /// before jitter.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = self
            .backoff
            .max(1.0)
            .powi(n.saturating_sub(1).min(64) as i32);
        let secs = self.initial_delay.0.as_secs_f64() * factor;
        Duration::from_secs_f64(secs.min(self.max_delay.0.as_secs_f64()))
    }

    /// [`RestartPolicy::delay`] spread by `jitter`; `random` is in `[0, 1)`.
    pub fn jittered_delay(&self, n: u32, random: f64) -> Duration {
        let base = self.delay(n);
        let jitter = self.jitter.clamp(0.0, 1.0);
        base.mul_f64(1.0 + jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0))
    }

    /// How many restarts within `window` are allowed; `None` is unlimited.
    pub fn limit(&self) -> Option<u32> {
        match self.max_attempts {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(self.max_restarts),
        }
    }

    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.backoff < 1.0 || !self.backoff.is_finite() {
            errors.push(FieldError::at(
                "lifecycle.restart.backoff",
                format!("expected a factor of at least 1.0, found {}", self.backoff),
            ));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            errors.push(FieldError::at(
                "lifecycle.restart.jitter",
                format!("expected a fraction from 0 to 1, found {}", self.jitter),
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_keeps_each_delay_within_its_fraction() {
        let policy = RestartPolicy {
            initial_delay: ManifestDuration(Duration::from_secs(1)),
            jitter: 0.1,
            ..RestartPolicy::default()
        };
        for i in 0..=100 {
            let d = policy.jittered_delay(1, i as f64 / 100.0);
            assert!(
                d >= Duration::from_millis(900) && d <= Duration::from_millis(1100),
                "{d:?}"
            );
        }
        assert_eq!(policy.jittered_delay(1, 0.0), Duration::from_millis(900));
    }

    #[test]
    fn max_attempts_zero_is_unlimited_and_overrides_max_restarts() {
        let forever = RestartPolicy {
            max_attempts: Some(0),
            ..RestartPolicy::default()
        };
        assert_eq!(forever.limit(), None);
        let three = RestartPolicy {
            max_attempts: Some(3),
            ..RestartPolicy::default()
        };
        assert_eq!(three.limit(), Some(3));
        assert_eq!(RestartPolicy::default().limit(), Some(10));
    }

    #[test]
    fn wippy_keys_decode_beside_rippy_keys() {
        let l: Lifecycle = serde_yaml::from_str(
            "requires: [a:b]\ndepends_on: [a:c]\nstartup: optional\nstop_timeout: 2s\n\
             restart: { backoff_factor: 3.0, max_attempts: 0, jitter: 0.2 }",
        )
        .unwrap();
        assert!(!l.auto_start);
        assert_eq!(l.startup, Startup::Optional);
        let deps: Vec<_> = l.dependencies().collect();
        assert_eq!(deps[0], ("lifecycle.depends_on[0]".to_owned(), "a:c"));
        assert_eq!(deps[1], ("lifecycle.requires[0]".to_owned(), "a:b"));
        let r = l.restart.unwrap();
        assert_eq!(r.backoff, 3.0);
        assert_eq!(r.limit(), None);
        assert!(
            serde_yaml::from_str::<RestartPolicy>("{ backoff: 2.0, backoff_factor: 2.0 }").is_err()
        );
    }
}
