//! WebSocket upgrades on a proxied route, tunnelled byte for byte.
//!
//! After the same checks as any request, the gateway opens a TCP connection
//! to the upstream, replays the upgrade request (with the identity and
//! forwarding headers), and if the upstream answers 101 it answers the client
//! 101 with the upstream's `Sec-WebSocket-*` headers. From then on bytes are
//! copied both ways unchanged: the two ends speak WebSocket to each other.
//! Any other answer (the upstream's own 401, 404 or 426) goes to the client
//! as any forwarded response does. The upstream's head is read by the
//! gateway's HTTP client (`upstream/`). A tunnel has no idle timeout
//! (WebSocket apps go quiet for long stretches); TCP keep-alive probes on
//! both connections end one whose peer has vanished, in about two minutes.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::BytesMut;
use tokio::io::AsyncWriteExt;

use super::upstream::{self, Upgrade};
use super::{GatewayError, forward};
use crate::http::Takeover;

/// Opens the tunnel to `authority` (`host:port`) with `head` (the request
/// line and headers from `forward::request_head`, not yet ended). An
/// upstream that answers anything but 101 has that answer passed on.
pub async fn open(
    mut head: BytesMut,
    authority: &Arc<str>,
    timeout: Duration,
) -> Result<HttpResponse, GatewayError> {
    head.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n\r\n");
    let to = upstream::Target {
        authority,
        keepalive: 0,
        head_request: false,
        idempotent: true,
        upgrade: true,
        body: false,
    };
    let answer = tokio::time::timeout(timeout, upstream::upgrade(to, &head))
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)?
        .map_err(forward::failed)?;
    let (headers, stream, upstream_early) = match answer {
        Upgrade::Switched { headers, io, early } => (headers, io, early),
        Upgrade::Refused(res) => {
            log::debug!(
                "upstream refused websocket upgrade status={}",
                res.status.as_u16()
            );
            return Ok(forward::relay(res, timeout));
        }
    };
    let mut res = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    res.upgrade("websocket");
    for (name, value) in &headers {
        if name.as_str().starts_with("sec-websocket-") {
            res.append_header((name.clone(), value.clone()));
        }
    }
    // From here on the two sockets are joined, byte for byte.
    Ok(Takeover::new(move |client| async move {
        let (mut upstream, mut io) = (stream, client.io);
        // Both ends probed when quiet: a client that vanished without a
        // close frees the tunnel (and its upstream connection) too.
        upstream::probe_when_idle(&io);
        if !client.read.is_empty() && upstream.write_all(&client.read).await.is_err() {
            return;
        }
        let mut head = client.write;
        head.extend_from_slice(&upstream_early);
        if io.write_all(&head).await.is_err() {
            return;
        }
        let _ = tokio::io::copy_bidirectional(&mut io, &mut upstream).await;
    })
    .attach(res.finish()))
}
