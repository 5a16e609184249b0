//! Whole nodes (`nginx_ha::node::Node`, every policy around the state
//! machine) on a simulated segment: adverts travel as the bytes the nodes
//! emit, decoded like the daemon decodes them, with delay, loss and
//! partitions; VIPs held and the clients' ARP entry follow the nodes'
//! commands. Properties are about what clients see: one holder, and the
//! ARP entry pointing at it.

use nginx_ha::config;
use nginx_ha::node::Node;
use nginx_ha::node::event::{Command, Event};
use nginx_ha::node::plan::{LinkInfo, Passwords, plans};
use nginx_ha::vrrp::packet::{Advert, IpMeta};
use serde_json::json;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

struct Member {
    node: Node,
    addr: IpAddr,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Packet {
    at: Duration,
    seq: u64,
    to: usize,
    src: IpAddr,
    dst: IpAddr,
    bytes: Vec<u8>,
}

struct Sim {
    now: Duration,
    nodes: Vec<Member>,
    queue: BinaryHeap<Reverse<Packet>>,
    seq: u64,
    rng: Rng,
    loss_permille: u64,
    max_delay: Duration,
    blocked: BTreeSet<(usize, usize)>,
    holders: BTreeSet<usize>,
    /// Which node the clients' ARP entry for the VIP points at: the last
    /// one that announced it.
    arp: Option<usize>,
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11 + i as u8))
}

fn node(i: usize, priority: u64, interval: &str) -> Member {
    let decl = json!({
        "node": { "name": format!("lb{i}"), "priority": priority },
        "instances": { "web": {
            "interface": "eth1", "virtualRouterId": 51,
            "virtualIps": ["192.0.2.100/24"], "advertInterval": interval,
            "announce": { "count": 3, "delay": "20ms" }
        } }
    });
    let d = config::parse(decl.to_string().as_bytes()).expect("valid declaration");
    let link = LinkInfo {
        index: 2,
        name: "eth1".into(),
        up: true,
        mac: Some([2, 0, 0, 0, 0, i as u8]),
    };
    let plan = plans(&d, &Passwords::new(), &[link])
        .expect("plans")
        .remove(0);
    let mut n = Node::new(BTreeMap::from([("nginx".to_string(), 0)]), false);
    let a = addr(i);
    // The start-up commands (open sockets, nothing else) need no world.
    n.handle(
        Duration::ZERO,
        Event::Add {
            plan: Box::new(plan),
            on_link: vec![(a, 24)],
        },
    );
    Member { node: n, addr: a }
}

impl Sim {
    fn new(priorities: &[u64], interval: &str, seed: u64) -> Sim {
        let mut s = Sim {
            now: Duration::ZERO,
            nodes: priorities
                .iter()
                .enumerate()
                .map(|(i, p)| node(i, *p, interval))
                .collect(),
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng(seed),
            loss_permille: 0,
            max_delay: 2 * MS,
            blocked: BTreeSet::new(),
            holders: BTreeSet::new(),
            arp: None,
        };
        for i in 0..s.nodes.len() {
            s.feed(i, Event::Start);
            s.verdict(i, true);
        }
        s
    }

    fn verdict(&mut self, i: usize, healthy: bool) {
        let ev = Event::Verdict {
            check: "nginx".into(),
            healthy,
            detail: if healthy { "ok" } else { "nginx exited" }.into(),
        };
        self.feed(i, ev);
    }

    fn feed(&mut self, i: usize, ev: Event) {
        let cmds = self.nodes[i].node.handle(self.now, ev);
        for c in cmds {
            match c {
                Command::Send {
                    src, dst, bytes, ..
                } => {
                    for to in 0..self.nodes.len() {
                        if to == i || self.blocked.contains(&(i, to)) {
                            continue;
                        }
                        if self.rng.below(1000) < self.loss_permille {
                            continue;
                        }
                        let delay = Duration::from_micros(
                            self.rng.below(self.max_delay.as_micros() as u64 + 1),
                        );
                        self.seq += 1;
                        self.queue.push(Reverse(Packet {
                            at: self.now + delay,
                            seq: self.seq,
                            to,
                            src,
                            dst,
                            bytes: bytes.to_vec(),
                        }));
                    }
                }
                Command::AddVips { .. } => {
                    self.holders.insert(i);
                }
                Command::RemoveVips { .. } => {
                    self.holders.remove(&i);
                }
                Command::Announce { .. } => self.arp = Some(i),
                _ => {}
            }
        }
    }

    fn run_until(&mut self, until: Duration) {
        loop {
            let packet = self.queue.peek().map(|Reverse(p)| p.at);
            let timer = (0..self.nodes.len())
                .filter_map(|i| self.nodes[i].node.poll_timeout().map(|t| (t, i)))
                .min();
            let next = match (packet, timer) {
                (Some(p), Some((t, _))) => p.min(t),
                (Some(p), None) => p,
                (None, Some((t, _))) => t,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = next;
            if packet == Some(next) {
                let Some(Reverse(p)) = self.queue.pop() else {
                    break;
                };
                let meta = IpMeta {
                    src: p.src,
                    dst: p.dst,
                    ttl: 255,
                };
                let (advert, checksum) =
                    Advert::decode(&p.bytes, meta).expect("nodes send valid adverts");
                let ev = Event::Advert {
                    ifindex: 2,
                    v4: true,
                    src: p.src,
                    advert,
                    checksum,
                };
                self.feed(p.to, ev);
            } else if let Some((_, i)) = timer {
                self.feed(i, Event::Timer);
            }
        }
        self.now = until;
    }

    fn partition(&mut self, on: bool) {
        for a in 0..self.nodes.len() {
            for b in 0..self.nodes.len() {
                if a != b {
                    if on {
                        self.blocked.insert((a, b));
                    } else {
                        self.blocked.remove(&(a, b));
                    }
                }
            }
        }
    }
}

#[test]
fn one_holder_the_best_and_the_clients_point_at_it() {
    for seed in 0..40 {
        let mut s = Sim::new(&[150, 100, 120], "100ms", seed);
        s.loss_permille = 50;
        s.run_until(Duration::from_secs(3));
        assert_eq!(s.holders, BTreeSet::from([0]), "seed {seed}");
        assert_eq!(s.arp, Some(0), "seed {seed}");
        assert!(s.nodes[0].addr != s.nodes[1].addr);
    }
}

#[test]
fn after_a_heal_the_clients_point_at_the_master_within_an_interval() {
    for seed in 0..40 {
        let mut s = Sim::new(&[150, 100], "100ms", seed);
        s.run_until(Duration::from_secs(2));
        assert_eq!(s.arp, Some(0));
        // VRRP cut both ways: the backup takes the VIP too and the clients
        // follow its announcements.
        s.partition(true);
        s.run_until(Duration::from_secs(4));
        assert_eq!(
            s.holders,
            BTreeSet::from([0, 1]),
            "seed {seed}: split brain"
        );
        assert_eq!(
            s.arp,
            Some(1),
            "seed {seed}: clients follow the latest announcement"
        );
        let healed = Duration::from_secs(4) + Duration::from_micros(s.rng.below(100_000));
        s.run_until(healed);
        s.partition(false);
        // One advert interval (the master's next advert, or the backup's
        // answered at once) plus the link's delay.
        s.run_until(healed + 100 * MS + 2 * s.max_delay);
        assert_eq!(
            s.holders,
            BTreeSet::from([0]),
            "seed {seed}: one holder after the heal"
        );
        assert_eq!(
            s.arp,
            Some(0),
            "seed {seed}: the clients point at the master again"
        );
    }
}

#[test]
fn nginx_death_moves_vip_and_clients_within_skew_time_and_back() {
    for seed in 0..40 {
        let mut s = Sim::new(&[150, 100], "100ms", seed);
        s.run_until(Duration::from_secs(2));
        let died = Duration::from_secs(2) + Duration::from_micros(s.rng.below(100_000));
        s.run_until(died);
        s.verdict(0, false);
        assert!(
            !s.holders.contains(&0),
            "seed {seed}: the master drops its VIP at once"
        );
        // Priority 0 from the master: the backup waits its Skew_Time,
        // (256-100)/256 x 100 ms = 60.9 ms, plus the link's delay.
        s.run_until(died + 61 * MS + s.max_delay);
        assert_eq!(s.holders, BTreeSet::from([1]), "seed {seed}");
        assert_eq!(s.arp, Some(1), "seed {seed}");
        s.verdict(0, true);
        s.run_until(died + Duration::from_secs(2));
        assert_eq!(s.holders, BTreeSet::from([0]), "seed {seed}: failback");
        assert_eq!(s.arp, Some(0), "seed {seed}");
    }
}

#[test]
fn maintenance_hands_over_and_back() {
    let mut s = Sim::new(&[150, 100], "100ms", 7);
    s.run_until(Duration::from_secs(2));
    s.feed(0, Event::Maintenance(true));
    s.run_until(Duration::from_secs(3));
    assert_eq!((s.holders.clone(), s.arp), (BTreeSet::from([1]), Some(1)));
    s.feed(0, Event::Maintenance(false));
    s.run_until(Duration::from_secs(5));
    assert_eq!((s.holders.clone(), s.arp), (BTreeSet::from([0]), Some(0)));
}

/// The adverts a master sends, (source, bytes), running its timers for
/// `span` from `*t`.
fn run_sends(m: &mut Member, t: &mut Duration, span: Duration) -> Vec<(IpAddr, IpAddr, Vec<u8>)> {
    let end = *t + span;
    let mut out = Vec::new();
    while let Some(at) = m.node.poll_timeout().filter(|at| *at <= end) {
        *t = at.max(*t);
        for c in m.node.handle(*t, Event::Timer) {
            if let Command::Send {
                src, dst, bytes, ..
            } = c
            {
                out.push((src, dst, bytes.to_vec()));
            }
        }
    }
    *t = end;
    out
}

/// Adverts are built once and sent again as long as nothing in them
/// changes (issue 15: less work per advert); a new source address, whose
/// checksum differs, must still reach the wire in adverts built anew.
#[test]
fn adverts_are_rebuilt_for_a_new_source_address() {
    let mut m = node(0, 150, "100ms");
    let mut t = Duration::ZERO;
    m.node.handle(t, Event::Start);
    m.node.handle(
        t,
        Event::Verdict {
            check: "nginx".into(),
            healthy: true,
            detail: "ok".into(),
        },
    );
    let valid = |sends: &[(IpAddr, IpAddr, Vec<u8>)]| {
        sends.iter().all(|(src, dst, bytes)| {
            let meta = IpMeta {
                src: *src,
                dst: *dst,
                ttl: 255,
            };
            Advert::decode(bytes, meta).is_ok()
        })
    };
    let before = run_sends(&mut m, &mut t, 2000 * MS);
    assert!(before.len() > 5, "a master that advertises: {before:?}");
    assert!(before.iter().all(|s| s.0 == addr(0)) && valid(&before));

    // The interface is re-created with another address.
    let moved = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));
    let link = LinkInfo {
        index: 3,
        name: "eth1".into(),
        up: true,
        mac: Some([2, 0, 0, 0, 0, 9]),
    };
    for ev in [
        Event::LinkGone {
            index: 2,
            name: "eth1".into(),
        },
        Event::Link(link),
        Event::Addresses {
            index: 3,
            addrs: vec![(moved, 24)],
        },
    ] {
        m.node.handle(t, ev);
        run_sends(&mut m, &mut t, 100 * MS);
    }
    let after = run_sends(&mut m, &mut t, 2000 * MS);
    let last = after.last().expect("adverts again from the new address");
    assert_eq!(last.0, moved);
    assert!(valid(&after), "every advert checksummed for its source");
}
