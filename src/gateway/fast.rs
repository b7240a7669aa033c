//! The gateway's answers on a server's own HTTP/1 path (`http::front`):
//! the same checks, forwarding, headers, metrics and access line as
//! `Proxy::handle`, with the upstream's answer written for the client
//! straight from its head instead of through an actix response.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::web::{Bytes, BytesMut};

use super::access::decimal;
use super::forward::{self, IdleTimeout, Upload, put_header};
use super::proxy::{Outcome, RATE_LIMIT_NAMES, incoming_request_id, new_request_id};
use super::rate_limit::Decision;
use super::{Proxy, upstream};
use crate::http::front::{Answer, FastMount, Incoming, put_date};

impl FastMount for Proxy {
    fn matches(&self, path: &str) -> Option<usize> {
        Proxy::matches(self, path)
    }

    fn answer<'a>(&'a self, req: &'a Incoming<'a>) -> Pin<Box<dyn Future<Output = Answer> + 'a>> {
        Box::pin(self.fast(req))
    }
}

impl Proxy {
    async fn fast(&self, req: &Incoming<'_>) -> Answer {
        let started = Instant::now();
        let mut generated = [0; uuid::fmt::Hyphenated::LENGTH];
        let incoming = incoming_request_id(req.headers);
        let request_id = match incoming {
            Some((_, text)) => text,
            None => new_request_id(&mut generated),
        };
        let kept = incoming.and_then(|(value, _)| value);
        let mut outcome = Outcome::default();
        let exchanged = async {
            let (path, index) = self.locate(req, &mut outcome)?;
            self.admit(req, index, &mut outcome).await?;
            let head = self.upstream_head(req, &path, index, request_id, &outcome);
            let to = self.destination(index);
            let idle = to.timeout;
            // No body: the front takes none. The deadline is for streamed
            // uploads only.
            let body = Upload::Whole(Bytes::new());
            let res =
                forward::exchange(req.method, head, body, to, Duration::ZERO, req.timer).await?;
            Ok::<_, super::GatewayError>((res, idle))
        }
        .await;
        let head_request = *req.method == Method::HEAD;
        let (status, answer) = match exchanged {
            Ok((res, idle)) => {
                let not_modified = res.status == StatusCode::NOT_MODIFIED;
                // The upstream's end-to-end headers as they stand in its
                // head (what `end_to_end` keeps of a map), less those the
                // labels replace; then the labels `label` would put on a
                // map, written straight.
                let limited = outcome.limit.filter(|d| d.allowed);
                let fields = &res.headers;
                // What `Connection` names (rarely more than keep-alive or
                // close), gathered once.
                let named: Vec<&[u8]> = if forward::names_others(fields.get_all("connection")) {
                    fields.get_all("connection").collect()
                } else {
                    Vec::new()
                };
                let mut out = BytesMut::with_capacity(512);
                status_line(&mut out, res.status);
                let mut dated = false;
                for (name, value) in fields.iter() {
                    let kept = forward::kept_end_to_end(name, not_modified, &named)
                        && name != forward::X_REQUEST_ID
                        && !(limited.is_some() && is_rate_limit(name));
                    if kept {
                        dated |= name == "date";
                        put_header(&mut out, name, value);
                    }
                }
                if !dated {
                    put_date(&mut out);
                }
                self.put_labels(&mut out, request_id, limited);
                (res.status, relayed(out, res, idle, head_request, req.close))
            }
            Err(e) => {
                let mut res = self.failure(e, request_id, &outcome);
                self.label(res.headers_mut(), kept, request_id, &outcome);
                (res.status(), refused(res, head_request, req.close))
            }
        };
        self.record(req, request_id, &outcome, status, started.elapsed());
        answer
    }
}

impl Proxy {
    /// `label`'s headers, written: the request id and, for a request the
    /// rate limit let through (`limited`), where it stands.
    fn put_labels(&self, out: &mut BytesMut, request_id: &str, limited: Option<Decision>) {
        put_header(out, forward::X_REQUEST_ID, request_id.as_bytes());
        if let Some(d) = limited {
            let digits = &mut [0; 20];
            let [limit, remaining, reset] = RATE_LIMIT_NAMES;
            match &self.limit_header {
                Some(value) => put_header(out, limit, value.as_bytes()),
                None => put_header(out, limit, decimal(d.limit.into(), digits)),
            }
            put_header(out, remaining, decimal(d.remaining.into(), digits));
            put_header(out, reset, decimal(d.reset_secs, digits));
        }
    }
}

/// Whether `name` is one of the rate-limit headers `label` sets.
fn is_rate_limit(name: &str) -> bool {
    RATE_LIMIT_NAMES.contains(&name)
}

/// The client's answer for the upstream's, `out` its head so far (status
/// line and headers, filtered and labelled): the body whole when it is in
/// hand, else streamed with `idle` as the longest wait for each chunk,
/// framed by its length or chunked; `close` when the client asked for the
/// connection to end.
fn relayed(
    mut out: BytesMut,
    res: upstream::Response,
    idle: Duration,
    head_request: bool,
    close: bool,
) -> Answer {
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    let mut body = res.body;
    // 204 and 304 have no body whatever their headers say (RFC 9110 6.4.1);
    // a 304 keeps the upstream's Content-Length (the filter in `fast`).
    let bodiless = res.status == StatusCode::NO_CONTENT || res.status == StatusCode::NOT_MODIFIED;
    if bodiless {
        out.extend_from_slice(b"\r\n");
        return Answer {
            head: out,
            body: None,
            close,
        };
    }
    if let Some(whole) = body.take_whole(res.length) {
        put_length(&mut out, whole.len() as u64);
        out.extend_from_slice(b"\r\n");
        if !head_request {
            out.extend_from_slice(&whole);
        }
        return Answer {
            head: out,
            body: None,
            close,
        };
    }
    // A HEAD says what its GET would (as actix-http does).
    match res.length {
        Some(length) => put_length(&mut out, length),
        None => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    let rest = (!head_request).then(|| {
        let stream: crate::http::front::BodyStream = Box::pin(IdleTimeout::new(body, idle));
        (stream, res.length.is_none())
    });
    Answer {
        head: out,
        body: rest,
        close,
    }
}

/// The client's answer for a request the gateway refused or could not
/// forward (`res`, a whole JSON body), closing the connection when `res`
/// says so or `close`, the client.
fn refused(res: actix_web::HttpResponse, head_request: bool, close: bool) -> Answer {
    let close = close || res.head().connection_type() == actix_web::http::ConnectionType::Close;
    let mut out = BytesMut::with_capacity(512);
    status_line(&mut out, res.status());
    put_headers(&mut out, res.headers());
    let body = actix_web::body::MessageBody::try_into_bytes(res.into_body()).unwrap_or_default();
    put_length(&mut out, body.len() as u64);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_request {
        out.extend_from_slice(&body);
    }
    Answer {
        head: out,
        body: None,
        close,
    }
}

fn status_line(out: &mut BytesMut, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(
        status
            .canonical_reason()
            .unwrap_or("<unknown status code>")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
}

/// Every header of `headers`, then a `Date` unless one is there.
fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        put_header(out, name.as_str(), value.as_bytes());
    }
    if !headers.contains_key(header::DATE) {
        put_date(out);
    }
}

fn put_length(out: &mut BytesMut, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(decimal(length, &mut [0; 20]));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_are_written_in_decimal() {
        for n in [0u64, 7, 10, 1234, u64::MAX] {
            let mut out = BytesMut::new();
            put_length(&mut out, n);
            assert_eq!(&out[..], format!("content-length: {n}\r\n").as_bytes());
        }
    }
}
