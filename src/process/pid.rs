//! Process identifiers.
//!
//! A [`Pid`] names one process for its whole life and is never reused within a
//! run: it is the id of the host the process runs on plus a counter that only
//! rises. It prints and parses as Wippy's text form, `{app:processes|0x0000f}`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// The address of one process: its host's entry id and a per-host counter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pid {
    host: Arc<str>,
    id: u64,
}

impl Pid {
    /// A pid on `host` with the given counter value.
    pub fn new(host: impl Into<Arc<str>>, id: u64) -> Self {
        Pid {
            host: host.into(),
            id,
        }
    }

    /// The id of the host (a `process.host` or `http.service` entry).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The counter part of the pid.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl fmt::Display for Pid {
    /// `{host|0x0000f}`: at least five lower-case hex digits. Written piece
    /// by piece, without the formatting machinery a padded `{:05x}` goes
    /// through (a pid is written several times for every connection).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [b'0'; 16];
        let mut at = hex.len();
        let mut n = self.id;
        while n > 0 || hex.len() - at < 5 {
            at -= 1;
            hex[at] = DIGITS[(n & 15) as usize];
            n >>= 4;
        }
        f.write_str("{")?;
        f.write_str(&self.host)?;
        f.write_str("|0x")?;
        // ASCII digits only.
        f.write_str(std::str::from_utf8(&hex[at..]).unwrap_or_default())?;
        f.write_str("}")
    }
}

impl fmt::Debug for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not a pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidParseError(pub String);

impl fmt::Display for PidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid pid {:?}: expected {{host|0xHEX}}, e.g. {{app:processes|0x0000f}}",
            self.0
        )
    }
}

impl std::error::Error for PidParseError {}

impl FromStr for Pid {
    type Err = PidParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PidParseError(s.chars().take(64).collect());
        let inner = s
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix('}'))
            .ok_or_else(err)?;
        let (host, hex) = inner.rsplit_once('|').ok_or_else(err)?;
        let hex = hex.strip_prefix("0x").ok_or_else(err)?;
        if host.is_empty() || hex.is_empty() || hex.len() > 16 {
            return Err(err());
        }
        let id = u64::from_str_radix(hex, 16).map_err(|_| err())?;
        Ok(Pid::new(host, id))
    }
}

impl serde::Serialize for Pid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Pid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_prints_and_parses_in_wippy_form() {
        let pid = Pid::new("app:processes", 15);
        assert_eq!(pid.to_string(), "{app:processes|0x0000f}");
        assert_eq!("{app:processes|0x0000f}".parse::<Pid>().unwrap(), pid);
        for id in [0, 1, 0xfffff, 0x100000, 0xdead_beef, u64::MAX] {
            let pid = Pid::new("h", id);
            assert_eq!(pid.to_string(), format!("{{h|0x{id:05x}}}"));
            assert_eq!(pid.to_string().parse::<Pid>().unwrap(), pid);
        }
    }

    #[test]
    fn malformed_pids_are_rejected() {
        for bad in ["", "{}", "{a|0x}", "{|0x1}", "a|0x1", "{a|1}", "{a|0xzz}"] {
            assert!(bad.parse::<Pid>().is_err(), "{bad:?} parsed");
        }
    }
}
