//! Processes: spawn, ordering, names, monitors, panics, drops, timers,
//! shared payloads, authorization and modules.

use rippy::prelude::*;
use rippy::process::{Caller, SpawnError};
use rippy::security::{Actor, Effect, Identity, Policy, Scope};
use serde_json::json;
use std::sync::Arc;

use super::Rt;
use super::probe::Report;
use super::support::within;

fn message_of(r: &Report, pid: &Pid) -> Option<Message> {
    match r {
        Report::Event(p, Event::Message(m)) if p == pid => Some(m.clone()),
        _ => None,
    }
}

// semantics.md §1 (pids)
#[actix_web::test]
async fn a_spawned_process_has_a_pid_on_its_host_in_wippy_form() {
    let mut rt = Rt::boot("");
    let pid = rt.spawn(Value::Null);
    rt.init_of(&pid).await;
    assert_eq!(pid.host(), "t:host");
    assert!(pid.to_string().starts_with("{t:host|0x"), "{pid}");
    assert_eq!(pid.to_string().parse::<Pid>().unwrap(), pid);
    assert!(rt.node().is_alive(&pid));
}

// semantics.md §2 (ordering)
#[actix_web::test]
async fn messages_from_one_sender_arrive_in_the_order_sent() {
    let mut rt = Rt::boot("");
    let pid = rt.spawn(Value::Null);
    for i in 0..1000 {
        rt.node().send(None, &pid, "n", json!(i)).unwrap();
    }
    for i in 0..1000 {
        let m = rt.until(|r| message_of(r, &pid)).await;
        assert_eq!(m.payload.as_json(), Some(&json!(i)));
    }
}

// semantics.md §2 (ordering): a message sent right after spawn is not lost
#[actix_web::test]
async fn a_message_sent_right_after_spawn_is_delivered() {
    let mut rt = Rt::boot("");
    let pid = rt.spawn(Value::Null);
    rt.node().send(None, &pid, "first", json!(1)).unwrap();
    let m = rt.until(|r| message_of(r, &pid)).await;
    assert_eq!(m.topic, "first");
}

// semantics.md §5 (names)
#[actix_web::test]
async fn a_registered_name_reaches_the_process_and_is_removed_on_exit() {
    let mut rt = Rt::boot("");
    let pid = rt.spawn(json!({ "register": "alpha" }));
    rt.init_of(&pid).await;
    assert_eq!(rt.node().whereis("alpha"), Some(pid.clone()));
    rt.node().send(None, "alpha", "hello", Value::Null).unwrap();
    assert_eq!(rt.until(|r| message_of(r, &pid)).await.topic, "hello");
    rt.node().send(None, &pid, "stop", Value::Null).unwrap();
    within("exit", rt.node().wait_exit(&pid)).await;
    assert_eq!(rt.node().whereis("alpha"), None);
    assert!(matches!(
        rt.node().send(None, "alpha", "hello", Value::Null),
        Err(SendError::UnknownName(_))
    ));
}

// semantics.md §5 (names)
#[actix_web::test]
async fn a_name_cannot_be_taken_twice() {
    let mut rt = Rt::boot("");
    let a = rt.spawn(json!({ "register": "solo" }));
    rt.init_of(&a).await;
    let b = rt.spawn(json!({ "register": "solo" }));
    let reason = rt
        .until(|r| match r {
            Report::Exit(p, reason) if *p == b => Some(reason.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(&reason, ExitReason::Error(e) if e.contains("already registered")),
        "{reason:?}"
    );
    assert_eq!(rt.node().whereis("solo"), Some(a));
}

async fn exit_reason_after(rt: &mut Rt, topic: &'static str) -> ExitReason {
    let watcher = rt.spawn(Value::Null);
    let target = rt.spawn(Value::Null);
    rt.init_of(&target).await;
    rt.node()
        .send(None, &watcher, "monitor", json!(target.to_string()))
        .unwrap();
    // The monitor message is handled before the next one from the same sender.
    rt.node().send(None, &watcher, "ping", Value::Null).unwrap();
    rt.until(|r| message_of(r, &watcher).filter(|m| m.topic == "ping"))
        .await;
    if topic == "kill" {
        assert!(rt.node().kill(&target));
    } else {
        rt.node().send(None, &target, topic, Value::Null).unwrap();
    }
    let reason = rt.exit_seen_by(&watcher, &target).await;
    // Exactly once: a marker sent after the EXIT arrives next, no second EXIT first.
    rt.node()
        .send(None, &watcher, "marker", Value::Null)
        .unwrap();
    let next = rt
        .until(|r| match r {
            Report::Event(w, e) if *w == watcher => Some(e.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(&next, Event::Message(m) if m.topic == "marker"),
        "second event was {next:?}"
    );
    // The EXIT used the monitor up, on both sides: the watcher, still
    // alive, holds no link to the dead pid.
    let stats = rt.node().stats();
    assert_eq!((stats.monitors, stats.watching), (0, 0));
    reason
}

// semantics.md §3 (monitors)
#[actix_web::test]
async fn a_monitor_gets_exactly_one_exit_on_normal_return() {
    let mut rt = Rt::boot("");
    assert_eq!(exit_reason_after(&mut rt, "stop").await, ExitReason::Normal);
}

// semantics.md §3 (monitors)
#[actix_web::test]
async fn a_monitor_gets_exactly_one_exit_on_error() {
    let mut rt = Rt::boot("");
    assert_eq!(
        exit_reason_after(&mut rt, "fail").await,
        ExitReason::Error("told to fail".into())
    );
}

// semantics.md §3, §4 (monitors, panics)
#[actix_web::test]
async fn a_monitor_gets_exactly_one_exit_on_panic() {
    let mut rt = Rt::boot("");
    assert_eq!(
        exit_reason_after(&mut rt, "panic").await,
        ExitReason::Panic("told to panic".into())
    );
}

// semantics.md §3 (monitors)
#[actix_web::test]
async fn a_monitor_gets_exactly_one_exit_on_kill() {
    let mut rt = Rt::boot("");
    assert_eq!(exit_reason_after(&mut rt, "kill").await, ExitReason::Killed);
}

// semantics.md §3 (monitors)
#[actix_web::test]
async fn monitoring_a_dead_pid_delivers_exit_at_once() {
    let mut rt = Rt::boot("");
    let dead = rt.spawn(json!({ "exit_in_init": true }));
    within("exit", rt.node().wait_exit(&dead)).await;
    let watcher = rt.spawn(Value::Null);
    rt.node()
        .send(None, &watcher, "monitor", json!(dead.to_string()))
        .unwrap();
    assert_eq!(
        rt.exit_seen_by(&watcher, &dead).await,
        ExitReason::NoProcess
    );
}

// semantics.md §3 (monitors)
#[actix_web::test]
async fn a_demonitored_process_sends_no_exit() {
    let mut rt = Rt::boot("");
    let watcher = rt.spawn(Value::Null);
    let target = rt.spawn(Value::Null);
    rt.node()
        .send(None, &watcher, "monitor", json!(target.to_string()))
        .unwrap();
    rt.node()
        .send(None, &watcher, "demonitor", json!(target.to_string()))
        .unwrap();
    rt.node().send(None, &watcher, "done", Value::Null).unwrap();
    rt.until(|r| message_of(r, &watcher).filter(|m| m.topic == "done"))
        .await;
    assert_eq!(rt.node().stats().monitors, 0);
    rt.node().send(None, &target, "stop", Value::Null).unwrap();
    within("exit", rt.node().wait_exit(&target)).await;
    rt.node()
        .send(None, &watcher, "marker", Value::Null)
        .unwrap();
    let next = rt
        .until(|r| match r {
            Report::Event(w, e) if *w == watcher => Some(e.clone()),
            _ => None,
        })
        .await;
    assert!(
        matches!(&next, Event::Message(m) if m.topic == "marker"),
        "got {next:?}"
    );
}

// semantics.md §4 (panics)
#[actix_web::test]
async fn a_panicking_process_ends_alone() {
    let mut rt = Rt::boot("");
    // Two workers: spawn enough bystanders that some share the panicking one's thread.
    let bystanders: Vec<Pid> = (0..4).map(|_| rt.spawn(Value::Null)).collect();
    let victim = rt.spawn(Value::Null);
    let exit = rt.node().wait_exit(&victim);
    rt.node().send(None, &victim, "panic", Value::Null).unwrap();
    let reason = within("exit", exit).await;
    assert!(matches!(reason, ExitReason::Panic(_)));
    for b in &bystanders {
        rt.node().send(None, b, "still-there", Value::Null).unwrap();
        let m = rt.until(|r| message_of(r, b)).await;
        assert_eq!(m.topic, "still-there");
    }
    let fresh = rt.spawn(Value::Null);
    rt.init_of(&fresh).await;
}

// semantics.md §6 (dropped sends)
#[actix_web::test]
async fn a_send_to_a_dead_pid_is_dropped_and_counted() {
    let rt = Rt::boot("");
    let pid = rt.spawn(json!({ "exit_in_init": true }));
    within("exit", rt.node().wait_exit(&pid)).await;
    let before = rt.node().stats().dropped_dead;
    assert_eq!(
        rt.node().send(None, &pid, "late", Value::Null),
        Err(SendError::DeadPid(pid.clone()))
    );
    assert_eq!(
        rt.node().send(None, "nobody", "late", Value::Null),
        Err(SendError::UnknownName("nobody".into()))
    );
    assert_eq!(rt.node().stats().dropped_dead, before + 2);
}

// semantics.md §7 (timers)
#[actix_web::test]
async fn an_interval_timer_fires_repeatedly() {
    let mut rt = Rt::boot("");
    let pid = rt.spawn(json!({ "interval_ms": 5 }));
    for _ in 0..3 {
        rt.until(|r| matches!(r, Report::Event(p, Event::Timer(_)) if *p == pid).then_some(()))
            .await;
    }
}

// semantics.md §2 (payloads)
#[actix_web::test]
async fn a_broadcast_shares_one_buffer_with_every_recipient() {
    let mut rt = Rt::boot("");
    let pids: Vec<Pid> = (0..10).map(|_| rt.spawn(Value::Null)).collect();
    let frame = Bytes::from(vec![7u8; 240]);
    for p in &pids {
        rt.node().send(None, p, "tick", frame.clone()).unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    while seen.len() < pids.len() {
        let (pid, m) = rt
            .until(|r| match r {
                Report::Event(p, Event::Message(m)) => Some((p.clone(), m.clone())),
                _ => None,
            })
            .await;
        let Payload::Bytes(b) = m.payload else {
            panic!("bytes expected")
        };
        assert_eq!(b.as_ptr(), frame.as_ptr(), "the recipient got a copy");
        seen.insert(pid);
    }
}

// semantics.md §8 (spawning is authorized)
#[actix_web::test]
async fn a_spawn_needs_both_permissions_in_the_callers_scope() {
    let rt = Rt::boot("");
    let policy = |actions: &[&str], resources: &[&str], effect| {
        Arc::new(Policy {
            id: "t:p".into(),
            actions: actions.iter().map(|s| s.to_string()).collect(),
            resources: resources.iter().map(|s| s.to_string()).collect(),
            effect,
            groups: vec![],
        })
    };
    let who = |policies| {
        std::sync::Arc::new(Identity {
            actor: Actor::new("user:x"),
            scope: Scope::new(policies),
            meta: Value::Null,
        })
    };
    let none = who(vec![]);
    let spawn_only = who(vec![policy(
        &["process.spawn"],
        &["t:probe"],
        Effect::Allow,
    )]);
    let both = who(vec![policy(&["process.*"], &["t:*"], Effect::Allow)]);
    let denied = who(vec![
        policy(&["process.*"], &["t:*"], Effect::Allow),
        policy(&["process.host"], &["t:host"], Effect::Deny),
    ]);
    for (identity, ok) in [
        (&none, false),
        (&spawn_only, false),
        (&both, true),
        (&denied, false),
    ] {
        let result = rt
            .node()
            .spawn(Caller::Identity(identity), "t:probe", "t:host", Value::Null);
        assert_eq!(result.is_ok(), ok, "{result:?}");
        if let Err(e) = result {
            assert!(matches!(e, SpawnError::Denied(_)));
        }
    }
}

// semantics.md §8: modules
#[actix_web::test]
async fn using_an_undeclared_module_is_an_error_naming_the_module() {
    let rt = Rt::boot("");
    let pid = rt.spawn(Value::Null);
    let exit = rt.node().wait_exit(&pid);
    rt.node().send(None, &pid, "use_sql", Value::Null).unwrap();
    let reason = within("exit", exit).await;
    let ExitReason::Error(text) = reason else {
        panic!("{reason:?}")
    };
    assert!(
        text.contains("module `sql`") && text.contains("t:probe"),
        "{text}"
    );
}

#[actix_web::test]
async fn a_declared_module_is_usable() {
    let rt = Rt::boot(
        "  - name: sql_probe\n    kind: process.rust\n    source: file://tests/probe.rs\n    method: run\n    modules: [sql]\n",
    );
    let pid = rt
        .node()
        .spawn(Caller::Trusted, "t:sql_probe", "t:host", Value::Null)
        .unwrap();
    let exit = rt.node().wait_exit(&pid);
    rt.node().send(None, &pid, "use_sql", Value::Null).unwrap();
    rt.node().send(None, &pid, "stop", Value::Null).unwrap();
    assert_eq!(within("exit", exit).await, ExitReason::Normal);
}

// semantics.md §1, §3, §5: nothing leaks
#[actix_web::test]
async fn ten_thousand_spawn_and_exit_cycles_leave_nothing_behind() {
    let mut rt = Rt::boot("");
    let watcher = rt.spawn(Value::Null);
    rt.init_of(&watcher).await;
    let mut batch = Vec::new();
    for i in 0..10_000u32 {
        let pid = rt.spawn(json!({ "register": format!("p{i}") }));
        rt.node()
            .send(None, &watcher, "monitor", json!(pid.to_string()))
            .unwrap();
        rt.node().send(None, &pid, "stop", Value::Null).unwrap();
        batch.push(pid);
        if batch.len() == 500 {
            for pid in batch.drain(..) {
                within("exit", rt.node().wait_exit(&pid)).await;
            }
            while rt.rx.try_recv().is_ok() {}
        }
    }
    for pid in batch.drain(..) {
        within("exit", rt.node().wait_exit(&pid)).await;
    }
    // Every other process has left the table: the count is the watcher.
    assert_eq!(rt.node().process_count(), 1);
    // Let the watcher finish its queued monitor/EXIT traffic.
    rt.node().send(None, &watcher, "stop", Value::Null).unwrap();
    within("watcher exit", rt.node().wait_exit(&watcher)).await;
    let stats = rt.node().stats();
    assert_eq!(rt.node().process_count(), 0);
    assert_eq!(
        (stats.processes, stats.names, stats.monitors),
        (0, 0, 0),
        "{stats:?}"
    );
    let spec = rt
        .registry
        .get::<rippy::process::ProcessSpec>("t:probe")
        .unwrap();
    assert_eq!(spec.live(), 0);
    assert_eq!(spec.spawns(), 10_001);
}

// semantics.md §1 (placement)
#[actix_web::test]
async fn a_caller_placed_host_runs_a_spawn_on_the_spawning_thread() {
    let mut rt = Rt::boot("  - name: local\n    kind: process.host\n    placement: caller\n");
    let parent = rt.spawn(Value::Null);
    rt.init_of(&parent).await;
    let thread_of = |rt: &mut Rt, pid: Option<Pid>| {
        let mut rx = std::mem::replace(&mut rt.rx, tokio::sync::mpsc::unbounded_channel().1);
        async move {
            loop {
                let r = within("a thread report", rx.recv()).await.expect("reports");
                if let Report::Thread(p, t) = r
                    && pid.as_ref().is_none_or(|want| *want == p)
                {
                    return (rx, p, t);
                }
            }
        }
    };
    rt.node()
        .send(None, &parent, "spawn_on", json!("t:local"))
        .unwrap();
    let (rx, p1, parent_thread) = thread_of(&mut rt, Some(parent.clone())).await;
    rt.rx = rx;
    let (rx, child, child_thread) = thread_of(&mut rt, None).await;
    rt.rx = rx;
    assert_eq!(p1, parent);
    assert_ne!(child, parent);
    assert_eq!(child.host(), "t:local");
    assert_eq!(
        child_thread, parent_thread,
        "the child runs beside its spawner"
    );
}
