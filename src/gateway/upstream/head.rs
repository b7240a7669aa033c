//! An upstream's response head, parsed (httparse) and framed as RFC 9112
//! says: no body for `HEAD`, 204 and 304; `Transfer-Encoding` ending in
//! `chunked` is chunked, any other `Transfer-Encoding` or neither header
//! runs to the close; every `Content-Length` value must agree. Interim
//! answers (1xx but 101) are dropped.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, Bytes, BytesMut};

use super::body::{Chunk, Framing};
use super::{Error, MAX_HEAD, MAX_HEADERS, Target, trim};
use crate::http::front::{header_at, header_value};

/// A parsed response head.
pub(super) struct Head {
    pub status: StatusCode,
    pub headers: Fields,
    /// `Content-Length` when the body is framed by it (or `HEAD`/204/304
    /// carried one).
    pub length: Option<u64>,
    /// The connection can carry another request after this answer.
    pub reusable: bool,
}

/// A response head's headers where they stand in it, in order: names
/// lower-cased in place (as a map has them), values checked as a map
/// checks them. Read as they are by the front's answers, or made a map
/// (`into_map`) sharing the head's bytes.
pub struct Fields {
    head: Bytes,
    /// Each header's name and value: start and end of each in `head`.
    at: Vec<(u32, u32, u32, u32)>,
}

impl Fields {
    /// Every header (lower-case name, value), in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // SAFETY: `parse_head` took the places from httparse's parse of
        // this head.
        self.at
            .iter()
            .map(|place| unsafe { header_at(&self.head, place) })
    }

    /// Every value of `name` (lower case), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> {
        self.iter().filter(move |(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The headers as a map, its values sharing the head's bytes, with room
    /// for `more`.
    pub fn into_map(self, more: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.at.len() + more);
        for &(n, n_end, v, v_end) in &self.at {
            // Neither can fail: the name is a token, and `parse_head`
            // checked the value.
            let name = HeaderName::from_bytes(&self.head[n as usize..n_end as usize]);
            let value = HeaderValue::from_maybe_shared(self.head.slice(v as usize..v_end as usize));
            debug_assert!(name.is_ok() && value.is_ok(), "a header parse_head took");
            if let (Ok(name), Ok(value)) = (name, value) {
                map.append(name, value);
            }
        }
        map
    }
}

/// The final response head at the start of `buf`, taken off it; `None`
/// until it is all there. Interim (1xx) heads are dropped on the way.
pub(super) fn parse_head(
    buf: &mut BytesMut,
    to: &Target<'_>,
) -> Result<Option<(Head, Framing)>, Error> {
    loop {
        // Left uninitialised: httparse writes only the slots it fills (128
        // empty headers written first were some 600 instructions a head).
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let parsed = httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut res, buf, &mut slots);
        let len = match parsed {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => {
                return Err(Error::Protocol("too many headers"));
            }
            Err(_) => return Err(Error::Protocol("malformed head")),
        };
        if len > MAX_HEAD {
            return Err(Error::Protocol("head too large"));
        }
        let code = res.code.unwrap_or(0);
        let version = res.version.unwrap_or(0);
        if code == 101 && !to.upgrade {
            return Err(Error::Protocol("unasked-for 101"));
        }
        if (100..200).contains(&code) && code != 101 {
            buf.advance(len);
            if buf.is_empty() {
                return Ok(None);
            }
            continue;
        }
        let status = StatusCode::from_u16(code).map_err(|_| Error::Protocol("bad status"))?;
        // Where each header's name and value sit in the head.
        let base = buf.as_ptr() as usize;
        let at = |part: &[u8]| (part.as_ptr() as usize).wrapping_sub(base) as u32;
        let mut places = Vec::with_capacity(res.headers.len());
        for h in res.headers.iter() {
            // httparse (as configured by default: no folded lines) lets
            // through only bytes a header value may hold (the front's tests
            // hold it to `header_value`).
            debug_assert!(header_value(h.value));
            let n = at(h.name.as_bytes());
            // An empty value's place is anywhere: right after the name.
            let v = if h.value.is_empty() {
                n + h.name.len() as u32
            } else {
                at(h.value)
            };
            places.push((n, n + h.name.len() as u32, v, v + h.value.len() as u32));
        }
        // Names lower-cased where they stand (`MAX_HEAD` keeps the places
        // within `u32`), then read for the framing.
        let (mut te, mut chunked, mut length, mut close) = (false, false, None::<u64>, false);
        for &(n, n_end, v, v_end) in &places {
            let name = &mut buf[n as usize..n_end as usize];
            name.make_ascii_lowercase();
            let (name, value) = (
                &buf[n as usize..n_end as usize],
                &buf[v as usize..v_end as usize],
            );
            match name {
                b"transfer-encoding" => {
                    te = true;
                    // Only the last coding decides the framing.
                    chunked = last_token(value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
                }
                b"content-length" => {
                    for part in value.split(|&b| b == b',') {
                        let n = parse_length(trim(part))
                            .ok_or(Error::Protocol("bad content-length"))?;
                        if length.is_some_and(|l| l != n) {
                            return Err(Error::Protocol("conflicting content-length"));
                        }
                        length = Some(n);
                    }
                }
                b"connection" => {
                    close |= value
                        .split(|&b| b == b',')
                        .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
                }
                _ => {}
            }
        }
        let headers = Fields {
            head: buf.split_to(len).freeze(),
            at: places,
        };
        let no_body = to.head_request || code == 101 || code == 204 || code == 304;
        let framing = if no_body {
            Framing::Length(0)
        } else if chunked {
            Framing::Chunked(Chunk::Size)
        } else if te {
            Framing::Eof
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            Framing::Eof
        };
        let reusable = to.keepalive > 0
            && code != 101
            && version == 1
            && !close
            && !(te && length.is_some())
            && !matches!(framing, Framing::Eof);
        let length = if te { None } else { length };
        return Ok(Some((
            Head {
                status,
                headers,
                length,
                reusable,
            },
            framing,
        )));
    }
}

fn last_token(value: &[u8]) -> Option<&[u8]> {
    value
        .rsplit(|&b| b == b',')
        .map(trim)
        .find(|t| !t.is_empty())
}

/// Decimal digits only (no sign, no spaces), at most 19 of them.
fn parse_length(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // 19 digits stay below `u64::MAX`.
    Some(s.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_plain_decimal() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"12345"), Some(12345));
        assert_eq!(
            parse_length(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        for bad in [
            &b""[..],
            b"+1",
            b"-1",
            b"1 2",
            b"0x10",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None);
        }
    }

    #[test]
    fn the_last_transfer_coding_decides() {
        assert_eq!(last_token(b"gzip, chunked"), Some(&b"chunked"[..]));
        assert_eq!(last_token(b"chunked, gzip"), Some(&b"gzip"[..]));
        assert_eq!(last_token(b"chunked ,"), Some(&b"chunked"[..]));
    }
}
