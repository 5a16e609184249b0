//! The I/O shell around the protocol core: one tokio event loop that turns
//! socket reads, timers, link events, health verdicts, signals and control
//! requests into core inputs, and carries out the actions the core returns.

pub mod control;
mod driver;
mod hooks;
pub mod lock;
mod metrics;

mod rx;
pub mod setup;
mod state_file;
mod systemd;

use crate::config::{self, LoadError};
use crate::net::netlink::{Net, NetError};
use crate::privileges::{self, PrivError};
use driver::Daemon;
use log::{error, info};
use setup::SetupError;
use std::path::PathBuf;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;

/// How often the loop publishes a status snapshot for the metrics
/// endpoint: scrapes never wait for the loop, and see at most this old a
/// state.
const METRICS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// The least room in the queue from the AH socket's reader to the loop
/// (reports, rate-limited per sender; the VRRP sockets are read by the
/// loop itself, and their adverts wait in the kernel's socket buffers).
const PKT_QUEUE: usize = 1024;
/// Netlink events handled in one go (their address reads coalesced).
const NET_BATCH: usize = 256;

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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(io_err("tokio runtime"))?;
    // The loop runs as a task, not as block_on's own future: the scheduler
    // runs a woken task at once, but polls a woken block_on future only
    // after one more (zero-timeout) epoll_wait — a syscall more for every
    // wake-up (a received advert, the alarm).
    rt.block_on(async {
        match tokio::spawn(run_async(opts)).await {
            Ok(r) => r,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(DaemonError::Io {
                what: "event loop".into(),
                source: std::io::Error::other(e),
            }),
        }
    })
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

async fn run_async(opts: Options) -> Result<(), DaemonError> {
    // Nothing is touched before the declaration is known to be good.
    let decl = config::load_within(&opts.config, setup::READ_DEADLINE).await?;
    let _lock = prepare(&opts)?;
    // After dropping privileges, as on every reload.
    let passwords = setup::read_passwords(&decl).await?;
    let net = Net::new()?;
    let mut net_events = Net::events()?;
    let plans = setup::plan(&decl, &passwords, &net).await?;
    let mut metrics_tick = tokio::time::interval(METRICS_EVERY);
    metrics_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let (pkt_tx, mut pkt_rx) = mpsc::channel(PKT_QUEUE.max(4 * plans.len()));
    let (health_tx, mut health_rx) = mpsc::unbounded_channel();
    let (ctl_tx, mut ctl_rx) = mpsc::channel(16);
    let mut d = Daemon::new(opts.clone(), decl, net, pkt_tx, health_tx);
    // Bound before any instance starts: a taken address stops the start
    // here, with nothing to undo.
    d.bind_metrics()?;
    for plan in plans {
        d.add_instance(plan).await?;
    }
    d.start_checks();
    d.start_anycast().await;
    let listener = control::listen(&opts.runtime_dir, ctl_tx)?;

    let mut signals = Signals::listen()?;
    let mut watchdog = systemd::watchdog_interval().map(tokio::time::interval);
    // A reload's files are read in a task of their own; the loop keeps
    // sending adverts meanwhile and applies the result when it arrives.
    // SIGHUPs during a read are coalesced into one more read after it, so
    // the last signal always sees the file as it was when it was sent.
    let mut reading: Option<tokio::task::JoinHandle<Result<setup::Loaded, Vec<String>>>> = None;
    let mut read_again = false;

    d.start_all().await;
    systemd::ready(&d.status_line());
    info!(
        "nginx-ha running: {} instance(s){}",
        d.instance_count(),
        if d.has_anycast() { ", anycast" } else { "" }
    );

    let mut alarm = crate::alarm::Alarm::new().map_err(io_err("timerfd"))?;
    loop {
        alarm
            .set(d.next_wake())
            .map_err(io_err("arming the timerfd"))?;
        tokio::select! {
            key = std::future::poll_fn(|cx| d.poll_readable(cx)) => d.on_readable(key).await,
            Some((key, pkt)) = pkt_rx.recv() => d.on_packet(key, pkt).await,
            Some(ev) = net_events.recv() => {
                // Whatever else is queued too, so that a burst of address
                // changes (a thousand VIPs moving) costs one read of each
                // interface's addresses, not one per change.
                let mut batch = vec![ev];
                while batch.len() < NET_BATCH
                    && let Ok(ev) = net_events.try_recv()
                {
                    batch.push(ev);
                }
                d.on_net_events(batch).await;
            }
            Some(ev) = health_rx.recv() => d.on_health(ev).await,
            Some(req) = ctl_rx.recv() => d.on_control(req).await,
            r = alarm.wait() => {
                r.map_err(io_err("waiting on the timerfd"))?;
                d.on_timers().await;
            }
            _ = sleep_until_opt(d.addr_read_due()) => d.read_pending_addresses().await,
            _ = async { watchdog.as_mut().map(|w| w.tick()).expect("guarded").await }, if watchdog.is_some() => {
                systemd::watchdog();
            }
            _ = metrics_tick.tick(), if d.has_metrics() => d.publish_metrics(),
            Some(sig) = signals.rx.recv() => {
                if sig == Signal::Stop {
                    break;
                }
                if reading.is_some() {
                    read_again = true;
                } else {
                    reading = Some(tokio::spawn(setup::read_for_reload(opts.config.clone())));
                }
            }
            r = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                let loaded = r.unwrap_or_else(|e| Err(vec![format!("reading the declaration: {e}")]));
                d.reload(loaded).await;
                if std::mem::take(&mut read_again) {
                    reading = Some(tokio::spawn(setup::read_for_reload(opts.config.clone())));
                }
            }
        }
    }
    systemd::stopping();
    drop(listener);
    d.shutdown(async {
        // A second SIGTERM/SIGINT ends the drain; a SIGHUP does not.
        loop {
            match signals.rx.recv().await {
                Some(Signal::Stop) => return,
                Some(Signal::Reload) => {}
                None => std::future::pending().await,
            }
        }
    })
    .await;
    match std::fs::remove_file(opts.runtime_dir.join(control::SOCKET)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            error!("removing control socket: {e}")
        }
        _ => {}
    }
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals, from a task of their own: the loop then polls one queue
/// for them on every turn instead of three signal streams (each poll of
/// which costs more than the queue's).
struct Signals {
    rx: mpsc::Receiver<Signal>,
    _task: AbortOnDrop,
}

impl Signals {
    fn listen() -> Result<Signals, DaemonError> {
        let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
        // Bounded; a burst of SIGHUPs beyond it waits in the signal
        // streams, which coalesce them (the loop coalesces reloads too).
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            loop {
                let sig = tokio::select! {
                    _ = term.recv() => Signal::Stop,
                    _ = int.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                };
                if tx.send(sig).await.is_err() {
                    break;
                }
            }
        });
        Ok(Signals {
            rx,
            _task: AbortOnDrop(task),
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
