//! Services: restart with backoff, restart limit, no restart on normal exit,
//! names across restarts, and shutdown order.

use std::time::{Duration, Instant};

use rippy::prelude::*;
use rippy::process::ServiceHandle;

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
