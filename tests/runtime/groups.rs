//! Broadcast groups: the kept message first, then every publish, in order;
//! only the name's holder publishes; members leave when they exit; the kept
//! message goes with its publisher, membership stays with the name.

use rippy::prelude::*;
use serde_json::json;

use super::Rt;
use super::probe::Report;

/// Reports as they come, with the `news` each process received kept aside
/// (a news report may come before or after the outcome that caused it).
struct Watch {
    news: Vec<(Pid, Value)>,
}

impl Watch {
    fn new() -> Self {
        Watch { news: Vec::new() }
    }

    fn keep(&mut self, r: &Report) {
        if let Report::Event(p, Event::Message(m)) = r
            && m.topic == "news"
        {
            let payload = m.payload.to_json().unwrap_or(Value::Null);
            self.news.push((p.clone(), payload));
        }
    }

    /// Asks `pid` to try `op` and returns what it answered.
    async fn attempt(&mut self, rt: &mut Rt, pid: &Pid, op: Value) -> Result<String, String> {
        let name = op["op"].as_str().unwrap().to_owned();
        rt.node().send(None, pid, "try", op).unwrap();
        loop {
            let r = rt.next().await;
            self.keep(&r);
            if let Report::Outcome(p, o, outcome) = r
                && p == *pid
                && o == name
            {
                return outcome;
            }
        }
    }

    /// Every news `pid` received, in order, once it has `n`.
    async fn news_for(&mut self, rt: &mut Rt, pid: &Pid, n: usize) -> Vec<Value> {
        while self.news.iter().filter(|(p, _)| p == pid).count() < n {
            let r = rt.next().await;
            self.keep(&r);
        }
        let mine = self.news.iter().filter(|(p, _)| p == pid);
        mine.map(|(_, v)| v.clone()).collect()
    }
}

async fn publisher(rt: &mut Rt) -> Pid {
    let publisher = rt.spawn(json!({ "register": "feed" }));
    rt.init_of(&publisher).await;
    publisher
}

fn publish_op(data: &str) -> Value {
    json!({ "op": "publish", "name": "feed", "data": data })
}

fn join_op(member: &Pid) -> Value {
    json!({ "op": "join", "name": "feed", "pid": member.to_string() })
}

#[actix_web::test]
async fn a_joiner_gets_the_kept_message_then_every_publish_in_order() {
    let mut rt = Rt::boot("");
    let mut w = Watch::new();
    let publisher = publisher(&mut rt).await;
    let publish = publish_op("m0");
    assert_eq!(
        w.attempt(&mut rt, &publisher, publish).await,
        Ok("0".into())
    );
    let member = rt.spawn(Value::Null);
    let join = join_op(&member);
    assert_eq!(w.attempt(&mut rt, &member, join).await, Ok("true".into()));
    assert_eq!(w.news_for(&mut rt, &member, 1).await, vec![json!("m0")]);
    // A second join is refused and does not hand the kept message again.
    let join = join_op(&member);
    assert_eq!(w.attempt(&mut rt, &member, join).await, Ok("false".into()));
    for i in 1..=200 {
        let publish = publish_op(&format!("m{i}"));
        assert_eq!(
            w.attempt(&mut rt, &publisher, publish).await,
            Ok("1".into())
        );
    }
    let expected: Vec<Value> = (0..=200).map(|i| json!(format!("m{i}"))).collect();
    assert_eq!(w.news_for(&mut rt, &member, 201).await, expected);
    assert_eq!(rt.node().group_members("feed"), 1);
    // Leaving stops the messages; the count says so at once.
    let leave = json!({ "op": "leave", "name": "feed", "pid": member.to_string() });
    assert_eq!(w.attempt(&mut rt, &member, leave).await, Ok("true".into()));
    assert_eq!(rt.node().group_members("feed"), 0);
    let publish = publish_op("after");
    assert_eq!(
        w.attempt(&mut rt, &publisher, publish).await,
        Ok("0".into())
    );
}

#[actix_web::test]
async fn only_the_holder_of_the_name_publishes() {
    let mut rt = Rt::boot("");
    let mut w = Watch::new();
    let publisher = publisher(&mut rt).await;
    let other = rt.spawn(Value::Null);
    let forged = publish_op("forged");
    let refused = w.attempt(&mut rt, &other, forged).await.unwrap_err();
    assert!(refused.contains("not registered under it"), "{refused}");
    let unnamed = json!({ "op": "publish", "name": "nobody", "data": "x" });
    assert!(w.attempt(&mut rt, &other, unnamed).await.is_err());
    // Nothing forged was kept or sent: a joiner's first news is the real one.
    let member = rt.spawn(Value::Null);
    let join = join_op(&member);
    assert_eq!(
        w.attempt(&mut rt, &publisher, join).await,
        Ok("true".into())
    );
    let real = publish_op("real");
    assert_eq!(w.attempt(&mut rt, &publisher, real).await, Ok("1".into()));
    assert_eq!(w.news_for(&mut rt, &member, 1).await, vec![json!("real")]);
}

#[actix_web::test]
async fn a_member_that_exits_leaves_and_a_dead_pid_cannot_join() {
    let mut rt = Rt::boot("");
    let mut w = Watch::new();
    let publisher = publisher(&mut rt).await;
    let members: Vec<Pid> = (0..50).map(|_| rt.spawn(Value::Null)).collect();
    for m in &members {
        let join = join_op(m);
        assert_eq!(
            w.attempt(&mut rt, &publisher, join).await,
            Ok("true".into())
        );
    }
    assert_eq!(rt.node().group_members("feed"), 50);
    for m in &members[..30] {
        let exited = rt.node().wait_exit(m);
        rt.node().send(None, m, "stop", Value::Null).unwrap();
        exited.await;
    }
    assert_eq!(rt.node().group_members("feed"), 20);
    let publish = publish_op("left");
    assert_eq!(
        w.attempt(&mut rt, &publisher, publish).await,
        Ok("20".into())
    );
    let join = join_op(&members[0]);
    assert_eq!(
        w.attempt(&mut rt, &publisher, join).await,
        Ok("false".into())
    );
    assert_eq!(rt.node().group_members("feed"), 20);
}

#[actix_web::test]
async fn the_kept_message_goes_with_its_publisher_and_members_stay_with_the_name() {
    let mut rt = Rt::boot("");
    let mut w = Watch::new();
    let first = publisher(&mut rt).await;
    let old = publish_op("old");
    assert_eq!(w.attempt(&mut rt, &first, old).await, Ok("0".into()));
    let member = rt.spawn(Value::Null);
    let join = join_op(&member);
    assert_eq!(w.attempt(&mut rt, &member, join).await, Ok("true".into()));
    assert_eq!(w.news_for(&mut rt, &member, 1).await, vec![json!("old")]);
    let exited = rt.node().wait_exit(&first);
    rt.node().send(None, &first, "stop", Value::Null).unwrap();
    exited.await;
    // A joiner now gets nothing kept: the next message it sees is new.
    let late = rt.spawn(Value::Null);
    let join = join_op(&late);
    assert_eq!(w.attempt(&mut rt, &late, join).await, Ok("true".into()));
    let second = publisher(&mut rt).await;
    let new = publish_op("new");
    assert_eq!(w.attempt(&mut rt, &second, new).await, Ok("2".into()));
    assert_eq!(
        w.news_for(&mut rt, &member, 2).await,
        vec![json!("old"), json!("new")]
    );
    assert_eq!(w.news_for(&mut rt, &late, 1).await, vec![json!("new")]);
}
