//! `function.rust`: native request handlers that HTTP endpoints call.
//!
//! A function runs on the HTTP worker that took the request, with the
//! identity `token_auth` put on the request (if any). It may spawn processes
//! (checked against that identity's scope) and use the modules it declared.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web::Bytes};

use crate::process::{Caller, Modules, Node, Payload, Pid, SendError, SpawnError, Target, Topic};
use crate::security::Identity;

/// What a function returns.
pub type FunctionFuture = Pin<Box<dyn Future<Output = HttpResponse>>>;

/// A native function.
pub type FunctionHandler = Arc<dyn Fn(FunctionCall) -> FunctionFuture + Send + Sync>;

/// A booted `function.rust` entry.
pub struct FunctionSpec {
    /// The `function.rust` entry id.
    pub id: String,
    /// The modules the entry declared.
    pub modules: Vec<String>,
    /// The entry's `args`, given to every call.
    pub args: serde_json::Value,
    pub(crate) handler: FunctionHandler,
}

impl FunctionSpec {
    /// A function entry bound to its native handler.
    pub fn new(
        id: &str,
        modules: Vec<String>,
        args: serde_json::Value,
        handler: FunctionHandler,
    ) -> Self {
        FunctionSpec {
            id: id.to_owned(),
            modules,
            args,
            handler,
        }
    }

    /// Calls the function.
    pub fn call(
        self: &Arc<Self>,
        node: &Arc<Node>,
        req: HttpRequest,
        body: Bytes,
    ) -> FunctionFuture {
        let identity = req.extensions().get::<Arc<Identity>>().cloned();
        let ctx = FunctionContext {
            spec: self.clone(),
            node: node.clone(),
            identity,
        };
        (self.handler)(FunctionCall { req, body, ctx })
    }
}

/// One call of a function: the request, its body, and the context.
pub struct FunctionCall {
    /// The request.
    pub req: HttpRequest,
    /// The request body, read in full (within the server's `max_body`).
    pub body: Bytes,
    /// What the function can reach.
    pub ctx: FunctionContext,
}

/// What a function can reach.
pub struct FunctionContext {
    spec: Arc<FunctionSpec>,
    node: Arc<Node>,
    identity: Option<Arc<Identity>>,
}

impl FunctionContext {
    /// The function's entry id.
    pub fn entry(&self) -> &str {
        &self.spec.id
    }

    /// The entry's `args`.
    pub fn args(&self) -> &serde_json::Value {
        &self.spec.args
    }

    /// A string argument, e.g. the id of an entry the function uses.
    pub fn arg_str(&self, key: &str) -> Option<&str> {
        self.spec.args.get(key).and_then(|v| v.as_str())
    }

    /// The identity `token_auth` established, if any.
    pub fn identity(&self) -> Option<&Identity> {
        self.identity.as_deref()
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The modules this function declared.
    pub fn modules(&self) -> Modules<'_> {
        Modules {
            entry: &self.spec.id,
            declared: &self.spec.modules,
            components: self.node.components(),
        }
    }

    /// Spawns a process as the request's identity (its scope must allow
    /// `process.spawn` on `entry` and `process.host` on `host`). Without an
    /// identity the call is refused: HTTP callers are never trusted.
    pub fn spawn(
        &self,
        entry: &str,
        host: &str,
        args: serde_json::Value,
    ) -> Result<Pid, SpawnError> {
        match &self.identity {
            Some(identity) => self
                .node
                .spawn(Caller::Identity(identity), entry, host, args),
            None => Err(SpawnError::Denied(crate::security::Denied {
                actor: "anonymous".into(),
                action: "process.spawn".into(),
                resource: entry.into(),
            })),
        }
    }

    /// Sends a message from outside any process.
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        self.node.send(None, to, topic, payload)
    }
}
