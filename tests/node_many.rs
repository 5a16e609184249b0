//! A node with many instances does for each what a node with only that
//! instance does. The node finds the instance an advert is for and the
//! instances due at a timer through indexes kept beside its instances
//! (`node::members`); this drives one node holding many instances and, in
//! lockstep, one single-instance node per instance with the same random
//! adverts, verdicts, faults, link changes (a re-created interface moves
//! instances to a new index), maintenance and reloads that remove
//! instances (indices shift), and asserts every instance's commands are the
//! same in both, event by event.

use nginx_ha::config;
use nginx_ha::node::Node;
use nginx_ha::node::event::{Command, Event};
use nginx_ha::node::plan::{LinkInfo, Passwords, Plan, plans};
use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, Version};
use serde_json::json;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[path = "support/rng.rs"]
mod rng;
use rng::Rng;

const N: usize = 40;
const ME: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11));
const PEER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 12));

fn link(index: u32, name: &str, up: bool) -> LinkInfo {
    LinkInfo {
        index,
        name: name.into(),
        up,
        mac: Some([2, 0, 0, 0, 0, index as u8]),
    }
}

/// Instances on two interfaces, the VRIDs of eth1 reused on eth2, mixed
/// intervals (so deadlines cross) and priorities.
fn all_plans() -> Vec<Plan> {
    let mut insts = serde_json::Map::new();
    for k in 0..N {
        let (iface, vrid) = if k % 2 == 0 {
            ("eth1", 1 + k / 2)
        } else {
            ("eth2", 1 + k / 2)
        };
        let interval = ["100ms", "50ms", "1s", "230ms"][k % 4];
        insts.insert(
            format!("i{k:02}"),
            json!({
                "interface": iface, "virtualRouterId": vrid,
                "virtualIps": [format!("198.51.100.{}/32", k + 1)],
                "advertInterval": interval,
                "priority": 50 + 5 * k,
                "announce": { "count": 2, "delay": "30ms", "refresh": "1s" }
            }),
        );
    }
    let decl = json!({
        "node": { "name": "lb1", "priority": 100 },
        "instances": insts
    });
    let d = config::parse(decl.to_string().as_bytes()).expect("valid declaration");
    // One link per instance, in the declaration's (name) order.
    let links: Vec<LinkInfo> = d
        .instances
        .values()
        .map(|i| match i.interface.as_str() {
            "eth1" => link(2, "eth1", true),
            _ => link(3, "eth2", true),
        })
        .collect();
    plans(&d, &Passwords::new(), &links).expect("plans")
}

fn weights() -> BTreeMap<String, i64> {
    BTreeMap::from([("nginx".to_string(), 0)])
}

/// One event for the many-instance node and, per instance, the event its
/// single node gets (`None`: nothing).
struct World {
    now: Duration,
    many: Node,
    /// Instance name, its plan, its own node (`None` once removed).
    singles: Vec<(String, Plan, Option<Node>)>,
}

impl World {
    fn new() -> World {
        let ps = all_plans();
        let mut many = Node::new(weights(), false);
        let mut singles = Vec::new();
        for p in &ps {
            let mut one = Node::new(weights(), false);
            for n in [&mut many, &mut one] {
                n.handle(
                    Duration::ZERO,
                    Event::Add {
                        plan: Box::new(p.clone()),
                        on_link: vec![(ME, 24)],
                    },
                );
            }
            singles.push((p.name.clone(), p.clone(), Some(one)));
        }
        let mut w = World {
            now: Duration::ZERO,
            many,
            singles,
        };
        w.all(Event::Start);
        w
    }

    /// Feeds `ev` to every node (a single node that does not know the
    /// instance ignores what is not for it) and compares.
    fn all(&mut self, ev: Event) {
        self.feed(|_| Some(ev.clone()), Some(ev.clone()));
    }

    fn feed(&mut self, single: impl Fn(&Plan) -> Option<Event>, many: Option<Event>) {
        let got = many
            .map(|e| self.many.handle(self.now, e))
            .unwrap_or_default();
        for (name, plan, one) in &mut self.singles {
            let Some(one) = one else { continue };
            let want: Vec<Command> = match single(plan) {
                Some(e) => one.handle(self.now, e),
                None => Vec::new(),
            }
            .into_iter()
            .filter(|c| c.instance() == Some(name))
            .collect();
            let mine: Vec<&Command> = got.iter().filter(|c| c.instance() == Some(name)).collect();
            assert_eq!(
                mine,
                want.iter().collect::<Vec<_>>(),
                "instance {name} at {:?}",
                self.now
            );
        }
    }

    /// Fires the timers due at `now` wherever they are due.
    fn timers(&mut self) {
        let now = self.now;
        let due = |n: &Node| n.poll_timeout().is_some_and(|t| t <= now);
        let many = due(&self.many).then_some(Event::Timer);
        let single_due: BTreeMap<String, bool> = self
            .singles
            .iter()
            .filter_map(|(name, _, one)| one.as_ref().map(|n| (name.clone(), due(n))))
            .collect();
        self.feed(
            |p| {
                single_due
                    .get(&p.name)
                    .copied()
                    .unwrap_or(false)
                    .then_some(Event::Timer)
            },
            many,
        );
    }

    fn next_timer(&self) -> Option<Duration> {
        self.singles
            .iter()
            .filter_map(|(_, _, one)| one.as_ref().and_then(Node::poll_timeout))
            .chain(self.many.poll_timeout())
            .min()
    }
}

fn advert(vrid: u8, priority: u8) -> Advert {
    Advert {
        version: Version::V3,
        vrid,
        priority,
        interval_cs: 10,
        addrs: Vec::new(),
        auth: Auth::None,
    }
}

fn run(seed: u64) {
    let mut rng = Rng(seed);
    let mut w = World::new();
    w.all(Event::Verdict {
        check: "nginx".into(),
        healthy: true,
        detail: "ok".into(),
    });
    let mut eth2 = 3u32;
    let end = Duration::from_secs(20);
    let mut next_event = Duration::ZERO;
    let mut steps = 0u32;
    while w.now < end {
        steps += 1;
        assert!(steps < 2_000_000, "no progress at {:?}", w.now);
        let t = w.next_timer().map_or(next_event, |t| t.min(next_event));
        w.now = t;
        w.timers();
        if t < next_event {
            continue;
        }
        next_event = t + Duration::from_micros(rng.below(30_000));
        let roll = rng.below(1000);
        if roll < 800 {
            // An advert from the peer: any VRID of ours (or one we do not
            // have), either interface (or the old index of eth2).
            let vrid = 1 + rng.below(N as u64 / 2 + 2) as u8;
            let ifindex = [2, eth2, eth2.wrapping_sub(1)][rng.below(3) as usize];
            let priority = [0u8, 50, 100, 150, 200, 255][rng.below(6) as usize];
            let src = if rng.below(20) == 0 {
                IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9))
            } else {
                PEER
            };
            let ev = Event::Advert {
                ifindex,
                v4: rng.below(10) != 0,
                src,
                advert: advert(vrid, priority),
                checksum: ChecksumStyle::Rfc,
            };
            w.all(ev);
        } else if roll < 840 {
            w.all(Event::Verdict {
                check: "nginx".into(),
                healthy: rng.below(3) != 0,
                detail: "verdict".into(),
            });
        } else if roll < 860 {
            w.all(Event::Maintenance(rng.below(2) == 0));
        } else if roll < 900 {
            let k = rng.below(N as u64) as usize;
            let name = w.singles[k].0.clone();
            w.all(Event::VipAddFailed {
                instance: name,
                error: "EPERM".into(),
            });
        } else if roll < 940 {
            w.all(Event::Link(link(eth2, "eth2", rng.below(2) == 0)));
        } else if roll < 960 {
            // eth2 re-created: a new index, then its addresses.
            eth2 += 1;
            w.all(Event::Link(link(eth2, "eth2", true)));
            w.all(Event::Addresses {
                index: eth2,
                addrs: vec![(ME, 24)],
            });
        } else if roll < 965 {
            // A reload dropping one instance: the others shift.
            let alive: Vec<usize> = (0..N).filter(|k| w.singles[*k].2.is_some()).collect();
            if alive.len() < 4 {
                continue;
            }
            let gone = alive[rng.below(alive.len() as u64) as usize];
            let kept: Vec<Plan> = alive
                .iter()
                .filter(|k| **k != gone)
                .map(|k| w.singles[*k].1.clone())
                .collect();
            let reload = |plans: Vec<Plan>| Event::Reload {
                plans,
                weights: weights(),
                restarted: Vec::new(),
                on_link: BTreeMap::new(),
            };
            let gone_name = w.singles[gone].0.clone();
            w.feed(
                |p| {
                    Some(reload(if p.name == gone_name {
                        Vec::new()
                    } else {
                        vec![p.clone()]
                    }))
                },
                Some(reload(kept)),
            );
            w.singles[gone].2 = None;
        }
    }
}

#[test]
fn many_instances_act_like_single_ones() {
    for seed in 0..6 {
        run(seed);
    }
}
