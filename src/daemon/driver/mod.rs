//! The daemon's state: running instances, their sockets, faults, checks,
//! and how core actions become packets, addresses, logs and hooks. The
//! policy itself is pure (`crate::node`, `crate::vrrp`); this is the I/O
//! around it, one file per kind of event.

mod actions;
mod links;
mod operate;
mod packets;
mod reload;
mod verdicts;

use super::control::{self, CheckStatus, Command, Counters, InstanceStatus, Request, Status};
use super::hooks::{Hooks, Job};
use crate::node::log_limit::{self, LogLimit};
use super::rx::{self, Drops, Inbound, Sink};
use super::setup::{self, Loaded, Plan};
use super::{DaemonError, Options, io_err, state_file, systemd};
use crate::config::{Declaration, IpPrefix};
use crate::health::stub_status::StubStatus;
use crate::health::{self, Event, Verdict};
use crate::net::announce::Announcer;
use crate::net::netlink::{LinkInfo, Net, NetError, NetEvent};
use crate::net::vrrp_socket::{AhSocket, AhVrrp, VrrpSocket};
use crate::node::announce::{Announcements, Schedule};
use crate::node::checks::Checks;
use crate::node::faults::{FaultSource, Faults};
use crate::node::rx_filter::{self, Listener};
use crate::vrrp::instance::{Action, Input, Instance, State};
use crate::vrrp::packet::{Advert, Auth, MCAST_V4, MCAST_V6, Version};
use log::{error, info, warn};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use super::rx::PacketKey;
const MAINTENANCE_FILE: &str = "maintenance";

/// How long after a failed VIP add the instance tries again.
const VIP_RETRY: Duration = Duration::from_secs(5);

struct Running {
    plan: Plan,
    core: Instance,
    primary: Option<IpAddr>,
    peers: Vec<IpAddr>,
    faults: Faults,
    announce: Announcements,
    vip_retry: Option<Duration>,
    /// VIPs found deleted while master and added back.
    vips_restored: u64,
}

pub struct Daemon {
    opts: Options,
    decl: Declaration,
    start: Instant,
    net: Net,
    insts: Vec<Running>,
    sockets: BTreeMap<PacketKey, Rx>,
    announcers: BTreeMap<u32, Announcer>,
    pkt_tx: mpsc::Sender<(PacketKey, Inbound)>,
    health_tx: mpsc::UnboundedSender<Event>,
    checks_running: health::Running,
    checks: Checks,
    stub: Option<StubStatus>,
    maintenance: bool,
    hooks: Hooks,
    rx_dropped: Drops,
    /// Addresses on each interface we use, for the source-subnet check.
    if_addrs: BTreeMap<u32, Vec<(IpAddr, u8)>>,
    /// Adverts the reader tasks dropped because the loop was behind.
    overflow: Arc<AtomicU64>,
    log_limit: LogLimit,
}

fn check_weights(d: &Declaration) -> BTreeMap<String, i64> {
    let mut w = BTreeMap::new();
    if d.checks.nginx.enable {
        w.insert(health::nginx::NAME.to_string(), d.checks.nginx.weight);
    }
    for (n, c) in &d.checks.extra {
        w.insert(n.clone(), c.weight);
    }
    w
}

impl Daemon {
    pub fn new(
        opts: Options,
        decl: Declaration,
        net: Net,
        pkt_tx: mpsc::Sender<(PacketKey, Inbound)>,
        health_tx: mpsc::UnboundedSender<Event>,
    ) -> Daemon {
        let maintenance = opts.state_dir.join(MAINTENANCE_FILE).exists();
        let start = Instant::now();
        let checks = Checks::new(check_weights(&decl), Duration::ZERO);
        Daemon {
            opts,
            decl,
            start,
            net,
            insts: Vec::new(),
            sockets: BTreeMap::new(),
            announcers: BTreeMap::new(),
            pkt_tx,
            health_tx,
            checks_running: health::Running::default(),
            checks,
            stub: None,
            maintenance,
            hooks: Hooks::start(),
            rx_dropped: Drops::default(),
            if_addrs: BTreeMap::new(),
            overflow: Arc::new(AtomicU64::new(0)),
            log_limit: LogLimit::default(),
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    pub fn instance_count(&self) -> usize {
        self.insts.len()
    }

    pub fn start_checks(&mut self) {
        self.checks_running.sync(&self.decl.checks, &self.health_tx);
    }

    /// Opens what the instance needs, cleans its stale VIPs, and adds it
    /// (not started yet).
    pub async fn add_instance(&mut self, plan: Plan) -> Result<(), DaemonError> {
        let idx = plan.link.index;
        // A crash leaves VIPs behind; holding them while not master would
        // answer for an address another node owns.
        let on_link = self.net.addresses(idx).await?;
        for v in &plan.vips {
            if on_link.iter().any(|(a, _)| *a == v.addr) {
                warn!(
                    instance = plan.name.as_str();
                    "instance {}: removing stale VIP {} from {}",
                    plan.name, v, plan.link.name
                );
                self.net.del_addr(idx, v.addr).await?;
            }
        }
        self.ensure_io(&plan)?;
        let on_link = self.net.addresses(idx).await?;
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
            faults.set(FaultSource::Address, Some(no_address_reason(&plan)));
        } else if let Some(why) = plan.no_peer_reason(primary) {
            faults.set(FaultSource::Address, Some(why));
        }
        let peers = plan.peers(primary);
        info!(
            instance = plan.name.as_str();
            "instance {}: VRRPv{} vrid {} on {} from {}, priority {}, {}{}",
            plan.name,
            plan.decl.version,
            plan.decl.virtual_router_id,
            plan.link.name,
            primary.map_or("(no address yet)".to_string(), |p| p.to_string()),
            plan.priority,
            if plan.unicast() {
                format!("unicast to {peers:?}")
            } else {
                "multicast".into()
            },
            if plan.fast_takeover(primary) {
                ", fast takeover"
            } else {
                ""
            }
        );
        let core = Instance::new(plan.core_config(primary));
        state_file::write(&self.opts.runtime_dir, &plan.name, State::Initialize);
        self.insts.push(Running {
            plan,
            core,
            primary,
            peers,
            faults,
            announce: Announcements::default(),
            vip_retry: None,
            vips_restored: 0,
        });
        let i = self.insts.len() - 1;
        self.apply_checks(i);
        Ok(())
    }

    /// Opens the VRRP socket (with its reader) and the announcer the
    /// instance's interface needs, unless they are open already.
    fn ensure_io(&mut self, plan: &Plan) -> Result<(), DaemonError> {
        let idx = plan.link.index;
        let key = (idx, plan.v4);
        if let std::collections::btree_map::Entry::Vacant(slot) = self.sockets.entry(key) {
            let s = VrrpSocket::open(&plan.link.name, idx, plan.v4)
                .map_err(io_err(format!("VRRP socket on {}", plan.link.name)))?;
            let sock = Arc::new(s);
            let sink = Sink {
                tx: self.pkt_tx.clone(),
                overflow: self.overflow.clone(),
                drops: self.rx_dropped.clone(),
            };
            let mut readers = vec![rx::spawn_vrrp(key, sock.clone(), sink.clone())];
            if plan.v4 {
                // Only to notice keepalived's auth_type AH; running
                // without it costs that log line, nothing else.
                match AhSocket::open(&plan.link.name) {
                    Ok(ah) => readers.push(rx::spawn_ah(key, ah, sink)),
                    Err(e) => warn!("AH socket on {}: {e}", plan.link.name),
                }
            }
            slot.insert(Rx { sock, readers });
        }
        if let (None, Some(mac)) = (self.announcers.get(&idx), plan.link.mac) {
            let a = Announcer::open(idx, mac)
                .map_err(io_err(format!("packet socket on {}", plan.link.name)))?;
            self.announcers.insert(idx, a);
        }
        Ok(())
    }

    /// Closes sockets and announcers no instance uses any more (their
    /// interface went away).
    fn drop_unused_io(&mut self) {
        let used: Vec<PacketKey> = self
            .insts
            .iter()
            .map(|r| (r.plan.link.index, r.plan.v4))
            .collect();
        self.sockets.retain(|k, _| used.contains(k));
        self.announcers
            .retain(|idx, _| used.iter().any(|(i, _)| i == idx));
        self.if_addrs
            .retain(|idx, _| used.iter().any(|(i, _)| i == idx));
    }

    /// Feeds Startup to every instance that has not started.
    pub async fn start_all(&mut self) {
        for i in 0..self.insts.len() {
            self.start_one(i).await;
        }
    }

    /// Starts an instance once every check it tracks has a first verdict:
    /// starting earlier would either take the VIP with an untested nginx or
    /// report a FAULT that is only "not known yet".
    async fn start_one(&mut self, i: usize) {
        let now = self.now();
        if self.insts[i].core.state() != State::Initialize {
            return;
        }
        if self.checks.pending(&self.tracked(i)) {
            return;
        }
        let r = &mut self.insts[i];
        let mut a = Vec::new();
        if let Some(why) = r.faults.first().cloned() {
            a.extend(r.core.handle(now, Input::Fault(why)));
        }
        a.extend(r.core.handle(now, Input::Startup));
        self.exec(i, a).await;
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.insts
            .iter()
            .flat_map(|r| [r.core.deadline(), r.announce.deadline(), r.vip_retry])
            .flatten()
            .min()
            .map(|d| self.start + d)
    }

    pub async fn on_timers(&mut self) {
        let now = self.now();
        for i in 0..self.insts.len() {
            if self.insts[i].core.deadline().is_some_and(|t| t <= now) {
                let a = self.insts[i].core.handle(now, Input::Timer);
                self.exec(i, a).await;
            }
            self.announce_due(i, now);
            if self.insts[i].vip_retry.is_some_and(|t| t <= now) {
                self.insts[i].vip_retry = None;
                info!(
                    "instance {}: trying its VIPs again",
                    self.insts[i].plan.name
                );
                self.set_fault(i, FaultSource::Vip, None).await;
            }
        }
    }
}

fn schedule(plan: &Plan) -> Schedule {
    let a = &plan.decl.announce;
    Schedule {
        count: a.count,
        delay: a.delay.as_duration(),
        refresh: a.refresh.as_duration(),
    }
}

fn no_address_reason(plan: &Plan) -> String {
    match plan.decl.unicast_source {
        Some(s) => format!("unicastSource {s} is not on {}", plan.link.name),
        None if plan.v4 => format!("no IPv4 address on {}", plan.link.name),
        None => format!("no IPv6 link-local address on {}", plan.link.name),
    }
}

/// A VRRP socket and the tasks that read it (and, for IPv4, the AH
/// socket's); the tasks end with it.
struct Rx {
    sock: Arc<VrrpSocket>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Rx {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}
