//! Capabilities: the modules an entry lists in `modules`, resolved at boot
//! into the handles its code may use.
//!
//! Rules (also in `docs/semantics.md` §8):
//! - [`MODULES`] is the one list of module names the runtime knows (the
//!   modules of `LUA_API.md`). `rippy check` rejects any other name in a
//!   `process.rust` or `function.rust` entry's `modules`, naming the entry,
//!   the field `modules[i]`, the name and the known ones.
//! - At boot the list becomes a [`Capabilities`]: a bit set of the declared
//!   modules and, for a module that reaches entries, the typed handle of every
//!   booted entry of its kind: `sql` -> every `db.sql.sqlite`, `store` ->
//!   every `store.memory`, `security` -> every `security.token_store`. The
//!   registry boots those entries first (an entry that lists `sql` depends on
//!   every `db.sql.sqlite`), so the handles are complete before any code runs.
//! - At run time an accessor tests one bit and searches the entry's own short
//!   list; it never reads the table of booted entries. A module not listed is
//!   [`ModuleError::Undeclared`], an id the module does not reach is
//!   [`ModuleError::Unreachable`]; both name the entry and the module.
//! - `process` and `channel` are globals, as in Wippy's Lua: listing them is
//!   allowed and changes nothing. `http` is the request a function is handed.
//!   `json`, `time`, `crypto` and `logger` are pure helpers behind their bit.
//! - Token operations through `security` are policy checks as well
//!   (`security.token.create` / `.validate` / `.revoke` on the store id) when
//!   the code acts for an identity; trusted code (no identity) is gated by
//!   its `modules` list alone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::Node;
use crate::component::Components;
use crate::feed::RedisFeed;
use crate::security::{Actor, Denied, Identity, TokenError, TokenRecord, TokenStore, actions};
use crate::sql::Db;
use crate::store::MemoryStore;

/// Every module name the runtime knows, in [`Module`] order.
pub const MODULES: &[&str] = &[
    "json", "logger", "time", "crypto", "sql", "store", "security", "http", "process", "channel",
    "feed",
];

/// One runtime module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Module {
    /// `json`: encode and decode.
    Json,
    /// `logger`: the process log, tagged with the entry id.
    Logger,
    /// `time`: clocks and timers.
    Time,
    /// `crypto`: random bytes, digests, HMAC.
    Crypto,
    /// `sql`: `db.sql.*` entries.
    Sql,
    /// `store`: `store.*` entries.
    Store,
    /// `security`: token stores, actors, policies.
    Security,
    /// `http`: the request and response of a function call.
    Http,
    /// `process`: spawn, send, monitor, names (a global).
    Process,
    /// `channel`: channels and select (a global).
    Channel,
    /// `feed`: `feed.*` entries (rippy's own: one producer across nodes).
    Feed,
}

impl Module {
    const ALL: [Module; 11] = [
        Module::Json,
        Module::Logger,
        Module::Time,
        Module::Crypto,
        Module::Sql,
        Module::Store,
        Module::Security,
        Module::Http,
        Module::Process,
        Module::Channel,
        Module::Feed,
    ];

    /// The module's name in a manifest.
    pub fn name(self) -> &'static str {
        MODULES[self as usize]
    }

    /// The module called `name`, if the runtime knows one.
    pub fn parse(name: &str) -> Option<Module> {
        MODULES
            .iter()
            .position(|m| *m == name)
            .map(|i| Module::ALL[i])
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Why a module call failed. Every variant names the entry and the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleError {
    /// The entry does not list the module.
    Undeclared {
        /// The entry whose code used the module.
        entry: String,
        /// The module used.
        module: &'static str,
        /// What the entry lists.
        declared: Vec<String>,
    },
    /// The module reaches no entry with this id (wrong id, or an entry of
    /// another kind).
    Unreachable {
        /// The entry whose code asked.
        entry: String,
        /// The module asked.
        module: &'static str,
        /// The id asked for.
        id: String,
        /// The ids the module does reach.
        reachable: Vec<String>,
    },
    /// A policy refused the operation.
    Denied(Denied),
    /// A token did not validate.
    Token(TokenError),
    /// The operation itself failed.
    Failed {
        /// The entry whose code called.
        entry: String,
        /// The module called.
        module: &'static str,
        /// What went wrong.
        message: String,
    },
}

impl fmt::Display for ModuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleError::Undeclared {
                entry,
                module,
                declared,
            } => write!(
                f,
                "entry {entry} used module `{module}` without declaring it in `modules` (declared: [{}])",
                declared.join(", ")
            ),
            ModuleError::Unreachable {
                entry,
                module,
                id,
                reachable,
            } => write!(
                f,
                "entry {entry}: module `{module}` reaches no entry {id} (it reaches: [{}])",
                reachable.join(", ")
            ),
            ModuleError::Denied(d) => d.fmt(f),
            ModuleError::Token(e) => e.fmt(f),
            ModuleError::Failed {
                entry,
                module,
                message,
            } => write!(f, "entry {entry}: module `{module}`: {message}"),
        }
    }
}

impl std::error::Error for ModuleError {}

/// What one entry may use, resolved at boot.
pub struct Capabilities {
    entry: Arc<str>,
    declared: u16,
    names: Vec<String>,
    sql: Vec<(String, Arc<Db>)>,
    stores: Vec<(String, Arc<MemoryStore>)>,
    tokens: Vec<(String, Arc<TokenStore>)>,
    feeds: Vec<(String, Arc<RedisFeed>)>,
}

fn sorted<T>(mut v: Vec<(String, Arc<T>)>) -> Vec<(String, Arc<T>)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

impl Capabilities {
    /// No modules at all (the registry's own processes, such as supervisors).
    pub(crate) fn none(entry: &str) -> Self {
        Capabilities {
            entry: entry.into(),
            declared: 0,
            names: Vec::new(),
            sql: Vec::new(),
            stores: Vec::new(),
            tokens: Vec::new(),
            feeds: Vec::new(),
        }
    }

    /// Resolves `modules` for `entry` against the booted entries. An unknown
    /// name (which `check` already rejects) fails with its index.
    pub(crate) fn resolve(
        entry: &str,
        modules: &[String],
        components: &Components,
    ) -> Result<Self, (usize, String)> {
        let mut caps = Capabilities::none(entry);
        for (i, name) in modules.iter().enumerate() {
            let module = Module::parse(name).ok_or_else(|| (i, unknown_module(name)))?;
            caps.declared |= module.bit();
            caps.names.push(name.clone());
        }
        if caps.has(Module::Sql) {
            caps.sql = sorted(components.all::<Db>());
        }
        if caps.has(Module::Store) {
            caps.stores = sorted(components.all::<MemoryStore>());
        }
        if caps.has(Module::Security) {
            caps.tokens = sorted(components.all::<TokenStore>());
        }
        if caps.has(Module::Feed) {
            caps.feeds = sorted(components.all::<RedisFeed>());
        }
        Ok(caps)
    }

    /// The entry id.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    pub(crate) fn entry_arc(&self) -> &Arc<str> {
        &self.entry
    }

    /// The module names the entry listed.
    pub fn declared(&self) -> &[String] {
        &self.names
    }

    /// Whether the entry listed `module`.
    pub fn has(&self, module: Module) -> bool {
        self.declared & module.bit() != 0
    }

    fn require(&self, module: Module) -> Result<(), ModuleError> {
        if self.has(module) {
            Ok(())
        } else {
            Err(ModuleError::Undeclared {
                entry: self.entry.to_string(),
                module: module.name(),
                declared: self.names.clone(),
            })
        }
    }

    fn pick<T>(
        &self,
        module: Module,
        list: &[(String, Arc<T>)],
        id: &str,
    ) -> Result<Arc<T>, ModuleError> {
        self.require(module)?;
        list.iter()
            .find(|(k, _)| k == id)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| ModuleError::Unreachable {
                entry: self.entry.to_string(),
                module: module.name(),
                id: id.to_owned(),
                reachable: list.iter().map(|(k, _)| k.clone()).collect(),
            })
    }
}

/// The message for a name not in [`MODULES`].
pub(crate) fn unknown_module(name: &str) -> String {
    format!(
        "unknown module {name:?}, expected one of {}",
        MODULES.join(", ")
    )
}

/// The modules of the running code, as it may use them.
pub struct Modules<'a> {
    caps: &'a Capabilities,
    node: &'a Arc<Node>,
    identity: Option<&'a Arc<Identity>>,
}

impl<'a> Modules<'a> {
    pub(crate) fn new(
        caps: &'a Capabilities,
        node: &'a Arc<Node>,
        identity: Option<&'a Arc<Identity>>,
    ) -> Self {
        Modules {
            caps,
            node,
            identity,
        }
    }

    /// The module names the entry listed.
    pub fn declared(&self) -> &[String] {
        self.caps.declared()
    }

    /// Whether the entry listed the module called `name`.
    pub fn declares(&self, name: &str) -> bool {
        Module::parse(name).is_some_and(|m| self.caps.has(m))
    }

    /// The `db.sql.sqlite` or `db.sql.postgres` entry `id` (module `sql`).
    pub fn sql(&self, id: &str) -> Result<Db, ModuleError> {
        self.caps
            .pick(Module::Sql, &self.caps.sql, id)
            .map(|db| (*db).clone())
    }

    /// The `store.memory` entry `id` (module `store`).
    pub fn store(&self, id: &str) -> Result<Arc<MemoryStore>, ModuleError> {
        self.caps.pick(Module::Store, &self.caps.stores, id)
    }

    /// The `security.token_store` entry `id` (module `security`); each
    /// operation is checked against the caller's identity, if any.
    pub fn tokens(&self, id: &str) -> Result<Tokens, ModuleError> {
        let store = self.caps.pick(Module::Security, &self.caps.tokens, id)?;
        Ok(Tokens {
            store,
            entry: self.caps.entry.clone(),
            identity: self.identity.cloned(),
            node: self.node.clone(),
        })
    }

    /// The `feed.redis` entry `id` (module `feed`).
    pub fn feed(&self, id: &str) -> Result<Arc<RedisFeed>, ModuleError> {
        self.caps.pick(Module::Feed, &self.caps.feeds, id)
    }

    /// `n` random bytes from the OS (module `crypto`).
    pub fn random_bytes(&self, n: usize) -> Result<Vec<u8>, ModuleError> {
        self.caps.require(Module::Crypto)?;
        use rand::RngCore;
        let mut buf = vec![0u8; n];
        rand::rngs::OsRng.fill_bytes(&mut buf);
        Ok(buf)
    }

    /// A random alphanumeric string of `n` characters (module `crypto`).
    pub fn random_string(&self, n: usize) -> Result<String, ModuleError> {
        self.caps.require(Module::Crypto)?;
        use rand::Rng;
        use rand::distributions::Alphanumeric;
        Ok(rand::rngs::OsRng
            .sample_iter(&Alphanumeric)
            .take(n)
            .map(char::from)
            .collect())
    }

    /// The SHA-256 of `data` as lowercase hex (module `crypto`).
    pub fn sha256_hex(&self, data: &[u8]) -> Result<String, ModuleError> {
        self.caps.require(Module::Crypto)?;
        Ok(crate::util::sha256_hex(data))
    }

    /// Unix time in milliseconds (module `time`).
    pub fn now_ms(&self) -> Result<u64, ModuleError> {
        self.caps.require(Module::Time)?;
        Ok(crate::util::unix_ms())
    }

    /// A logger whose lines carry the entry id (module `logger`).
    pub fn logger(&self) -> Result<Logger, ModuleError> {
        self.caps.require(Module::Logger)?;
        Ok(Logger {
            entry: self.caps.entry.clone(),
        })
    }

    /// Encodes a value as JSON text (module `json`).
    pub fn json_encode(&self, value: &serde_json::Value) -> Result<String, ModuleError> {
        self.caps.require(Module::Json)?;
        Ok(value.to_string())
    }

    /// Decodes JSON text (module `json`).
    pub fn json_decode(&self, text: &str) -> Result<serde_json::Value, ModuleError> {
        self.caps.require(Module::Json)?;
        serde_json::from_str(text).map_err(|e| ModuleError::Failed {
            entry: self.caps.entry.to_string(),
            module: Module::Json.name(),
            message: e.to_string(),
        })
    }
}

/// A log handle for one entry (module `logger`): every line ends with
/// `entry=<id>`.
#[derive(Clone)]
pub struct Logger {
    entry: Arc<str>,
}

impl Logger {
    /// Logs at debug level.
    pub fn debug(&self, msg: impl fmt::Display) {
        log::debug!("{msg} entry={}", self.entry);
    }

    /// Logs at info level.
    pub fn info(&self, msg: impl fmt::Display) {
        log::info!("{msg} entry={}", self.entry);
    }

    /// Logs at warn level.
    pub fn warn(&self, msg: impl fmt::Display) {
        log::warn!("{msg} entry={}", self.entry);
    }

    /// Logs at error level.
    pub fn error(&self, msg: impl fmt::Display) {
        log::error!("{msg} entry={}", self.entry);
    }
}

/// A token store as code reaches it through `security`: every operation is
/// checked against the caller's identity (trusted code is unchecked).
#[derive(Clone)]
pub struct Tokens {
    store: Arc<TokenStore>,
    entry: Arc<str>,
    identity: Option<Arc<Identity>>,
    node: Arc<Node>,
}

impl Tokens {
    fn check(&self, action: &'static str) -> Result<(), ModuleError> {
        self.node
            .authorize(
                self.identity.as_deref(),
                &self.entry,
                action,
                self.store.id(),
            )
            .map_err(ModuleError::Denied)
    }

    fn failed(&self, message: String) -> ModuleError {
        ModuleError::Failed {
            entry: self.entry.to_string(),
            module: Module::Security.name(),
            message,
        }
    }

    /// The store's entry id.
    pub fn id(&self) -> &str {
        self.store.id()
    }

    /// The lifetime of tokens issued without an explicit one.
    pub fn default_expiration(&self) -> Duration {
        self.store.default_expiration()
    }

    /// Issues a token (`security.token.create`).
    pub fn create(
        &self,
        actor: Actor,
        scope: Vec<String>,
        expiration: Option<Duration>,
        meta: serde_json::Value,
    ) -> Result<String, ModuleError> {
        self.check(actions::TOKEN_CREATE)?;
        self.store
            .create(actor, scope, expiration, meta)
            .map_err(|m| self.failed(m))
    }

    /// Checks a token and returns its record (`security.token.validate`).
    pub fn validate(&self, token: &str) -> Result<TokenRecord, ModuleError> {
        self.check(actions::TOKEN_VALIDATE)?;
        self.store.validate(token).map_err(ModuleError::Token)
    }

    /// Revokes a token; returns whether it was live (`security.token.revoke`).
    pub fn revoke(&self, token: &str) -> Result<bool, ModuleError> {
        self.check(actions::TOKEN_REVOKE)?;
        Ok(self.store.revoke(token))
    }
}
