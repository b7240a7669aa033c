//! The `rippy` command: the crypto-ticker application's `main`. The runtime
//! gives it `run` and `check`; the ticker adds `keys` to manage API keys.

#[path = "../actors/mod.rs"]
mod actors;

use std::process::ExitCode;

/// jemalloc gives freed pages back to the kernel on its own: a burst of
/// clients that has left costs no resident memory a second later.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Its options, read at its start: a background thread purges pages
/// unused for 1 s (jemalloc's default waits 10 s). `_RJEM_MALLOC_CONF`
/// overrides them at run time.
#[allow(non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

/// Empties the calling thread's jemalloc cache, which rippy runs on every
/// runtime thread once a spike has gone (`rippy::memory::on_release`): the
/// 3-4 MiB idle workers kept there were what held RSS above 1.25x of the
/// pre-spike figure. Smaller or no caches returned as much but cost the
/// gateway and token exchanges 5-20 % (benches/README.md, "Memory after a
/// spike").
fn flush_thread_cache() {
    // SAFETY: a documented mallctl that takes and returns nothing.
    unsafe {
        tikv_jemalloc_sys::mallctl(
            c"thread.tcache.flush".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        );
    }
}

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use rippy::{AppContext, Runtime};

fn main() -> ExitCode {
    rippy::memory::on_release(flush_thread_cache);
    Runtime::builder()
        .name("rippy")
        .about("A Rust actor runtime for Wippy-style YAML manifests")
        .version(env!("CARGO_PKG_VERSION"))
        .catalog(actors::catalog())
        .manifest("_index.yaml")
        .command(Keys::command(), keys)
        .run()
}

/// Manage API keys in the manifest's database.
#[derive(Parser)]
#[command(name = "keys")]
struct Keys {
    #[command(subcommand)]
    action: KeysAction,
    /// The database entry id (needed if the manifest has several).
    #[arg(long, global = true)]
    db: Option<String>,
}

#[derive(Subcommand)]
enum KeysAction {
    /// Create a key and print it on stdout (the only time it is shown).
    Create {
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "user")]
        role: String,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by its id (from `keys list`).
    Revoke { id: i64 },
}

fn keys(matches: &clap::ArgMatches, app: &AppContext) -> Result<(), String> {
    let Keys { action, db } = Keys::from_arg_matches(matches).map_err(|e| e.to_string())?;
    let db = app.open_db(db.as_deref())?;
    db.transaction(|c| actors::api_keys::ensure_schema(c))
        .map_err(|e| e.to_string())?;
    match action {
        KeysAction::Create { user, role } => {
            let mut random = [0u8; 20];
            use rand::RngCore;
            rand::rngs::OsRng.fill_bytes(&mut random);
            let key = actors::api_keys::format_key(&random);
            let id = db
                .call({
                    let (key, user, role) = (key.clone(), user.clone(), role.clone());
                    move |c| actors::api_keys::insert(c, &key, &user, &role)
                })
                .map_err(|e| e.to_string())?;
            eprintln!("key {id} created for user {user} (role {role}); it is shown only once:");
            println!("{key}");
        }
        KeysAction::List => {
            let keys = db
                .call(|c| actors::api_keys::list(c))
                .map_err(|e| e.to_string())?;
            println!(
                "{:>6}  {:<24} {:<10} {:<12} status",
                "id", "user", "role", "created"
            );
            for k in keys {
                let status = if k.revoked { "revoked" } else { "active" };
                println!(
                    "{:>6}  {:<24} {:<10} {:<12} {status}",
                    k.id, k.user_id, k.role, k.created_at
                );
            }
        }
        KeysAction::Revoke { id } => {
            let revoked = db
                .call(move |c| actors::api_keys::revoke(c, id))
                .map_err(|e| e.to_string())?;
            if !revoked {
                return Err(format!("no active key with id {id}"));
            }
            println!("key {id} revoked");
        }
    }
    Ok(())
}
