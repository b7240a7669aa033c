//! WebSocket upgrades on a proxied route, tunnelled byte for byte.
//!
//! After the same checks as any request, the gateway opens a TCP connection
//! to the upstream, replays the upgrade request (with the identity and
//! forwarding headers), and if the upstream answers 101 it answers the client
//! 101 with the upstream's `Sec-WebSocket-*` headers. From then on bytes are
//! copied both ways unchanged: the two ends speak WebSocket to each other.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::GatewayError;

const MAX_HEAD: usize = 16 * 1024;

/// Opens the tunnel to `authority` (`host:port`).
pub async fn open(
    req: &HttpRequest,
    mut payload: web::Payload,
    authority: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
) -> Result<HttpResponse, GatewayError> {
    let connect = tokio::time::timeout(timeout, TcpStream::connect(authority))
        .await
        .map_err(|_| GatewayError::UpstreamTimeout)?;
    let mut stream = connect.map_err(|_| GatewayError::ServiceUnavailable)?;
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut head = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    );
    for (name, value) in &headers {
        if let Ok(v) = value.to_str() {
            head.push_str(&format!("{name}: {v}\r\n"));
        }
    }
    head.push_str("\r\n");
    let handshake = async {
        stream
            .write_all(head.as_bytes())
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
    let (read, mut write) = stream.into_split();
    actix_web::rt::spawn(async move {
        while let Some(Ok(chunk)) = payload.next().await {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = write.shutdown().await;
    });
    let leftover = buf.freeze();
    let first = futures_util::stream::iter(
        (!leftover.is_empty()).then_some(Ok::<Bytes, std::io::Error>(leftover)),
    );
    let rest = futures_util::stream::unfold(read, |mut read| async move {
        let mut chunk = BytesMut::with_capacity(8 * 1024);
        match read.read_buf(&mut chunk).await {
            Ok(0) | Err(_) => None,
            Ok(_) => Some((Ok::<Bytes, std::io::Error>(chunk.freeze()), read)),
        }
    });
    Ok(res.streaming(first.chain(rest)))
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}
