//! WebSocket upgrades on a proxied route, tunnelled byte for byte.
//!
//! After the same checks as any request, the gateway opens a TCP connection
//! to the upstream, replays the upgrade request (with the identity and
//! forwarding headers), and if the upstream answers 101 it answers the client
//! 101 with the upstream's `Sec-WebSocket-*` headers. From then on bytes are
//! copied both ways unchanged: the two ends speak WebSocket to each other.

use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::GatewayError;
use crate::http::Takeover;

const MAX_HEAD: usize = 16 * 1024;

/// Opens the tunnel to `authority` (`host:port`) with `head` (the request
/// line and headers from `forward::request_head`, not yet ended).
pub async fn open(
    mut head: BytesMut,
    authority: &str,
    timeout: Duration,
) -> Result<HttpResponse, GatewayError> {
    let connect = tokio::time::timeout(timeout, super::upstream::connect(authority))
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)?;
    let mut stream = connect.map_err(|_| GatewayError::ServiceUnavailable)?;
    head.extend_from_slice(b"connection: upgrade\r\nupgrade: websocket\r\n\r\n");
    let handshake = async {
        stream
            .write_all(&head)
            .await
            .map_err(|_| GatewayError::ServiceUnavailable)?;
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some(end) = find_head_end(&buf) {
                return Ok::<_, GatewayError>((buf, end));
            }
            if buf.len() > MAX_HEAD {
                return Err(GatewayError::BadGateway);
            }
            let n = stream
                .read_buf(&mut buf)
                .await
                .map_err(|_| GatewayError::BadGateway)?;
            if n == 0 {
                return Err(GatewayError::BadGateway);
            }
        }
    };
    let (mut buf, end) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)??;
    let head_bytes = buf.split_to(end);
    let text = std::str::from_utf8(&head_bytes).map_err(|_| GatewayError::BadGateway)?;
    let mut lines = text.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(GatewayError::BadGateway)?;
    if status != 101 {
        log::debug!("upstream refused websocket upgrade status={status}");
        return Err(GatewayError::BadGateway);
    }
    let mut res = HttpResponse::build(StatusCode::SWITCHING_PROTOCOLS);
    res.upgrade("websocket");
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && name
                .trim()
                .to_ascii_lowercase()
                .starts_with("sec-websocket-")
        {
            res.append_header((name.trim(), value.trim()));
        }
    }
    // From here on the two sockets are joined, byte for byte.
    let upstream_early = buf;
    Ok(Takeover::new(move |client| async move {
        let (mut upstream, mut io) = (stream, client.io);
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

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}
