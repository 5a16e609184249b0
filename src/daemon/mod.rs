//! The I/O shell around the protocol core: one tokio event loop that turns
//! socket reads, timers, link events and signals into core inputs, and
//! carries out the actions the core returns.

pub mod setup;
mod state_file;

use crate::config;
use crate::net::announce::Announcer;
use crate::net::netlink::{Net, NetError, NetEvent};
use crate::net::vrrp_socket::{Received, VrrpSocket};
use crate::vrrp::instance::{Action, Input, Instance, State};
use crate::vrrp::packet::{Advert, MCAST_V4, MCAST_V6, Version};
use log::{error, info, warn};
use setup::{Plan, SetupError};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] config::LoadError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Net(#[from] NetError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

/// Why an instance cannot run now. Several can hold at once; the instance
/// leaves FAULT only when none is left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum FaultSource {
    Link,
    Address,
}

struct Running {
    plan: Plan,
    core: Instance,
    primary: Option<IpAddr>,
    peers: Vec<IpAddr>,
    faults: BTreeMap<FaultSource, String>,
    announce_left: u64,
    announce_next: Option<Duration>,
    refresh_next: Option<Duration>,
}

/// Counters for packets that never reached an instance.
#[derive(Default, Debug)]
pub struct RxCounters {
    pub dropped: BTreeMap<&'static str, u64>,
}

struct Daemon {
    opts: Options,
    start: Instant,
    net: Net,
    insts: Vec<Running>,
    sockets: BTreeMap<(u32, bool), Arc<VrrpSocket>>,
    announcers: BTreeMap<u32, Announcer>,
    rx: RxCounters,
}

pub fn run(opts: Options) -> Result<(), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    rt.block_on(run_async(opts))
}

async fn run_async(opts: Options) -> Result<(), DaemonError> {
    let decl = config::load(&opts.config)?;
    std::fs::create_dir_all(&opts.runtime_dir).map_err(io_err(format!(
        "runtime dir {}",
        opts.runtime_dir.display()
    )))?;
    let net = Net::new()?;
    let mut net_events = Net::events()?;
    let plans = setup::plan(&decl, &net).await?;
    let mut d = Daemon {
        opts,
        start: Instant::now(),
        net,
        insts: Vec::new(),
        sockets: BTreeMap::new(),
        announcers: BTreeMap::new(),
        rx: RxCounters::default(),
    };
    let (pkt_tx, mut pkt_rx) = mpsc::channel::<((u32, bool), Received)>(1024);
    d.build(plans, &pkt_tx).await?;

    let mut sigterm = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
    let now = d.now();
    for i in 0..d.insts.len() {
        let a = d.insts[i].core.handle(now, Input::Startup);
        d.exec(i, a).await;
    }
    info!("nginx-ha running: {} instance(s)", d.insts.len());

    loop {
        let wake = d.next_wake();
        tokio::select! {
            Some((key, pkt)) = pkt_rx.recv() => d.on_packet(key, pkt).await,
            Some(ev) = net_events.recv() => d.on_net_event(ev).await,
            _ = sleep_until_opt(wake) => d.on_timers().await,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    d.shutdown().await;
    Ok(())
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    async fn build(
        &mut self,
        plans: Vec<Plan>,
        pkt_tx: &mpsc::Sender<((u32, bool), Received)>,
    ) -> Result<(), DaemonError> {
        for plan in plans {
            let idx = plan.link.index;
            // A crash leaves VIPs behind; holding them while not master
            // would answer for an address another node owns.
            for v in &plan.vips {
                let present = self
                    .net
                    .addresses(idx)
                    .await?
                    .iter()
                    .any(|(a, _)| *a == v.addr);
                if present {
                    warn!(
                        "instance {}: removing stale VIP {} from {}",
                        plan.name, v, plan.link.name
                    );
                    self.net.del_addr(idx, v.addr).await?;
                }
            }
            let key = (idx, plan.v4);
            if let std::collections::btree_map::Entry::Vacant(slot) = self.sockets.entry(key) {
                let s = VrrpSocket::open(&plan.link.name, idx, plan.v4)
                    .map_err(io_err(format!("VRRP socket on {}", plan.link.name)))?;
                let s = Arc::new(s);
                spawn_reader(key, s.clone(), pkt_tx.clone());
                slot.insert(s);
            }
            if let (None, Some(mac)) = (self.announcers.get(&idx), plan.link.mac) {
                let a = Announcer::open(idx, mac)
                    .map_err(io_err(format!("packet socket on {}", plan.link.name)))?;
                self.announcers.insert(idx, a);
            }
            let on_link = self.net.addresses(idx).await?;
            let primary = plan.pick_primary(&on_link);
            let mut faults = BTreeMap::new();
            if !plan.link.up && plan.decl.track_interface {
                faults.insert(FaultSource::Link, format!("{} is down", plan.link.name));
            }
            if primary.is_none() {
                faults.insert(FaultSource::Address, no_address_reason(&plan));
            }
            let mut core = Instance::new(plan.core_config(primary));
            if let Some(why) = faults.values().next().cloned() {
                core.handle(Duration::ZERO, Input::Fault(why));
            }
            let peers = plan.peers(primary);
            info!(
                "instance {}: VRRPv{} vrid {} on {} from {}, priority {}, {}",
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
                }
            );
            self.insts.push(Running {
                plan,
                core,
                primary,
                peers,
                faults,
                announce_left: 0,
                announce_next: None,
                refresh_next: None,
            });
        }
        for i in 0..self.insts.len() {
            state_file::write(
                &self.opts.runtime_dir,
                &self.insts[i].plan.name,
                State::Initialize,
            );
        }
        Ok(())
    }

    fn next_wake(&self) -> Option<Instant> {
        self.insts
            .iter()
            .flat_map(|r| [r.core.deadline(), r.announce_next, r.refresh_next])
            .flatten()
            .min()
            .map(|d| self.start + d)
    }

    async fn on_timers(&mut self) {
        let now = self.now();
        for i in 0..self.insts.len() {
            if self.insts[i].core.deadline().is_some_and(|t| t <= now) {
                let a = self.insts[i].core.handle(now, Input::Timer);
                self.exec(i, a).await;
            }
            self.announce_due(i, now);
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

    async fn on_packet(&mut self, key: (u32, bool), pkt: Received) {
        let (adv, style) = match Advert::decode(&pkt.msg, pkt.ip) {
            Ok(x) => x,
            Err(e) => {
                *self.rx.dropped.entry(e.counter()).or_insert(0) += 1;
                return;
            }
        };
        let Some(i) = self.insts.iter().position(|r| {
            (r.plan.link.index, r.plan.v4) == key && r.core.config().vrid == adv.vrid
        }) else {
            *self.rx.dropped.entry("unknown_vrid").or_insert(0) += 1;
            return;
        };
        let r = &self.insts[i];
        if r.plan.unicast() && !r.peers.contains(&pkt.ip.src) {
            // In unicast mode only the configured peers take part; anyone
            // else on the segment could otherwise steal the VIP.
            *self.rx.dropped.entry("not_a_peer").or_insert(0) += 1;
            return;
        }
        let now = self.now();
        let a = self.insts[i].core.handle(
            now,
            Input::Advert {
                src: pkt.ip.src,
                advert: adv,
                checksum: style,
            },
        );
        self.exec(i, a).await;
    }

    async fn on_net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Link(l) => {
                for i in 0..self.insts.len() {
                    let r = &self.insts[i];
                    if r.plan.link.index != l.index || !r.plan.decl.track_interface {
                        continue;
                    }
                    let why = (!l.up).then(|| format!("{} is down", l.name));
                    self.set_fault(i, FaultSource::Link, why).await;
                }
            }
            NetEvent::Addresses(index) => {
                for i in 0..self.insts.len() {
                    if self.insts[i].plan.link.index != index || self.insts[i].primary.is_some() {
                        continue;
                    }
                    let Ok(on_link) = self.net.addresses(index).await else {
                        continue;
                    };
                    if let Some(p) = self.insts[i].plan.pick_primary(&on_link) {
                        // The core is in FAULT and holds nothing, so it can
                        // be rebuilt with its source address.
                        let now = self.now();
                        let r = &mut self.insts[i];
                        r.primary = Some(p);
                        r.peers = r.plan.peers(Some(p));
                        let mut core = Instance::new(r.plan.core_config(Some(p)));
                        if let Some(why) = r.faults.values().next().cloned() {
                            core.handle(now, Input::Fault(why));
                        }
                        core.handle(now, Input::Startup);
                        r.core = core;
                        info!("instance {}: source address {p} found", r.plan.name);
                        self.set_fault(i, FaultSource::Address, None).await;
                    }
                }
            }
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
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.send_advert(i, priority),
                Action::AddVips => {
                    let r = &self.insts[i];
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.add_addr(r.plan.link.index, v.addr, v.len).await {
                            error!("instance {}: adding VIP {v}: {e}", r.plan.name);
                        }
                    }
                }
                Action::RemoveVips => {
                    let r = &self.insts[i];
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.del_addr(r.plan.link.index, v.addr).await {
                            error!("instance {}: removing VIP {v}: {e}", r.plan.name);
                        }
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
                    info!(
                        "instance {}: {from} -> {to} (priority {}): {reason}",
                        r.plan.name,
                        r.core.priority()
                    );
                    state_file::write(&self.opts.runtime_dir, &r.plan.name, to);
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
                crate::vrrp::packet::Auth::None
            },
        };
        let dsts: Vec<IpAddr> = if r.plan.unicast() {
            r.peers.clone()
        } else if r.plan.v4 {
            vec![IpAddr::V4(MCAST_V4)]
        } else {
            vec![IpAddr::V6(MCAST_V6)]
        };
        let Some(sock) = self.sockets.get(&(r.plan.link.index, r.plan.v4)) else {
            return;
        };
        for dst in dsts {
            let bytes = adv.encode(src, dst, cfg.checksum);
            if let Err(e) = sock.send(&bytes, src, dst) {
                warn!("instance {}: sending advert to {dst}: {e}", r.plan.name);
            }
        }
    }

    async fn shutdown(&mut self) {
        info!("shutting down");
        let now = self.now();
        for i in 0..self.insts.len() {
            let a = self.insts[i].core.handle(now, Input::Shutdown);
            self.exec(i, a).await;
        }
    }
}

fn no_address_reason(plan: &Plan) -> String {
    match plan.decl.unicast_source {
        Some(s) => format!("unicastSource {s} is not on {}", plan.link.name),
        None if plan.v4 => format!("no IPv4 address on {}", plan.link.name),
        None => format!("no IPv6 link-local address on {}", plan.link.name),
    }
}

fn spawn_reader(
    key: (u32, bool),
    sock: Arc<VrrpSocket>,
    tx: mpsc::Sender<((u32, bool), Received)>,
) {
    tokio::spawn(async move {
        loop {
            match sock.recv().await {
                Ok(pkt) => {
                    // Under a flood the channel fills and the excess is
                    // dropped here rather than queued without bound.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send((key, pkt)) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {}
                Err(e) => {
                    warn!("VRRP socket on ifindex {}: {e}", sock.ifindex());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
}
