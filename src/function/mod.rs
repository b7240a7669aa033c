//! `function.rust`: native request handlers that HTTP endpoints call.
//!
//! A function runs on the HTTP worker that took the request, with the
//! identity `token_auth` put on the request (if any). Its context is all it
//! reaches (no node): the modules its entry lists (resolved at boot), sends,
//! name lookups, spawns and metrics. With an identity, spawns, sends to and
//! lookups of registered names and token operations are checked against its
//! scope (docs/semantics.md §8); an anonymous request never spawns (HTTP
//! callers are never trusted), and its other operations are bounded by the
//! entry's `modules` alone.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web::Bytes};

use crate::metrics::Metrics;
use crate::process::{
    Capabilities, Modules, Node, Payload, Pid, SendError, SpawnError, Target, Topic,
};
use crate::security::{Denied, Identity, actions};

/// What a function returns.
pub type FunctionFuture = Pin<Box<dyn Future<Output = HttpResponse>>>;

/// A native function.
pub type FunctionHandler = Arc<dyn Fn(FunctionCall) -> FunctionFuture + Send + Sync>;

/// A booted `function.rust` entry.
pub struct FunctionSpec {
    /// The `function.rust` entry id.
    pub id: String,
    caps: Capabilities,
    /// The entry's `args`, given to every call.
    pub args: serde_json::Value,
    pub(crate) handler: FunctionHandler,
}

impl FunctionSpec {
    pub(crate) fn new(
        id: &str,
        caps: Capabilities,
        args: serde_json::Value,
        handler: FunctionHandler,
    ) -> Self {
        FunctionSpec {
            id: id.to_owned(),
            caps,
            args,
            handler,
        }
    }

    /// The modules the entry listed.
    pub fn modules(&self) -> &[String] {
        self.caps.declared()
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

    /// The modules this function's entry lists.
    pub fn modules(&self) -> Modules<'_> {
        Modules::new(&self.spec.caps, &self.node, self.identity.as_ref())
    }

    /// The runtime's metrics (not a capability: any code may count).
    pub fn metrics(&self) -> &Metrics {
        self.node.metrics()
    }

    fn authorize(&self, action: &'static str, resource: &str) -> Result<(), Denied> {
        self.node
            .authorize(self.identity.as_deref(), &self.spec.id, action, resource)
    }

    /// The pid registered under `name` (with an identity: needs
    /// `process.send` on the name).
    pub fn whereis(&self, name: &str) -> Result<Option<Pid>, Denied> {
        self.authorize(actions::PROCESS_SEND, name)?;
        Ok(self.node.whereis(name))
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
            Some(identity) => {
                self.node
                    .spawn_as(&self.spec.id, None, Some(identity), entry, host, args, None)
            }
            None => {
                self.node
                    .metrics()
                    .denial(actions::PROCESS_SPAWN, &self.spec.id);
                Err(SpawnError::Denied(Denied {
                    actor: "anonymous".into(),
                    action: actions::PROCESS_SPAWN.into(),
                    resource: entry.into(),
                    entry: Some(self.spec.id.clone()),
                }))
            }
        }
    }

    /// Sends a message from outside any process. With an identity, a send
    /// to a registered name needs `process.send` on the name.
    pub fn send(
        &self,
        to: impl Into<Target>,
        topic: impl Into<Topic>,
        payload: impl Into<Payload>,
    ) -> Result<(), SendError> {
        let to = to.into();
        if let Target::Name(name) = &to {
            self.authorize(actions::PROCESS_SEND, name)
                .map_err(SendError::Denied)?;
        }
        self.node.send(None, to, topic, payload)
    }
}
