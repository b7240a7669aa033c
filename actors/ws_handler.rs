//! `ws_handler`: one per WebSocket connection, spawned by `ws_ticker`.
//!
//! On `ws.join` it greets the client and subscribes the client pid to the
//! ticker, which it monitors: if the ticker dies, the handler subscribes
//! again as soon as the restarted ticker has registered its name, so clients
//! keep receiving ticks without reconnecting. It answers `{"type":"ping"}`
//! with `{"type":"pong"}`, ignores anything else, and ends on `ws.leave`.
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
/// How often it looks for a restarted ticker.
const RESUBSCRIBE_EVERY: Duration = Duration::from_millis(20);

pub struct WsHandler {
    client: Option<Pid>,
    /// The last seq the client saw before this connection (`?since=`).
    since: Option<u64>,
    user_id: String,
    ticker: Option<Pid>,
    join_timer: Option<TimerId>,
    retry_timer: Option<TimerId>,
}

impl WsHandler {
    pub fn new(_args: Value) -> Self {
        WsHandler {
            client: None,
            since: None,
            user_id: String::new(),
            ticker: None,
            join_timer: None,
            retry_timer: None,
        }
    }

    fn send_text(&self, ctx: &ProcessContext<'_>, data: Value) {
        if let Some(client) = &self.client {
            let _ = ctx.send(
                client,
                TOPIC_SEND,
                json!({ "type": "text", "data": data.to_string() }),
            );
        }
    }

    /// Subscribes to the registered ticker; returns whether one was found.
    fn subscribe(&mut self, ctx: &mut ProcessContext<'_>) -> Result<bool, ProcessError> {
        let (Some(client), Some(ticker)) = (&self.client, ctx.whereis(ticker::NAME)?) else {
            return Ok(false);
        };
        ctx.monitor(&ticker);
        // `since` serves the first subscription only: after a ticker
        // restart this handler cannot tell what its client has seen.
        let payload = match self.since.take() {
            Some(since) => json!({ "client_pid": client.to_string(), "since": since }),
            None => json!({ "client_pid": client.to_string() }),
        };
        let _ = ctx.send(&ticker, ticker::TOPIC_SUBSCRIBE, payload);
        self.ticker = Some(ticker);
        Ok(true)
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
        self.user_id = payload
            .pointer("/metadata/user_id")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        self.since = payload.pointer("/metadata/since").and_then(Value::as_u64);
        self.client = Some(client);
        self.send_text(ctx, json!({ "type": "welcome", "user_id": self.user_id }));
        if !self.subscribe(ctx)? {
            self.retry_timer = Some(ctx.interval(RESUBSCRIBE_EVERY));
        }
        Ok(Flow::Continue)
    }

    fn on_message(&mut self, ctx: &mut ProcessContext<'_>, payload: &Value) {
        let Some(text) = payload.get("data").and_then(Value::as_str) else {
            return;
        };
        let Ok(msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if msg.get("type").and_then(Value::as_str) == Some("ping") {
            self.send_text(ctx, json!({ "type": "pong" }));
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
                let payload = payload.to_json().unwrap_or(Value::Null);
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
                // The ticker is restarting: look for its successor.
                self.ticker = None;
                self.retry_timer = Some(ctx.interval(RESUBSCRIBE_EVERY));
                Ok(Flow::Continue)
            }
            Event::Timer(t) if Some(t) == self.join_timer => Ok(Flow::Stop),
            Event::Timer(t) if Some(t) == self.retry_timer => {
                if self.subscribe(ctx)?
                    && let Some(timer) = self.retry_timer.take()
                {
                    ctx.cancel_timer(timer);
                }
                Ok(Flow::Continue)
            }
            _ => Ok(Flow::Continue),
        }
    }
}
