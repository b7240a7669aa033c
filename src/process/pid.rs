//! Process identifiers.
//!
//! A [`Pid`] names one process for its whole life and is never reused within a
//! run: it is the id of the host the process runs on plus a counter that only
//! rises. It prints and parses as Wippy's text form, `{app:processes|0x0000f}`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::str::FromStr;
use std::sync::Arc;

/// The address of one process: its host's entry id and a per-host counter.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord)]
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

/// Hashes the counter only: pids that are equal have equal counters, and
/// the host (a string) would cost more to hash than the rest of a lookup.
/// Pids of different hosts with the same counter share a hash, which costs
/// a comparison among the few hosts of a node, never a wrong answer.
impl Hash for Pid {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.id);
    }
}

/// A map keyed by pid, hashed with [`PidHasher`].
pub(crate) type PidMap<V> = HashMap<Pid, V, BuildHasherDefault<PidHasher>>;

/// The hasher of [`PidMap`]: one multiply, its high half folded into the
/// low one. Enough for keys the runtime counts out itself (pids are never
/// chosen by a client, so no flooding to guard against, which is what the
/// standard SipHash pays for).
#[derive(Default)]
pub(crate) struct PidHasher(u64);

impl Hasher for PidHasher {
    fn write_u64(&mut self, n: u64) {
        let wide = u128::from(self.0 ^ n) * 0x9e37_79b9_7f4a_7c15;
        self.0 = (wide as u64) ^ ((wide >> 64) as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

impl fmt::Display for Pid {
    /// `{host|0x0000f}`: at least five lower-case hex digits. Put together
    /// on the stack and written at once, without the formatting machinery
    /// a padded `{:05x}` goes through: a pid is written several times for
    /// every connection, mostly by `to_string`, which then sizes its
    /// string once instead of growing it piece by piece.
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
        let (host, hex) = (self.host.as_bytes(), &hex[at..]);
        let mut text = [0u8; 96];
        let len = host.len() + hex.len() + 5;
        if len > text.len() {
            // A host id this long is rare: written piece by piece.
            f.write_str("{")?;
            f.write_str(&self.host)?;
            f.write_str("|0x")?;
            f.write_str(std::str::from_utf8(hex).unwrap_or_default())?;
            return f.write_str("}");
        }
        text[0] = b'{';
        text[1..1 + host.len()].copy_from_slice(host);
        let mut at = 1 + host.len();
        text[at..at + 3].copy_from_slice(b"|0x");
        at += 3;
        text[at..at + hex.len()].copy_from_slice(hex);
        text[len - 1] = b'}';
        // The host's UTF-8 and ASCII around it.
        f.write_str(std::str::from_utf8(&text[..len]).unwrap_or_default())
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
        // Hosts around the length where the text no longer fits the stack
        // buffer, and one that is not ASCII.
        for len in [70, 74, 75, 76, 77, 200] {
            let host = "h".repeat(len);
            for id in [7, u64::MAX] {
                let pid = Pid::new(host.as_str(), id);
                assert_eq!(pid.to_string(), format!("{{{host}|0x{id:05x}}}"));
            }
        }
        assert_eq!(Pid::new("ü:π", 1).to_string(), "{ü:π|0x00001}");
    }

    #[test]
    fn a_pid_map_tells_hosts_apart_when_counters_match() {
        let mut map = PidMap::default();
        for id in 0..1000u64 {
            map.insert(Pid::new("a", id), id);
            map.insert(Pid::new("b", id), id + 1000);
        }
        assert_eq!(map.len(), 2000);
        for id in 0..1000u64 {
            assert_eq!(map.get(&Pid::new("a", id)), Some(&id));
            assert_eq!(map.get(&Pid::new("b", id)), Some(&(id + 1000)));
        }
        assert_eq!(map.get(&Pid::new("c", 1)), None);
        // Counters a shard has in common (id mod 32) still spread out.
        let hashes: Vec<u64> = (0..1000u64)
            .map(|i| {
                let mut h = PidHasher::default();
                Pid::new("a", i * 32 + 5).hash(&mut h);
                h.finish()
            })
            .collect();
        let distinct = |part: fn(u64) -> u64| {
            hashes
                .iter()
                .map(|&h| part(h))
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(
            distinct(|h| h >> 57),
            128,
            "the top 7 bits take every value"
        );
        // 1,000 keys thrown at random into 1,024 buckets fill about 632.
        let buckets = distinct(|h| h % 1024);
        assert!(buckets > 550, "{buckets} buckets of 1024");
    }

    #[test]
    fn malformed_pids_are_rejected() {
        for bad in ["", "{}", "{a|0x}", "{|0x1}", "a|0x1", "{a|1}", "{a|0xzz}"] {
            assert!(bad.parse::<Pid>().is_err(), "{bad:?} parsed");
        }
    }
}
