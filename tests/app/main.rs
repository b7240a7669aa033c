//! Application tests: the crypto ticker over real HTTP and WebSocket
//! connections, a real SQLite file in a temp dir, and the real binary.

#[path = "../support/mod.rs"]
mod support;

mod browser;
mod cli;
mod cluster;
mod hardening;
mod harness;
mod http_api;
mod limits;
mod relay_security;
mod resume;
mod websocket;

use awc::ws::{Codec, Frame, Message};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};

use support::{App, within};

type Framed = actix_codec::Framed<awc::BoxedSocket, Codec>;

/// Trades `key` for a token.
pub async fn token_for(base: &str, key: &str) -> String {
    let mut res = awc::Client::new()
        .post(format!("{base}/auth/token"))
        .send_json(&json!({ "api_key": key }))
        .await
        .expect("POST /auth/token");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("token JSON");
    body["token"].as_str().expect("token").to_owned()
}

/// A WebSocket client.
pub struct Ws {
    framed: Framed,
}

impl Ws {
    /// Opens `/ws/ticker` with the token in the query string.
    pub async fn connect(app: &App, token: &str) -> Ws {
        Self::try_connect(&format!("{}/ws/ticker?x-auth-token={token}", app.ws_base))
            .await
            .unwrap_or_else(|status| panic!("upgrade refused: {status}"))
    }

    /// Opens a WebSocket; on refusal returns the HTTP status.
    pub async fn try_connect(url: &str) -> Result<Ws, u16> {
        match awc::Client::new().ws(url).connect().await {
            Ok((_, framed)) => Ok(Ws { framed }),
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => Err(s.as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        }
    }

    /// The next frame.
    pub async fn frame(&mut self) -> Frame {
        within("a frame", self.framed.next())
            .await
            .expect("socket open")
            .expect("valid frame")
    }

    /// The next text frame as JSON (control frames skipped).
    pub async fn json(&mut self) -> Value {
        loop {
            match self.frame().await {
                Frame::Text(t) => return serde_json::from_slice(&t).expect("JSON frame"),
                Frame::Ping(_) | Frame::Pong(_) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The next text frame as JSON, `None` once the socket has ended.
    pub async fn try_json(&mut self) -> Option<Value> {
        loop {
            match self.framed.next().await {
                Some(Ok(Frame::Text(t))) => return serde_json::from_slice(&t).ok(),
                Some(Ok(Frame::Close(_))) | Some(Err(_)) | None => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// The next message whose type is `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.json().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match within("a close frame", self.framed.next()).await {
                Some(Ok(Frame::Close(reason))) => return reason.map(|r| r.code.into()),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn send(&mut self, msg: Message) {
        self.framed.send(msg).await.expect("send");
    }

    pub async fn text(&mut self, text: &str) {
        self.send(Message::Text(text.into())).await;
    }

    /// Sends a text frame; false once the server has closed the connection
    /// (a write after its close can find the socket reset).
    pub async fn try_text(&mut self, text: &str) -> bool {
        self.framed.send(Message::Text(text.into())).await.is_ok()
    }

    /// Sends a ping and waits for the pong, proving the connection is alive.
    pub async fn ping_pong(&mut self) {
        self.text(r#"{"type":"ping"}"#).await;
        self.next_of("pong").await;
    }
}
