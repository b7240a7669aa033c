//! The access line's JSON writer (the line is emitted by `Proxy::record`,
//! target `access`), and [`number`], the decimal header values the proxy's
//! answers carry (the rate-limit headers).

use actix_web::http::header::HeaderValue;

/// One access log line, its fields in the documented order (`write` keeps
/// the same order), written from borrowed parts, with no map built per
/// request.
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct AccessLine<'a> {
    pub timestamp: &'a str,
    pub level: &'static str,
    pub service: &'a str,
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub username: Option<&'a str>,
    pub user_id: Option<&'a str>,
    pub backend_service: Option<&'a str>,
    pub response_time_ms: f64,
    pub status_code: u16,
}

impl AccessLine<'_> {
    /// The line as JSON, byte for byte what `serde_json` writes for it, but
    /// a string with nothing to escape (nearly every one) is copied whole
    /// where `serde_json` looks at it a byte at a time, and the timestamp,
    /// level, request id and method, which the gateway wrote or checked
    /// (a kept request id is `A-Za-z0-9._-`, a method a token), are not
    /// looked at again.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(
            192 + self.service.len()
                + self.request_id.len()
                + self.path.len()
                + self.username.map_or(0, str::len)
                + self.user_id.map_or(0, str::len)
                + self.backend_service.map_or(0, str::len),
        );
        out.extend_from_slice(b"{\"timestamp\":");
        plain(out, self.timestamp);
        out.extend_from_slice(b",\"level\":");
        plain(out, self.level);
        out.extend_from_slice(b",\"service\":");
        json_string(out, self.service);
        out.extend_from_slice(b",\"request_id\":");
        plain(out, self.request_id);
        out.extend_from_slice(b",\"method\":");
        plain(out, self.method);
        out.extend_from_slice(b",\"path\":");
        json_string(out, self.path);
        for (key, value) in [
            (&b",\"username\":"[..], self.username),
            (b",\"user_id\":", self.user_id),
            (b",\"backend_service\":", self.backend_service),
        ] {
            out.extend_from_slice(key);
            match value {
                Some(s) => json_string(out, s),
                None => out.extend_from_slice(b"null"),
            }
        }
        out.extend_from_slice(b",\"response_time_ms\":");
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, &self.response_time_ms);
        out.extend_from_slice(b",\"status_code\":");
        out.extend_from_slice(decimal(self.status_code.into(), &mut [0; 20]));
        out.push(b'}');
    }
}

/// Whether `s` is a JSON string as it stands: no `"`, `\\` or control
/// character. Eight bytes at a time, as one word (a short tail padded with
/// a plain byte): `below` finds a byte under 0x20, `zero` a byte equal to
/// the one spread over the word it is given (the classic exact tests for
/// any such byte, though not for which).
fn is_plain(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |w: u64, n: u8| w.wrapping_sub(ONES * u64::from(n)) & !w & HIGHS;
    let zero = |w: u64| below(w, 1);
    let bad = |w: u64| below(w, 0x20) | zero(w ^ (ONES * 0x22)) | zero(w ^ (ONES * 0x5c));
    let mut words = s.chunks_exact(8);
    let mut found = 0;
    for word in &mut words {
        let mut bytes = [0; 8];
        bytes.copy_from_slice(word);
        found |= bad(u64::from_ne_bytes(bytes));
    }
    let mut tail = [b'a'; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    found |= bad(u64::from_ne_bytes(tail));
    found == 0
}

/// `s`, known to need no escaping, as a JSON string.
fn plain(out: &mut Vec<u8>, s: &str) {
    debug_assert!(is_plain(s.as_bytes()), "{s:?}");
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

/// `s` as a JSON string. Only `"`, `\\` and control characters need
/// escaping (`serde_json` escapes nothing else either); a string without
/// them is copied as it is, the rest is `serde_json`'s.
fn json_string(out: &mut Vec<u8>, s: &str) {
    if is_plain(s.as_bytes()) {
        plain(out, s);
    } else {
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// `n` in decimal, written at the end of `digits`.
pub(super) fn decimal(mut n: u64, digits: &mut [u8; 20]) -> &[u8] {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[at..];
        }
    }
}

/// `n` in decimal as a header value, in one exactly sized allocation
/// (`HeaderValue::from(n)` makes two).
pub(super) fn number(n: u64) -> HeaderValue {
    HeaderValue::from_bytes(decimal(n, &mut [0; 20])).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_access_line_is_what_serde_json_writes() {
        let odd = [
            "",
            "plain",
            "a\"quote",
            "back\\slash",
            "tab\tnew\nline\u{1}",
            "caf\u{e9} \u{1f600}",
            "\u{7f}",
        ];
        for s in odd {
            for (n, t) in [(None, 0.0), (Some(s), 12.345), (Some("bob"), 1e-3)] {
                let line = AccessLine {
                    timestamp: "2026-12-03T17:00:00.000Z",
                    level: "INFO",
                    service: s,
                    // A kept or generated id.
                    request_id: "0b1c-Id_1.x",
                    method: "GET",
                    path: s,
                    username: n,
                    user_id: n,
                    backend_service: n,
                    response_time_ms: t,
                    status_code: 502,
                };
                let mut ours = Vec::new();
                line.write(&mut ours);
                let theirs = serde_json::to_vec(&line).unwrap();
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    String::from_utf8(theirs).unwrap()
                );
            }
        }
    }

    #[test]
    fn plain_strings_are_told_from_the_rest_at_every_place() {
        for b in 0..=255u8 {
            let needs = b < 0x20 || b == b'"' || b == b'\\';
            for len in 1..=17 {
                for at in 0..len {
                    let mut bytes = vec![b'x'; len];
                    bytes[at] = b;
                    assert_eq!(is_plain(&bytes), !needs, "byte {b:#x} at {at} of {len}");
                }
            }
        }
        assert!(is_plain(b""));
        assert!(is_plain("caf\u{e9} \u{1f600}".as_bytes()));
    }

    #[test]
    fn numbers_are_written_in_decimal() {
        for n in [0, 7, 10, 59, 1_000_000_000, u64::MAX] {
            assert_eq!(number(n).to_str().unwrap(), n.to_string());
        }
    }
}
