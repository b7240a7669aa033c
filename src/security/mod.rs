//! Actors, scopes and policies; the token store lives in [`token_store`].
//!
//! An [`Actor`] is who is acting (`user:demo` with meta such as role). A
//! [`Scope`] is the set of policies that applies to it. A check asks the scope
//! whether an action on a resource is allowed: any matching deny wins, then
//! any matching allow, and no match means deny. Code the registry starts
//! itself runs without an identity and is trusted.
//!
//! The actions the runtime checks are the constants in [`actions`]; a
//! refusal is one [`Denied`] naming the action, the resource, the actor and
//! (when the check ran for code of an entry) the entry id.

mod identity;
mod jwt;
mod policy;
pub mod token_store;

use std::sync::Arc;

pub use identity::{IdentityConfig, IdentityResolver};
pub use jwt::{Claims, JwtConfig, JwtError, JwtVerifier};
pub use policy::{Effect, Policy, PolicyConfig, PolicyRules, pattern_matches};
pub use token_store::{TokenBackend, TokenError, TokenRecord, TokenStore, TokenStoreConfig};

/// The actions the runtime checks, the only values a policy's `actions` can
/// usefully name (besides `*` patterns). A fixed set: they are also the
/// `action` label of `rippy_denials_total`.
pub mod actions {
    /// Spawn an instance of a process entry (resource: the entry id).
    pub const PROCESS_SPAWN: &str = "process.spawn";
    /// Spawn on a process host (resource: the host id).
    pub const PROCESS_HOST: &str = "process.host";
    /// Send to, or look up, a registered name (resource: the name).
    pub const PROCESS_SEND: &str = "process.send";
    /// Register a name (resource: the name).
    pub const PROCESS_REGISTER: &str = "process.register";
    /// Terminate a process it did not spawn (resource: the target's entry id).
    pub const PROCESS_TERMINATE: &str = "process.terminate";
    /// Issue a token (resource: the token store id).
    pub const TOKEN_CREATE: &str = "security.token.create";
    /// Validate a token (resource: the token store id).
    pub const TOKEN_VALIDATE: &str = "security.token.validate";
    /// Revoke a token (resource: the token store id).
    pub const TOKEN_REVOKE: &str = "security.token.revoke";

    /// Every action above.
    pub const ALL: &[&str] = &[
        PROCESS_SPAWN,
        PROCESS_HOST,
        PROCESS_SEND,
        PROCESS_REGISTER,
        PROCESS_TERMINATE,
        TOKEN_CREATE,
        TOKEN_VALIDATE,
        TOKEN_REVOKE,
    ];
}

/// Who is acting.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Actor {
    /// The actor id, e.g. `user:demo`.
    pub id: String,
    /// Attributes such as `role` and `user_id`.
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Actor {
    /// An actor with no attributes.
    pub fn new(id: impl Into<String>) -> Self {
        Actor {
            id: id.into(),
            meta: Default::default(),
        }
    }

    /// Adds a meta field.
    pub fn with_meta(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.meta.insert(key.to_owned(), value.into());
        self
    }

    /// A meta field as a string.
    pub fn meta_str(&self, key: &str) -> Option<&str> {
        self.meta.get(key).and_then(|v| v.as_str())
    }
}

/// The policies that apply to an actor.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    policies: Vec<Arc<Policy>>,
}

impl Scope {
    /// A scope of these policies.
    pub fn new(policies: Vec<Arc<Policy>>) -> Self {
        Scope { policies }
    }

    /// The ids of the policies in this scope.
    pub fn policy_ids(&self) -> Vec<String> {
        self.policies.iter().map(|p| p.id.clone()).collect()
    }

    /// Whether `action` on `resource` is allowed: deny wins, no match denies.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        let mut allowed = false;
        for policy in &self.policies {
            match policy.decide(action, resource) {
                Some(Effect::Deny) => return false,
                Some(Effect::Allow) => allowed = true,
                None => {}
            }
        }
        allowed
    }
}

/// An actor with its scope: what a validated token gives a request.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Who is acting.
    pub actor: Actor,
    /// What they may do.
    pub scope: Scope,
    /// What the issuer attached to the token (e.g. the API key it came from).
    pub meta: serde_json::Value,
}

impl Identity {
    /// Checks `action` on `resource`, naming both on refusal.
    pub fn check(&self, action: &str, resource: &str) -> Result<(), Denied> {
        if self.scope.allows(action, resource) {
            Ok(())
        } else {
            Err(Denied {
                actor: self.actor.id.clone(),
                action: action.to_owned(),
                resource: resource.to_owned(),
                entry: None,
            })
        }
    }
}

/// An authorization refusal: who (actor, and the entry whose code asked),
/// what (action) and on what (resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The actor that was refused.
    pub actor: String,
    /// The action it asked for.
    pub action: String,
    /// The resource it asked for it on.
    pub resource: String,
    /// The entry whose code asked; `None` for the embedding program.
    pub entry: Option<String>,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "actor {} may not {} on {}",
            self.actor, self.action, self.resource
        )?;
        match &self.entry {
            Some(entry) => write!(f, " (entry {entry})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Denied {}
