//! Capabilities (semantics.md §8): code reaches only the modules its entry
//! lists, and a process acting for an identity is refused every action its
//! scope does not grant, with an error naming action, resource, actor and
//! entry, counted in `rippy_denials_total{action,entry}`.

use std::sync::Arc;

use rippy::prelude::*;
use rippy::process::Caller;
use rippy::security::{Effect, Identity, Policy, Scope};

use super::Rt;
use super::probe::Report;

/// Extra entries: a second process entry, a memory store, a token store and a
/// probe that lists `sql`, `store` and `security`.
fn extra(key_dir: &std::path::Path) -> String {
    format!(
        r#"  - name: other
    kind: process.rust
    source: file://tests/probe.rs
    method: run
  - name: mem
    kind: store.memory
  - name: tokens
    kind: security.token_store
    store: t:mem
    token_key_file: {key}
  - name: rich
    kind: process.rust
    source: file://tests/probe.rs
    method: run
    modules: [sql, store, security]
"#,
        key = key_dir.join("t.key").display()
    )
}

fn boot() -> (Rt, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    (Rt::boot(&extra(dir.path())), dir)
}

/// An identity `user:x` whose scope may spawn probes on `t:host`, plus `more`
/// rules `(actions, resources, effect)`.
fn identity(more: &[(&[&str], &[&str], Effect)]) -> Arc<Identity> {
    let rule = |i: usize, actions: &[&str], resources: &[&str], effect| {
        Arc::new(Policy {
            id: format!("t:p{i}"),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            effect,
            groups: vec![],
        })
    };
    let mut policies = vec![rule(
        0,
        &["process.spawn", "process.host"],
        &["t:probe", "t:rich", "t:host"],
        Effect::Allow,
    )];
    for (i, (a, r, e)) in more.iter().enumerate() {
        policies.push(rule(i + 1, a, r, *e));
    }
    Arc::new(Identity {
        actor: Actor::new("user:x"),
        scope: Scope::new(policies),
        meta: Value::Null,
    })
}

impl Rt {
    /// Spawns an instance of `entry` acting as `identity` and waits for its init.
    async fn spawn_as(&mut self, identity: &Arc<Identity>, entry: &str) -> Pid {
        let pid = self
            .node()
            .spawn(Caller::Identity(identity), entry, "t:host", Value::Null)
            .expect("spawn as identity");
        self.init_of(&pid).await;
        pid
    }

    /// Asks `pid` to try one operation and returns its outcome.
    async fn attempt(&mut self, pid: &Pid, op: Value) -> Result<String, String> {
        self.node().send(None, pid, "try", op).unwrap();
        self.until(|r| match r {
            Report::Outcome(p, _, outcome) if p == pid => Some(outcome.clone()),
            _ => None,
        })
        .await
    }

    fn denials(&self, action: &str, entry: &str) -> u64 {
        self.node().metrics().denials_of(action, entry)
    }
}

fn assert_has(text: &str, parts: &[&str]) {
    for p in parts {
        assert!(text.contains(p), "{text:?} lacks {p:?}");
    }
}

#[actix_web::test]
async fn every_module_an_entry_does_not_list_is_an_error_naming_entry_and_module() {
    let (mut rt, _key) = boot();
    let pid = rt.spawn(Value::Null);
    rt.init_of(&pid).await;
    for (module, id) in [
        ("sql", "t:db"),
        ("store", "t:mem"),
        ("security", "t:tokens"),
        ("crypto", ""),
        ("time", ""),
        ("logger", ""),
        ("json", ""),
    ] {
        let outcome = rt
            .attempt(&pid, json!({"op": "module", "name": module, "id": id}))
            .await;
        let e = outcome.expect_err(module);
        assert_has(&e, &["entry t:probe", &format!("module `{module}`")]);
    }
}

#[actix_web::test]
async fn a_listed_module_reaches_every_entry_of_its_kind_and_nothing_else() {
    let (mut rt, _key) = boot();
    let pid = rt
        .node()
        .spawn(Caller::Trusted, "t:rich", "t:host", Value::Null)
        .unwrap();
    rt.init_of(&pid).await;
    for (module, id) in [
        ("sql", "t:db"),
        ("store", "t:mem"),
        ("security", "t:tokens"),
    ] {
        let outcome = rt
            .attempt(&pid, json!({"op": "module", "name": module, "id": id}))
            .await;
        assert_eq!(outcome.as_deref(), Ok("ok"), "{module}");
    }
    let e = rt
        .attempt(&pid, json!({"op": "module", "name": "sql", "id": "t:mem"}))
        .await
        .unwrap_err();
    assert_has(
        &e,
        &["entry t:rich", "module `sql`", "no entry t:mem", "t:db"],
    );
}

#[actix_web::test]
async fn a_spawn_the_scope_denies_names_action_resource_actor_and_entry_and_is_counted() {
    let (mut rt, _key) = boot();
    let pid = rt.spawn_as(&identity(&[]), "t:probe").await;
    let ok = rt.attempt(&pid, json!({"op": "spawn"})).await;
    assert!(ok.is_ok(), "{ok:?}");
    let e = rt
        .attempt(&pid, json!({"op": "spawn", "entry": "t:other"}))
        .await
        .unwrap_err();
    assert_has(
        &e,
        &[
            "spawn denied",
            "user:x",
            "process.spawn",
            "t:other",
            "entry t:probe",
        ],
    );
    assert_eq!(rt.denials("process.spawn", "t:probe"), 1);
    let text = rt.node().metrics().render();
    assert!(
        text.contains(r#"rippy_denials_total{action="process.spawn",entry="t:probe"} 1"#),
        "{text}"
    );
}

#[actix_web::test]
async fn a_process_may_terminate_its_child_but_not_a_process_it_did_not_spawn() {
    let (mut rt, _key) = boot();
    let pid = rt.spawn_as(&identity(&[]), "t:probe").await;
    let child: Pid = rt
        .attempt(&pid, json!({"op": "spawn"}))
        .await
        .unwrap()
        .parse()
        .unwrap();
    let stranger = rt.spawn(Value::Null);
    rt.init_of(&stranger).await;
    let e = rt
        .attempt(
            &pid,
            json!({"op": "terminate", "pid": stranger.to_string()}),
        )
        .await
        .unwrap_err();
    assert_has(
        &e,
        &["user:x", "process.terminate", "on t:probe", "entry t:probe"],
    );
    assert_eq!(rt.denials("process.terminate", "t:probe"), 1);
    assert!(rt.node().is_alive(&stranger));
    let exit = rt.node().wait_exit(&child);
    let killed = rt
        .attempt(&pid, json!({"op": "terminate", "pid": child.to_string()}))
        .await;
    assert_eq!(killed.as_deref(), Ok("true"));
    assert_eq!(
        super::support::within("the child's exit", exit).await,
        ExitReason::Killed
    );
}

#[actix_web::test]
async fn a_policy_can_allow_terminating_instances_of_an_entry() {
    let (mut rt, _key) = boot();
    let who = identity(&[(&["process.terminate"], &["t:probe"], Effect::Allow)]);
    let pid = rt.spawn_as(&who, "t:probe").await;
    let stranger = rt.spawn(Value::Null);
    rt.init_of(&stranger).await;
    let killed = rt
        .attempt(
            &pid,
            json!({"op": "terminate", "pid": stranger.to_string()}),
        )
        .await;
    assert_eq!(killed.as_deref(), Ok("true"));
    assert_eq!(rt.denials("process.terminate", "t:probe"), 0);
}

#[actix_web::test]
async fn a_send_to_or_lookup_of_a_name_the_scope_denies_is_refused_and_counted() {
    let (mut rt, _key) = boot();
    let named = rt.spawn(json!({ "register": "svc" }));
    rt.init_of(&named).await;
    let pid = rt
        .spawn_as(
            &identity(&[(&["process.send"], &["open"], Effect::Allow)]),
            "t:probe",
        )
        .await;
    let e = rt
        .attempt(&pid, json!({"op": "send_name", "name": "svc"}))
        .await
        .unwrap_err();
    assert_has(
        &e,
        &[
            "send denied",
            "user:x",
            "process.send",
            "on svc",
            "entry t:probe",
        ],
    );
    let e = rt
        .attempt(&pid, json!({"op": "whereis", "name": "svc"}))
        .await
        .unwrap_err();
    assert_has(&e, &["process.send", "on svc"]);
    assert_eq!(rt.denials("process.send", "t:probe"), 2);
    // A name the scope grants, and a pid the process was given, are open.
    let unknown = rt
        .attempt(&pid, json!({"op": "send_name", "name": "open"}))
        .await
        .unwrap_err();
    assert_has(&unknown, &["no process registered as \"open\""]);
    let by_pid = rt
        .attempt(&pid, json!({"op": "send_pid", "pid": named.to_string()}))
        .await;
    assert_eq!(by_pid.as_deref(), Ok("sent"));
    assert_eq!(rt.denials("process.send", "t:probe"), 2);
}

#[actix_web::test]
async fn registering_a_name_the_scope_denies_is_refused_and_counted() {
    let (mut rt, _key) = boot();
    let pid = rt.spawn_as(&identity(&[]), "t:probe").await;
    let e = rt
        .attempt(&pid, json!({"op": "register", "name": "ticker"}))
        .await
        .unwrap_err();
    assert_has(
        &e,
        &["user:x", "process.register", "on ticker", "entry t:probe"],
    );
    assert_eq!(rt.node().whereis("ticker"), None);
    assert_eq!(rt.denials("process.register", "t:probe"), 1);
}

#[actix_web::test]
async fn a_token_operation_the_scope_denies_is_refused_and_counted() {
    let (mut rt, _key) = boot();
    let who = identity(&[(&["security.token.validate"], &["t:tokens"], Effect::Allow)]);
    let pid = rt.spawn_as(&who, "t:rich").await;
    for action in ["create", "revoke"] {
        let e = rt
            .attempt(
                &pid,
                json!({"op": "tokens", "store": "t:tokens", "action": action, "token": "x"}),
            )
            .await
            .unwrap_err();
        assert_has(
            &e,
            &[
                "user:x",
                &format!("security.token.{action}"),
                "on t:tokens",
                "entry t:rich",
            ],
        );
        assert_eq!(rt.denials(&format!("security.token.{action}"), "t:rich"), 1);
    }
    // Validation is granted: the token itself is what fails.
    let e = rt
        .attempt(
            &pid,
            json!({"op": "tokens", "store": "t:tokens", "action": "validate", "token": "x"}),
        )
        .await
        .unwrap_err();
    assert_eq!(e, "malformed token");
}

#[actix_web::test]
async fn a_trusted_process_is_bounded_by_its_modules_alone() {
    let (mut rt, _key) = boot();
    let pid = rt
        .node()
        .spawn(Caller::Trusted, "t:rich", "t:host", Value::Null)
        .unwrap();
    rt.init_of(&pid).await;
    let token = rt
        .attempt(
            &pid,
            json!({"op": "tokens", "store": "t:tokens", "action": "create"}),
        )
        .await
        .unwrap();
    let who = rt
        .attempt(
            &pid,
            json!({"op": "tokens", "store": "t:tokens", "action": "validate", "token": token}),
        )
        .await;
    assert_eq!(who.as_deref(), Ok("user:t"));
    let spawned = rt
        .attempt(&pid, json!({"op": "spawn", "entry": "t:other"}))
        .await;
    assert!(spawned.is_ok(), "{spawned:?}");
}
