//! The daemon's state: running instances, their sockets, faults, checks,
//! and how core actions become packets, addresses, logs and hooks.

use super::control::{self, CheckStatus, Command, Counters, InstanceStatus, Request, Status};
use super::hooks::{Hooks, Job};
use super::log_limit::{self, LogLimit};
use super::rx::{self, Drops, Inbound, Sink};
use super::setup::{self, Loaded, Plan};
use super::{DaemonError, Options, io_err, state_file, systemd};
use crate::config::{Declaration, IpPrefix};
use crate::health::stub_status::StubStatus;
use crate::health::{self, Effect, Event, Verdict};
use crate::net::announce::Announcer;
use crate::net::netlink::{LinkInfo, Net, NetError, NetEvent};
use crate::net::vrrp_socket::{AhSocket, AhVrrp, VrrpSocket};
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

/// Why an instance cannot run now. Several can hold at once; the instance
/// leaves FAULT only when none is left.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FaultSource {
    Maintenance,
    Link,
    Address,
    /// Adding a VIP failed (e.g. no CAP_NET_ADMIN): a master without its
    /// VIP would keep the peer from serving it. Retried after a while.
    Vip,
    Check(String),
}

/// How long after a failed VIP add the instance tries again.
const VIP_RETRY: Duration = Duration::from_secs(5);

struct Running {
    plan: Plan,
    core: Instance,
    primary: Option<IpAddr>,
    peers: Vec<IpAddr>,
    faults: BTreeMap<FaultSource, String>,
    announce_left: u64,
    announce_next: Option<Duration>,
    refresh_next: Option<Duration>,
    vip_retry: Option<Duration>,
    /// VIPs found deleted while master and added back.
    vips_restored: u64,
}

struct CheckState {
    healthy: Option<bool>,
    detail: String,
    since: Instant,
    weight: i64,
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
    checks: BTreeMap<String, CheckState>,
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
        let checks = check_weights(&decl)
            .into_iter()
            .map(|(n, weight)| {
                let st = CheckState {
                    healthy: None,
                    detail: "waiting for the first results".into(),
                    since: start,
                    weight,
                };
                (n, st)
            })
            .collect();
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
        let mut faults = BTreeMap::new();
        if self.maintenance {
            faults.insert(FaultSource::Maintenance, "maintenance mode".to_string());
        }
        if !plan.link.up && plan.decl.track_interface {
            faults.insert(FaultSource::Link, format!("{} is down", plan.link.name));
        }
        if primary.is_none() {
            faults.insert(FaultSource::Address, no_address_reason(&plan));
        } else if let Some(why) = plan.no_peer_reason(primary) {
            faults.insert(FaultSource::Address, why);
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
            announce_left: 0,
            announce_next: None,
            refresh_next: None,
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
        let pending: Vec<String> = self
            .tracked(i)
            .into_iter()
            .filter(|n| self.checks.get(n).is_some_and(|c| c.healthy.is_none()))
            .collect();
        if !pending.is_empty() {
            return;
        }
        let r = &mut self.insts[i];
        let mut a = Vec::new();
        if let Some(why) = r.faults.values().next().cloned() {
            a.extend(r.core.handle(now, Input::Fault(why)));
        }
        a.extend(r.core.handle(now, Input::Startup));
        self.exec(i, a).await;
    }

    pub fn next_wake(&self) -> Option<Instant> {
        self.insts
            .iter()
            .flat_map(|r| {
                [
                    r.core.deadline(),
                    r.announce_next,
                    r.refresh_next,
                    r.vip_retry,
                ]
            })
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

    fn announce_due(&mut self, i: usize, now: Duration) {
        let r = &mut self.insts[i];
        let burst_due = r.announce_next.is_some_and(|t| t <= now);
        let refresh_due = r.refresh_next.is_some_and(|t| t <= now);
        if !(burst_due || refresh_due) {
            return;
        }
        if r.core.state() != State::Master {
            r.announce_next = None;
            r.refresh_next = None;
            return;
        }
        if let Some(a) = self.announcers.get(&r.plan.link.index) {
            for v in &r.plan.vips {
                if let Err(e) = a.announce(v.addr) {
                    warn!("instance {}: announcing {}: {e}", r.plan.name, v.addr);
                }
            }
        }
        if burst_due {
            r.announce_left = r.announce_left.saturating_sub(1);
            r.announce_next =
                (r.announce_left > 0).then(|| now + r.plan.decl.announce.delay.as_duration());
        }
        let refresh = r.plan.decl.announce.refresh.as_duration();
        if refresh_due || (burst_due && r.refresh_next.is_none()) {
            r.refresh_next = (!refresh.is_zero()).then(|| now + refresh);
        }
    }

    fn count_drop(&mut self, why: &'static str) {
        self.rx_dropped.count(why);
    }

    pub async fn on_packet(&mut self, key: PacketKey, pkt: Inbound) {
        let (ip, adv, style) = match pkt {
            Inbound::Advert {
                ip,
                advert,
                checksum,
            } => (ip, advert, checksum),
            Inbound::Ah(p, more) => return self.on_ah(key, p, more),
        };
        let Some(i) = self.insts.iter().position(|r| {
            (r.plan.link.index, r.plan.v4) == key && r.core.config().vrid == adv.vrid
        }) else {
            return self.count_drop("unknown_vrid");
        };
        let r = &self.insts[i];
        if r.plan.unicast() {
            if !r.peers.contains(&ip.src) {
                // In unicast mode only the configured peers take part;
                // anyone else on the segment could otherwise steal the VIP.
                return self.count_drop("not_a_peer");
            }
        } else if !self.on_our_link(key.0, ip.src) {
            return self.count_drop("foreign_source");
        }
        let now = self.now();
        let before = self.insts[i].core.counters().dropped.clone();
        let (version, interval_cs) = (adv.version, adv.interval_cs);
        let a = self.insts[i].core.handle(
            now,
            Input::Advert {
                src: ip.src,
                advert: adv,
                checksum: style,
            },
        );
        let after = &self.insts[i].core.counters().dropped;
        let why = after
            .iter()
            .find(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| *k);
        if let Some(why) = why {
            self.report_ignored_peer(i, ip.src, why, version, interval_cs, now);
        }
        self.exec(i, a).await;
    }

    /// A peer whose adverts for our VRID are dropped for a mismatch does
    /// not see ours as valid either: both may be MASTER, and a counter in
    /// `status` is easy to miss. Say why, once in a while per peer.
    fn report_ignored_peer(
        &mut self,
        i: usize,
        src: IpAddr,
        why: &'static str,
        version: Version,
        interval_cs: u16,
        now: Duration,
    ) {
        let r = &self.insts[i];
        let cfg = r.core.config();
        let detail = match why {
            "auth_mismatch" => {
                "its authentication (type or password) differs from this instance's".to_string()
            }
            "version_mismatch" => format!(
                "it sends VRRPv{}, this instance VRRPv{}",
                version.number(),
                cfg.version.number()
            ),
            "interval_mismatch" => format!(
                "VRRPv2 needs the same advert interval on every router (RFC 3768 §7.1): it sends {} s, this instance {} s",
                interval_cs / 100,
                cfg.advert_interval_cs / 100
            ),
            "checksum_style" => {
                "its VRRPv3 checksum is computed another way (see v3Checksum)".to_string()
            }
            _ => return,
        };
        let key = format!("ignored {} {src} {why}", r.plan.name);
        if let Some(n) = self.log_limit.allow(&key, now) {
            warn!(
                instance = r.plan.name.as_str();
                "instance {}: ignoring adverts from {src} for VRID {}: {detail}; it may be MASTER too{}",
                r.plan.name,
                cfg.vrid,
                log_limit::more(n)
            );
        }
    }

    /// keepalived's `auth_type AH` next to nginx-ha: neither side accepts
    /// the other's adverts, so both are MASTER. Nothing else would tell.
    fn on_ah(&mut self, key: PacketKey, p: AhVrrp, more: u64) {
        let Some(r) = self
            .insts
            .iter()
            .find(|r| (r.plan.link.index, r.plan.v4) == key && r.core.config().vrid == p.vrid)
        else {
            return;
        };
        warn!(
            instance = r.plan.name.as_str();
            "instance {}: {} sends VRRP for VRID {} wrapped in IPsec AH (IP protocol 51, keepalived's auth_type AH), which nginx-ha does not speak: neither node accepts the other's adverts and both may be MASTER; use auth_type PASS (VRRPv2 authPasswordFile) or none on both{}",
            r.plan.name,
            p.src,
            p.vrid,
            log_limit::more(more)
        );
    }

    /// RFC 5798 §5.1.1.1/§5.1.2.1: a multicast advert comes from the
    /// sender's primary address on this link: an IPv4 address inside one of
    /// our prefixes, or an IPv6 link-local address. Anything else cannot be
    /// a router on this segment, whatever priority it claims.
    fn on_our_link(&self, ifindex: u32, src: IpAddr) -> bool {
        match src {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            IpAddr::V4(v4) => self.if_addrs.get(&ifindex).is_some_and(|addrs| {
                addrs.iter().any(|(a, len)| match a {
                    IpAddr::V4(a) if *len <= 32 => {
                        let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                        u32::from(*a) & mask == u32::from(v4) & mask
                    }
                    _ => false,
                })
            }),
        }
    }

    pub async fn on_net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Link(l) => self.on_link(l).await,
            NetEvent::LinkGone { index, name } => self.on_link_gone(index, &name).await,
            NetEvent::Addresses(index) => self.on_addresses(index).await,
            NetEvent::Resync => self.resync().await,
        }
    }

    async fn on_link(&mut self, l: LinkInfo) {
        // Instances are bound to an interface by name: one that was
        // deleted and created again (a veth, VLAN or bond rebuilt) has a
        // new index, and everything opened on the old one is dead.
        for i in 0..self.insts.len() {
            let p = &self.insts[i].plan.link;
            if p.name != l.name {
                continue;
            }
            if p.index != l.index {
                self.rebind(i, l.clone()).await;
            } else if p.mac != l.mac {
                // Announcements must carry the interface's current MAC.
                self.insts[i].plan.link.mac = l.mac;
                self.announcers.remove(&l.index);
                let plan = self.insts[i].plan.clone();
                if let Err(e) = self.ensure_io(&plan) {
                    error!(instance = plan.name.as_str(); "instance {}: {e}", plan.name);
                }
            }
        }
        for i in 0..self.insts.len() {
            let r = &self.insts[i];
            if r.plan.link.index != l.index || !r.plan.decl.track_interface {
                continue;
            }
            let why = (!l.up).then(|| format!("{} is down", l.name));
            self.set_fault(i, FaultSource::Link, why).await;
        }
    }

    async fn on_link_gone(&mut self, index: u32, name: &str) {
        let mut any = false;
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            any = true;
            // Whatever track_interface says: nothing can be served on an
            // interface that does not exist.
            let why = format!("{name} was deleted; waiting for it to come back");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
        }
        if any {
            warn!("interface {name} (index {index}) was deleted");
            // Its sockets see nothing any more; a re-created interface
            // gets new ones (rebind).
            self.sockets.retain(|(idx, _), _| *idx != index);
            self.announcers.remove(&index);
        }
    }

    /// Moves instance `i` onto the interface now called by its name.
    async fn rebind(&mut self, i: usize, l: LinkInfo) {
        let old = self.insts[i].plan.link.index;
        let name = l.name.clone();
        info!(
            instance = self.insts[i].plan.name.as_str();
            "instance {}: interface {name} is back (index {old} -> {}): re-opening its sockets",
            self.insts[i].plan.name, l.index
        );
        if !self.insts[i].faults.contains_key(&FaultSource::Link) {
            // The deletion was not seen (events lost): resign first, so
            // nothing is held on the old index.
            let why = format!("{name} was deleted; waiting for it to come back");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
        }
        self.insts[i].plan.link = l.clone();
        self.sockets.retain(|(idx, _), _| *idx != old);
        self.announcers.remove(&old);
        let plan = self.insts[i].plan.clone();
        if let Err(e) = self.ensure_io(&plan) {
            error!(instance = plan.name.as_str(); "instance {}: {e}", plan.name);
            let why = format!("{name}: {e}");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
            return;
        }
        self.drop_unused_io();
        self.refresh_primary(i).await;
        let why = (!l.up && plan.decl.track_interface).then(|| format!("{name} is down"));
        self.set_fault(i, FaultSource::Link, why).await;
    }

    async fn on_addresses(&mut self, index: u32) {
        if !self.insts.iter().any(|r| r.plan.link.index == index) {
            return;
        }
        let on_link = match self.net.addresses(index).await {
            Ok(a) => a,
            Err(e) => {
                warn!("reading the addresses of interface {index}: {e}");
                return;
            }
        };
        self.if_addrs.insert(index, on_link.clone());
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            if self.insts[i].primary.is_none() {
                self.refresh_primary(i).await;
            } else {
                self.restore_vips(i, &on_link).await;
            }
        }
    }

    /// A MASTER holds its VIPs: one deleted by hand (or by another tool)
    /// would leave the clients without service while every node reports
    /// all is well, so it is added back and reported.
    async fn restore_vips(&mut self, i: usize, on_link: &[(IpAddr, u8)]) {
        let r = &self.insts[i];
        if r.core.state() != State::Master || r.faults.contains_key(&FaultSource::Vip) {
            return;
        }
        let missing: Vec<IpPrefix> = r
            .plan
            .vips
            .iter()
            .filter(|v| !on_link.iter().any(|(a, _)| *a == v.addr))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let (idx, name, ifname) = (
            r.plan.link.index,
            r.plan.name.clone(),
            r.plan.link.name.clone(),
        );
        let now = self.now();
        for v in &missing {
            let key = format!("vip-restore {name} {v}");
            if let Some(n) = self.log_limit.allow(&key, now) {
                warn!(
                    instance = name.as_str();
                    "instance {name}: VIP {v} was removed from {ifname} while MASTER: adding it back{}",
                    log_limit::more(n)
                );
            }
            match self.net.add_addr(idx, v.addr, v.len).await {
                Ok(()) => self.insts[i].vips_restored += 1,
                Err(e) => {
                    error!(instance = name.as_str(); "instance {name}: adding VIP {v} back: {e}")
                }
            }
        }
        // Clients may have learnt in the meantime that nobody answers.
        self.exec(i, vec![Action::Announce]).await;
    }

    /// Looks for the instance's source address again; once found (or
    /// changed, on a re-created interface) the core is rebuilt with it.
    /// Only called while the instance is in FAULT or has no address, so
    /// it holds nothing that a new core would forget.
    async fn refresh_primary(&mut self, i: usize) {
        let index = self.insts[i].plan.link.index;
        let on_link = match self.net.addresses(index).await {
            Ok(a) => a,
            Err(e) => {
                warn!("reading the addresses of interface {index}: {e}");
                return;
            }
        };
        self.if_addrs.insert(index, on_link.clone());
        let p = self.insts[i].plan.pick_primary(&on_link);
        let now = self.now();
        let r = &mut self.insts[i];
        if p != r.primary {
            r.primary = p;
            r.peers = r.plan.peers(p);
            if let Some(p) = p {
                let mut core = Instance::new(r.plan.core_config(Some(p)));
                if let Some(why) = r.faults.values().next().cloned() {
                    core.handle(now, Input::Fault(why));
                }
                core.handle(now, Input::Startup);
                r.core = core;
                info!("instance {}: source address {p} found", r.plan.name);
                self.apply_checks(i);
            }
        }
        match p {
            Some(p) => {
                // Unicast peers that are all this node itself: nobody
                // would hear the adverts, so every node would be master.
                let why = self.insts[i].plan.no_peer_reason(Some(p));
                self.set_fault(i, FaultSource::Address, why).await
            }
            None => {
                let why = no_address_reason(&self.insts[i].plan);
                self.set_fault(i, FaultSource::Address, Some(why)).await
            }
        }
    }

    /// After lost netlink events: read every interface we use again, and
    /// act on what changed as if the events had arrived.
    async fn resync(&mut self) {
        warn!(
            "netlink events were lost (receive buffer overrun): reading links and addresses again"
        );
        let names: std::collections::BTreeSet<String> = self
            .insts
            .iter()
            .map(|r| r.plan.link.name.clone())
            .collect();
        for name in names {
            match self.net.link(&name).await {
                Ok(l) => self.on_link(l).await,
                Err(NetError::NoSuchInterface(_)) => {
                    let idx: Vec<u32> = self
                        .insts
                        .iter()
                        .filter(|r| r.plan.link.name == name)
                        .map(|r| r.plan.link.index)
                        .collect();
                    for index in idx {
                        self.on_link_gone(index, &name).await;
                    }
                }
                Err(e) => warn!("reading interface {name}: {e}"),
            }
        }
        let indexes: std::collections::BTreeSet<u32> =
            self.insts.iter().map(|r| r.plan.link.index).collect();
        for index in indexes {
            self.on_addresses(index).await;
        }
    }

    pub async fn on_health(&mut self, ev: Event) {
        match ev {
            Event::Stub(s) => self.stub = Some(s),
            Event::Verdict(Verdict {
                check,
                healthy,
                detail,
            }) => {
                let now = Instant::now();
                if let Some(c) = self.checks.get_mut(&check) {
                    c.healthy = Some(healthy);
                    c.detail = detail.clone();
                    c.since = now;
                }
                if healthy {
                    info!(check = check.as_str(); "check {check} passes: {detail}");
                } else {
                    warn!(check = check.as_str(); "check {check} fails: {detail}");
                }
                for i in 0..self.insts.len() {
                    let (fault, prio) = self.check_effect(i);
                    let now = self.now();
                    let a = self.insts[i].core.handle(now, Input::Priority(prio));
                    self.exec(i, a).await;
                    self.set_check_faults(i, fault).await;
                }
                self.start_all().await;
                self.report_status();
            }
        }
    }

    /// The checks this instance tracks: the listed ones, or all.
    fn tracked(&self, i: usize) -> Vec<String> {
        match &self.insts[i].plan.decl.track_checks {
            Some(list) => list.clone(),
            None => self.checks.keys().cloned().collect(),
        }
    }

    /// keepalived's weights: (failing weight-0 checks, effective priority).
    fn check_effect(&self, i: usize) -> (Vec<(String, String)>, u8) {
        let mut faults = Vec::new();
        let mut prio = i64::from(self.insts[i].plan.priority);
        for name in self.tracked(i) {
            // Undecided checks have no effect: instances wait for them
            // before they start (start_one).
            let Some(healthy) = self.checks.get(&name).and_then(|c| c.healthy) else {
                continue;
            };
            let Some(c) = self.checks.get(&name) else {
                continue;
            };
            match Effect::of(c.weight) {
                Effect::Fault if !healthy => {
                    faults.push((name.clone(), format!("check {name}: {}", c.detail)))
                }
                Effect::Fault => {}
                Effect::Weight(w) if w < 0 && !healthy => prio += w,
                Effect::Weight(w) if w > 0 && healthy => prio += w,
                Effect::Weight(_) => {}
            }
        }
        (faults, prio.clamp(1, 254) as u8)
    }

    /// Brings the instance's check faults and priority in line with the
    /// current verdicts, without running actions (used before start-up).
    fn apply_checks(&mut self, i: usize) {
        let (faults, prio) = self.check_effect(i);
        let r = &mut self.insts[i];
        r.faults.retain(|k, _| !matches!(k, FaultSource::Check(_)));
        for (name, why) in faults {
            r.faults.insert(FaultSource::Check(name), why);
        }
        let now = Instant::now().saturating_duration_since(self.start);
        r.core.handle(now, Input::Priority(prio));
    }

    async fn set_check_faults(&mut self, i: usize, faults: Vec<(String, String)>) {
        let current: Vec<FaultSource> = self.insts[i]
            .faults
            .keys()
            .filter(|k| matches!(k, FaultSource::Check(_)))
            .cloned()
            .collect();
        for k in current {
            if let FaultSource::Check(n) = &k
                && !faults.iter().any(|(f, _)| f == n)
            {
                self.set_fault(i, k, None).await;
            }
        }
        for (name, why) in faults {
            self.set_fault(i, FaultSource::Check(name), Some(why)).await;
        }
    }

    async fn set_fault(&mut self, i: usize, src: FaultSource, why: Option<String>) {
        let now = self.now();
        let r = &mut self.insts[i];
        let was = !r.faults.is_empty();
        match why {
            Some(w) => {
                r.faults.insert(src, w);
            }
            None => {
                r.faults.remove(&src);
            }
        }
        let is = !r.faults.is_empty();
        let a = match (was, is) {
            (false, true) => {
                let w = r.faults.values().next().cloned().unwrap_or_default();
                r.core.handle(now, Input::Fault(w))
            }
            (true, false) => r.core.handle(now, Input::Recover),
            _ => Vec::new(),
        };
        self.exec(i, a).await;
    }

    async fn exec(&mut self, i: usize, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::SendAdvert { priority } => self.send_advert(i, priority),
                Action::AddVips => {
                    let r = &self.insts[i];
                    let mut failed = None;
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.add_addr(r.plan.link.index, v.addr, v.len).await {
                            error!(instance = r.plan.name.as_str(); "instance {}: adding VIP {v}: {e}", r.plan.name);
                            failed = Some(format!("cannot add VIP {v}: {e}"));
                        }
                    }
                    if let Some(why) = failed {
                        // Claiming MASTER without the VIP would keep the
                        // peer from serving it: resign instead. The rest of
                        // this batch (adverts, announcements) is dropped;
                        // its transition records stay.
                        queue.retain(|a| matches!(a, Action::Transition { .. }));
                        let now = self.now();
                        let r = &mut self.insts[i];
                        let first = r.faults.is_empty();
                        r.faults.insert(FaultSource::Vip, why.clone());
                        r.vip_retry = Some(now + VIP_RETRY);
                        if first {
                            queue.extend(r.core.handle(now, Input::Fault(why)));
                        }
                    }
                }
                Action::RemoveVips => {
                    let r = &self.insts[i];
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.del_addr(r.plan.link.index, v.addr).await {
                            error!(instance = r.plan.name.as_str(); "instance {}: removing VIP {v}: {e}", r.plan.name);
                        }
                    }
                }
                Action::Reassert { src, priority } => {
                    let now = self.now();
                    let r = &self.insts[i];
                    let key = format!("reassert {} {src}", r.plan.name);
                    if let Some(n) = self.log_limit.allow(&key, now) {
                        warn!(
                            instance = r.plan.name.as_str();
                            "instance {}: {src} advertises priority {priority} although this node is MASTER with priority {} (a healed split brain, or a backup that timed out): answered at once and re-announcing the VIPs{}",
                            r.plan.name,
                            r.core.priority(),
                            log_limit::more(n)
                        );
                    }
                }
                Action::Announce => {
                    let now = self.now();
                    let r = &mut self.insts[i];
                    r.announce_left = r.plan.decl.announce.count;
                    r.announce_next = (r.announce_left > 0).then_some(now);
                    self.announce_due(i, now);
                }
                Action::Transition { from, to, reason } => {
                    let r = &self.insts[i];
                    let prio = r.core.priority();
                    info!(
                        instance = r.plan.name.as_str(),
                        state = to.as_str(),
                        previous_state = from.as_str(),
                        // journald's PRIORITY is the syslog level.
                        vrrp_priority = prio,
                        reason = reason.to_string();
                        "instance {}: {from} -> {to} (priority {prio}): {reason}",
                        r.plan.name
                    );
                    state_file::write(&self.opts.runtime_dir, &r.plan.name, to);
                    let n = &self.decl.notify;
                    let commands = match to {
                        State::Master => n.master.clone(),
                        State::Backup => n.backup.clone(),
                        State::Fault => n.fault.clone(),
                        State::Initialize => n.stop.clone(),
                    };
                    self.hooks.queue(Job {
                        commands,
                        instance: r.plan.name.clone(),
                        state: to.as_str(),
                        priority: prio,
                        timeout: n.timeout.as_duration(),
                    });
                    self.report_status();
                }
            }
        }
    }

    fn send_advert(&mut self, i: usize, priority: u8) {
        let r = &self.insts[i];
        let Some(src) = r.primary else { return };
        let cfg = r.core.config();
        let adv = Advert {
            version: cfg.version,
            vrid: cfg.vrid,
            priority,
            interval_cs: cfg.advert_interval_cs,
            addrs: cfg.vips.clone(),
            auth: if cfg.version == Version::V2 {
                cfg.auth
            } else {
                Auth::None
            },
        };
        let dsts: Vec<IpAddr> = if r.plan.unicast() {
            r.peers.clone()
        } else if r.plan.v4 {
            vec![IpAddr::V4(MCAST_V4)]
        } else {
            vec![IpAddr::V6(MCAST_V6)]
        };
        let Some(Rx { sock, .. }) = self.sockets.get(&(r.plan.link.index, r.plan.v4)) else {
            return;
        };
        for dst in dsts {
            let bytes = adv.encode(src, dst, cfg.checksum);
            if let Err(e) = sock.send(&bytes, src, dst) {
                warn!("instance {}: sending advert to {dst}: {e}", r.plan.name);
            }
        }
    }

    /// One line per instance for systemd's StatusText.
    pub fn status_line(&self) -> String {
        let mut parts: Vec<String> = self
            .insts
            .iter()
            .map(|r| {
                format!(
                    "{}: {} prio {}",
                    r.plan.name,
                    r.core.state(),
                    r.core.priority()
                )
            })
            .collect();
        if self.maintenance {
            parts.insert(0, "MAINTENANCE".into());
        }
        parts.join("; ")
    }

    fn report_status(&self) {
        systemd::status(&self.status_line());
    }

    pub async fn on_control(&mut self, req: Request) {
        let answer = match req.cmd {
            Command::Status => serde_json::to_string(&self.status()).unwrap_or_default(),
            Command::Maintenance(on) => self.set_maintenance(on).await,
        };
        let _ = req.reply.send(answer);
    }

    async fn set_maintenance(&mut self, on: bool) -> String {
        let path = self.opts.state_dir.join(MAINTENANCE_FILE);
        // Persist first: a crash right after must not forget the operator.
        let r = if on {
            std::fs::write(
                &path,
                b"maintenance mode: set by `nginx-ha maintenance on`\n",
            )
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        if let Err(e) = r {
            return serde_json::json!({ "error": format!("{}: {e}", path.display()) }).to_string();
        }
        self.maintenance = on;
        info!("maintenance mode {}", if on { "on" } else { "off" });
        for i in 0..self.insts.len() {
            let why = on.then(|| "maintenance mode".to_string());
            self.set_fault(i, FaultSource::Maintenance, why).await;
        }
        self.report_status();
        serde_json::json!({ "ok": true, "maintenance": on }).to_string()
    }

    pub fn status(&self) -> Status {
        let now = self.now();
        let instances =
            self.insts
                .iter()
                .map(|r| {
                    let c = r.core.counters();
                    InstanceStatus {
                        name: r.plan.name.clone(),
                        state: r.core.state().to_string(),
                        priority: r.plan.priority,
                        effective_priority: r.core.priority(),
                        interface: r.plan.link.name.clone(),
                        virtual_router_id: r.core.config().vrid,
                        version: r.core.config().version.number(),
                        virtual_ips: r.plan.vips.iter().map(|v| v.to_string()).collect(),
                        master_address: r.core.master_addr().map(|a| a.to_string()),
                        last_transition: r.core.last_transition().map(|(t, why)| {
                            control::Transition {
                                seconds_ago: now.saturating_sub(*t).as_secs_f64(),
                                reason: why.to_string(),
                            }
                        }),
                        faults: r.faults.values().cloned().collect(),
                        counters: Counters {
                            adverts_sent: c.adverts_sent,
                            adverts_received: c.adverts_received,
                            priority_zero_sent: c.priority_zero_sent,
                            priority_zero_received: c.priority_zero_received,
                            address_mismatch: c.address_mismatch,
                            lower_priority_answered: c.lower_priority_answered,
                            vips_restored: r.vips_restored,
                            dropped: c.dropped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                        },
                    }
                })
                .collect();
        let checks = self
            .checks
            .iter()
            .map(|(n, c)| CheckStatus {
                name: n.clone(),
                healthy: c.healthy,
                detail: c.detail.clone(),
                weight: c.weight,
                seconds_since_change: c.since.elapsed().as_secs_f64(),
            })
            .collect();
        let mut dropped: BTreeMap<String, u64> = self
            .rx_dropped
            .snapshot()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let overruns: u64 = self.sockets.values().map(|rx| rx.sock.overruns()).sum();
        if overruns > 0 {
            dropped.insert("socket_overrun".into(), overruns);
        }
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow > 0 {
            dropped.insert("queue_full".into(), overflow);
        }
        Status {
            node: self.decl.node.name.clone(),
            maintenance: self.maintenance,
            instances,
            checks,
            nginx: self.stub,
            dropped,
        }
    }

    /// SIGHUP: re-read the declaration. A bad one is refused whole and the
    /// running one kept. Instances whose VRRP parameters did not change keep
    /// their state and VIPs; changed ones are restarted cleanly.
    pub async fn reload(&mut self, loaded: Result<Loaded, Vec<String>>) {
        systemd::reloading();
        info!("reloading {}", self.opts.config.display());
        match self.try_reload(loaded).await {
            Ok(summary) => info!("reload done: {summary}"),
            Err(lines) => {
                for l in &lines {
                    error!("reload refused, keeping the running configuration: {l}");
                }
            }
        }
        systemd::ready(&self.status_line());
    }

    async fn try_reload(
        &mut self,
        loaded: Result<Loaded, Vec<String>>,
    ) -> Result<String, Vec<String>> {
        let Loaded { decl, passwords } = loaded?;
        let plans = setup::plan(&decl, &passwords, &self.net)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let unchanged = |r: &Running, p: &Plan| {
            r.plan.name == p.name
                && r.plan.decl == p.decl
                && r.plan.priority == p.priority
                && r.plan.auth == p.auth
        };
        // Stop what changed or went away.
        let mut kept = Vec::new();
        let now = self.now();
        for mut r in std::mem::take(&mut self.insts) {
            if plans.iter().any(|p| unchanged(&r, p)) {
                kept.push(r);
            } else {
                info!("instance {}: changed or removed, stopping it", r.plan.name);
                let a = r.core.handle(now, Input::Shutdown);
                self.insts.push(r);
                let i = self.insts.len() - 1;
                self.exec(i, a).await;
                self.insts.pop();
            }
        }
        let (nkept, ntotal) = (kept.len(), plans.len());
        self.insts = kept;
        // Checks: keep the verdicts of unchanged checks.
        let weights = check_weights(&decl);
        self.decl = decl;
        let restarted = self.checks_running.sync(&self.decl.checks, &self.health_tx);
        let start = Instant::now();
        self.checks.retain(|n, _| weights.contains_key(n));
        for (n, w) in weights {
            let fresh = restarted.contains(&n) || !self.checks.contains_key(&n);
            let c = self.checks.entry(n).or_insert(CheckState {
                healthy: None,
                detail: String::new(),
                since: start,
                weight: w,
            });
            c.weight = w;
            if fresh {
                c.healthy = None;
                c.detail = "waiting for the first results".into();
                c.since = start;
            }
        }
        let mut errors = Vec::new();
        for p in plans {
            if self.insts.iter().any(|r| r.plan.name == p.name) {
                continue;
            }
            if let Err(e) = self.add_instance(p).await {
                errors.push(e.to_string());
            }
        }
        for i in 0..self.insts.len() {
            let (faults, prio) = self.check_effect(i);
            let now = self.now();
            let a = self.insts[i].core.handle(now, Input::Priority(prio));
            self.exec(i, a).await;
            self.set_check_faults(i, faults).await;
        }
        self.start_all().await;
        if errors.is_empty() {
            Ok(format!("{nkept} of {ntotal} instance(s) unchanged"))
        } else {
            Err(errors)
        }
    }

    pub async fn shutdown(&mut self) {
        info!("shutting down");
        let now = self.now();
        for i in 0..self.insts.len() {
            let a = self.insts[i].core.handle(now, Input::Shutdown);
            self.exec(i, a).await;
        }
        // The stop hooks were queued above; the runtime ends when this
        // returns. Room for one hook already running plus the stop hooks.
        self.hooks
            .drain(self.decl.notify.timeout.as_duration().saturating_mul(2))
            .await;
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
