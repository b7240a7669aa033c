//! Bodies stream through the gateway both ways: a 1 GiB upload and a 1 GiB
//! download pass with the process's peak memory far below either (the
//! gateway, the upstream and the client all live in this test process, so
//! buffering anywhere would show).

use std::time::Duration;

use actix_web::body::SizedStream;
use actix_web::{App, HttpRequest, HttpResponse, web};
use futures_util::{StreamExt, stream};
use rippy::catalog::Catalog;
use rippy::registry::Registry;
use serde_json::{Value, json};

const GIB: u64 = 1 << 30;
const CHUNK: usize = 256 * 1024;

/// `n` bytes of one shared chunk, as a stream.
fn bytes(n: u64) -> impl futures_util::Stream<Item = Result<web::Bytes, std::io::Error>> {
    let chunk = web::Bytes::from(vec![b'x'; CHUNK]);
    let full = n / CHUNK as u64;
    let rest = (n % CHUNK as u64) as usize;
    let tail = chunk.slice(..rest);
    stream::iter((0..full).map(move |_| Ok(chunk.clone())))
        .chain(stream::iter((rest > 0).then_some(Ok(tail))))
}

/// Counts a request body without keeping it; streams `?n=` bytes back.
fn counting_upstream() -> std::net::SocketAddr {
    async fn count(mut body: web::Payload) -> HttpResponse {
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(c) => n += c.len() as u64,
                Err(_) => return HttpResponse::BadRequest().finish(),
            }
        }
        HttpResponse::Ok().json(json!({ "received": n }))
    }
    async fn big(req: HttpRequest) -> HttpResponse {
        let n = req
            .query_string()
            .strip_prefix("n=")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        HttpResponse::Ok().body(SizedStream::new(n, bytes(n)))
    }
    serve_loopback!(|| {
        App::new()
            .app_data(web::PayloadConfig::new(usize::MAX))
            .route("/files/count", web::post().to(count))
            .route("/files/big", web::get().to(big))
    })
}

/// A gateway with one open route `/files` to `up`; `server_fields` go on
/// its `http.service`. Bodies up to 2 GiB.
fn files_gateway(
    up: std::net::SocketAddr,
    server_fields: &str,
) -> (Registry, std::net::SocketAddr) {
    let text = format!(
        r#"version: "1.0"
namespace: app
entries:
  - name: gateway
    kind: http.service
    addr: "127.0.0.1:0"
{server_fields}  - name: files
    kind: http.proxy
    meta: {{ server: app:gateway }}
    timeout: "30s"
    max_body: "2GiB"
    routes:
      - {{ path: /files, upstream: "http://{up}", auth_required: false }}
"#
    );
    let registry = Registry::boot(super::support::parse(&text), &Catalog::new())
        .unwrap_or_else(|e| panic!("boot: {e}"));
    let addr = registry.http_addr("app:gateway").unwrap();
    (registry, addr)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[actix_web::test]
async fn a_gibibyte_goes_up_and_comes_down_through_the_gateway_in_constant_memory() {
    let (registry, addr) = files_gateway(counting_upstream(), "    body_timeout: \"10m\"\n");
    let base = format!("http://{addr}");
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(600))
        .finish();
    let before = peak_rss_kib();

    let mut res = client
        .post(format!("{base}/files/count"))
        .send_body(SizedStream::new(GIB, bytes(GIB)))
        .await
        .expect("upload");
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({ "received": GIB })
    );

    let mut res = client
        .get(format!("{base}/files/big?n={GIB}"))
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200);
    let mut got = 0u64;
    while let Some(chunk) = res.next().await {
        got += chunk.expect("body chunk").len() as u64;
    }
    assert_eq!(got, GIB);

    // Either body held whole anywhere would add a GiB to the peak.
    let grown = peak_rss_kib().saturating_sub(before);
    assert!(grown < 128 * 1024, "peak RSS grew by {grown} KiB");
    registry.shutdown(Duration::from_secs(2)).await;
}

#[actix_web::test]
async fn a_streamed_upload_that_stalls_is_408_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (registry, addr) = files_gateway(counting_upstream(), "    body_idle_timeout: \"200ms\"\n");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // Declared far over the streaming threshold; a part, then silence.
    s.write_all(b"POST /files/count HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'x'; 100_000]).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    super::support::within("the 408", async {
        loop {
            let n = s.read(&mut buf).await.unwrap_or(0);
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if n == 0 || text.contains("REQUEST_TIMEOUT") {
                return;
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"code\":\"REQUEST_TIMEOUT\""), "{text}");
    registry.shutdown(Duration::from_secs(2)).await;
}
