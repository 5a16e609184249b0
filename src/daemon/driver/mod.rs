//! The I/O shell around the node (`crate::node`): it owns the sockets,
//! netlink, the health check tasks, the hooks and the control socket's
//! requests, turns what happens on them into `Event`s for the node, and
//! carries out the `Command`s the node returns. No policy lives here.

mod anycast;
mod commands;
mod events;
mod operate;
mod quiet;
mod vips;

use commands::send_frame;

use super::control::{self, Request, Status};
use super::hooks::{Hooks, Job};
use super::poller::Poller;
use super::rx::{self, Drops, Inbound, Sink};
use super::setup::{self, Loaded, Plan};
use super::state_file::StateFiles;
use super::{DaemonError, Options, earliest, io_err, metrics, systemd};
use crate::config::Declaration;
use crate::health::{self, Event as HealthEvent};
use crate::net::announce::Announcer;
use crate::net::netlink::{Net, NetError, NetEvent};
use crate::net::vrrp_socket::RecvBatch;
use crate::net::vrrp_socket::{AhSocket, VrrpSocket};
use crate::node::Node;
use crate::node::event::{Command, Event};
use crate::node::log_limit::LogLimit;
use crate::vrrp::instance::State;
use log::{error, info, warn};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

pub use super::rx::PacketKey;
const MAINTENANCE_FILE: &str = "maintenance";

pub struct Daemon {
    opts: Options,
    decl: Declaration,
    start: Instant,
    net: Net,
    node: Node,
    sockets: BTreeMap<PacketKey, Rx>,
    announcers: BTreeMap<u32, (Announcer, [u8; 6])>,
    pkt_tx: mpsc::Sender<(PacketKey, Inbound)>,
    health_tx: mpsc::UnboundedSender<HealthEvent>,
    checks_running: health::Running,
    hooks: Hooks,
    /// The state files, written off the loop.
    state_files: StateFiles,
    rx_dropped: Drops,
    /// AH reports dropped because the loop was behind.
    overflow: Arc<AtomicU64>,
    /// The loop reads the VRRP sockets itself, into these buffers.
    rx_buf: RecvBatch,
    /// The adverts of the batch being read, with their arrival times,
    /// before they go to the node.
    rx_adverts: Vec<(Inbound, Option<std::time::SystemTime>)>,
    /// Log lines about wrong TTLs (per sender) and read errors.
    rx_logs: LogLimit,
    /// The loop's epoll, which watches the VRRP sockets.
    poller: Poller,
    /// Routine adverts installed in the quiet sockets' filters, in all.
    quiet_patterns: usize,
    /// What a read of a quiet socket found (kept for its capacity).
    quiet_items: Vec<quiet::Drained>,
    /// The latest time handed to the node: adverts read late are handed
    /// over at their arrival time, never before it.
    last_now: Duration,
    /// The task that drives BIRD, with `anycast` declared.
    anycast: Option<crate::anycast::Handle>,
    /// The metrics endpoint, while `metrics.listen` is set.
    metrics: Option<metrics::Publisher>,
    /// A transition happened: STATUS to be sent after the event.
    status_due: bool,
    /// Log lines and transitions held until a batch's other commands
    /// are done (`execute`).
    reports: Vec<Command>,
    /// Interfaces whose addresses changed and are to be read again.
    addr_pending: std::collections::BTreeSet<u32>,
    addr_read_last: Option<Instant>,
    /// The process the nginx check watches, in the loop's epoll too
    /// (`EXIT_TOKEN`).
    exit_watch: Option<health::ExitWatch>,
    /// The nginx check's routine probes, while they pass.
    lent_probe: Option<Box<health::lent_probe::LentProbe>>,
    /// Its socket is in the loop's epoll (`PROBE_TOKEN`): an answer that
    /// no wake-up of the loop's own would read soon.
    probe_watched: bool,
}

/// The loop's token for `exit_watch`: socket tokens (`token`) stay below
/// 2^33, the poller's own is u64::MAX.
pub const EXIT_TOKEN: u64 = u64::MAX - 1;
/// The loop's token for the lent probe's socket (`on_probe`).
pub const PROBE_TOKEN: u64 = u64::MAX - 2;

/// The least time between two reads of the interfaces' addresses: a
/// change right after a read waits this long at most; a storm of them
/// costs at most one read per interface per gap.
const ADDR_READ_GAP: Duration = Duration::from_millis(20);
/// How long a stop waits for the state files to reach the disk.
const STATE_FLUSH_LIMIT: Duration = Duration::from_secs(2);

/// How late a master's advert may go out so that the adverts of many
/// instances go out in one wake-up: a thousand instances at 100 ms send
/// ten adverts a millisecond. At 10 ms adverts this is a tenth of the
/// interval; Master_Down_Interval allows three.
const ADVERT_SLOT: Duration = Duration::from_millis(1);

/// The configured checks by name, with their weights.
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
        health_tx: mpsc::UnboundedSender<HealthEvent>,
        poller: Poller,
    ) -> Daemon {
        let maintenance = opts.state_dir.join(MAINTENANCE_FILE).exists();
        let state_files = StateFiles::start(opts.runtime_dir.clone());
        Daemon {
            node: Node::new(check_weights(&decl), maintenance),
            opts,
            decl,
            start: Instant::now(),
            net,
            sockets: BTreeMap::new(),
            announcers: BTreeMap::new(),
            pkt_tx,
            health_tx,
            checks_running: health::Running::default(),
            hooks: Hooks::start(),
            state_files,
            rx_dropped: Drops::default(),
            overflow: Arc::new(AtomicU64::new(0)),
            rx_buf: RecvBatch::default(),
            rx_adverts: Vec::new(),
            rx_logs: LogLimit::default(),
            poller,
            quiet_patterns: 0,
            quiet_items: Vec::new(),
            last_now: Duration::ZERO,
            anycast: None,
            reports: Vec::new(),
            metrics: None,
            status_due: false,
            addr_pending: std::collections::BTreeSet::new(),
            addr_read_last: None,
            exit_watch: None,
            lent_probe: None,
            probe_watched: false,
        }
    }

    /// Binds the metrics endpoint, if declared. At start a failure stops
    /// the start, before any instance runs.
    pub fn bind_metrics(&mut self) -> Result<(), DaemonError> {
        if let Some(m) = &self.decl.metrics {
            let p = metrics::bind(m.listen, self.checks_running.stats()).map_err(io_err(
                format!("metrics.listen {}: cannot listen", m.listen),
            ))?;
            self.metrics = Some(p);
        }
        Ok(())
    }

    /// Moves the metrics endpoint to `to`, or stops it. If the new
    /// address cannot be bound the old endpoint keeps serving and the
    /// reload fails, naming the address.
    async fn move_metrics(&mut self, to: Option<SocketAddr>) -> Result<(), Vec<String>> {
        let Some(addr) = to else {
            if let Some(old) = self.metrics.take() {
                old.close().await;
                info!("metrics endpoint stopped");
            }
            return Ok(());
        };
        let stats = self.checks_running.stats();
        let fail = |e: std::io::Error| vec![format!("metrics.listen {addr}: cannot listen: {e}")];
        match metrics::bind(addr, stats.clone()) {
            Ok(p) => self.metrics = Some(p),
            // The old endpoint itself may be in the way (the same port on
            // an overlapping address): close it and try again.
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && self
                        .metrics
                        .as_ref()
                        .is_some_and(|m| m.local().port() == addr.port()) =>
            {
                let Some(old) = self.metrics.take() else {
                    return Err(fail(e));
                };
                let was = old.local();
                old.close().await;
                match metrics::bind(addr, stats.clone()) {
                    Ok(p) => self.metrics = Some(p),
                    Err(e) => {
                        self.metrics = metrics::bind(was, stats).ok();
                        return Err(fail(e));
                    }
                }
            }
            Err(e) => return Err(fail(e)),
        }
        info!("metrics endpoint on {addr}");
        Ok(())
    }

    pub fn has_metrics(&self) -> bool {
        self.metrics.is_some()
    }

    pub fn publish_metrics(&self) {
        if let Some(m) = &self.metrics {
            m.publish(self.status());
        }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.start)
    }

    /// The time for the node's next event: now, and never before the
    /// previous one's.
    fn clock(&mut self) -> Duration {
        self.last_now = self.now().max(self.last_now);
        self.last_now
    }

    pub fn instance_count(&self) -> usize {
        self.node.instance_count()
    }

    pub fn start_checks(&mut self) {
        self.checks_running.sync(&self.decl.checks, &self.health_tx);
    }

    /// Hands the node an instance with the addresses on its interface; a
    /// socket that cannot be opened at start-up is an error, not a FAULT.
    pub async fn add_instance(&mut self, plan: Plan) -> Result<(), DaemonError> {
        let on_link = self.net.addresses(plan.link.index).await?;
        self.state_files.record(&plan.name, State::Initialize);
        let now = self.clock();
        let cmds = self.node.handle(
            now,
            Event::Add {
                plan: Box::new(plan),
                on_link,
            },
        );
        self.execute(cmds, true).await
    }

    /// Starts every instance whose checks have spoken.
    pub async fn start_all(&mut self) {
        self.feed(Event::Start).await;
    }

    /// When the loop must wake next for the node: its next deadline, with
    /// masters' adverts coalesced into `ADVERT_SLOT`-long slots (see
    /// `Node::poll_timeout_coalesced`; a backup's timers stay exact).
    pub fn next_wake(&mut self) -> Option<Instant> {
        self.node
            .poll_timeout_coalesced(ADVERT_SLOT)
            .map(|d| self.start + d)
    }

    /// The node's timers, handled without the runtime when all they do
    /// is send adverts (a master's every advert interval); otherwise the
    /// commands left to carry out with `carry_out`.
    ///
    /// `now`: the loop's clock reading of this turn.
    pub fn on_timers(&mut self, now: Instant) -> Option<Vec<Command>> {
        self.last_now = now.saturating_duration_since(self.start).max(self.last_now);
        // The masters' adverts first: lent out of the node (`Node::
        // fire_adverts`), they need none of the rest.
        let sockets = &self.sockets;
        self.node
            .fire_adverts(self.last_now, |f| send_frame(sockets, &f));
        if !self.node.timer_due(self.last_now) {
            return None;
        }
        let cmds = self.node.handle(self.last_now, Event::Timer);
        if !cmds.iter().all(|c| matches!(c, Command::Send { .. })) {
            return Some(cmds);
        }
        for c in &cmds {
            self.send_advert(c);
        }
        // Adverts sent change no state: nothing routine to forget, no
        // status to report.
        self.node.recycle(cmds);
        None
    }

    /// When the lent probe (`health::lent_probe`) needs a wake-up of its
    /// own, unless one comes before.
    pub fn probe_due(&self) -> Option<Instant> {
        self.lent_probe.as_ref().map(|p| p.wake_at())
    }

    /// On every wake-up: the lent probe sends or reads what is due, and
    /// goes back to its check when it no longer passes.
    pub fn on_probe(&mut self, now: Instant) {
        let Some(p) = self.lent_probe.as_ref() else {
            return;
        };
        if p.orphaned() {
            self.drop_probe();
            return;
        }
        // Whether the loop wakes soon anyway decides how the answer is
        // read: asked only when a request goes out.
        let next = if p.sends_at(now) {
            earliest(self.next_wake(), self.addr_read_due())
        } else {
            None
        };
        let Some(p) = self.lent_probe.as_mut() else {
            return;
        };
        let why = p.on_wake(now, next);
        let want = p.wants_watch();
        if let Some(why) = why {
            if let Some(p) = self.drop_probe() {
                p.give_back(why);
            }
        } else if want != self.probe_watched {
            let r = if want {
                self.poller.add(p.as_fd(), PROBE_TOKEN)
            } else {
                self.poller.remove(p.as_fd());
                Ok(())
            };
            // Unwatched, the answer is read at the deadline.
            self.probe_watched = want && r.is_ok();
        }
    }

    /// Takes the lent probe out of the loop (and its socket out of the
    /// epoll).
    pub(super) fn drop_probe(&mut self) -> Option<Box<health::lent_probe::LentProbe>> {
        let p = self.lent_probe.take()?;
        if std::mem::take(&mut self.probe_watched) {
            self.poller.remove(p.as_fd());
        }
        Some(p)
    }

    /// What `feed_at` does after the node handled the event.
    pub async fn carry_out(&mut self, cmds: Vec<Command>) {
        // Only start-up treats an unopenable socket as fatal.
        let _ = self.execute(cmds, false).await;
        if self.quiet_patterns > 0 {
            self.forget_stale_routine();
        }
        if std::mem::take(&mut self.status_due) {
            self.report_status();
        }
    }

    /// One event through the node, and its commands carried out.
    async fn feed(&mut self, ev: Event) {
        let now = self.clock();
        self.feed_at(ev, now).await;
    }

    /// `feed` at a time already past (an advert read late), at or after
    /// the previous event's.
    async fn feed_at(&mut self, ev: Event, at: Duration) {
        self.last_now = at.max(self.last_now);
        let cmds = self.node.handle(self.last_now, ev);
        self.carry_out(cmds).await;
    }

    /// Opens the VRRP socket (and the AH socket's reader) and the announcer an
    /// interface needs, unless they are open already (the announcer again
    /// when the interface's MAC changed).
    fn ensure_io(
        &mut self,
        index: u32,
        name: &str,
        v4: bool,
        mac: Option<[u8; 6]>,
    ) -> Result<(), DaemonError> {
        let key = (index, v4);
        if let std::collections::btree_map::Entry::Vacant(slot) = self.sockets.entry(key) {
            let s = VrrpSocket::open(name, index, v4)
                .map_err(io_err(format!("VRRP socket on {name}")))?;
            self.poller
                .add(s.as_fd(), token(key))
                .map_err(io_err(format!("watching the VRRP socket on {name}")))?;
            let sock = Arc::new(s);
            let sink = Sink {
                tx: self.pkt_tx.clone(),
                overflow: self.overflow.clone(),
                drops: self.rx_dropped.clone(),
            };
            let mut readers = Vec::new();
            if v4 {
                // Only to notice keepalived's auth_type AH; running
                // without it costs that log line, nothing else.
                match AhSocket::open(name) {
                    Ok(ah) => readers.push(rx::spawn_ah(key, ah, sink)),
                    Err(e) => warn!("AH socket on {name}: {e}"),
                }
            }
            let quiet = v4.then(|| quiet::Quiet::new(name, index));
            slot.insert(Rx {
                sock,
                readers,
                poller: self.poller.clone(),
                quiet,
            });
        }
        if let Some(mac) = mac
            && self.announcers.get(&index).is_none_or(|(_, m)| *m != mac)
        {
            let a =
                Announcer::open(index, mac).map_err(io_err(format!("packet socket on {name}")))?;
            self.announcers.insert(index, (a, mac));
        }
        Ok(())
    }

    /// The STATUS line covers every instance: built only for a systemd
    /// that listens, and once per event rather than per transition (a
    /// thousand instances moving made that quadratic).
    fn report_status(&self) {
        if systemd::active() {
            systemd::status(&self.node.status_line());
        }
    }

    pub fn status_line(&self) -> String {
        self.node.status_line()
    }
}

/// A VRRP socket, watched by the loop's epoll, and the tasks that read
/// the AH socket beside it (IPv4); they end with it.
struct Rx {
    sock: Arc<VrrpSocket>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    poller: Poller,
    /// IPv4: the socket that takes a BACKUP's routine adverts.
    quiet: Option<quiet::Quiet>,
}

impl Drop for Rx {
    fn drop(&mut self) {
        self.poller.remove(self.sock.as_fd());
        for r in &self.readers {
            r.abort();
        }
    }
}

/// A socket's token in the loop's epoll.
fn token((ifindex, v4): PacketKey) -> u64 {
    (u64::from(ifindex) << 1) | u64::from(v4)
}

/// The socket a token names.
pub fn key_of(token: u64) -> PacketKey {
    (u32::try_from(token >> 1).unwrap_or(0), token & 1 == 1)
}
