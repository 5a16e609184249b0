//! Verdicts that change nothing are not news: the event loop passes on
//! nginx's exit (it watches the master process too) before the check's own
//! verdict says the same, and a check removed by a reload may still send
//! one last verdict.

#[path = "support/link.rs"]
mod link;
use nginx_ha::config;
use nginx_ha::node::Node;
use nginx_ha::node::event::{Command, Event};
use nginx_ha::node::plan::{Passwords, plans};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

fn node() -> Node {
    let decl = json!({
        "node": { "name": "lb1", "priority": 150 },
        "instances": { "web": { "interface": "eth1", "virtualRouterId": 1,
                                "virtualIps": ["198.51.100.1/32"] } }
    });
    let d = config::parse(decl.to_string().as_bytes()).expect("valid declaration");
    let link = link::eth1();
    let mut n = Node::new(BTreeMap::from([("nginx".to_string(), 0)]), false);
    for p in plans(&d, &Passwords::new(), &[link]).expect("plans") {
        n.handle(
            Duration::ZERO,
            Event::Add {
                plan: Box::new(p),
                on_link: vec![(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11)), 24)],
            },
        );
    }
    n.handle(Duration::ZERO, Event::Start);
    n
}

fn verdict(check: &str, healthy: bool, detail: &str) -> Event {
    Event::Verdict {
        check: check.into(),
        healthy,
        detail: detail.into(),
    }
}

fn logs(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .filter_map(|c| match c {
            Command::Log { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_same_verdict_twice_is_logged_and_acted_on_once() {
    let mut n = node();
    let t = Duration::from_secs(1);
    let up = n.handle(t, verdict("nginx", true, "stub_status answers"));
    assert_eq!(logs(&up).len(), 1, "{up:?}");
    let exited = "nginx master process 7 exited";
    let first = n.handle(t, verdict("nginx", false, exited));
    assert!(logs(&first).iter().any(|l| l.contains(exited)), "{first:?}");
    let again = n.handle(t, verdict("nginx", false, exited));
    assert!(again.is_empty(), "the repeat did something: {again:?}");
    // Still failing, for another reason: that is news.
    let other = n.handle(t, verdict("nginx", false, "nginx is not running"));
    assert_eq!(logs(&other).len(), 1, "{other:?}");
    assert_eq!(n.report(t).checks[0].changes, 1);
}

#[test]
fn a_verdict_of_a_check_not_configured_is_dropped() {
    let mut n = node();
    let cmds = n.handle(Duration::from_secs(1), verdict("gone", false, "late"));
    assert!(cmds.is_empty(), "{cmds:?}");
    assert!(
        n.report(Duration::from_secs(1))
            .checks
            .iter()
            .all(|c| c.name != "gone")
    );
}
