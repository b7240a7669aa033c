//! Lua processes and functions (docs/semantics.md §9): the modules of
//! LUA_API.md, messaging with Rust both ways, supervision, `check` errors
//! and the sandbox and budgets. The actors are in `tests/lua/`.

use rippy::catalog::Catalog;
use rippy::process::{ExitReason, Pid};
use rippy::registry::Registry;
use rippy::testing::{TestApp, TestMailbox};
use serde_json::{Value, json};

use crate::support;

/// Boots the Lua test manifest plus `extra` entries; the db lives in a temp dir.
async fn boot(extra: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = format!(
        r#"version: "1.0"
namespace: t
entries:
  - name: host
    kind: process.host
    workers: 1
  - name: db
    kind: db.sql.sqlite
    file: {db}
  - name: kv
    kind: store.memory
  - name: tokens
    kind: security.token_store
    store: t:kv
    token_length: 32
    default_expiration: "1h"
    token_key_file: {key}
  - name: echo
    kind: process.lua
    source: file://tests/lua/echo.lua
    method: run
  - name: modules
    kind: process.lua
    source: file://tests/lua/modules.lua
    method: run
    modules: [json, crypto, time, sql, store, security, logger]
  - name: idle
    kind: process.lua
    source: file://tests/lua/idle.lua
    method: run
  - name: bare
    kind: process.lua
    source: file://tests/lua/modules.lua
    method: run
    modules: [json]
{extra}"#,
        db = dir.path().join("t.db").display(),
        key = dir.path().join("token.key").display()
    );
    let app = TestApp::builder(Catalog::new())
        .manifest_text(&text)
        .base_dir(support::repo())
        .boot()
        .await
        .unwrap_or_else(|e| panic!("boot: {e}"));
    (app, dir)
}

/// Runs one group of `tests/lua/modules.lua` and returns its result table.
async fn group(app: &TestApp, entry: &str, name: &str, more: Value) -> Value {
    let mut mb = app.mailbox();
    let mut args = json!({"group": name, "to": mb.pid().to_string(), "db": "t:db",
        "store": "t:kv", "tokens": "t:tokens", "echo": "t:echo", "host": "t:host"});
    if let (Some(a), Some(m)) = (args.as_object_mut(), more.as_object()) {
        a.extend(m.clone());
    }
    app.spawn(entry, "t:host", args).expect("spawn");
    let msg = mb.recv_topic("result").await.expect("a result");
    msg.payload.to_json().expect("json payload")
}

#[actix_web::test]
async fn a_rust_sender_gets_a_lua_reply_and_the_lua_process_ends_normally_on_stop() {
    let (app, _d) = boot("").await;
    let mut mb = app.mailbox();
    let pid = mb.spawn_monitored("t:echo", "t:host", Value::Null).unwrap();
    mb.send(&pid, "ping", json!({"n": 7, "list": [1, 2], "empty": {}}))
        .unwrap();
    let reply = mb.recv_topic("echo").await.unwrap();
    assert_eq!(reply.from.as_ref(), Some(&pid));
    let data = reply.payload.to_json().unwrap();
    assert_eq!(data["topic"], "ping");
    assert_eq!(data["data"], json!({"n": 7, "list": [1, 2], "empty": {}}));
    assert_eq!(data["me"], pid.to_string());
    mb.send(&pid, "stop", Value::Null).unwrap();
    assert_eq!(mb.recv_exit(&pid).await.unwrap(), ExitReason::Normal);
}

#[actix_web::test]
async fn shared_bytes_payloads_reach_lua_as_strings() {
    let (app, _d) = boot("").await;
    let mut mb = app.mailbox();
    let pid = app.spawn("t:echo", "t:host", Value::Null).unwrap();
    mb.send(&pid, "raw", bytes::Bytes::from_static(b"{\"p\":1}"))
        .unwrap();
    let data = mb
        .recv_topic("echo")
        .await
        .unwrap()
        .payload
        .to_json()
        .unwrap();
    assert_eq!(data["data"], "{\"p\":1}");
}

#[actix_web::test]
async fn json_encodes_empty_tables_as_objects_arrays_as_arrays_and_returns_nil_err_on_bad_input() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "json", json!({})).await;
    assert_eq!(r["empty"], "{}");
    assert_eq!(r["array"], "[1,2,3]");
    assert_eq!(r["object"], json!({"a": [1, 2], "b": "x"}));
    assert_eq!(r["roundtrip"], "{\"list\":[]}");
    assert_eq!(r["bad_nil"], true);
    assert!(
        r["bad_err"].as_str().unwrap().contains("invalid JSON"),
        "{r}"
    );
}

#[actix_web::test]
async fn crypto_gives_random_bytes_strings_sha256_and_hmac() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "crypto", json!({})).await;
    assert_eq!(r["bytes"], 16);
    assert_eq!(r["str"].as_str().unwrap().len(), 12);
    assert_eq!(
        r["sha"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(
        r["hmac"],
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    );
}

#[actix_web::test]
async fn time_sleeps_fires_after_ticks_and_rejects_bad_durations() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "time", json!({})).await;
    assert_eq!(r["slept_enough"], true, "{r}");
    assert_eq!(r["fired"], true);
    assert_eq!(r["ticks"], 3);
    assert!(
        r["bad_duration"]
            .as_str()
            .unwrap()
            .contains("expected a duration"),
        "{r}"
    );
}

#[actix_web::test]
async fn sql_executes_and_queries_a_real_sqlite_file_with_placeholders_and_reports_errors() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "sql", json!({})).await;
    assert_eq!(r["rows_affected"], 1, "{r}");
    assert_eq!(r["last_insert_id"], 1);
    assert_eq!(r["rows"], json!([{"k": "a", "v": 1}, {"k": "b", "v": 2}]));
    assert_eq!(r["bad_nil"], true);
    assert!(
        r["bad_err"].as_str().unwrap().contains("missing_table"),
        "{r}"
    );
    assert!(
        r["unreachable"]
            .as_str()
            .unwrap()
            .contains("reaches no entry t:nope"),
        "{r}"
    );
}

#[actix_web::test]
async fn store_sets_gets_and_deletes() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "store", json!({})).await;
    assert_eq!(r, json!({"got": 1, "deleted": true, "after": true}));
}

#[actix_web::test]
async fn security_tokens_are_created_validated_and_revoked() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "security", json!({})).await;
    assert_eq!(r["id"], "user:lua", "{r}");
    assert_eq!(r["role"], "x");
    assert_eq!(r["scope"], json!(["p"]));
    assert_eq!(r["revoked"], true);
    assert_eq!(r["after_nil"], true);
    assert_eq!(r["me"], true);
}

#[actix_web::test]
async fn security_policies_and_scopes_build_a_token_scope() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "scopes", json!({})).await;
    assert_eq!(r["bad_nil"], true, "{r}");
    assert!(r["bad_err"].as_str().unwrap().contains("entry id"), "{r}");
    assert_eq!(r["id"], "t:p");
    assert_eq!(r["policies"], json!(["t:p", "t:q"]));
    assert_eq!(r["scope"], json!(["t:p", "t:q"]));
}

#[actix_web::test]
async fn require_of_an_unlisted_module_raises_naming_the_entry_and_module() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:bare", "denied", json!({})).await;
    assert_eq!(r["ok"], false);
    let err = r["err"].as_str().unwrap();
    assert!(err.contains("t:bare") && err.contains("`sql`"), "{err}");
}

#[actix_web::test]
async fn process_spawns_monitors_and_messages_another_lua_process() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "process", json!({})).await;
    assert_eq!(r["reply_topic"], "echo", "{r}");
    assert_eq!(r["reply_n"], 1);
    assert_eq!(r["exit_kind"], "EXIT");
    assert_eq!(r["exit_from_matches"], true);
    assert!(
        r["exit_error"].as_str().unwrap().contains("asked to fail"),
        "{r}"
    );
    assert_eq!(r["lookup_nil"], true);
    assert!(
        r["spawn_err"].as_str().unwrap().contains("t:nothing"),
        "{r}"
    );
    assert_eq!(r["pid_is_string"], true);
}

#[actix_web::test]
async fn waiting_calls_work_inside_coroutines_the_code_creates() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "nested", json!({})).await;
    assert_eq!(
        r,
        json!({"ok1": true, "first": 2, "ok2": true, "second": 110, "wrapped": "wrapped", "dead": "dead"})
    );
}

#[actix_web::test]
async fn channels_buffer_select_and_close() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "channel", json!({})).await;
    assert_eq!(
        r,
        json!({"first": "a", "selected": "b", "same": true, "closed_ok": false, "closed_v": true})
    );
}

#[actix_web::test]
async fn a_lua_process_registers_a_name_rust_sends_to() {
    let (app, _d) = boot("").await;
    let mut mb = app.mailbox();
    app.spawn("t:echo", "t:host", json!({"name": "lua-echo"}))
        .unwrap();
    let pid = app.wait_registered("lua-echo").await.unwrap();
    mb.send("lua-echo", "hello", json!("x")).unwrap();
    let reply = mb.recv_topic("echo").await.unwrap();
    assert_eq!(reply.from, Some(pid));
}

const SAFETY: &str = r#"
  - name: raise
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: raise
  - name: returns_error
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: returns_error
  - name: spin
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: spin
    lua: { max_instructions: 5000000 }
  - name: spin_in_coroutine
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: spin_in_coroutine
    lua: { max_instructions: 5000000 }
  - name: hog
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: hog
    lua: { max_memory: 4000000 }
  - name: forbidden
    kind: process.lua
    source: file://tests/lua/safety.lua
    method: forbidden
  - name: garbage_at_load
    kind: process.lua
    source: file://tests/lua/garbage_at_load.lua
    method: run
    lua: { max_memory: 4000000 }
"#;

async fn exit_of(app: &TestApp, entry: &str) -> ExitReason {
    let mut mb: TestMailbox = app.mailbox();
    let pid: Pid = mb.spawn_monitored(entry, "t:host", Value::Null).unwrap();
    mb.recv_exit(&pid).await.unwrap()
}

fn error_text(r: ExitReason) -> String {
    match r {
        ExitReason::Error(e) => e,
        other => panic!("expected an error exit, got {other:?}"),
    }
}

#[actix_web::test]
async fn a_lua_error_is_an_error_exit_naming_the_file_and_line() {
    let (app, _d) = boot(SAFETY).await;
    let e = error_text(exit_of(&app, "t:raise").await);
    assert!(
        e.contains("t:raise") && e.contains("tests/lua/safety.lua:4: boom from lua"),
        "{e}"
    );
}

#[actix_web::test]
async fn garbage_made_while_a_state_is_set_up_is_collected_under_the_limit() {
    let (app, _d) = boot(SAFETY).await;
    // 20 MB of garbage at load against a 4 MB limit.
    assert_eq!(exit_of(&app, "t:garbage_at_load").await, ExitReason::Normal);
}

#[actix_web::test]
async fn returning_nil_and_a_string_is_an_error_exit() {
    let (app, _d) = boot(SAFETY).await;
    let e = error_text(exit_of(&app, "t:returns_error").await);
    assert!(e.ends_with("why not"), "{e}");
}

#[actix_web::test]
async fn an_infinite_loop_ends_with_an_error_while_a_process_on_the_same_thread_keeps_answering() {
    let (app, _d) = boot(SAFETY).await;
    let mut mb = app.mailbox();
    let healthy = app.spawn("t:echo", "t:host", Value::Null).unwrap();
    let spinner = mb.spawn_monitored("t:spin", "t:host", Value::Null).unwrap();
    let e = error_text(mb.recv_exit(&spinner).await.unwrap());
    assert!(e.contains("instruction budget exceeded"), "{e}");
    mb.send(&healthy, "still", Value::Null).unwrap();
    mb.recv_topic("echo").await.unwrap();
}

#[actix_web::test]
async fn an_infinite_loop_inside_a_user_coroutine_is_bounded_too() {
    let (app, _d) = boot(SAFETY).await;
    let e = error_text(exit_of(&app, "t:spin_in_coroutine").await);
    assert!(e.contains("instruction budget exceeded"), "{e}");
}

#[actix_web::test]
async fn logger_lines_take_a_message_and_fields() {
    let (app, _d) = boot("").await;
    let r = group(&app, "t:modules", "logger", json!({})).await;
    assert_eq!(r, json!({"ok": true}));
}

#[actix_web::test]
async fn a_memory_blow_up_ends_that_process_with_an_error() {
    let (app, _d) = boot(SAFETY).await;
    let e = error_text(exit_of(&app, "t:hog").await);
    assert!(e.contains("memory"), "{e}");
}

#[actix_web::test]
async fn io_debug_os_execute_file_loading_binary_chunks_and_unlisted_modules_are_unreachable() {
    let (app, _d) = boot(SAFETY).await;
    let mut mb = app.mailbox();
    app.spawn("t:forbidden", "t:host", json!({"to": mb.pid().to_string()}))
        .unwrap();
    let r = mb
        .recv_topic("result")
        .await
        .unwrap()
        .payload
        .to_json()
        .unwrap();
    for key in [
        "io",
        "debug",
        "package",
        "dofile",
        "loadfile",
        "os_execute",
        "os_exit",
        "os_getenv",
        "string_dump",
        "load_binary",
        "require_unlisted",
        "require_c",
    ] {
        assert_eq!(r[key], false, "{key} reachable: {r}");
    }
    assert_eq!(r["os_time"], true);
    assert_eq!(r["load_text"], true);
    assert!(
        r["load_binary_err"].as_str().unwrap().contains("binary"),
        "{r}"
    );
    assert!(
        r["require_err"].as_str().unwrap().contains("t:forbidden"),
        "{r}"
    );
}

#[actix_web::test]
async fn a_service_restarts_a_lua_process_that_errors() {
    let (app, _d) = boot(
        r#"
  - name: echo_service
    kind: process.service
    process: t:echo
    host: t:host
    args: { name: "svc-echo" }
    lifecycle:
      auto_start: true
      restart: { max_restarts: 5 }
"#,
    )
    .await;
    let first = app.wait_registered("svc-echo").await.unwrap();
    app.send("svc-echo", "fail", Value::Null).unwrap();
    support::eventually("a restarted echo", || {
        app.whereis("svc-echo").is_some_and(|p| p != first)
    })
    .await;
}

fn check(extra: &str) -> String {
    let text = format!("version: \"1.0\"\nnamespace: t\nentries:\n{extra}");
    let manifest = rippy::manifest::Manifest::parse("test.yaml", &support::repo(), &text)
        .unwrap_or_else(|e| panic!("parse: {e}"));
    match Registry::check(manifest, &Catalog::new()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn check_reports_a_lua_syntax_error_at_source_with_file_and_line() {
    let e = check(
        "  - name: p\n    kind: process.lua\n    source: file://tests/lua/bad_syntax.lua\n    method: run\n",
    );
    assert!(e.contains("entry t:p") && e.contains("source"), "{e}");
    assert!(e.contains("tests/lua/bad_syntax.lua:3:"), "{e}");
}

#[test]
fn check_reports_a_missing_file_and_a_missing_method() {
    let e = check(
        "  - name: p\n    kind: process.lua\n    source: file://tests/lua/nope.lua\n    method: run\n",
    );
    assert!(
        e.contains("entry t:p") && e.contains("source") && e.contains("nope.lua"),
        "{e}"
    );
    let e = check(
        "  - name: f\n    kind: function.lua\n    source: file://tests/lua/web.lua\n    method: nothing\n",
    );
    assert!(
        e.contains("entry t:f") && e.contains("method") && e.contains("nothing"),
        "{e}"
    );
}

#[test]
fn check_reports_unknown_modules_of_a_lua_entry() {
    let e = check(
        "  - name: p\n    kind: process.lua\n    source: file://tests/lua/echo.lua\n    method: run\n    modules: [jsonn]\n",
    );
    assert!(e.contains("modules[0]") && e.contains("jsonn"), "{e}");
}

const WEB: &str = r#"
  - name: user_policy
    kind: security.policy
    policy:
      actions: [process.spawn, process.host]
      resources: [t:ws_handler, t:host]
      effect: allow
  - name: web
    kind: http.service
    addr: "127.0.0.1:0"
  - name: api
    kind: http.router
    meta: { server: t:web }
    prefix: /api
  - name: ws_router
    kind: http.router
    meta: { server: t:web }
    prefix: /ws
    middleware: [token_auth]
    options:
      token_auth.store: t:tokens
    post_middleware: [websocket_relay]
    post_options:
      wsrelay.allowed.origins: "*"
  - name: hello
    kind: function.lua
    source: file://tests/lua/web.lua
    method: hello
    modules: [http]
  - name: fails
    kind: function.lua
    source: file://tests/lua/web.lua
    method: fails
    modules: [http]
  - name: ws
    kind: function.lua
    source: file://tests/lua/web.lua
    method: ws
    modules: [http, json]
    args: { handler: t:ws_handler, host: t:host }
  - name: ws_handler
    kind: process.lua
    source: file://tests/lua/web.lua
    method: ws_handler
  - name: spins
    kind: function.lua
    source: file://tests/lua/web.lua
    method: spins
    lua: { max_instructions: 2000000 }
  - name: spins_endpoint
    kind: http.endpoint
    meta: { router: t:api }
    method: GET
    path: /spins
    func: t:spins
  - name: hello_endpoint
    kind: http.endpoint
    meta: { router: t:api }
    method: POST
    path: /hello
    func: t:hello
  - name: fails_endpoint
    kind: http.endpoint
    meta: { router: t:api }
    method: GET
    path: /fails
    func: t:fails
  - name: spawn_other
    kind: function.lua
    source: file://tests/lua/web.lua
    method: ws
    modules: [http, json]
    args: { handler: t:echo, host: t:host }
  - name: spawn_other_endpoint
    kind: http.endpoint
    meta: { router: t:ws_router }
    method: GET
    path: /other
    func: t:spawn_other
  - name: ws_endpoint
    kind: http.endpoint
    meta: { router: t:ws_router }
    method: GET
    path: /echo
    func: t:ws
  - name: bad_relay
    kind: function.lua
    source: file://tests/lua/web.lua
    method: bad_relay
    modules: [http]
  - name: bad_relay_endpoint
    kind: http.endpoint
    meta: { router: t:ws_router }
    method: GET
    path: /bad
    func: t:bad_relay
"#;

#[actix_web::test]
async fn a_lua_function_reads_the_request_and_writes_status_headers_and_json() {
    let (app, _d) = boot(WEB).await;
    let mut res = awc::Client::new()
        .post(app.url("t:web", "/api/hello?name=a%20b"))
        .send_body(r#"{"n": 5}"#)
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    assert_eq!(res.headers().get("x-lua").unwrap(), "yes");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"method": "POST", "path": "/api/hello", "name": "a b", "got": 5})
    );
}

#[actix_web::test]
async fn a_lua_function_that_raises_answers_500_without_the_error_text() {
    let (app, _d) = boot(WEB).await;
    let mut res = awc::Client::new()
        .get(app.url("t:web", "/api/fails"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 500);
    let body = res.body().await.unwrap();
    assert!(!String::from_utf8_lossy(&body).contains("boom"));
}

#[actix_web::test]
async fn a_spinning_lua_function_answers_500_and_the_server_keeps_serving() {
    let (app, _d) = boot(WEB).await;
    let client = awc::Client::new();
    let res = client
        .get(app.url("t:web", "/api/spins"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 500);
    let res = client
        .post(app.url("t:web", "/api/hello"))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
}

#[actix_web::test]
async fn a_lua_function_without_an_identity_is_denied_a_spawn_as_a_value() {
    let (app, _d) = boot(WEB).await;
    // No token: the function runs anonymously, and its spawn returns nil, err.
    let mut res = awc::Client::new()
        .get(app.url("t:web", "/ws/echo"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body = String::from_utf8_lossy(&res.body().await.unwrap()).into_owned();
    assert!(
        body.contains("process.spawn") && body.contains("t:ws"),
        "{body}"
    );
}

fn user_token(app: &TestApp) -> String {
    let tokens = app
        .registry()
        .get::<rippy::security::TokenStore>("t:tokens")
        .unwrap();
    tokens
        .create(
            rippy::security::Actor::new("user:ws"),
            vec!["t:user_policy".into()],
            None,
            Value::Null,
        )
        .unwrap()
}

#[actix_web::test]
async fn a_lua_function_spawn_the_policy_denies_returns_nil_and_the_denial() {
    let (app, _d) = boot(WEB).await;
    let token = user_token(&app);
    let mut res = awc::Client::new()
        .get(app.url("t:web", &format!("/ws/other?x-auth-token={token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body = String::from_utf8_lossy(&res.body().await.unwrap()).into_owned();
    assert!(
        body.contains("user:ws") && body.contains("t:echo"),
        "{body}"
    );
    assert!(
        app.node()
            .metrics()
            .denials_of("process.spawn", "t:spawn_other")
            >= 1
    );
}

#[actix_web::test]
async fn a_lua_endpoint_relays_a_websocket_to_a_lua_handler_it_spawned() {
    use futures_util::{SinkExt, StreamExt};
    let (app, _d) = boot(WEB).await;
    let token = user_token(&app);
    let url = app
        .url("t:web", &format!("/ws/echo?x-auth-token={token}"))
        .replacen("http://", "ws://", 1);
    let (_, mut ws) = awc::Client::new().ws(url).connect().await.unwrap();
    let text = |f: Option<Result<awc::ws::Frame, _>>| match f {
        Some(Ok(awc::ws::Frame::Text(t))) => String::from_utf8_lossy(&t).into_owned(),
        other => panic!("expected a text frame, got {other:?}"),
    };
    let first = support::within("the welcome", ws.next()).await;
    // The endpoint's metadata reached the handler in `ws.join`.
    assert_eq!(text(first), "hello from lua via lua");
    ws.send(awc::ws::Message::Text("shout".into()))
        .await
        .unwrap();
    let echoed = support::within("the echo", ws.next()).await;
    assert_eq!(text(echoed), "SHOUT");
    // A `ws.send` payload that is a string is one text frame of it; one
    // that is neither a string nor a table, one text frame of its JSON.
    for (ask, answer) in [("as a string", "a string payload"), ("as a number", "42")] {
        ws.send(awc::ws::Message::Text(ask.into())).await.unwrap();
        let got = support::within(ask, ws.next()).await;
        assert_eq!(text(got), answer);
    }
}

#[actix_web::test]
async fn a_relay_answer_without_an_upgrade_is_refused_and_its_handler_told() {
    let (app, _d) = boot(WEB).await;
    let token = user_token(&app);
    let before = app.node().pids_on("t:host").len();
    let url = app.url("t:web", &format!("/ws/echo?x-auth-token={token}"));
    let mut res = awc::Client::new().get(url).send().await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], "websocket upgrade required", "{body}");
    // The handler it spawned loops until `ws.leave`: it ends only if told.
    support::eventually("the handler to get ws.leave and end", || {
        app.node().pids_on("t:host").len() == before
    })
    .await;

    let url = app.url("t:web", &format!("/ws/bad?x-auth-token={token}"));
    let res = awc::Client::new().get(url).send().await.unwrap();
    assert_eq!(res.status(), 500);
}

#[actix_web::test]
async fn an_idle_lua_process_heap_stays_small() {
    let (app, _d) = boot("").await;
    let mut mb = app.mailbox();
    app.spawn("t:idle", "t:host", json!({"to": mb.pid().to_string()}))
        .unwrap();
    let r = mb
        .recv_topic("idle")
        .await
        .unwrap()
        .payload
        .to_json()
        .unwrap();
    let bytes = r["bytes"].as_u64().unwrap();
    eprintln!("idle Lua process heap: {bytes} bytes");
    assert!(bytes < 256 * 1024, "{bytes}");
}

#[actix_web::test]
async fn sql_runs_the_same_statements_on_postgres() {
    let name = "sql_runs_the_same_statements_on_postgres";
    let Some(pg) = support::servers::Postgres::start(name) else {
        return;
    };
    let pg_entry = format!(
        "  - name: pg\n    kind: db.sql.postgres\n    url: {}\n",
        pg.url()
    );
    let (app, _d) = boot(&pg_entry).await;
    let r = group(&app, "t:modules", "sql", json!({ "db": "t:pg" })).await;
    assert_eq!(r["rows_affected"], 1, "{r}");
    // PostgreSQL has no rowid: RETURNING is the way to get an id.
    assert_eq!(r["last_insert_id"], Value::Null);
    assert_eq!(r["rows"], json!([{"k": "a", "v": 1}, {"k": "b", "v": 2}]));
    assert_eq!(r["bad_nil"], true);
    assert!(
        r["bad_err"].as_str().unwrap().contains("missing_table"),
        "{r}"
    );
}
