//! Durations in manifests are strings: rippy's `"10ms"`, `"2.5s"`, `"1m"`,
//! `"1h"`, `"1d"`, and Go's `time.ParseDuration` syntax as Wippy writes them:
//! a sequence of numbers with units (`"1h30m"`, `"2h45m10s"`, `"1.5s"`).
//! Units: `ns`, `us` (`µs`, `μs`), `ms`, `s`, `m`, `h`, `d`. `"0"` is zero, as
//! in Go; any other bare number is an error, so a missing unit never silently
//! means seconds (or milliseconds). Negative durations are errors.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// A duration read from a manifest string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ManifestDuration(pub Duration);

impl ManifestDuration {
    /// The duration.
    pub fn get(self) -> Duration {
        self.0
    }
}

/// Parses `"10ms"`- and `"1h30m"`-style durations.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let expected =
        || format!("expected a duration like \"10ms\", \"2.5s\", \"1h30m\" or \"1h\", found {s:?}");
    let t = s.trim();
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(expected());
    }
    let mut rest = t;
    let mut secs = 0.0f64;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(expected)?;
        let (num, tail) = rest.split_at(split);
        if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
            return Err(expected());
        }
        let value: f64 = num.parse().map_err(|_| expected())?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let secs_per_unit = match unit {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            _ => return Err(expected()),
        };
        secs += value * secs_per_unit;
        rest = next;
    }
    if !secs.is_finite() || secs > 1e10 {
        return Err(format!("duration {s:?} is too large"));
    }
    Ok(Duration::from_secs_f64(secs))
}

impl<'de> Deserialize<'de> for ManifestDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ManifestDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string like \"10ms\", \"1h30m\" or \"1h\"")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Self::Value, E> {
                parse_duration(s).map(ManifestDuration).map_err(E::custom)
            }
            // Go's "0" needs no unit; YAML reads an unquoted 0 as a number.
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                match n {
                    0 => Ok(ManifestDuration(Duration::ZERO)),
                    n => Err(E::custom(format!(
                        "expected a duration string like \"{n}s\" or \"{n}ms\", found number {n}"
                    ))),
                }
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                match u64::try_from(n) {
                    Ok(n) => self.visit_u64(n),
                    Err(_) => Err(E::custom(format!(
                        "expected a non-negative duration string, found number {n}"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for ManifestDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_parse() {
        assert_eq!(parse_duration("10ms").unwrap(), Duration::from_millis(10));
        assert_eq!(parse_duration("2.5s").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("300s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
    }

    #[test]
    fn go_durations_parse() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert_eq!(parse_duration("300ms").unwrap(), Duration::from_millis(300));
        assert_eq!(
            parse_duration("2h45m10s").unwrap(),
            Duration::from_secs(2 * 3600 + 45 * 60 + 10)
        );
        assert_eq!(parse_duration("1us").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration("1µs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration("1μs").unwrap(), Duration::from_micros(1));
        assert_eq!(parse_duration("10ns").unwrap(), Duration::from_nanos(10));
        assert_eq!(
            parse_duration("1m0.5s").unwrap(),
            Duration::from_millis(60_500)
        );
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
    }

    #[test]
    fn bad_durations_are_rejected() {
        for bad in [
            "", "10", "ms", "1.s", ".5s", "-1s", "10 ms", "1y", "1e400s", "1e3s", "1h30", "h1",
            "1h 30m", "1hm", "00",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn an_unquoted_zero_is_zero_and_other_numbers_are_rejected() {
        let zero: ManifestDuration = serde_yaml::from_str("0").unwrap();
        assert_eq!(zero.get(), Duration::ZERO);
        assert!(serde_yaml::from_str::<ManifestDuration>("10").is_err());
        assert!(serde_yaml::from_str::<ManifestDuration>("-1").is_err());
    }
}
