//! Small helpers shared across areas.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Unix time in seconds.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// The address one client is counted by: an IPv4 address as is (an
/// IPv4-mapped IPv6 one as its IPv4), an IPv6 address as its /64, the
/// block one subscriber gets (rotating addresses inside it is free).
pub fn client_net(addr: std::net::IpAddr) -> std::net::IpAddr {
    match addr.to_canonical() {
        std::net::IpAddr::V6(v6) => {
            std::net::IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into())
        }
        v4 => v4,
    }
}

/// Appends `ip` as `Display` writes it; an IPv4 address without the
/// formatter, which pads through a buffer (some 1,500 instructions).
pub fn put_ip(out: &mut impl bytes::BufMut, ip: std::net::IpAddr) {
    let std::net::IpAddr::V4(v4) = ip else {
        out.put_slice(ip.to_string().as_bytes());
        return;
    };
    // Written here first, then put in one go (a put a byte checks room
    // each time).
    let mut text = [0; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        let digits = [octet / 100, octet / 10 % 10, octet % 10].map(|d| b'0' + d);
        let skip = match octet {
            100.. => 0,
            10.. => 1,
            _ => 2,
        };
        text[len..len + 3 - skip].copy_from_slice(&digits[skip..]);
        len += 3 - skip;
    }
    out.put_slice(&text[..len]);
}

/// `ip` as text (see [`put_ip`]).
pub fn ip_string(ip: std::net::IpAddr) -> String {
    let mut out = Vec::with_capacity(15);
    put_ip(&mut out, ip);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod ip_tests {
    #[test]
    fn addresses_are_written_as_display_writes_them() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.99.100.9",
            "::1",
            "2001:db8::8a2e:370:7334",
            "::ffff:10.0.0.1",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(super::ip_string(ip), ip.to_string());
            let mut out = bytes::BytesMut::new();
            super::put_ip(&mut out, ip);
            assert_eq!(&out[..], ip.to_string().as_bytes());
        }
    }
}

/// Runs `f` on this thread's reusable `T` in `key`: taken out for the call
/// and put back after, so a call that comes back here meanwhile (a log line
/// logged while another is written) gets an empty one of its own, and a
/// thread whose thread-locals are gone gets a fresh one each time.
pub fn with_scratch<T: Default, R>(
    key: &'static std::thread::LocalKey<std::cell::Cell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    let mut scratch = key.try_with(std::cell::Cell::take).unwrap_or_default();
    let result = f(&mut scratch);
    let _ = key.try_with(|cell| cell.set(scratch));
    result
}

/// A JSON object of `entries`, each value moved in: `json!` copies every
/// value it is given (it goes through `to_value`).
pub fn json_object<const N: usize>(entries: [(&str, serde_json::Value); N]) -> serde_json::Value {
    serde_json::Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    )
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Into bytes sized up front: `String::push` encodes each char as UTF-8,
    // with a branch and a capacity check per digit.
    let mut out = vec![0u8; bytes.len() * 2];
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes lower- or upper-case hex; `None` on any other character or an odd length.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0; s.len() / 2];
    unhex_into(s.as_bytes(), &mut out)?;
    Some(out)
}

/// Decodes the hex digits `hex` (either case) into `out`, which must be
/// exactly half as long; `None` if it is not, or on a non-hex character.
pub fn unhex_into(hex: &[u8], out: &mut [u8]) -> Option<()> {
    if hex.len() != out.len() * 2 {
        return None;
    }
    // Looked up in a table, with no early exit: a token's digits are
    // decoded in a time that does not depend on them.
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (high, low) = (NIBBLES[usize::from(pair[0])], NIBBLES[usize::from(pair[1])]);
        bad |= high | low;
        *o = high << 4 | (low & 15);
    }
    (bad & NOT_HEX == 0).then_some(())
}

/// What a byte is worth as a hex digit, or [`NOT_HEX`].
const NIBBLES: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Marks a byte that is no hex digit: a bit no digit's value has.
const NOT_HEX: u8 = 0x10;

/// SHA-256 of `data`, as hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    #[test]
    fn scratch_is_reused_and_a_call_that_comes_back_gets_its_own() {
        thread_local! {
            static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
        }
        super::with_scratch(&SCRATCH, |outer| {
            outer.extend_from_slice(b"outer");
            super::with_scratch(&SCRATCH, |inner| {
                assert!(inner.is_empty(), "the outer call's buffer is out");
                inner.extend_from_slice(b"inner");
            });
            assert_eq!(outer, b"outer");
        });
        // The outer call put its buffer back last.
        super::with_scratch(&SCRATCH, |again| assert_eq!(again, b"outer"));
    }

    #[test]
    fn hex_round_trips() {
        let data = [0u8, 1, 0xab, 0xff];
        assert_eq!(super::hex(&data), "0001abff");
        assert_eq!(super::unhex("0001ABff").unwrap(), data);
        assert!(super::unhex("abc").is_none());
        assert!(super::unhex("zz").is_none());
        let mut two = [0u8; 2];
        assert_eq!(super::unhex_into(b"ABff", &mut two), Some(()));
        assert_eq!(two, [0xab, 0xff]);
        assert!(super::unhex_into(b"abc", &mut two).is_none());
        assert!(super::unhex_into(b"abcdef", &mut two).is_none());
        assert!(super::unhex_into(b"abzz", &mut two).is_none());
    }

    #[test]
    fn every_byte_value_decodes_only_when_it_is_a_hex_digit() {
        let all: Vec<u8> = (0..=255).collect();
        let every = super::hex(&all);
        assert_eq!(super::unhex(&every).unwrap(), all);
        assert_eq!(super::unhex(&every.to_uppercase()).unwrap(), all);
        for b in 0..=255u8 {
            let digit = b.is_ascii_hexdigit();
            let mut one = [0u8; 1];
            assert_eq!(
                super::unhex_into(&[b, b'7'], &mut one).is_some(),
                digit,
                "{b}"
            );
            assert_eq!(
                super::unhex_into(&[b'7', b], &mut one).is_some(),
                digit,
                "{b}"
            );
        }
    }
}

/// Writes `data` to a new file readable only by its owner (mode 0600),
/// creating the parent directory. Fails if the file exists.
///
/// Atomic: the data goes to a temporary file in the same directory, is
/// flushed to disk, and is then linked under `path` (which, unlike a rename,
/// fails if `path` exists), and the directory is flushed. A crash at any
/// point leaves either no file or the whole file, never an empty or partial
/// one; at worst a stray `.name.tmp-*` file.
pub fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            dir
        }
        None => std::path::Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        match std::fs::hard_link(&tmp, path) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                // A file system without hard links: a rename that refuses
                // to replace does the same job.
                rename_no_replace(&tmp, path).map_err(|_| e)
            }
            linked => linked,
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    written?;
    std::fs::File::open(dir)?.sync_all()
}

/// `rename(2)` that fails with `AlreadyExists` instead of replacing `to`.
fn rename_no_replace(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::other("a path with a NUL byte"))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on bad input.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = B64.iter().position(|&b| b == c)? as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// Decodes unpadded base64url (as in JWTs).
pub fn base64url_decode(s: &str) -> Option<Vec<u8>> {
    if s.contains(['+', '/', '=']) {
        return None;
    }
    base64_decode(&s.replace('-', "+").replace('_', "/"))
}

#[cfg(test)]
mod base64_tests {
    #[test]
    fn base64_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"\x00\xff\x10"] {
            let enc = super::base64_encode(data);
            assert_eq!(super::base64_decode(&enc).unwrap(), data);
        }
        assert_eq!(super::base64_encode(b"foo"), "Zm9v");
        assert_eq!(super::base64_encode(b"fo"), "Zm8=");
    }
}

/// Compares two secrets (or their digests) in constant time: the time
/// depends on the length only, never on where they differ. Eight bytes at
/// a time (subtle's byte slices take a barrier per byte, a tenth of a JWT
/// route's token check); `black_box` keeps the compiler from ending the
/// loop early, and subtle makes the last comparison.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    if a.len() != b.len() {
        return false;
    }
    // Whole words loaded as they are (a copy into a zeroed word was a
    // `memcpy` call per word); the last few bytes one by one.
    let word = |chunk: &[u8]| {
        chunk
            .first_chunk::<8>()
            .map_or(0, |w| u64::from_le_bytes(*w))
    };
    let (xs, ys) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0u64;
    for (x, y) in xs.remainder().iter().zip(ys.remainder()) {
        tail |= u64::from(x ^ y);
    }
    let mut diff = std::hint::black_box(tail);
    for (x, y) in xs.zip(ys) {
        diff = std::hint::black_box(diff | (word(x) ^ word(y)));
    }
    bool::from(diff.ct_eq(&0))
}

#[cfg(test)]
mod constant_time_tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_every_byte_and_the_length_agree() {
        let secret: Vec<u8> = (0..37u8).collect();
        assert!(constant_time_eq(&secret, &secret.clone()));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(&secret, &secret[..36]));
        // A zero byte added to a tail shorter than a word still differs.
        assert!(!constant_time_eq(b"abc", b"abc\0"));
        for i in 0..secret.len() {
            for bit in [1u8, 0x80] {
                let mut other = secret.clone();
                other[i] ^= bit;
                assert!(!constant_time_eq(&secret, &other), "byte {i}");
            }
        }
    }
}

/// RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-23T23:41:01.123Z`.
pub fn rfc3339(unix_ms: u64) -> String {
    let mut out = String::with_capacity(24);
    rfc3339_into(&mut out, unix_ms);
    out
}

/// [`rfc3339`] appended to `out`, without the formatter: the second's text
/// is kept per thread ([`with_second`]), the milliseconds are three digits.
pub fn rfc3339_into(out: &mut String, unix_ms: u64) {
    with_second(unix_ms / 1000, |text| out.push_str(text));
    let ms = (unix_ms % 1000) as u32;
    out.push('.');
    for d in [ms / 100, ms / 10 % 10, ms % 10] {
        out.push(char::from(b'0' + d as u8));
    }
    out.push('Z');
}

/// Runs `f` on `YYYY-MM-DDTHH:MM:SS` for the Unix second `secs`, formatted
/// once per second per thread (lines come many a second).
pub fn with_second<R>(secs: u64, f: impl FnOnce(&str) -> R) -> R {
    thread_local! {
        /// The last second formatted on this thread.
        static SECOND: std::cell::Cell<(u64, String)> = const {
            std::cell::Cell::new((u64::MAX, String::new()))
        };
    }
    with_scratch(&SECOND, |last| {
        // A fresh scratch, (0, ""), is formatted whatever the second.
        if last.0 != secs || last.1.is_empty() {
            *last = (secs, date_time(secs));
        }
        f(&last.1)
    })
}

/// `YYYY-MM-DDTHH:MM:SS` for Unix seconds.
fn date_time(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod time_tests {
    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(super::rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(
            super::rfc3339(1_795_477_261_123),
            "2026-11-23T23:41:01.123Z"
        );
        // The same second again (kept), then an earlier one.
        assert_eq!(
            super::rfc3339(1_795_477_261_999),
            "2026-11-23T23:41:01.999Z"
        );
        assert_eq!(super::rfc3339(999), "1970-01-01T00:00:00.999Z");
    }
}

/// This process's resident memory in KiB (Linux: `/proc/self/status`).
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// A setting given inline or through an environment variable, which wins
/// when set and not empty (so production keeps secrets out of the
/// manifest): `field` names the inline field in errors.
pub fn inline_or_env(
    inline: Option<&str>,
    env: Option<&str>,
    field: &str,
) -> Result<String, String> {
    if let Some(value) = env.and_then(|var| std::env::var(var).ok())
        && !value.is_empty()
    {
        return Ok(value);
    }
    match (inline, env) {
        (Some(v), _) => Ok(v.to_owned()),
        (None, Some(var)) => Err(format!(
            "environment variable {var} is unset and no {field} is given"
        )),
        (None, None) => Err(format!("expected {field} or {field}_env")),
    }
}
