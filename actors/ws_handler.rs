//! `ws_handler`: one per WebSocket connection, spawned by `ws_ticker`.
//!
//! On `ws.join` it greets the client and enrols the client pid in the
//! ticker's broadcast group: the runtime hands the client the last frame at
//! once (the snapshot), then every tick, and takes it out when the socket
//! closes; membership outlives a ticker restart, so clients keep receiving
//! ticks without reconnecting. A client resuming (`?since=`) is subscribed
//! by message instead, for the ticker to replay what it missed; the handler
//! monitors the ticker and, if it dies, moves the client to the group. It
//! answers `{"type":"ping"}` with `{"type":"pong"}`, ignores anything else,
//! and ends on `ws.leave`.
//!
//! It runs as the connecting user's identity (its spawner's), so looking up
//! the ticker needs `process.send` on `ticker` in the user's scope; a denial
//! ends the handler with an error naming it (the socket closes), never a
//! silent retry loop.

use std::time::Duration;

use rippy::prelude::*;

use super::ticker;

/// How long a handler waits for its connection before giving up.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

pub struct WsHandler {
    client: Option<Pid>,
    /// The last seq the client saw before this connection (`?since=`).
    since: Option<u64>,
    user_id: String,
    /// The ticker a resuming subscription went to.
    ticker: Option<Pid>,
    join_timer: Option<TimerId>,
}

impl WsHandler {
    pub fn new(_args: Value) -> Self {
        WsHandler {
            client: None,
            since: None,
            user_id: String::new(),
            ticker: None,
            join_timer: None,
        }
    }

    /// Sends `text` (JSON text) to the client as a text frame: a string
    /// payload is one, with no map built around it.
    fn send_text(&self, ctx: &ProcessContext<'_>, text: String) {
        if let Some(client) = &self.client {
            let _ = ctx.send(client, TOPIC_SEND, Value::String(text));
        }
    }

    /// Enrols the client in the ticker's group; with `since` and a ticker
    /// running, subscribes it by message for the replay instead.
    fn subscribe(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        let Some(client) = self.client.clone() else {
            return Ok(Flow::Continue);
        };
        if let Some(since) = self.since.take()
            && let Some(ticker) = ctx.whereis(ticker::NAME)?
        {
            ctx.monitor(&ticker);
            let payload = json!({ "client_pid": client.to_string(), "since": since });
            let _ = ctx.send(&ticker, ticker::TOPIC_SUBSCRIBE, payload);
            self.ticker = Some(ticker);
            return Ok(Flow::Continue);
        }
        ctx.join(ticker::NAME, &client)?;
        Ok(Flow::Continue)
    }

    fn on_join(&mut self, ctx: &mut ProcessContext<'_>, payload: &Value) -> ProcessResult {
        let client = payload
            .get("client_pid")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<Pid>().ok())
            .ok_or("ws.join without a valid client_pid")?;
        if let Some(timer) = self.join_timer.take() {
            ctx.cancel_timer(timer);
        }
        // `get`, not `pointer`: a JSON pointer allocates per segment.
        let metadata = payload.get("metadata");
        self.user_id = metadata
            .and_then(|m| m.get("user_id"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        self.since = metadata
            .and_then(|m| m.get("since"))
            .and_then(Value::as_u64);
        self.client = Some(client);
        // Written as text: a map of two entries, built to be printed once,
        // cost more than the rest of the greeting.
        let user_id = serde_json::to_string(&self.user_id).unwrap_or_default();
        self.send_text(ctx, format!(r#"{{"type":"welcome","user_id":{user_id}}}"#));
        self.subscribe(ctx)
    }

    fn on_message(&mut self, ctx: &mut ProcessContext<'_>, payload: &Value) {
        let Some(text) = payload.get("data").and_then(Value::as_str) else {
            return;
        };
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if msg.get("type").and_then(Value::as_str) == Some("ping") {
            self.send_text(ctx, r#"{"type":"pong"}"#.to_owned());
        }
    }
}

impl Process for WsHandler {
    fn init(&mut self, ctx: &mut ProcessContext<'_>) -> ProcessResult {
        self.join_timer = Some(ctx.after(JOIN_TIMEOUT));
        Ok(Flow::Continue)
    }

    fn handle(&mut self, ctx: &mut ProcessContext<'_>, event: Event) -> ProcessResult {
        match event {
            Event::Message(Message { topic, payload, .. }) => {
                let payload = payload.into_json().unwrap_or(Value::Null);
                match topic.as_ref() {
                    TOPIC_JOIN => self.on_join(ctx, &payload),
                    TOPIC_MESSAGE => {
                        self.on_message(ctx, &payload);
                        Ok(Flow::Continue)
                    }
                    TOPIC_LEAVE => Ok(Flow::Stop),
                    _ => Ok(Flow::Continue),
                }
            }
            Event::Exit { from, .. } if Some(&from) == self.ticker.as_ref() => {
                // The ticker is restarting: its successor publishes to the
                // group (this handler cannot tell what its client has seen).
                self.ticker = None;
                self.subscribe(ctx)
            }
            Event::Timer(t) if Some(t) == self.join_timer => Ok(Flow::Stop),
            _ => Ok(Flow::Continue),
        }
    }
}
