//! The event loop's wake-ups: masters' adverts are coalesced into 1 ms
//! slots (a thousand instances wake the loop once a millisecond, not ten
//! times), while a backup's Master_Down timer, on which a takeover waits,
//! is kept to the nanosecond even inside such a slot.

#[path = "support/link.rs"]
mod link;
use nginx_ha::config;
use nginx_ha::node::Node;
use nginx_ha::node::event::Event;
use nginx_ha::node::plan::{Passwords, plans};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const SLOT: Duration = Duration::from_millis(1);

fn us(v: u64) -> Duration {
    Duration::from_micros(v)
}

/// "a": 100 ms adverts, priority 200: Master_Down_Interval 300 ms + Skew
/// (56/256 × 100 ms) = 321.875 ms, then adverts at 421.875 ms, ...
/// "b": 130 ms adverts, priority 193: 390 ms + 63/256 × 130 ms =
/// 421.992 ms, inside a's first advert's slot (421.875–422 ms).
fn node() -> Node {
    let decl = json!({
        "node": { "name": "lb1", "priority": 100 },
        "instances": {
            "a": { "interface": "eth1", "virtualRouterId": 1, "priority": 200,
                   "virtualIps": ["198.51.100.1/32"], "advertInterval": "100ms" },
            "b": { "interface": "eth1", "virtualRouterId": 2, "priority": 193,
                   "virtualIps": ["198.51.100.2/32"], "advertInterval": "130ms" }
        }
    });
    let d = config::parse(decl.to_string().as_bytes()).expect("valid declaration");
    let link = link::eth1();
    let mut n = Node::new(BTreeMap::new(), false);
    for p in plans(&d, &Passwords::new(), &[link.clone(), link]).expect("plans") {
        let me = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
        n.handle(
            Duration::ZERO,
            Event::Add {
                plan: Box::new(p),
                on_link: vec![(me, 24)],
            },
        );
    }
    n.handle(Duration::ZERO, Event::Start);
    n
}

#[test]
fn backups_timers_are_exact_and_masters_adverts_wait_for_the_slot_end() {
    let mut n = node();
    // Both backups: the earliest is a's Master_Down timer, exact.
    assert_eq!(n.poll_timeout(), Some(us(321_875)));
    assert_eq!(n.poll_timeout_coalesced(SLOT), Some(us(321_875)));
    // a becomes master; its first advert timer is 421.875 ms, but b's
    // Master_Down timer falls in the same slot: that one is kept exact.
    n.handle(us(321_875), Event::Timer);
    assert_eq!(n.poll_timeout(), Some(us(421_875)));
    assert_eq!(
        n.poll_timeout_coalesced(SLOT),
        Some(us(421_992)),
        "a backup's timer inside the slot must not wait for the slot end"
    );
    // At b's timer a's advert is due too (one wake-up for both); b
    // becomes master. a's next advert, at 521.875 ms, falls with the
    // first repeat of its gratuitous ARPs (200 ms after it became master):
    // not an advert, so kept exact, and the advert goes with it.
    n.handle(us(421_992), Event::Timer);
    assert_eq!(n.poll_timeout(), Some(us(521_875)));
    assert_eq!(n.poll_timeout_coalesced(SLOT), Some(us(521_875)));
    // Then only b's advert, at 551.992 ms: it waits for the slot end.
    n.handle(us(521_875), Event::Timer);
    assert_eq!(n.poll_timeout(), Some(us(551_992)));
    assert_eq!(n.poll_timeout_coalesced(SLOT), Some(us(552_000)));
    // At the slot end b's advert goes out 8 µs late, and its next one is
    // still due at 681.992 ms (no drift). Before it: a's advert at
    // 621.875 ms, in the slot of b's ARP repeat (621.992 ms), which is
    // kept exact.
    n.handle(us(552_000), Event::Timer);
    assert_eq!(n.poll_timeout(), Some(us(621_875)));
    assert_eq!(n.poll_timeout_coalesced(SLOT), Some(us(621_992)));
    n.handle(us(621_992), Event::Timer);
    assert_eq!(n.poll_timeout(), Some(us(681_992)));
    assert_eq!(n.poll_timeout_coalesced(SLOT), Some(us(682_000)));
    // A zero slot is the exact deadline.
    assert_eq!(n.poll_timeout_coalesced(Duration::ZERO), Some(us(681_992)));
}
