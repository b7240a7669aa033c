//! The request path the gateway routes on and forwards: one normal form, so
//! that the gateway and the upstream always agree on which path was asked for.
//!
//! Rules, applied to the path as received (query excluded):
//! - Percent-encoded *unreserved* characters (`ALPHA DIGIT - . _ ~`) are
//!   decoded, exactly once: `/api/%61dmin` is routed, checked and forwarded
//!   as `/api/admin`. Other escapes stay encoded, hex digits upper-cased
//!   (`%3a` -> `%3A`), and are never decoded by the gateway.
//! - Refused (400 `INVALID_PATH`), never repaired: `%` not followed by two
//!   hex digits; an encoded `/`, `\`, `;`, `.` or control character
//!   (`%2f`, `%5c`, `%3b`, `%2e`, `%00`-`%1f`, `%7f`); an encoded `%` that
//!   introduces another escape (`%2561`: a second decode would turn it into a
//!   different path); any `;` (path parameters: `/api;x/admin`,
//!   `/admin;jsessionid=1`, which Java servers strip before routing); any
//!   raw byte outside RFC 3986's path characters (`\`, space, `"<>^`{|}`,
//!   control and non-ASCII bytes: they must come percent-encoded); `.` or
//!   `..` segments and empty segments (`//`).
//! - Matching is case-sensitive; the proxy additionally refuses a path whose
//!   ASCII-case-folded form would land on a different, protected route (see
//!   `Routes::route_for`), for upstreams that match case-insensitively.
//!
//! Invariants: the normal form is a fixed point (normalising it again gives
//! it back unchanged); it allocates only when the path holds a `%`.

use std::borrow::Cow;

use super::GatewayError;

/// The normal form of `raw`, or `InvalidPath`.
pub fn normalise(raw: &str) -> Result<Cow<'_, str>, GatewayError> {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(GatewayError::InvalidPath);
    }
    // One look at each byte, without a branch: all allowed raw, and
    // whether an escape, a dot or an empty segment (`//`) is there.
    let (mut all, mut any, mut empty, mut last) = (ALLOWED, 0, 0, 0);
    for &b in bytes {
        let class = PATH_BYTES[usize::from(b)];
        all &= class;
        any |= class;
        empty |= last & class & SLASH;
        last = class;
    }
    if all & ALLOWED == 0 || empty != 0 {
        return Err(GatewayError::InvalidPath);
    }
    if any & ESCAPE != 0 {
        let path = decode_unreserved(bytes)?;
        if !segments_allowed(path.as_bytes()) {
            return Err(GatewayError::InvalidPath);
        }
        return Ok(Cow::Owned(path));
    }
    // Without a dot there is no dot segment to look for.
    if any & DOT != 0 && !segments_allowed(bytes) {
        return Err(GatewayError::InvalidPath);
    }
    Ok(Cow::Borrowed(raw))
}

/// Whether a path (starting with `/`) has no `.` or `..` segment and no
/// empty segment but the last (a trailing `/`).
fn segments_allowed(path: &[u8]) -> bool {
    let mut start = 1;
    for end in 1..=path.len() {
        let last = end == path.len();
        if last || path[end] == b'/' {
            let seg = &path[start..end];
            if matches!(seg, b"." | b"..") || (seg.is_empty() && !last) {
                return false;
            }
            start = end + 1;
        }
    }
    true
}

/// [`path_byte`] for every byte value, looked up once per byte of a path:
/// [`ALLOWED`] for a byte a path may hold raw, with [`ESCAPE`], [`DOT`] or
/// [`SLASH`] for those three.
const PATH_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut b = 0;
    while b < 256 {
        if path_byte(b as u8) {
            table[b] = ALLOWED
                | match b as u8 {
                    b'%' => ESCAPE,
                    b'.' => DOT,
                    b'/' => SLASH,
                    _ => 0,
                };
        }
        b += 1;
    }
    table
};
const ALLOWED: u8 = 1;
const ESCAPE: u8 = 2;
const DOT: u8 = 4;
const SLASH: u8 = 8;

/// The bytes a path may hold raw: RFC 3986 `pchar`, `/` and `%`, less `;`.
/// Everything else (space, `"<>\\^`{|}`, control and non-ASCII bytes) must
/// come percent-encoded, or the gateway and an upstream that encodes or
/// decodes it could disagree on the path (`/café` vs `/caf%C3%A9`).
const fn path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'/' | b'%'
                | b'-'
                | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` for unreserved characters; keeps the rest encoded.
fn decode_unreserved(bytes: &[u8]) -> Result<String, GatewayError> {
    let escape =
        |i: usize| -> Option<u8> { Some(hex(*bytes.get(i + 1)?)? << 4 | hex(*bytes.get(i + 2)?)?) };
    // Bytes, not chars: the input may hold UTF-8; everything decoded is ASCII.
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let b = escape(i).ok_or(GatewayError::InvalidPath)?;
        match b {
            b'.' | b'/' | b'\\' | b';' => return Err(GatewayError::InvalidPath),
            _ if b.is_ascii_control() => return Err(GatewayError::InvalidPath),
            b'%' if escape(i + 2).is_some() => return Err(GatewayError::InvalidPath),
            _ if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') => {
                out.push(b);
            }
            _ => out.extend_from_slice(&[
                b'%',
                bytes[i + 1].to_ascii_uppercase(),
                bytes[i + 2].to_ascii_uppercase(),
            ]),
        }
        i += 3;
    }
    // Judged on the output too: a kept `%25` now followed by two hex digits
    // would decode a second time into another escape (`%25%36%31` gives
    // `%2561`, which an upstream that decodes twice reads as `a`).
    if out
        .windows(5)
        .any(|w| w[..3] == *b"%25" && hex(w[3]).is_some() && hex(w[4]).is_some())
    {
        return Err(GatewayError::InvalidPath);
    }
    String::from_utf8(out).map_err(|_| GatewayError::InvalidPath)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_escapes_are_decoded_once_and_others_kept_upper_cased() {
        for (raw, normal) in [
            ("/api/%61dmin/secret", "/api/admin/secret"),
            ("/api/%7E%2d%5F%41", "/api/~-_A"),
            ("/a%20b/%3a%40", "/a%20b/%3A%40"),
            ("/a%25", "/a%25"),
            ("/a%25zz", "/a%25zz"),
            ("/", "/"),
            ("/a.b/c..d", "/a.b/c..d"),
            ("/api/items/", "/api/items/"),
            ("/caf%c3%a9/%41", "/caf%C3%A9/A"),
            ("/a!$&'()*+,=:@b", "/a!$&'()*+,=:@b"),
        ] {
            let got = normalise(raw).unwrap();
            assert_eq!(got, normal, "{raw}");
            assert_eq!(normalise(&got).unwrap(), got, "a fixed point: {raw}");
        }
    }

    #[test]
    fn an_escape_spelled_with_encoded_hex_digits_after_a_kept_percent_is_refused() {
        for raw in ["/api/%25%36%31dmin", "/api/%25%361dmin", "/api/%256%31dmin"] {
            assert_eq!(normalise(raw), Err(GatewayError::InvalidPath), "{raw}");
        }
    }

    #[test]
    fn every_accepted_path_is_a_fixed_point() {
        // Every sequence of up to four of these pieces after `/api/`.
        let pieces = [
            "%25", "%36", "%31", "%61", "%2", "%", "6", "1", "a", "%3a", "x",
        ];
        let mut stack = vec![(String::from("/api/"), 0)];
        while let Some((path, depth)) = stack.pop() {
            if let Ok(normal) = normalise(&path) {
                assert_eq!(normalise(&normal).as_deref(), Ok(&*normal), "{path}");
            }
            if depth < 4 {
                stack.extend(pieces.iter().map(|p| (format!("{path}{p}"), depth + 1)));
            }
        }
    }

    /// The one-pass look (`normalise`) decides as the plain rules do: every
    /// byte allowed, then no dot or empty segment, on every path of up to
    /// five bytes after the first `/` made of the bytes that matter.
    #[test]
    fn the_one_pass_look_agrees_with_the_rules() {
        let plain = |raw: &str| -> bool {
            let bytes = raw.as_bytes();
            if !bytes.iter().all(|&b| path_byte(b)) {
                return false;
            }
            match decode_unreserved(bytes) {
                Ok(path) => segments_allowed(path.as_bytes()),
                Err(_) => false,
            }
        };
        let alphabet = ['/', '.', '%', 'a', '2', 'e', ';', ' '];
        let mut paths = vec![String::from("/")];
        for _ in 0..5 {
            let longer: Vec<String> = paths
                .iter()
                .flat_map(|p| alphabet.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for path in &longer {
                assert_eq!(normalise(path).is_ok(), plain(path), "{path:?}");
            }
            paths = longer;
        }
    }

    #[test]
    fn a_path_without_escapes_is_borrowed() {
        assert!(matches!(normalise("/api/x"), Ok(Cow::Borrowed(_))));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        for bad in [
            "",
            "api",
            "/a/../b",
            "/a/./b",
            "/..",
            "//a",
            "/a//b",
            "/a%2fb",
            "/%2e%2e/x",
            "/a%2Eb",
            "/a\\b",
            "/a%00",
            "/a%1f",
            "/a%7f",
            "/a%5cb",
            "/a%3bb",
            "/a;b",
            "/api;x/admin",
            "/api/admin;jsessionid=1",
            "/a%2561",
            "/a%252F",
            "/a%",
            "/a%6",
            "/a%zz",
            "/a\u{7f}",
            "/caf\u{e9}",
            "/a b",
            "/a\"b",
            "/a<b>",
            "/a{b}",
            "/a|b",
            "/a^b",
            "/a`b",
            "/a\u{80}",
        ] {
            assert_eq!(normalise(bad), Err(GatewayError::InvalidPath), "{bad}");
        }
    }
}
