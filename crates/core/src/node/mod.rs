//! The node: every VRRP instance of this machine with the policy around
//! its state machine (`crate::vrrp`): why an instance is in FAULT, what
//! the health checks do to its priority, when it announces its VIPs, which
//! received adverts reach it, maintenance, reload. No I/O and no clock:
//! `Node::handle(now, Event) -> Vec<Command>`, with `now` the time since
//! the node started, and `poll_timeout()` for when to call again. The
//! daemon (`nginx_ha::daemon::driver`) turns sockets, netlink, timers, health
//! verdicts and control requests into events and carries out the
//! commands; tests replay both from fixtures (tests/conformance).

mod adverts;
pub mod announce;
pub mod anycast;
pub mod checks;
pub mod event;
pub mod faults;
pub mod hook_queue;
mod lent;
mod links;
pub mod log_limit;
mod member;
mod members;
pub mod plan;
mod report;
pub mod rx_filter;
pub mod status;

use crate::vrrp::instance::{Input, State};
use crate::vrrp::packet::Advert;
use checks::Checks;
use event::{Command, Event, Level};
use faults::{FaultSource, Faults};
use log_limit::LogLimit;
use member::Member;
pub use member::VIP_RETRY;
use members::Members;
use plan::Plan;
use status::{CheckStatus, InstanceStatus};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

pub struct Node {
    insts: Members,
    checks: Checks,
    maintenance: bool,
    /// Addresses on each interface we use (source addresses, the on-link
    /// check of multicast senders, VIPs deleted by hand).
    if_addrs: BTreeMap<u32, Vec<(IpAddr, u8)>>,
    /// Adverts no instance takes, by reason.
    dropped: BTreeMap<&'static str, u64>,
    logs: LogLimit,
    out: Vec<Command>,
    /// The members due in `on_timers`, kept for its capacity.
    due: Vec<usize>,
    anycast: Option<anycast::Policy>,
    /// Masters' advert timers lent out between events (`lent`).
    lent: Vec<lent::Lent>,
    /// Shut down: nothing starts an instance again (a verdict that comes
    /// in while anycast drains, say).
    stopped: bool,
}

pub use lent::{Frame, LEND_MAX_INSTANCES};

/// Everything `status` reports that the node decides.
pub struct Report {
    pub maintenance: bool,
    pub instances: Vec<InstanceStatus>,
    pub checks: Vec<CheckStatus>,
    pub dropped: BTreeMap<String, u64>,
    pub anycast: Option<status::AnycastWish>,
}

impl Node {
    /// A node with these checks (by name, with their weights), none decided
    /// yet, and no instance.
    pub fn new(weights: BTreeMap<String, i64>, maintenance: bool) -> Node {
        Node {
            insts: Members::default(),
            checks: Checks::new(weights, Duration::ZERO),
            maintenance,
            if_addrs: BTreeMap::new(),
            dropped: BTreeMap::new(),
            logs: LogLimit::default(),
            out: Vec::new(),
            due: Vec::new(),
            anycast: None,
            lent: Vec::new(),
            stopped: false,
        }
    }

    pub fn handle(&mut self, now: Duration, ev: Event) -> Vec<Command> {
        self.take_back();
        self.insts.settle();
        match ev {
            Event::Add { plan, on_link } => self.add(now, *plan, on_link),
            Event::Start => self.start_all(now),
            Event::Advert {
                ifindex,
                v4,
                src,
                advert,
                checksum,
            } => self.on_advert(now, ifindex, v4, src, advert, checksum),
            Event::Ah {
                ifindex,
                v4,
                src,
                vrid,
                more,
            } => self.on_ah(ifindex, v4, src, vrid, more),
            Event::Timer => self.on_timers(now),
            Event::Link(l) => self.on_link(now, l),
            Event::LinkGone { index, name } => self.on_link_gone(now, index, &name),
            Event::Addresses { index, addrs } => self.on_addresses(now, index, addrs),
            Event::IoFailed { index, error } => self.on_io_failed(now, index, &error),
            Event::VipAddFailed { instance, error } => self.on_vip_failed(now, &instance, error),
            Event::Verdict {
                check,
                healthy,
                detail,
            } => self.on_verdict(now, &check, healthy, detail),
            Event::Maintenance(on) => self.set_maintenance(now, on),
            Event::Reload {
                plans,
                weights,
                restarted,
                on_link,
            } => self.reload(now, plans, weights, &restarted, on_link),
            Event::Anycast(decl) => self.configure_anycast(now, decl.map(|d| *d)),
            Event::Shutdown => {
                self.stopped = true;
                if let Some(a) = &mut self.anycast {
                    a.stop();
                }
                for i in 0..self.insts.len() {
                    self.input(now, i, Input::Shutdown);
                }
            }
        }
        self.follow_anycast(now);
        self.lend();
        self.insts.settle();
        std::mem::take(&mut self.out)
    }

    /// Takes back a command list `handle` returned, emptied here, for the
    /// next one: at 10 ms adverts that is a hundred allocations a second
    /// saved.
    pub fn recycle(&mut self, mut cmds: Vec<Command>) {
        if self.out.capacity() == 0 {
            cmds.clear();
            self.out = cmds;
        }
    }

    /// The advert whose unchanged repeats, from the sender given, would
    /// only restart the Master_Down_Timer of the BACKUP instance with this
    /// VRID on this interface and family (`Instance::routine`). Such a
    /// repeat may be handed over late, as an `Advert` event at its arrival
    /// time (never before an event already handled).
    pub fn routine(&self, ifindex: u32, v4: bool, vrid: u8) -> Option<(IpAddr, &Advert)> {
        let i = self.insts.route((ifindex, v4, vrid))?;
        self.insts[i].core.routine()
    }

    /// The routine advert of (ifindex, v4, vrid) (see `routine`) came
    /// again at `now`: handled as `handle` would handle it, but in a few
    /// stores, with no commands to carry out (a BACKUP's quiet socket
    /// holds dozens of them per wake-up at fast adverts). False when that
    /// instance has no routine advert any more: hand it over in full.
    pub fn repeat(&mut self, now: Duration, ifindex: u32, v4: bool, vrid: u8) -> bool {
        let Some(i) = self.insts.route((ifindex, v4, vrid)) else {
            return false;
        };
        if self.insts[i].core.routine().is_none() {
            return false;
        }
        self.insts[i].core.repeat(now)
    }

    /// The earliest deadline the node keeps itself: its instances' (lent
    /// advert timers aside) and anycast's.
    fn own_deadline(&self) -> Option<Duration> {
        let anycast = self.anycast.as_ref().and_then(anycast::Policy::deadline);
        self.insts.next_deadline().into_iter().chain(anycast).min()
    }

    /// When `handle(_, Event::Timer)` is due next.
    pub fn poll_timeout(&self) -> Option<Duration> {
        self.own_deadline()
            .into_iter()
            .chain(self.lent_deadline())
            .min()
    }

    /// When to wake next, with adverts coalesced: the next deadline, or
    /// the end of its `grain`-long slot of node time when every deadline
    /// before then is a master's advert timer, so that the adverts of many
    /// instances falling in one slot go out in one wake-up (a thousand
    /// instances at 100 ms adverts: a wake-up per millisecond, not ten).
    /// Any other deadline in the slot is kept to the nanosecond: a
    /// backup's Master_Down or Skew timer is what a takeover waits for.
    pub fn poll_timeout_coalesced(&mut self, grain: Duration) -> Option<Duration> {
        self.insts.settle();
        let first = self.poll_timeout()?;
        // In u64 (585 years of nanoseconds): a u128 division on every
        // wake-up showed in the profile.
        let nanos = u64::try_from(grain.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Some(first);
        }
        // The end of the slot `first` falls in (a slot edge stays put).
        let first_ns = u64::try_from(first.as_nanos()).unwrap_or(u64::MAX);
        let slot_end = Duration::from_nanos(first_ns.div_ceil(nanos).saturating_mul(nanos));
        let anycast = self.anycast.as_ref().and_then(anycast::Policy::deadline);
        if anycast.is_some_and(|a| a < slot_end) {
            return Some(first);
        }
        let Some(deadlines) = self.insts.deadlines() else {
            return Some(first);
        };
        for (t, i) in deadlines {
            if t >= slot_end {
                break;
            }
            if !self.insts[i].lenient_at(t) {
                return Some(t);
            }
        }
        Some(slot_end)
    }

    pub fn instance_count(&self) -> usize {
        self.insts.len()
    }

    /// The interfaces in use, by name and index (to read again after lost
    /// netlink events).
    pub fn interfaces(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = self
            .insts
            .iter()
            .map(|m| (m.plan.link.name.clone(), m.plan.link.index))
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn has_instance(&self, name: &str) -> bool {
        self.insts.iter().any(|m| m.plan.name == name)
    }

    fn input(&mut self, now: Duration, i: usize, input: Input) {
        self.insts[i].input(now, input, &mut self.out, &mut self.logs);
    }

    fn set_fault(&mut self, now: Duration, i: usize, src: FaultSource, why: Option<String>) {
        self.insts[i].set_fault(now, src, why, &mut self.out, &mut self.logs);
    }

    fn log(&mut self, level: Level, instance: Option<&str>, message: String) {
        self.out.push(Command::Log {
            level,
            instance: instance.map(str::to_string),
            message,
        });
    }

    /// Cleans the VIPs a crash left behind (holding them while not master
    /// would answer for an address another node owns), opens what the
    /// instance needs, and adds it, not started yet.
    fn add(&mut self, now: Duration, plan: Plan, on_link: Vec<(IpAddr, u8)>) {
        let idx = plan.link.index;
        let stale: Vec<_> = plan
            .vips
            .iter()
            .filter(|v| on_link.iter().any(|(a, _)| *a == v.addr))
            .cloned()
            .collect();
        for v in &stale {
            let msg = format!(
                "instance {}: removing stale VIP {v} from {}",
                plan.name, plan.link.name
            );
            self.log(Level::Warn, Some(&plan.name), msg);
        }
        if !stale.is_empty() {
            self.out.push(Command::RemoveVips {
                instance: plan.name.clone(),
                index: idx,
                vips: stale.clone(),
            });
        }
        self.out.push(Command::OpenIo {
            index: idx,
            name: plan.link.name.clone(),
            v4: plan.v4,
            mac: plan.link.mac,
        });
        let on_link: Vec<_> = on_link
            .into_iter()
            .filter(|(a, _)| !stale.iter().any(|v| v.addr == *a))
            .collect();
        let primary = plan.pick_primary(&on_link);
        self.if_addrs.insert(idx, on_link);
        // Not started yet: the state machine hears of these at start-up.
        let mut faults = Faults::default();
        if self.maintenance {
            faults.set(FaultSource::Maintenance, Some("maintenance mode".into()));
        }
        if !plan.link.up && plan.decl.track_interface {
            faults.set(
                FaultSource::Link,
                Some(format!("{} is down", plan.link.name)),
            );
        }
        if primary.is_none() {
            faults.set(FaultSource::Address, Some(links::no_address_reason(&plan)));
        } else if let Some(why) = plan.no_peer_reason(primary) {
            faults.set(FaultSource::Address, Some(why));
        }
        let m = Member::new(plan, primary, faults);
        let msg = format!(
            "instance {}: VRRPv{} vrid {} on {} from {}, priority {}, {}{}",
            m.plan.name,
            m.plan.decl.version,
            m.plan.decl.virtual_router_id,
            m.plan.link.name,
            primary.map_or("(no address yet)".to_string(), |p| p.to_string()),
            m.plan.priority,
            if m.plan.unicast() {
                format!("unicast to {:?}", m.peers)
            } else {
                "multicast".into()
            },
            if m.plan.fast_takeover(primary) {
                ", fast takeover"
            } else {
                ""
            }
        );
        self.log(Level::Info, Some(&m.plan.name.clone()), msg);
        self.insts.push(m);
        self.apply_checks(now, self.insts.len() - 1);
    }

    fn start_all(&mut self, now: Duration) {
        for i in 0..self.insts.len() {
            self.start_one(now, i);
        }
    }

    /// Starts an instance once every check it tracks has a first verdict.
    fn start_one(&mut self, now: Duration, i: usize) {
        if self.stopped
            || self.insts[i].core.state() != State::Initialize
            || self.checks.pending(&self.tracked(i))
        {
            return;
        }
        if let Some(why) = self.insts[i].faults.first().cloned() {
            self.input(now, i, Input::Fault(why));
        }
        self.input(now, i, Input::Startup);
    }

    fn on_timers(&mut self, now: Duration) {
        // Most instances have nothing due (a thousand of them at 100 ms
        // adverts wake the node every 0.1 ms): only the due ones are looked at.
        let mut due = std::mem::take(&mut self.due);
        self.insts.due(now, &mut due);
        for &i in &due {
            if self.insts[i].core.deadline().is_some_and(|t| t <= now) {
                self.input(now, i, Input::Timer);
            }
            self.insts[i].announce_due(now, &mut self.out);
            if self.insts[i].vip_retry.is_some_and(|t| t <= now) {
                self.insts[i].vip_retry = None;
                let name = self.insts[i].plan.name.clone();
                self.log(
                    Level::Info,
                    Some(&name),
                    format!("instance {name}: trying its VIPs again"),
                );
                self.set_fault(now, i, FaultSource::Vip, None);
            }
        }
        self.due = due;
    }

    fn on_vip_failed(&mut self, now: Duration, instance: &str, error: String) {
        let Some(i) = self.insts.iter().position(|m| m.plan.name == instance) else {
            return;
        };
        // Claiming MASTER without the VIP would keep the peer from serving
        // it: resign, and try again later.
        self.insts[i].vip_retry = Some(now + VIP_RETRY);
        self.set_fault(now, i, FaultSource::Vip, Some(error));
    }

    fn on_verdict(&mut self, now: Duration, check: &str, healthy: bool, detail: String) {
        if !self.checks.is_news(check, healthy, &detail) {
            return;
        }
        let msg = if healthy {
            format!("check {check} passes: {detail}")
        } else {
            format!("check {check} fails: {detail}")
        };
        let level = if healthy { Level::Info } else { Level::Warn };
        self.log(level, None, msg);
        self.checks.verdict(check, healthy, detail, now);
        for i in 0..self.insts.len() {
            self.follow_checks(now, i);
        }
        self.start_all(now);
    }

    /// The checks instance `i` tracks: the listed ones, or all.
    fn tracked(&self, i: usize) -> Vec<String> {
        self.checks
            .tracked(self.insts[i].plan.decl.track_checks.as_deref())
    }

    /// Brings a not yet started instance's check faults and priority in
    /// line with the verdicts; it hears of the faults at start-up.
    fn apply_checks(&mut self, now: Duration, i: usize) {
        let (faults, prio) = self
            .checks
            .effect(&self.tracked(i), self.insts[i].plan.priority);
        let m = &mut self.insts[i];
        m.faults.set_checks(faults);
        m.core.handle(now, Input::Priority(prio));
    }

    /// The same for a running instance: the state machine hears the new
    /// priority and, when it changes, the fault.
    fn follow_checks(&mut self, now: Duration, i: usize) {
        let (faults, prio) = self
            .checks
            .effect(&self.tracked(i), self.insts[i].plan.priority);
        self.input(now, i, Input::Priority(prio));
        if let Some(input) = self.insts[i].faults.set_checks(faults) {
            self.input(now, i, input);
        }
    }

    fn set_maintenance(&mut self, now: Duration, on: bool) {
        self.maintenance = on;
        self.log(
            Level::Info,
            None,
            format!("maintenance mode {}", if on { "on" } else { "off" }),
        );
        for i in 0..self.insts.len() {
            let why = on.then(|| "maintenance mode".to_string());
            self.set_fault(now, i, FaultSource::Maintenance, why);
        }
    }

    /// A new declaration. Instances whose VRRP parameters did not change
    /// keep their state and VIPs; changed or removed ones stop cleanly
    /// (priority 0, VIPs removed); new ones are added and start once their
    /// checks have spoken.
    fn reload(
        &mut self,
        now: Duration,
        plans: Vec<Plan>,
        weights: BTreeMap<String, i64>,
        restarted: &[String],
        mut on_link: BTreeMap<u32, Vec<(IpAddr, u8)>>,
    ) {
        let unchanged = |m: &Member, p: &Plan| {
            m.plan.name == p.name
                && m.plan.decl == p.decl
                && m.plan.priority == p.priority
                && m.plan.auth == p.auth
        };
        let mut i = 0;
        while i < self.insts.len() {
            if plans.iter().any(|p| unchanged(&self.insts[i], p)) {
                i += 1;
                continue;
            }
            let name = self.insts[i].plan.name.clone();
            self.log(
                Level::Info,
                Some(&name),
                format!("instance {name}: changed or removed, stopping it"),
            );
            self.input(now, i, Input::Shutdown);
            self.insts.remove(i);
        }
        let kept = self.insts.len();
        let total = plans.len();
        self.checks.reconfigure(weights, restarted, now);
        for p in plans {
            if self.insts.iter().any(|m| m.plan.name == p.name) {
                continue;
            }
            let addrs = on_link.remove(&p.link.index).unwrap_or_default();
            self.add(now, p, addrs);
        }
        self.close_unused();
        for i in 0..self.insts.len() {
            self.follow_checks(now, i);
        }
        self.start_all(now);
        self.log(
            Level::Info,
            None,
            format!("reload done: {kept} of {total} instance(s) unchanged"),
        );
    }

    /// Closes what is open on interfaces no instance uses any more.
    fn close_unused(&mut self) {
        let used: Vec<u32> = self.insts.iter().map(|m| m.plan.link.index).collect();
        let gone: Vec<u32> = self
            .if_addrs
            .keys()
            .filter(|i| !used.contains(i))
            .copied()
            .collect();
        for index in gone {
            self.if_addrs.remove(&index);
            self.out.push(Command::CloseIo { index });
        }
    }
}

#[cfg(test)]
mod purity {
    /// The policy stays testable without root or a network only while it
    /// touches neither; a look at the sources keeps it so.
    #[test]
    fn policy_and_protocol_core_do_no_io() {
        let forbidden = [
            "tokio",
            "socket2",
            "rtnetlink",
            "pnet",
            "std::fs",
            "UdpSocket",
            "TcpStream",
            "Instant",
            "SystemTime",
            "std::process",
            "std::thread",
            "libc::",
            "crate::daemon",
            "crate::net",
            "crate::health",
        ];
        for (name, text) in [
            ("node/mod.rs", include_str!("mod.rs")),
            ("node/event.rs", include_str!("event.rs")),
            ("node/links.rs", include_str!("links.rs")),
            ("node/adverts.rs", include_str!("adverts.rs")),
            ("node/report.rs", include_str!("report.rs")),
            ("node/member.rs", include_str!("member.rs")),
            ("node/members.rs", include_str!("members.rs")),
            ("node/log_limit.rs", include_str!("log_limit.rs")),
            ("node/status.rs", include_str!("status.rs")),
            ("node/announce.rs", include_str!("announce.rs")),
            ("node/anycast.rs", include_str!("anycast.rs")),
            ("node/checks.rs", include_str!("checks.rs")),
            ("node/faults.rs", include_str!("faults.rs")),
            ("node/hook_queue.rs", include_str!("hook_queue.rs")),
            ("node/plan.rs", include_str!("plan.rs")),
            ("node/rx_filter.rs", include_str!("rx_filter.rs")),
            ("vrrp/instance.rs", include_str!("../vrrp/instance.rs")),
            (
                "vrrp/instance/receive.rs",
                include_str!("../vrrp/instance/receive.rs"),
            ),
            ("vrrp/counters.rs", include_str!("../vrrp/counters.rs")),
            ("vrrp/packet.rs", include_str!("../vrrp/packet.rs")),
        ] {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for word in forbidden {
                assert!(!code.contains(word), "{name} uses {word}");
            }
        }
    }
}
