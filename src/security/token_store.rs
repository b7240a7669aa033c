//! `security.token_store`: opaque, HMAC-tagged, revocable tokens.
//!
//! ## Token format
//! A token is `hex(r) || hex(tag)` where `r` is `token_length` random bytes
//! from the OS and `tag = HMAC-SHA256(key, r)`. The backing store maps
//! `hex(r)` to a [`TokenRecord`] `{actor, scope, expires_at, meta}`.
//!
//! Validation checks, in order: the shape (hex, exact length), the tag in
//! constant time (so a forged or tampered token costs no store lookup), that
//! the record exists (revoked tokens are deleted), and expiry. The key comes
//! from `token_key_env` when that variable is set, else `token_key`, else a
//! random key generated once into `token_key_file` (mode 0600).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::{Actor, Identity, Policy, Scope};
use crate::component::Components;
use crate::manifest::FieldError;
use crate::manifest::ManifestDuration;
use crate::store::{MemoryStore, RedisStore};
use crate::util::{hex, unhex, unhex_into, unix_secs};

const TAG_LEN: usize = 32;
/// The longest random part a store issues, in bytes (`token_length`).
const MAX_TOKEN_LENGTH: usize = 256;
/// Records outlive their expiry by this much so an expired token is reported
/// as expired rather than unknown.
const EXPIRED_GRACE: Duration = Duration::from_secs(300);

/// Where token records live: this node's memory, or Redis, shared by every
/// node pointed at it (a token minted on one validates on all; the record's
/// TTL is the token's expiry plus a grace, and a revocation deletes it for
/// everyone).
#[derive(Clone)]
pub enum TokenBackend {
    /// A `store.memory` entry.
    Memory(Arc<MemoryStore>),
    /// A `store.redis` entry; records are keyed `<key_prefix>token:<id>`.
    Redis(Arc<RedisStore>),
}

impl From<Arc<MemoryStore>> for TokenBackend {
    fn from(m: Arc<MemoryStore>) -> Self {
        TokenBackend::Memory(m)
    }
}

impl From<Arc<RedisStore>> for TokenBackend {
    fn from(r: Arc<RedisStore>) -> Self {
        TokenBackend::Redis(r)
    }
}

impl TokenBackend {
    fn set(&self, id: &str, value: serde_json::Value, ttl: Duration) -> Result<(), String> {
        match self {
            TokenBackend::Memory(m) => m.set(id, value, Some(ttl)).map_err(|e| e.to_string()),
            TokenBackend::Redis(r) => r
                .set_json(&format!("token:{id}"), &value, Some(ttl))
                .map_err(|e| e.to_string()),
        }
    }

    /// The record stored under `id`; one that does not parse is unknown.
    fn record(&self, id: &str) -> Result<Option<TokenRecord>, TokenError> {
        let value = match self {
            // Read in place: no copy of the stored value per check.
            TokenBackend::Memory(m) => {
                return Ok(m
                    .get_with(id, |v| TokenRecord::deserialize(v).ok())
                    .flatten());
            }
            TokenBackend::Redis(r) => r.get_json(&format!("token:{id}")).map_err(|e| {
                log::warn!("token store unreachable error={e}");
                TokenError::Unavailable
            })?,
        };
        Ok(value.and_then(|v| serde_json::from_value(v).ok()))
    }

    fn delete(&self, id: &str) -> bool {
        match self {
            TokenBackend::Memory(m) => m.delete(id),
            TokenBackend::Redis(r) => r.delete(&format!("token:{id}")).unwrap_or_else(|e| {
                log::warn!("token revocation failed error={e}");
                false
            }),
        }
    }
}

/// The `security.token_store` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenStoreConfig {
    /// The `store.*` entry holding token records.
    pub store: String,
    /// Random bytes per token (default 32, at least 16).
    #[serde(default)]
    pub token_length: Option<u32>,
    /// Lifetime of a token when the issuer gives none (default 1h).
    #[serde(default)]
    pub default_expiration: Option<ManifestDuration>,
    /// The HMAC key, inline (for local runs only).
    #[serde(default)]
    pub token_key: Option<String>,
    /// The environment variable holding the HMAC key; wins when set.
    #[serde(default)]
    pub token_key_env: Option<String>,
    /// Where a generated key is kept when neither of the above gives one.
    #[serde(default)]
    pub token_key_file: Option<String>,
    /// Live tokens one actor may hold (default 100); issuing one more revokes
    /// that actor's oldest, so a client looping on the token endpoint cannot
    /// grow memory without bound.
    #[serde(default)]
    pub max_tokens_per_actor: Option<usize>,
    /// Start and stop settings.
    #[serde(default)]
    pub lifecycle: Option<crate::manifest::Lifecycle>,
}

impl TokenStoreConfig {
    /// Load-time checks: `(field, message)` pairs.
    pub fn check(&self) -> Vec<FieldError> {
        match self.token_length {
            Some(n) if !(16..=256).contains(&n) => vec![FieldError::at(
                "token_length",
                format!("expected an integer from 16 to 256, found {n}"),
            )],
            _ => Vec::new(),
        }
    }
}

/// What a token stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Who the token acts as.
    pub actor: Actor,
    /// Policy ids or policy group names.
    pub scope: Vec<String>,
    /// Unix seconds.
    pub expires_at: u64,
    /// What the issuer attached (e.g. the API key id).
    #[serde(default)]
    pub meta: serde_json::Value,
}

/// Why a token was refused. The variants are reasons for logs and metrics;
/// clients see one uniform 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    /// Not hex of the right length.
    Malformed,
    /// The tag does not match (tampered, or made under another key).
    BadTag,
    /// Revoked or never issued.
    Unknown,
    /// Past `expires_at`.
    Expired,
    /// The backing store could not be reached (Redis down).
    Unavailable,
}

impl TokenError {
    /// A short, bounded label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            TokenError::Malformed => "malformed",
            TokenError::BadTag => "bad_tag",
            TokenError::Unknown => "unknown",
            TokenError::Expired => "expired",
            TokenError::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TokenError::Malformed => "malformed token",
            TokenError::BadTag => "token tag does not verify",
            TokenError::Unknown => "unknown or revoked token",
            TokenError::Expired => "token expired",
            TokenError::Unavailable => "token store unavailable",
        })
    }
}

impl std::error::Error for TokenError {}

/// A booted `security.token_store`.
pub struct TokenStore {
    id: String,
    /// HMAC keyed once: each tag clones it instead of hashing the key's
    /// pads again.
    mac: Hmac<Sha256>,
    token_length: usize,
    default_expiration: Duration,
    store: TokenBackend,
    components: Arc<Components>,
    /// Every policy, read once: policies do not change after boot.
    policies: std::sync::OnceLock<Vec<(String, Arc<Policy>)>>,
    max_per_actor: usize,
    /// Each actor's live token ids, oldest first.
    by_actor:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<String>>>,
}

impl TokenStore {
    /// Resolves the key (see the module docs) and builds the store.
    pub fn new(
        id: &str,
        config: &TokenStoreConfig,
        base_dir: &Path,
        store: impl Into<TokenBackend>,
        components: Arc<Components>,
    ) -> Result<Self, String> {
        let from_env = config
            .token_key_env
            .as_deref()
            .and_then(|var| std::env::var(var).ok())
            .filter(|k| !k.is_empty());
        let key = match (from_env, &config.token_key, &config.token_key_file) {
            (Some(k), _, _) => k.into_bytes(),
            (None, Some(k), _) if !k.is_empty() => {
                if !dev_mode() {
                    return Err(
                        "token_key is written in the manifest; set token_key_env (or token_key_file), or pass --dev for a local run"
                            .to_owned(),
                    );
                }
                k.clone().into_bytes()
            }
            (None, _, Some(file)) => load_or_create_key(&base_dir.join(file))?,
            _ => {
                return Err(match &config.token_key_env {
                    Some(var) => format!(
                        "no token key: environment variable {var} is unset and neither token_key nor token_key_file is given"
                    ),
                    None => {
                        "no token key: set token_key_env, token_key or token_key_file".to_owned()
                    }
                });
            }
        };
        if key.len() < 16 {
            return Err(format!(
                "token key is {} bytes, expected at least 16",
                key.len()
            ));
        }
        let token_length = config.token_length.unwrap_or(32) as usize;
        if !(16..=MAX_TOKEN_LENGTH).contains(&token_length) {
            return Err(format!("token_length {token_length} is outside 16..=256"));
        }
        Ok(TokenStore {
            id: id.to_owned(),
            // HMAC accepts keys of any length; this cannot fail.
            mac: <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes any key length"),
            token_length,
            default_expiration: config
                .default_expiration
                .map_or(Duration::from_secs(3600), |d| d.get()),
            store: store.into(),
            components,
            policies: std::sync::OnceLock::new(),
            max_per_actor: config.max_tokens_per_actor.unwrap_or(100).max(1),
            by_actor: Default::default(),
        })
    }

    /// The entry id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The lifetime of tokens issued without an explicit one.
    pub fn default_expiration(&self) -> Duration {
        self.default_expiration
    }

    fn tag(&self, random: &[u8]) -> [u8; TAG_LEN] {
        let mut mac = self.mac.clone();
        mac.update(random);
        mac.finalize().into_bytes().into()
    }

    /// Issues a token for `actor` with `scope` (policy ids or groups),
    /// valid for `expiration` (default: the store's `default_expiration`).
    pub fn create(
        &self,
        actor: Actor,
        scope: Vec<String>,
        expiration: Option<Duration>,
        meta: serde_json::Value,
    ) -> Result<String, String> {
        let lifetime = expiration.unwrap_or(self.default_expiration);
        self.create_until(actor, scope, unix_secs() + lifetime.as_secs(), meta)
    }

    /// Issues a token valid until `expires_at` (Unix seconds).
    pub fn create_until(
        &self,
        actor: Actor,
        scope: Vec<String>,
        expires_at: u64,
        meta: serde_json::Value,
    ) -> Result<String, String> {
        let mut random = vec![0u8; self.token_length];
        rand::rngs::OsRng.fill_bytes(&mut random);
        let lifetime = Duration::from_secs(expires_at.saturating_sub(unix_secs()));
        let id = hex(&random);
        let actor_id = actor.id.clone();
        let record = TokenRecord {
            actor,
            scope,
            expires_at,
            meta,
        };
        let value = serde_json::to_value(&record).map_err(|e| e.to_string())?;
        self.store.set(&id, value, lifetime + EXPIRED_GRACE)?;
        // The token starts with the record's key: `hex(r)` once.
        let mut token = String::with_capacity(id.len() + 2 * TAG_LEN);
        token.push_str(&id);
        token.push_str(&hex(&self.tag(&random)));
        self.remember(actor_id, id);
        Ok(token)
    }

    /// Records a new token for its actor, revoking the oldest past the cap.
    fn remember(&self, actor: String, id: String) {
        let mut by_actor = self.by_actor.lock().unwrap_or_else(|e| e.into_inner());
        let live = by_actor.entry(actor).or_default();
        live.push_back(id);
        while live.len() > self.max_per_actor {
            if let Some(oldest) = live.pop_front() {
                self.store.delete(&oldest);
            }
        }
    }

    /// The token's record key (its random part, as issued: lowercase hex)
    /// once its tag checks out. Decodes on the stack: a refused token costs
    /// no allocation.
    fn split<'t>(&self, token: &'t str) -> Result<Cow<'t, str>, TokenError> {
        if token.len() != (self.token_length + TAG_LEN) * 2 || !token.is_ascii() {
            return Err(TokenError::Malformed);
        }
        let (r, tag) = token.split_at(self.token_length * 2);
        let mut presented = [0u8; TAG_LEN];
        unhex_into(tag.as_bytes(), &mut presented).ok_or(TokenError::Malformed)?;
        let mut random = [0u8; MAX_TOKEN_LENGTH];
        let random = &mut random[..self.token_length];
        unhex_into(r.as_bytes(), random).ok_or(TokenError::Malformed)?;
        let tag = self.tag(random);
        if !crate::util::constant_time_eq(&tag, &presented) {
            return Err(TokenError::BadTag);
        }
        Ok(if r.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(r.to_ascii_lowercase())
        } else {
            Cow::Borrowed(r)
        })
    }

    /// Checks a token and returns its record.
    pub fn validate(&self, token: &str) -> Result<TokenRecord, TokenError> {
        let key = self.split(token)?;
        let record = self.store.record(&key)?.ok_or(TokenError::Unknown)?;
        if record.expires_at <= unix_secs() {
            return Err(TokenError::Expired);
        }
        Ok(record)
    }

    /// Checks a token and resolves its scope into an [`Identity`].
    pub fn identify(&self, token: &str) -> Result<Identity, TokenError> {
        let record = self.validate(token)?;
        let policies = self
            .policies
            .get_or_init(|| self.components.all::<Policy>());
        Ok(Identity {
            scope: scope_of(policies, &record.scope),
            actor: record.actor,
            meta: record.meta,
        })
    }

    /// Revokes a token; returns whether it was live.
    pub fn revoke(&self, token: &str) -> bool {
        match self.split(token) {
            Ok(key) => self.store.delete(&key),
            Err(_) => false,
        }
    }
}

/// Whether this is a declared local run (`rippy run --dev` or `RIPPY_DEV=1`),
/// where an inline `token_key` is accepted.
pub fn dev_mode() -> bool {
    std::env::var("RIPPY_DEV").is_ok_and(|v| v == "1" || v == "true")
}

/// The policies named by `names`: policy ids, or groups that policies list.
pub fn resolve_scope(components: &Components, names: &[String]) -> Scope {
    scope_of(&components.all::<Policy>(), names)
}

fn scope_of(all: &[(String, Arc<Policy>)], names: &[String]) -> Scope {
    let policies = all
        .iter()
        .filter(|(id, p)| names.iter().any(|n| n == id || p.groups.contains(n)))
        .map(|(_, p)| p.clone())
        .collect();
    Scope::new(policies)
}

fn load_or_create_key(path: &Path) -> Result<Vec<u8>, String> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => {
            // Left by a first boot that died while writing (before writes
            // were atomic): no token can have outlived that process, since
            // tokens live in memory, so a new key loses nothing.
            log::warn!(
                "token key file is empty, generating a new key file={}",
                path.display()
            );
            std::fs::remove_file(path).map_err(|e| {
                format!(
                    "cannot replace empty token key file {}: {e}",
                    path.display()
                )
            })?;
            create_key(path)
        }
        Ok(text) => {
            let key = text.trim();
            unhex(key)
                .filter(|k| k.len() >= 16)
                .map(|_| key.as_bytes().to_vec())
                .ok_or_else(|| {
                    format!(
                        "token key file {} does not hold a hex key of at least 16 bytes",
                        path.display()
                    )
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create_key(path),
        Err(e) => Err(format!(
            "cannot read token key file {}: {e}",
            path.display()
        )),
    }
}

/// Generates a key into `path`; if another process created it meanwhile, that one is used.
fn create_key(path: &Path) -> Result<Vec<u8>, String> {
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let text = hex(&key);
    match crate::util::write_private(path, text.as_bytes()) {
        Ok(()) => {
            log::info!("token key generated file={}", path.display());
            Ok(text.into_bytes())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
        Err(e) => Err(format!(
            "cannot write token key file {}: {e}",
            path.display()
        )),
    }
}
