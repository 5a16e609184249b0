//! Masters' advert timers lent out of the node between events
//! (`Node::fire_adverts`): the adverts that go out, their times and bytes,
//! and the counters are those `handle(now, Event::Timer)` gives, while a
//! master's routine wake-up needs no `handle` at all.

#[path = "support/link.rs"]
mod link;
use nginx_ha::config;
use nginx_ha::node::event::{Command, Event};
use nginx_ha::node::plan::{Passwords, plans};
use nginx_ha::node::{LEND_MAX_INSTANCES, Node};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// `n` instances on one link: "m0" multicast at 10 ms adverts, "u1" a
/// unicast instance with two peers (two frames per advert) at 30 ms, the
/// rest multicast at 20 ms; all at priority 150 with nobody else on the
/// link, so each becomes master after its Master_Down_Interval. The check
/// "nginx" (weight -20) lowers the priority while it fails.
fn node(n: usize) -> Node {
    let mut instances = serde_json::Map::new();
    for i in 0..n {
        let name = match i {
            0 => "m0".to_string(),
            1 => "u1".to_string(),
            i => format!("m{i}"),
        };
        let mut inst = json!({
            "interface": "eth1", "virtualRouterId": i + 1, "version": 3,
            "virtualIps": [format!("198.51.100.{}/32", i + 1)],
            "advertInterval": match i { 0 => "10ms", 1 => "30ms", _ => "20ms" },
        });
        if i == 1 {
            inst["unicastPeers"] = json!(["192.0.2.11", "192.0.2.12", "192.0.2.13"]);
        }
        instances.insert(name, inst);
    }
    let decl = json!({
        "node": { "name": "lb1", "priority": 150 },
        "instances": Value::Object(instances),
    });
    let d = config::parse(decl.to_string().as_bytes()).expect("valid declaration");
    let link = link::eth1();
    let weights = BTreeMap::from([("nginx".to_string(), -20)]);
    let mut node = Node::new(weights, false);
    let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
    let links = vec![link; n];
    for p in plans(&d, &Passwords::new(), &links).expect("plans") {
        node.handle(
            Duration::ZERO,
            Event::Add {
                plan: Box::new(p),
                on_link: vec![(me, 24)],
            },
        );
    }
    node
}

fn verdict(healthy: bool) -> Event {
    Event::Verdict {
        check: "nginx".into(),
        healthy,
        detail: String::new(),
    }
}

/// (time, instance, destination, bytes) of one advert.
type Sent = (Duration, String, IpAddr, Vec<u8>);

fn sends(at: Duration, cmds: &[Command], out: &mut Vec<Sent>) {
    for c in cmds {
        if let Command::Send {
            instance,
            dst,
            bytes,
            ..
        } = c
        {
            out.push((at, instance.to_string(), *dst, bytes.to_vec()));
        }
    }
}

fn adverts_sent(n: &Node) -> Vec<u64> {
    n.report(Duration::ZERO)
        .instances
        .iter()
        .map(|i| i.counters.adverts_sent)
        .collect()
}

/// Runs a node for 1.2 s of node time, waking at `poll_timeout`, with the
/// check failing at 500 ms and passing again at 800 ms. `lend`: fire the
/// lent timers as the daemon does, and `handle` only what is left.
/// Returns what was sent, how many `Timer` events it took and the
/// counters at 650 ms and at the end.
fn run(n: usize, lend: bool) -> (Vec<Sent>, usize, Vec<u64>, Vec<u64>) {
    let mut node = node(n);
    let mut out = Vec::new();
    let mut timers = 0;
    let mut mid = Vec::new();
    let cmds = node.handle(Duration::ZERO, verdict(true));
    sends(Duration::ZERO, &cmds, &mut out);
    let cmds = node.handle(Duration::ZERO, Event::Start);
    sends(Duration::ZERO, &cmds, &mut out);
    let mut events = vec![(ms(500), verdict(false)), (ms(800), verdict(true))];
    events.reverse();
    let mut bounded = 0;
    loop {
        bounded += 1;
        assert!(bounded < 100_000, "the run does not end");
        let next = node.poll_timeout().expect("a deadline");
        let event_at = events.last().map(|(t, _)| *t);
        if let Some(t) = event_at
            && t <= next
        {
            let (t, ev) = events.pop().expect("an event");
            let cmds = node.handle(t, ev);
            sends(t, &cmds, &mut out);
            continue;
        }
        if next > ms(1200) {
            break;
        }
        if mid.is_empty() && next > ms(650) {
            mid = adverts_sent(&node);
        }
        if lend {
            node.fire_adverts(next, |f| {
                out.push((next, f.instance.to_string(), f.dst, f.bytes.to_vec()))
            });
            if !node.timer_due(next) {
                continue;
            }
        }
        timers += 1;
        let cmds = node.handle(next, Event::Timer);
        sends(next, &cmds, &mut out);
    }
    (out, timers, mid, adverts_sent(&node))
}

#[test]
fn lent_timers_send_the_same_adverts_at_the_same_times_and_count_them() {
    let (plain, plain_timers, plain_mid, plain_end) = run(3, false);
    let (lent, lent_timers, lent_mid, lent_end) = run(3, true);
    assert_eq!(plain.len(), lent.len(), "as many adverts");
    for (i, (a, b)) in plain.iter().zip(&lent).enumerate() {
        assert_eq!(a, b, "advert {i} differs");
    }
    assert_eq!(plain_mid, lent_mid, "counters while timers are lent");
    assert_eq!(plain_end, lent_end, "counters at the end");
    // The failing check lowered the priority in the adverts (150 - 20),
    // and passing again raised it: lent timers followed both.
    let prio_at = |t: Duration| {
        lent.iter()
            .find(|(at, name, ..)| *at >= t && name == "m0")
            .map(|(.., bytes)| bytes[2])
    };
    assert_eq!(prio_at(ms(400)), Some(150));
    assert_eq!(prio_at(ms(600)), Some(130));
    assert_eq!(prio_at(ms(900)), Some(150));
    // The unicast instance sends a frame per peer.
    assert!(
        lent.iter()
            .any(|(_, name, dst, _)| name == "u1"
                && *dst == IpAddr::V4(Ipv4Addr::new(192, 0, 2, 13)))
    );
    // Masters' routine adverts took no Timer events. What did: per
    // instance its takeover, the 4 repeats of its gratuitous ARPs (5, 200
    // ms apart) and its first advert at each new priority (the adverts at
    // a priority are built when first sent, and lent from then on).
    assert!(plain_timers > 100, "{plain_timers} Timer events");
    assert_eq!(
        lent_timers,
        3 * (1 + 4 + 2),
        "Timer events with lent timers"
    );
}

#[test]
fn many_instances_keep_their_timers_in_the_node() {
    let n = LEND_MAX_INSTANCES + 1;
    let (plain, _, _, plain_end) = run(n, false);
    let (lent, lent_timers, _, lent_end) = run(n, true);
    assert_eq!(plain, lent);
    assert_eq!(plain_end, lent_end);
    assert!(lent_timers > 100, "{lent_timers}: timers were lent");
}
