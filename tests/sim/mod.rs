//! A deterministic network simulator for the pure VRRP core: N instances
//! on a virtual clock, adverts delivered with delay, loss and partitions.
//! It only uses the core's public API, exactly as the daemon's I/O shell
//! does: feed `(now, input)`, execute actions, sleep until `deadline()`.

use nginx_ha::vrrp::instance::{Action, Config, Input, Instance, State};
use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, Version};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

#[path = "../support/rng.rs"]
mod rng;
pub use rng::Rng;

pub struct Node {
    pub inst: Instance,
    pub addr: IpAddr,
    /// A crashed node processes nothing and sends nothing.
    pub alive: bool,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Duration,
    seq: u64,
    from: usize,
    to: usize,
    priority: u8,
    interval_cs: u16,
}

pub struct Sim {
    pub now: Duration,
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    rng: Rng,
    /// Probability of losing an advert, in per mille.
    pub loss_permille: u64,
    pub max_delay: Duration,
    blocked: BTreeSet<(usize, usize)>,
    /// (time, number of masters) at every change of that number.
    pub master_count_log: Vec<(Duration, usize)>,
    pub transitions: Vec<(Duration, usize, State, State)>,
    /// (time, node) of every gratuitous ARP / NA burst started.
    pub announcements: Vec<(Duration, usize)>,
}

pub fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + i as u8))
}

pub fn config(i: usize, priority: u8, interval_cs: u16, preempt: bool) -> Config {
    Config {
        version: Version::V3,
        vrid: 51,
        priority,
        advert_interval_cs: interval_cs,
        preempt,
        preempt_delay: Duration::ZERO,
        primary_addr: addr(i),
        vips: vec!["192.0.2.100".parse().unwrap()],
        auth: Auth::None,
        checksum: ChecksumStyle::Rfc,
        fast_takeover: false,
    }
}

impl Sim {
    pub fn new(configs: Vec<Config>, seed: u64) -> Sim {
        let nodes = configs
            .into_iter()
            .map(|c| Node {
                addr: c.primary_addr,
                inst: Instance::new(c),
                alive: true,
            })
            .collect();
        Sim {
            now: Duration::ZERO,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            rng: Rng::new(seed),
            loss_permille: 0,
            max_delay: Duration::from_millis(1),
            blocked: BTreeSet::new(),
            master_count_log: vec![(Duration::ZERO, 0)],
            transitions: Vec::new(),
            announcements: Vec::new(),
        }
    }

    pub fn masters(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive && self.nodes[i].inst.state() == State::Master)
            .collect()
    }

    pub fn input(&mut self, i: usize, input: Input) {
        if !self.nodes[i].alive {
            return;
        }
        let actions = self.nodes[i].inst.handle(self.now, input);
        self.execute(i, actions);
    }

    pub fn start_all(&mut self) {
        for i in 0..self.nodes.len() {
            self.input(i, Input::Startup);
        }
    }

    /// The node stops dead: no priority-0 advert (kill -9, power loss).
    pub fn crash(&mut self, i: usize) {
        self.nodes[i].alive = false;
        let cfg = self.nodes[i].inst.config().clone();
        self.nodes[i].inst = Instance::new(cfg);
        self.record();
    }

    pub fn restart(&mut self, i: usize) {
        if !self.nodes[i].alive {
            self.nodes[i].alive = true;
            self.input(i, Input::Startup);
        }
    }

    pub fn block(&mut self, a: usize, b: usize) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    pub fn heal_all(&mut self) {
        self.blocked.clear();
    }

    fn execute(&mut self, from: usize, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => {
                    let interval_cs = self.nodes[from].inst.config().advert_interval_cs;
                    for to in 0..self.nodes.len() {
                        if to == from || self.blocked.contains(&(from, to)) {
                            continue;
                        }
                        if self.loss_permille > 0 && self.rng.below(1000) < self.loss_permille {
                            continue;
                        }
                        let span = self.max_delay.as_micros() as u64;
                        let delay = Duration::from_micros(self.rng.below(span + 1));
                        self.seq += 1;
                        self.queue.push(Reverse(InFlight {
                            at: self.now + delay,
                            seq: self.seq,
                            from,
                            to,
                            priority,
                            interval_cs,
                        }));
                    }
                }
                Action::Transition { from: f, to, .. } => {
                    self.transitions.push((self.now, from, f, to));
                }
                Action::Announce => self.announcements.push((self.now, from)),
                Action::AddVips | Action::RemoveVips | Action::Reassert { .. } => {}
            }
        }
        self.record();
    }

    fn record(&mut self) {
        let n = self.masters().len();
        if self.master_count_log.last().map(|x| x.1) != Some(n) {
            self.master_count_log.push((self.now, n));
        }
    }

    /// Runs every event up to and including `until`, in time order.
    pub fn run_until(&mut self, until: Duration) {
        loop {
            let next_msg = self.queue.peek().map(|Reverse(m)| m.at);
            let next_timer = self
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.alive)
                .filter_map(|(i, n)| n.inst.deadline().map(|t| (t, i)))
                .min();
            let next = match (next_msg, next_timer) {
                (None, None) => break,
                (Some(m), None) => m,
                (None, Some((t, _))) => t,
                (Some(m), Some((t, _))) => m.min(t),
            };
            if next > until {
                break;
            }
            self.now = next;
            if next_msg == Some(next) {
                let Reverse(m) = self.queue.pop().expect("peeked");
                let advert = Advert {
                    version: Version::V3,
                    vrid: 51,
                    priority: m.priority,
                    interval_cs: m.interval_cs,
                    addrs: vec!["192.0.2.100".parse().unwrap()],
                    auth: Auth::None,
                };
                let src = self.nodes[m.from].addr;
                self.input(
                    m.to,
                    Input::Advert {
                        src,
                        advert,
                        checksum: ChecksumStyle::Rfc,
                    },
                );
            } else if let Some((_, i)) = next_timer {
                self.input(i, Input::Timer);
            }
        }
        self.now = until;
    }

    /// Longest stretch, starting at or after `from`, with two or more
    /// masters (a stretch already under way at `from` counts from `from`).
    pub fn longest_dual_master_since(&self, from: Duration) -> Duration {
        let mut longest = Duration::ZERO;
        let mut start: Option<Duration> = None;
        for &(t, n) in &self.master_count_log {
            let t = t.max(from);
            match (n >= 2, start) {
                (true, None) => start = Some(t),
                (false, Some(s)) => {
                    longest = longest.max(t.saturating_sub(s));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            longest = longest.max(self.now.saturating_sub(s));
        }
        longest
    }
}
