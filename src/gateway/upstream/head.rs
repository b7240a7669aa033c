//! An upstream's response head, parsed (httparse) and framed as RFC 9112
//! says: no body for `HEAD`, 204 and 304; `Transfer-Encoding` ending in
//! `chunked` is chunked, any other `Transfer-Encoding` or neither header
//! runs to the close; every `Content-Length` value must agree. Interim
//! answers (1xx but 101) are dropped.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use bytes::{Buf, BytesMut};

use super::body::{Chunk, Framing};
use super::{Error, MAX_HEAD, MAX_HEADERS, Target, trim};

/// A parsed response head.
pub(super) struct Head {
    pub status: StatusCode,
    pub headers: HeaderMap,
    /// `Content-Length` when the body is framed by it (or `HEAD`/204/304
    /// carried one).
    pub length: Option<u64>,
    /// The connection can carry another request after this answer.
    pub reusable: bool,
}

thread_local! {
    /// [`parse_head`]'s list of header positions, reused: at most
    /// [`MAX_HEADERS`] entries a thread.
    static FOUND: std::cell::Cell<Vec<(HeaderName, usize, usize)>> =
        const { std::cell::Cell::new(Vec::new()) };
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
        // Where each header sits in the head, to share its bytes below;
        // the list is the thread's, kept from head to head (always put
        // back drained, so it is empty when taken).
        let base = buf.as_ptr() as usize;
        let mut found = FOUND.take();
        let (mut te, mut chunked, mut length, mut close) = (false, false, None::<u64>, false);
        for h in res.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| Error::Protocol("bad header name"))?;
            if name == actix_web::http::header::TRANSFER_ENCODING {
                te = true;
                // Only the last coding decides the framing.
                chunked = last_token(h.value).is_some_and(|t| t.eq_ignore_ascii_case(b"chunked"));
            } else if name == actix_web::http::header::CONTENT_LENGTH {
                for part in h.value.split(|&b| b == b',') {
                    let n =
                        parse_length(trim(part)).ok_or(Error::Protocol("bad content-length"))?;
                    if length.is_some_and(|l| l != n) {
                        return Err(Error::Protocol("conflicting content-length"));
                    }
                    length = Some(n);
                }
            } else if name == actix_web::http::header::CONNECTION {
                close |= h
                    .value
                    .split(|&b| b == b',')
                    .any(|t| trim(t).eq_ignore_ascii_case(b"close"));
            }
            let start = (h.value.as_ptr() as usize).wrapping_sub(base);
            found.push((name, start, h.value.len()));
        }
        let head = buf.split_to(len).freeze();
        // Room for what the gateway adds (request id, rate-limit headers).
        let mut headers = HeaderMap::with_capacity(found.len() + 4);
        for (name, start, n) in found.drain(..) {
            let value = if n == 0 {
                HeaderValue::from_static("")
            } else {
                let bytes = start
                    .checked_add(n)
                    .and_then(|end| head.get(start..end))
                    .ok_or(Error::Protocol("bad header"))?;
                HeaderValue::from_maybe_shared(head.slice_ref(bytes))
                    .map_err(|_| Error::Protocol("bad header value"))?
            };
            headers.append(name, value);
        }
        FOUND.set(found);
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
    std::str::from_utf8(s).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_plain_decimal() {
        assert_eq!(parse_length(b"0"), Some(0));
        assert_eq!(parse_length(b"12345"), Some(12345));
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
