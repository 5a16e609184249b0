//! The built-in nginx check: the master process watched as an event
//! (pidfd), plus stub_status probed over a kept-alive connection when the
//! pure `NginxPlan` says so (at once for a new master process, a few ms
//! apart while a rise is taken, every interval otherwise).
//!
//! A pidfd becomes readable the moment the process exits, zombie or not,
//! so nginx's death is seen in microseconds instead of at the next poll;
//! "the PID exists" is never taken as "nginx is alive". When nginx comes
//! back (systemd restarts it) the pidfile is re-read and the watch re-armed.

use super::keepalive::StatusClient;
use super::lent_probe::{Back, LentProbe};
use super::stats::Stats;
use super::stub_status::{self, StubStatus};
use super::{Event, Verdict};
use crate::alarm::Alarm;
use crate::config::check_spec::NginxSpec;
use crate::file_read::{Excess, OneAtATime, Symlinks};
use nginx_ha_core::health::nginx_plan::NginxPlan;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub const NAME: &str = "nginx";

/// A connection idle longer than this until the next probe is closed
/// rather than kept: nginx closes it after keepalive_timeout (75 s by
/// default) anyway.
const KEEP_IDLE_MAX: Duration = Duration::from_secs(60);

/// A pidfile holds a PID and a newline; anything longer is not one.
const MAX_PIDFILE: usize = 32;
/// Only the start of /proc/PID/cmdline is looked at.
const CMDLINE_PREFIX: usize = 4096;

/// Reads the PID from nginx's pidfile: a regular file written by nginx
/// itself, so a symlink, FIFO or device there is refused (a FIFO would
/// block the reader, /dev/zero would never end).
async fn read_pid(reader: &OneAtATime, path: &Path, deadline: Duration) -> Result<i32, String> {
    let raw = reader
        .read(
            path,
            MAX_PIDFILE,
            Symlinks::Refuse,
            Excess::Refuse,
            deadline,
        )
        .await
        .map_err(|e| e.to_string())?;
    let s = String::from_utf8_lossy(&raw);
    match s.trim().parse::<i32>() {
        Ok(pid) if pid > 1 => Ok(pid),
        _ => Err(format!(
            "{}: \"{}\" is not a PID",
            path.display(),
            s.trim().escape_debug()
        )),
    }
}

/// A stale pidfile can name a PID that now belongs to something else. When
/// /proc lets us look, the process must be nginx; when it does not
/// (ProtectProc=invisible hides other users' processes) the pidfile is
/// trusted.
async fn looks_like_nginx(reader: &OneAtATime, pid: i32, deadline: Duration) -> bool {
    let path = std::path::PathBuf::from(format!("/proc/{pid}/cmdline"));
    match reader
        .read(
            &path,
            CMDLINE_PREFIX,
            Symlinks::Refuse,
            Excess::Cut,
            deadline,
        )
        .await
    {
        Ok(c) => c.windows(5).any(|w| w == b"nginx"),
        Err(_) => true,
    }
}

fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

struct Watch {
    pid: i32,
    fd: AsyncFd<OwnedFd>,
}

#[allow(unsafe_code)] // AsyncFd::register: see the SAFETY comment.
async fn arm(reader: &OneAtATime, pidfile: &Path, deadline: Duration) -> Result<Watch, String> {
    let pid = read_pid(reader, pidfile, deadline).await?;
    if !looks_like_nginx(reader, pid, deadline).await {
        return Err(format!("{}: process {pid} is not nginx", pidfile.display()));
    }
    let fd = pidfd_open(pid).map_err(|e| format!("pidfd_open({pid}): {e}"))?;
    // SAFETY: the OwnedFd stays owned by the AsyncFd until it is dropped.
    let fd = unsafe { AsyncFd::register(fd).map_err(|e| format!("pidfd {pid}: {e}"))? };
    Ok(Watch { pid, fd })
}

/// The verdict's detail when the master process exits.
pub fn exit_detail(pid: i32) -> String {
    format!("nginx master process {pid} exited")
}

/// Hands the event loop its own copy of the watch (`health::ExitWatch`).
/// Without one (the descriptor cannot be duplicated) the check's verdict
/// is all the loop gets, as before.
fn share(watch: &Watch, tx: &mpsc::UnboundedSender<Event>) {
    match watch.fd.get_ref().try_clone() {
        Ok(fd) => {
            let _ = tx.send(Event::Watch(super::ExitWatch {
                check: NAME.to_string(),
                pid: watch.pid,
                fd,
            }));
        }
        Err(e) => log::warn!(
            "nginx check: sharing the watch on process {}: {e}",
            watch.pid
        ),
    }
}

/// Node time for the pure plan: time since the check started.
fn since(start: Instant) -> Duration {
    Instant::now().saturating_duration_since(start)
}

pub async fn run(cfg: NginxSpec, tx: mpsc::UnboundedSender<Event>, stats: Stats) {
    let start = Instant::now();
    let mut plan = NginxPlan::new(&cfg.timing, Duration::ZERO);
    let mut client = StatusClient::new(cfg.status_url.clone());
    let reader = OneAtATime::default();
    let deadline = cfg.timing.timeout;
    let mut why_not = String::new();
    let mut watch = match arm(&reader, &cfg.pid_file, deadline).await {
        Ok(w) => {
            plan.process_found_running(since(start));
            share(&w, &tx);
            Some(w)
        }
        Err(e) => {
            why_not = e;
            None
        }
    };
    let mut next_look = start;
    // The next probe and each probe's deadline on one timerfd: an idle
    // check wakes the process once per probe, not twice (see `alarm`).
    let mut alarm = match Alarm::new() {
        Ok(a) => a,
        Err(e) => {
            let _ = tx.send(Event::Verdict(Verdict {
                check: NAME.to_string(),
                healthy: false,
                detail: format!("cannot create a timerfd for the check: {e}"),
            }));
            return;
        }
    };
    // The routine probes while the event loop makes them: what it says
    // when it hands them back.
    let mut lent: Option<oneshot::Receiver<Back>> = None;
    let send = |healthy: bool, detail: String| {
        let _ = tx.send(Event::Verdict(Verdict {
            check: NAME.to_string(),
            healthy,
            detail,
        }));
    };
    loop {
        // Lent out, the check sleeps until the loop hands the probes
        // back or nginx exits.
        let due = (lent.is_none()).then(|| start + plan.due());
        if let Err(e) = alarm.set(due) {
            log::error!("nginx check: arming its timerfd: {e}");
        }
        tokio::select! {
            biased;
            r = exited(&watch), if watch.is_some() => {
                let pid = watch.as_ref().map_or(0, |w| w.pid);
                if r.is_ok() {
                    // The exit is a failed result too (before the verdict
                    // goes out, so metrics never show a run of passes
                    // next to a FAULT it caused).
                    stats.record(NAME, false, None);
                    let hold = plan.hold();
                    if plan.process_exited(since(start)).is_some() {
                        send(false, exit_detail(pid));
                    }
                    // Only after the verdict is on its way: closing the
                    // pidfd and the kept-alive connection is two more
                    // system calls a takeover need not wait for.
                    watch = None;
                    client.reset();
                    // The loop drops its probe with the watch.
                    lent = None;
                    why_not = format!("master process {pid} exited");
                    if plan.hold() > hold {
                        log::warn!(
                            "nginx exited soon after turning healthy: the next nginx must stay \
                             up {:?} before the check passes (crash-loop hold-down)",
                            plan.hold()
                        );
                    }
                }
            }
            _ = tokio::time::sleep_until(next_look), if watch.is_none() => {
                match arm(&reader, &cfg.pid_file, deadline).await {
                    Ok(w) => {
                        share(&w, &tx);
                        watch = Some(w);
                        plan.process_appeared(since(start));
                    }
                    Err(e) => why_not = e,
                }
                next_look = Instant::now() + plan.pidfile_poll(since(start));
            }
            back = returned(&mut lent), if lent.is_some() => {
                lent = None;
                match back {
                    Ok(Back::Resume { due }) => plan.lent_back(since_at(start, due)),
                    Ok(Back::Failed { due, at, detail }) => {
                        plan.lent_back(since_at(start, due));
                        if plan.probed(since_at(start, at), false).is_some() {
                            send(false, detail);
                        }
                    }
                    // The loop let it go (stopping, or nginx exited and
                    // that is seen here next): probe again as due.
                    Err(_) => {}
                }
            }
            _ = alarm.wait(), if lent.is_none() => {
                let result: Result<StubStatus, String> = if watch.is_none() {
                    stats.record(NAME, false, None);
                    Err(format!("nginx is not running ({why_not})"))
                } else {
                    // The master's exit wins over a probe in flight.
                    let began = std::time::Instant::now();
                    let r = tokio::select! {
                        biased;
                        r = exited(&watch) => {
                            if r.is_ok() {
                                // Seen again (level-triggered) on the next turn.
                                continue;
                            }
                            Err("pidfd wait failed".to_string())
                        }
                        r = client.get(cfg.timing.timeout, &mut alarm) => match r {
                            Ok(r) if r.status == 200 => {
                                stub_status::parse(&r.body).map_err(|e| e.to_string())
                            }
                            Ok(r) => Err(format!("{} answered {}", cfg.status_url, r.status)),
                            Err(e) => Err(format!("{}: {e}", cfg.status_url)),
                        },
                    };
                    stats.record(NAME, r.is_ok(), Some(began.elapsed()));
                    r
                };
                let ok = result.is_ok();
                let now = since(start);
                let change = plan.probed(now, ok);
                if plan.due().saturating_sub(now) >= KEEP_IDLE_MAX {
                    client.reset();
                }
                match result {
                    Ok(s) => {
                        stats.set_stub(s);
                        if change.is_some() {
                            send(true, "nginx is running and stub_status answers".into());
                        }
                        if plan.routine() {
                            lent = lend(&mut client, &cfg, start + plan.due(), &stats, &tx);
                        }
                    }
                    Err(e) => {
                        if change.is_some() {
                            send(false, e);
                        }
                    }
                }
            }
        }
    }
}

/// Hands the routine probes to the event loop (`lent_probe`), with the
/// kept-alive connection; without one (or a loop to take it) the check
/// goes on probing itself.
fn lend(
    client: &mut StatusClient,
    cfg: &NginxSpec,
    due: Instant,
    stats: &Stats,
    tx: &mpsc::UnboundedSender<Event>,
) -> Option<oneshot::Receiver<Back>> {
    let (conn, request) = client.lend()?;
    let (back_tx, back_rx) = oneshot::channel();
    let probe = LentProbe::new(
        conn,
        request,
        cfg.status_url.to_string(),
        &cfg.timing,
        due,
        stats.clone(),
        back_tx,
    );
    match probe {
        Ok(p) => tx.send(Event::Lend(Box::new(p))).ok().map(|()| back_rx),
        Err(e) => {
            log::warn!("nginx check: the event loop cannot make its probes: {e}");
            None
        }
    }
}

async fn returned(
    lent: &mut Option<oneshot::Receiver<Back>>,
) -> Result<Back, oneshot::error::RecvError> {
    match lent {
        Some(r) => r.await,
        None => std::future::pending().await,
    }
}

/// `since` for an instant the loop reported.
fn since_at(start: Instant, t: Instant) -> Duration {
    t.saturating_duration_since(start)
}

async fn exited(watch: &Option<Watch>) -> std::io::Result<()> {
    match watch {
        Some(w) => w.fd.readable().await.map(|_| ()),
        None => std::future::pending().await,
    }
}
