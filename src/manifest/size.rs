//! Byte sizes in manifests: an integer (bytes) or a string with a unit,
//! `"64KiB"`, `"1MiB"`, `"1MB"`, `"512B"`.

use serde::{Deserialize, Deserializer};

/// A size in bytes read from a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub usize);

/// Parses `"1MiB"`-style sizes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let expected = || format!("expected a size like 65536, \"64KiB\" or \"1MiB\", found {s:?}");
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| expected())?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1024,
        "MB" => 1_000_000,
        "MiB" => 1024 * 1024,
        "GB" => 1_000_000_000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return Err(expected()),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(ByteSize(n as usize)),
            Raw::S(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_parse() {
        assert_eq!(super::parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(super::parse_size("64KiB").unwrap(), 65536);
        assert_eq!(super::parse_size("512").unwrap(), 512);
        assert!(super::parse_size("1 parsec").is_err());
        assert!(super::parse_size("MiB").is_err());
    }
}
