//! A minimal upstream for gateway benchmarks: answers every request with a
//! small JSON body naming the path and the user the gateway identified.
//!
//! `cargo run --release --example upstream -- 127.0.0.1:9000`

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

async fn answer(req: HttpRequest) -> HttpResponse {
    let user = req
        .headers()
        .get("x-user-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    HttpResponse::Ok().json(serde_json::json!({ "path": req.path(), "user": user }))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let workers = std::env::args()
        .nth(2)
        .and_then(|w| w.parse().ok())
        .unwrap_or(1);
    HttpServer::new(|| App::new().default_service(web::to(answer)))
        .workers(workers)
        .bind(&addr)?
        .run()
        .await
}
