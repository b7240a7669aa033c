//! Services: restart with backoff, restart limit, no restart on normal exit,
//! names across restarts, and shutdown order; Wippy's lifecycle keys
//! (`max_attempts`, `stable_threshold`, `stop_timeout`, `startup`, `input`,
//! bare references).

use std::time::{Duration, Instant};

use rippy::prelude::*;
use rippy::process::ServiceHandle;
use rippy::registry::Registry;
use serde_json::Value;

use super::Rt;
use super::probe::Report;
use super::support::within;

fn service(name: &str, args: &str, restart: &str) -> String {
    format!(
        "  - name: {name}\n    kind: process.service\n    process: t:probe\n    host: t:host\n    args: {args}\n    lifecycle:\n      auto_start: true\n      restart: {restart}\n"
    )
}

// semantics.md §9 (restarts)
#[actix_web::test]
async fn a_crashing_service_restarts_with_backoff_and_stops_past_the_limit() {
    let start = Instant::now();
    let rt = Rt::boot(&service(
        "crashy",
        "{ fail_in_init: true }",
        "{ initial_delay: \"10ms\", backoff: 2.0, max_delay: \"1s\", max_restarts: 3, window: \"60s\" }",
    ));
    let svc = rt.registry.get::<ServiceHandle>("t:crashy").unwrap();
    let supervisor = svc.supervisor().expect("supervisor");
    within(
        "the supervisor to give up",
        rt.node().wait_exit(&supervisor),
    )
    .await;
    assert_eq!(svc.restarts(), 3);
    assert!(svc.given_up());
    // Delays of 10, 20 and 40 ms were waited out before the restarts.
    assert!(
        start.elapsed() >= Duration::from_millis(70),
        "{:?}",
        start.elapsed()
    );
    let spec = rt
        .registry
        .get::<rippy::process::ProcessSpec>("t:probe")
        .unwrap();
    assert_eq!(spec.spawns(), 4);
}

// semantics.md §9 (restarts)
#[actix_web::test]
async fn a_normal_exit_is_not_restarted() {
    let rt = Rt::boot(&service(
        "once",
        "{ exit_in_init: true }",
        "{ initial_delay: \"1ms\" }",
    ));
    let svc = rt.registry.get::<ServiceHandle>("t:once").unwrap();
    let supervisor = svc.supervisor().expect("supervisor");
    within("the supervisor to end", rt.node().wait_exit(&supervisor)).await;
    assert_eq!(svc.restarts(), 0);
    assert!(!svc.given_up());
}

// semantics.md §5, §9 (names, restarts)
#[actix_web::test]
async fn a_registered_name_comes_back_after_a_restart() {
    let mut rt = Rt::boot(&service(
        "named",
        "{ register: svc }",
        "{ initial_delay: \"5ms\" }",
    ));
    let first = rt
        .until(|r| match r {
            Report::Init(p) => Some(p.clone()),
            _ => None,
        })
        .await;
    super::support::eventually("the name", || {
        rt.node().whereis("svc") == Some(first.clone())
    })
    .await;
    assert!(rt.node().kill(&first));
    let second = rt
        .until(|r| match r {
            Report::Init(p) if *p != first => Some(p.clone()),
            _ => None,
        })
        .await;
    super::support::eventually("the name again", || {
        rt.node().whereis("svc") == Some(second.clone())
    })
    .await;
    let svc = rt.registry.get::<ServiceHandle>("t:named").unwrap();
    assert_eq!(svc.restarts(), 1);
    rt.node().send(None, "svc", "hello", Value::Null).unwrap();
    rt.until(|r| match r {
        Report::Event(p, Event::Message(m)) if *p == second && m.topic == "hello" => Some(()),
        _ => None,
    })
    .await;
}

// semantics.md §10 (shutdown)
#[actix_web::test]
async fn shutdown_stops_services_in_reverse_boot_order_and_kills_stragglers() {
    // Boot order: stubborn, first, second (second depends on first).
    let extra = format!(
        "{}{}{}",
        service(
            "stubborn",
            "{ name: stubborn, ignore_shutdown: true }",
            "{}"
        ),
        service("first", "{ name: first }", "{}"),
        service("second", "{ name: second }", "{}").replace(
            "    lifecycle:\n",
            "    lifecycle:\n      depends_on: [t:first]\n"
        ),
    );
    let mut rt = Rt::boot(&extra);
    let loose = rt.spawn(serde_json::json!({ "name": "loose" }));
    for _ in 0..4 {
        rt.until(|r| matches!(r, Report::Init(_)).then_some(()))
            .await;
    }
    let Rt {
        registry,
        mut rx,
        _dir,
    } = rt;
    let started = Instant::now();
    within("shutdown", registry.shutdown(Duration::from_millis(300))).await;
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut order = Vec::new();
    let mut exits = Vec::new();
    while let Ok(r) = rx.try_recv() {
        match r {
            Report::Shutdown(_, name) => order.push(name),
            Report::Exit(pid, reason) => exits.push((pid, reason)),
            _ => {}
        }
    }
    assert_eq!(order, vec!["loose", "second", "first", "stubborn"]);
    assert!(
        exits
            .iter()
            .any(|(p, r)| *p == loose && *r == ExitReason::Shutdown)
    );
    assert!(
        exits.iter().any(|(_, r)| *r == ExitReason::Killed),
        "the stubborn one is killed: {exits:?}"
    );
    assert_eq!(exits.len(), 4);
}

/// A service entry in Wippy's vocabulary: bare references, `input`, and the
/// given `lifecycle` block (YAML flow mapping).
fn wippy_service(name: &str, input: &str, lifecycle: &str) -> String {
    format!(
        "  - name: {name}\n    kind: process.service\n    process: probe\n    host: host\n    input: {input}\n    lifecycle: {lifecycle}\n"
    )
}

#[actix_web::test]
async fn a_service_without_auto_start_is_not_started() {
    let rt = Rt::boot(&wippy_service("idle", "{}", "{}"));
    let svc = rt.registry.get::<ServiceHandle>("t:idle").unwrap();
    assert!(svc.supervisor().is_none());
}

#[actix_web::test]
async fn bare_references_and_input_boot_a_service_in_the_entrys_namespace() {
    let rt = Rt::boot(&wippy_service(
        "wippy",
        "{ register: via_input }",
        "{ auto_start: true }",
    ));
    super::support::eventually("the name given through input", || {
        rt.node().whereis("via_input").is_some()
    })
    .await;
}

#[actix_web::test]
async fn max_attempts_zero_keeps_restarting_past_max_restarts() {
    let rt = Rt::boot(&wippy_service(
        "forever",
        "{ fail_in_init: true }",
        "{ auto_start: true, restart: { initial_delay: 1ms, max_delay: 2ms, max_restarts: 1, max_attempts: 0 } }",
    ));
    let svc = rt.registry.get::<ServiceHandle>("t:forever").unwrap();
    super::support::eventually("five restarts", || svc.restarts() >= 5).await;
    assert!(!svc.given_up());
}

#[actix_web::test]
async fn max_attempts_limits_restarts_like_max_restarts() {
    let rt = Rt::boot(&wippy_service(
        "limited",
        "{ fail_in_init: true }",
        "{ auto_start: true, restart: { initial_delay: 1ms, backoff_factor: 1.5, jitter: 0.5, max_attempts: 2 } }",
    ));
    let svc = rt.registry.get::<ServiceHandle>("t:limited").unwrap();
    let supervisor = svc.supervisor().expect("supervisor");
    within(
        "the supervisor to give up",
        rt.node().wait_exit(&supervisor),
    )
    .await;
    assert_eq!(svc.restarts(), 2);
    assert!(svc.given_up());
}

/// Starts a probe service allowed one restart per window, lets its child run
/// `run` before telling it to fail, twice; returns the service.
async fn fail_twice_after(rt: &mut Rt, id: &str, run: Duration) -> std::sync::Arc<ServiceHandle> {
    let svc = rt.registry.get::<ServiceHandle>(id).unwrap();
    for _ in 0..2 {
        let child = rt
            .until(|r| match r {
                Report::Init(p) => Some(p.clone()),
                _ => None,
            })
            .await;
        // The child's run time is the property under test, not a sync.
        tokio::time::sleep(run).await;
        rt.node()
            .send(None, &child, "fail", Value::Null)
            .expect("send");
        within("the child's exit", rt.node().wait_exit(&child)).await;
    }
    svc
}

#[actix_web::test]
async fn a_child_that_ran_past_stable_threshold_clears_the_restart_window() {
    let mut rt = Rt::boot(&wippy_service(
        "stable",
        "{}",
        "{ auto_start: true, stable_threshold: 30ms, restart: { initial_delay: 1ms, max_restarts: 1 } }",
    ));
    let svc = fail_twice_after(&mut rt, "t:stable", Duration::from_millis(60)).await;
    // Both failures came after a stable run, so both were restarted (the
    // count is bumped just after the new child is spawned).
    super::support::eventually("the second restart", || svc.restarts() == 2).await;
    assert!(!svc.given_up());
}

#[actix_web::test]
async fn without_stable_threshold_the_window_keeps_counting() {
    let mut rt = Rt::boot(&wippy_service(
        "unstable",
        "{}",
        "{ auto_start: true, restart: { initial_delay: 1ms, max_restarts: 1 } }",
    ));
    let svc = fail_twice_after(&mut rt, "t:unstable", Duration::from_millis(60)).await;
    super::support::eventually("the service to give up", || svc.given_up()).await;
    assert_eq!(svc.restarts(), 1);
}

#[actix_web::test]
async fn stop_timeout_kills_a_service_before_the_global_grace_runs_out() {
    let mut rt = Rt::boot(&wippy_service(
        "stubborn",
        "{ ignore_shutdown: true }",
        "{ auto_start: true, stop_timeout: 50ms }",
    ));
    rt.until(|r| matches!(r, Report::Init(_)).then_some(()))
        .await;
    // The child can report Init before its supervisor has recorded its pid;
    // shutdown treats a pid it does not know as a plain process.
    let svc = rt.registry.get::<ServiceHandle>("t:stubborn").unwrap();
    super::support::eventually("the child's pid", || svc.pid().is_some()).await;
    let started = Instant::now();
    within("shutdown", rt.registry.shutdown(Duration::from_secs(20))).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

const BROKEN_DB: &str =
    "  - name: broken\n    kind: db.sql.sqlite\n    file: /proc/rippy-no-such-dir/x.db\n";

#[actix_web::test]
async fn an_optional_entry_that_fails_to_boot_lets_boot_continue() {
    let rt = Rt::boot(&format!(
        "{BROKEN_DB}    lifecycle: {{ startup: optional }}\n{}",
        wippy_service("after", "{ register: after }", "{ auto_start: true }")
    ));
    assert_eq!(rt.registry.skipped(), ["t:broken"]);
    assert!(rt.registry.get::<rippy::sql::Db>("t:broken").is_err());
    super::support::eventually("the later service", || rt.node().whereis("after").is_some()).await;
}

#[actix_web::test]
async fn a_required_entry_that_fails_to_boot_fails_boot() {
    let text = format!(
        "version: \"1.0\"\nnamespace: t\nentries:\n{BROKEN_DB}    lifecycle: {{ startup: required }}\n"
    );
    let manifest = super::support::parse(&text);
    let catalog = rippy::catalog::Catalog::new();
    let error = Registry::boot(manifest, &catalog)
        .err()
        .expect("boot fails");
    assert!(error.to_string().contains("t:broken"), "{error}");
}
