//! The I/O shell around the protocol core: one tokio event loop that turns
//! socket reads, timers, link events, health verdicts, signals and control
//! requests into core inputs, and carries out the actions the core returns.

mod cold;
pub mod control;
mod driver;
mod hooks;
pub mod lock;
mod metrics;
mod poller;

mod rx;
pub mod setup;
mod state_file;
mod systemd;

use crate::config::{self, LoadError};
use crate::net::netlink::{Net, NetError};
use crate::privileges::{self, PrivError};
use cold::{Cold, Drained, Signal, Signals};
use driver::Daemon;
use log::{error, info};
use poller::{Poller, Ready};
use setup::SetupError;
use std::path::PathBuf;
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How often the loop publishes a status snapshot for the metrics
/// endpoint: scrapes never wait for the loop, and see at most this old a
/// state.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The least room in the queue from the AH socket's reader to the loop
/// (reports, rate-limited per sender; the VRRP sockets are read by the
/// loop itself, and their adverts wait in the kernel's socket buffers).
const PKT_QUEUE: usize = 1024;

#[derive(Clone, Debug)]
pub struct Options {
    pub config: PathBuf,
    pub runtime_dir: PathBuf,
    pub state_dir: PathBuf,
    /// Switch to this user when started as root.
    pub user: Option<String>,
    /// Keep uid 0 when started as root without `user`.
    pub allow_root: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(#[from] LoadError),
    #[error("{0}")]
    Setup(#[from] SetupError),
    #[error("{0}")]
    Net(#[from] NetError),
    #[error("{0}")]
    Privileges(#[from] PrivError),
    #[error("{0}")]
    Lock(#[from] lock::LockError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> DaemonError {
    let what = what.into();
    move |source| DaemonError::Io { what, source }
}

pub fn run(opts: Options) -> Result<(), DaemonError> {
    let (decl, lock) = prepare_outside_runtime(&opts)?;
    // One worker thread runs the tokio side: netlink, the health checks,
    // the control and metrics sockets, hooks, state files. The loop runs
    // on this thread, waits on an epoll of its own (`poller`) and enters
    // the runtime only to carry out an event. Made after privileges are
    // dropped (`prepare`): capabilities belong to each thread, and a
    // thread made before would keep root's, for every child it spawns.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("nginx-ha-io")
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    let _in_runtime = rt.enter();
    let poller = Poller::new().map_err(io_err("epoll"))?;
    let mut started = rt.block_on(start(opts.clone(), decl, lock, poller.clone()))?;
    // The loop's timeouts to the nanosecond: an epoll timeout may end up
    // to the thread's timer slack (50 µs by default) late, and a
    // takeover's Skew_Time is one (keepalived's timerfds have no slack).
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        log::warn!("setting the loop's timer slack: {e}");
    }
    let turned = turn(&rt, &poller, &mut started.d, &mut started.cold);
    let Started {
        mut d,
        mut cold,
        listener,
        _lock,
    } = started;
    turned?;
    systemd::stopping();
    drop(listener);
    rt.block_on(d.shutdown(async {
        // A second SIGTERM/SIGINT ends the drain; a SIGHUP does not.
        loop {
            match cold.signals.rx.recv().await {
                Some(Signal::Stop) => return,
                Some(Signal::Reload) => {}
                None => std::future::pending().await,
            }
        }
    }));
    match std::fs::remove_file(opts.runtime_dir.join(control::SOCKET)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            error!("removing control socket: {e}")
        }
        _ => {}
    }
    Ok(())
}

/// Creates the runtime and state directories (owned by the user the
/// daemon will run as), takes the runtime directory's lock and drops
/// privileges.
fn prepare(opts: &Options) -> Result<lock::RuntimeLock, DaemonError> {
    // uid 0 keeps owning every root-owned file on the machine even with
    // two capabilities left; that must be a decision, not an omission.
    if opts.user.is_none() && !opts.allow_root && nix::unistd::geteuid().is_root() {
        return Err(PrivError::RootWithoutUser.into());
    }
    let user = match &opts.user {
        Some(u) => Some(privileges::lookup_user(u)?),
        None => None,
    };
    for dir in [&opts.runtime_dir, &opts.state_dir] {
        std::fs::create_dir_all(dir).map_err(io_err(format!("creating {}", dir.display())))?;
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir, Some(uid), Some(gid))
                .map_err(io_err(format!("chown {}", dir.display())))?;
        }
    }
    // Before anything is touched (stale VIPs, the control socket): those
    // may belong to a daemon that is running.
    let held = lock::acquire(&opts.runtime_dir)?;
    privileges::restrict(user)?;
    Ok(held)
}

/// What runs once the daemon has started.
struct Started {
    d: Daemon,
    cold: Cold,
    listener: tokio::task::JoinHandle<()>,
    _lock: lock::RuntimeLock,
}

/// Reads the declaration (nothing is touched before it is known to be
/// good) and drops privileges (`prepare`), on a runtime of its own that
/// is gone, with its threads, before the daemon's is made.
fn prepare_outside_runtime(
    opts: &Options,
) -> Result<(config::Declaration, lock::RuntimeLock), DaemonError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    match rt.block_on(config::load_within(&opts.config, setup::READ_DEADLINE)) {
        // Dropped here: its idle file-reading thread ends.
        Ok(decl) => {
            drop(rt);
            Ok((decl, prepare(opts)?))
        }
        // A read past its deadline may still hang in its thread: not
        // waited for.
        Err(e) => {
            rt.shutdown_background();
            Err(e.into())
        }
    }
}

async fn start(
    opts: Options,
    decl: config::Declaration,
    lock: lock::RuntimeLock,
    poller: Poller,
) -> Result<Started, DaemonError> {
    // After dropping privileges, as on every reload.
    let passwords = setup::read_passwords(&decl).await?;
    let net = Net::new()?;
    let net_events = Net::events()?;
    let plans = setup::plan(&decl, &passwords, &net).await?;
    let mut metrics_tick = tokio::time::interval(METRICS_EVERY);
    metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let (pkt_tx, pkt_rx) = mpsc::channel(PKT_QUEUE.max(4 * plans.len()));
    let (health_tx, health_rx) = mpsc::unbounded_channel();
    let (ctl_tx, ctl_rx) = mpsc::channel(16);
    let mut d = Daemon::new(opts.clone(), decl, net, pkt_tx, health_tx, poller);
    // Bound before any instance starts: a taken address stops the start
    // here, with nothing to undo.
    d.bind_metrics()?;
    for plan in plans {
        d.add_instance(plan).await?;
    }
    d.start_checks();
    d.start_anycast().await;
    let listener = control::listen(&opts.runtime_dir, ctl_tx)?;
    let cold = Cold {
        config: opts.config.clone(),
        pkt_rx,
        net_events,
        health_rx,
        ctl_rx,
        signals: Signals::listen()?,
        watchdog: systemd::watchdog_interval().map(tokio::time::interval),
        metrics_tick,
        reading: None,
        read_again: false,
    };
    d.start_all().await;
    systemd::ready(&d.status_line());
    info!(
        "nginx-ha running: {} instance(s){}",
        d.instance_count(),
        if d.has_anycast() { ", anycast" } else { "" }
    );
    Ok(Started {
        d,
        cold,
        listener,
        _lock: lock,
    })
}

/// The loop, until a SIGTERM/SIGINT. A turn waits for the first of: a
/// VRRP socket with datagrams, the node's next deadline (or the address
/// read's), a wake from the other sources; and handles all of them that
/// are ready, sockets first.
fn turn(rt: &Runtime, poller: &Poller, d: &mut Daemon, cold: &mut Cold) -> Result<(), DaemonError> {
    let waker = poller.waker();
    let mut cx = Context::from_waker(&waker);
    let mut ready = Ready::default();
    let mut cold_left = false;
    let mut drained = true;
    loop {
        let node_due = d.next_wake();
        let addr_due = d.addr_read_due();
        let timeout = if cold_left || !drained {
            Some(Duration::ZERO)
        } else {
            earliest(earliest(node_due, addr_due), d.probe_due())
                .map(|t| t.saturating_duration_since(Instant::now()))
        };
        // The error's text only when there is an error: made eagerly it
        // was an allocation per turn.
        if let Err(e) = poller.wait(timeout, &mut ready) {
            return Err(io_err("waiting for events")(e));
        }
        // A BACKUP's routine adverts first, at their arrival times: they
        // come before anything that happens now, and restart the timers
        // that may be due.
        let quiet = d.quiet_pending();
        drained = !quiet || complete(rt, d.drain_quiet());
        // The repeats just read may have moved the deadline on: a
        // BACKUP woken for its Master_Down_Timer usually finds it was.
        let node_due = if quiet { d.next_wake() } else { node_due };
        // nginx's exit before the sockets: a master resigns first.
        if ready.sockets.contains(&driver::EXIT_TOKEN) {
            complete(rt, d.on_exit());
        }
        for &token in &ready.sockets {
            // The lent probe's answer is read with the timers (`on_probe`).
            if token != driver::EXIT_TOKEN && token != driver::PROBE_TOKEN {
                complete(rt, d.on_readable(driver::key_of(token)));
            }
        }
        let now = Instant::now();
        if drained
            && node_due.is_some_and(|t| t <= now)
            && let Some(cmds) = d.on_timers(now)
        {
            complete(rt, d.carry_out(cmds));
        }
        // Routine nginx probes ride on the wake-ups the loop makes anyway.
        d.on_probe(now);
        if addr_due.is_some_and(|t| t <= now) {
            complete(rt, d.read_pending_addresses());
        }
        if ready.cold || cold_left {
            poller.take_cold();
            match cold.drain(rt, d, &mut cx) {
                Drained::All => cold_left = false,
                Drained::Some => cold_left = true,
                Drained::Stop => return Ok(()),
            }
        }
    }
}

/// Runs an event's handling to its end. Most end without waiting (an
/// advert sent, one received): polled once here, without entering the
/// runtime, which costs more than such an event does. One that waits (a
/// VIP added through netlink) is finished by the runtime, which polls it
/// again at once with a waker of its own.
fn complete<F: Future>(rt: &Runtime, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        return v;
    }
    rt.block_on(fut)
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
