//! Routine stub_status probes made by the event loop, on the check's
//! kept-alive connection, lent to it while nothing is happening.
//!
//! Why: a healthy nginx is probed once per interval, and each probe made
//! by the check itself woke the runtime's thread twice (the probe's timer,
//! then the answer), about 190 µs of CPU a second, most of what a backup
//! at 1 s adverts cost and some 6 % of one at 10 ms. The
//! loop wakes anyway (adverts, a backup's Master_Down_Timer): it sends the
//! request on a wake-up up to `early` before the probe is due (and counts
//! the next interval from there, so probes fall in step with the loop's
//! wake-ups; never more than `interval` apart), and reads the answer on
//! a later one if that comes at most `lag` after sending; otherwise the
//! answer wakes the loop when it comes, a moment later, while its caches
//! are still warm. It wakes for the request only when no wake-up of its
//! own comes in time. A probe's timeout keeps its meaning: the loop reads
//! at the deadline at the latest, and an answer not all there then is a
//! timeout. What a lazy read costs is `lag` (a few ms, at most 50) in
//! telling a bad answer, never an answer in time taken for none.
//!
//! The check (`nginx::run`) lends only routine probes (`NginxPlan::
//! routine`: healthy, nothing being counted) and sleeps meanwhile, its
//! pidfd still watched. Passing probes change nothing there; the first one
//! that fails, or a connection that ends, is handed back (`Back`) with the
//! time the next probe is due, and the check goes on as if it had made
//! every probe itself.

use super::keepalive::{self, ProbeError, Response};
use super::stats::Stats;
use super::stub_status;
use crate::config::check_spec::Timing;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use std::io::{IoSliceMut, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;
use std::time::{Duration, SystemTime};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The most a routine probe's answer may be read after it is sent,
/// when the loop is to wake by then anyway (a backup at 10 ms adverts
/// wakes every ~30 ms, a master every 10); also at most a sixteenth of
/// the interval and half the timeout (`lag`). Otherwise the answer wakes
/// the loop as it comes, a moment after the request went out.
pub const MAX_LAG: Duration = Duration::from_millis(50);
/// The most a routine probe may go out before it is due, on a wake-up of
/// the loop's own; also at most an eighth of the interval (`early`).
pub const MAX_EARLY: Duration = Duration::from_millis(125);

/// A response bigger than this is no stub_status page.
const MAX_READ: usize = 72 * 1024;

/// Why the probe came back.
#[derive(Debug, PartialEq, Eq)]
pub enum Back {
    /// The probe due at `due` failed at `at`: the first failure of a
    /// fall (recorded in the stats already).
    Failed {
        due: Instant,
        at: Instant,
        detail: String,
    },
    /// The connection ended (nginx's keepalive_timeout or
    /// keepalive_requests) or took no request: the probe due at `due` is
    /// the check's to make, on a fresh connection.
    Resume { due: Instant },
}

struct Sent {
    at: Instant,
    wall: SystemTime,
    /// When to read the answer at the latest (`lag` after sending, then
    /// the deadline).
    read_by: Instant,
    /// The answer is to wake the loop (`wants_watch`): no wake-up of its
    /// own comes within `lag`.
    watch: bool,
}

pub struct LentProbe {
    conn: TcpStream,
    request: Vec<u8>,
    url: String,
    interval: Duration,
    timeout: Duration,
    lag: Duration,
    early: Duration,
    /// The next probe's due time, on the check's grid.
    due: Instant,
    sent: Option<Sent>,
    buf: Vec<u8>,
    stats: Stats,
    check: &'static str,
    back: oneshot::Sender<Back>,
}

impl std::fmt::Debug for LentProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LentProbe")
            .field("url", &self.url)
            .field("due", &self.due)
            .field("in_flight", &self.sent.is_some())
            .finish_non_exhaustive()
    }
}

/// How late a probe's answer may be read.
pub fn lag(t: &Timing) -> Duration {
    MAX_LAG.min(t.interval / 16).min(t.timeout / 2)
}

/// How early a probe may go out.
pub fn early(t: &Timing) -> Duration {
    MAX_EARLY.min(t.interval / 8)
}

impl LentProbe {
    /// `conn`: the check's kept-alive connection, idle; the next probe is
    /// due at `due`. Fails when the socket cannot be set up for the loop.
    pub fn new(
        conn: TcpStream,
        request: Vec<u8>,
        url: String,
        timing: &Timing,
        due: Instant,
        stats: Stats,
        back: oneshot::Sender<Back>,
    ) -> std::io::Result<LentProbe> {
        conn.set_nonblocking(true)?;
        setsockopt(&conn, sockopt::ReceiveTimestampns, &true)?;
        Ok(LentProbe {
            conn,
            request,
            url,
            interval: timing.interval,
            timeout: timing.timeout,
            lag: lag(timing),
            early: early(timing),
            due,
            sent: None,
            buf: Vec::new(),
            stats,
            check: super::nginx::NAME,
            back,
        })
    }

    /// When the loop must look at the probe at the latest.
    pub fn wake_at(&self) -> Instant {
        match &self.sent {
            None => self.due,
            Some(s) => s.read_by,
        }
    }

    /// The check no longer waits for it (it stopped, or saw nginx exit).
    pub fn orphaned(&self) -> bool {
        self.back.is_closed()
    }

    /// Whether a wake-up at `now` sends the next probe.
    pub fn sends_at(&self, now: Instant) -> bool {
        self.sent.is_none() && now + self.early >= self.due
    }

    /// Whether the socket is to wake the loop when the answer comes.
    pub fn wants_watch(&self) -> bool {
        self.sent.as_ref().is_some_and(|s| s.watch)
    }

    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.conn)
    }

    /// On every wake-up of the loop: sends the next probe when it is due
    /// within `early`, reads the answer of one in flight. `next_wake`:
    /// when the loop is to wake next for anything else (asked for only
    /// when it `sends_at` now). The probe goes back to the check when
    /// this says why.
    pub fn on_wake(&mut self, now: Instant, next_wake: Option<Instant>) -> Option<Back> {
        match &self.sent {
            None if !self.sends_at(now) => None,
            None => self.send(now, next_wake),
            Some(_) => self.read(now),
        }
    }

    pub fn give_back(self, why: Back) {
        // The check may have stopped meanwhile: nobody to tell.
        let _ = self.back.send(why);
    }

    fn send(&mut self, now: Instant, next_wake: Option<Instant>) -> Option<Back> {
        self.buf.clear();
        match self.conn.write(&self.request) {
            Ok(n) if n == self.request.len() => {
                // Sent early, on a wake-up the loop made anyway: the next
                // ones count from here, so that they keep riding on the
                // loop's own rhythm (an advert every interval) rather than
                // each needing a wake-up of its own.
                self.due = self.due.min(now);
                let watch = next_wake.is_none_or(|t| t > now + self.lag);
                self.sent = Some(Sent {
                    at: now,
                    wall: SystemTime::now(),
                    read_by: now + if watch { self.timeout } else { self.lag },
                    watch,
                });
                None
            }
            // A kept-alive connection's empty send buffer takes a request
            // whole; anything else and it is no longer one to use.
            _ => Some(Back::Resume { due: self.due }),
        }
    }

    fn read(&mut self, now: Instant) -> Option<Back> {
        let (eof, arrived) = match self.drain() {
            Ok(r) => r,
            Err(e) => return Some(self.fail(now, None, format!("{}: {e}", self.url))),
        };
        let framed = match keepalive::frame(&self.buf) {
            Ok(Some(f)) => Some((f.response, f.keep && !eof)),
            Ok(None) if eof => match keepalive::frame_at_eof(&self.buf) {
                Ok(r) => Some((r, false)),
                // Closed under us, before or during the answer: nginx's
                // keep-alive ended, which says nothing about nginx.
                Err(ProbeError::Closed) => return Some(Back::Resume { due: self.due }),
                Err(e) => return Some(self.fail(now, None, format!("{}: {e}", self.url))),
            },
            Ok(None) => None,
            Err(e) => return Some(self.fail(now, None, format!("{}: {e}", self.url))),
        };
        let sent = self.sent.as_ref()?;
        let deadline = sent.at + self.timeout;
        let Some((response, keep)) = framed else {
            if now >= deadline {
                let e = ProbeError::Timeout(self.timeout);
                return Some(self.fail(now, None, format!("{}: {e}", self.url)));
            }
            // Not all there yet: again at the deadline, or on a wake-up
            // before it.
            if let Some(s) = self.sent.as_mut() {
                s.read_by = deadline;
            }
            return None;
        };
        // In time: the loop reads at the deadline at the latest
        // (`read_by`), so an answer all there now came before it, or
        // while the loop was late, which is no fault of nginx's (the
        // check's own probe, polled late, takes such an answer too). How
        // long it took, for the stats: the kernel's arrival time of its
        // last bytes when it gives a plausible one (over loopback TCP it
        // may give none), else when it was read.
        let upper = now.saturating_duration_since(sent.at);
        let took = arrived
            .and_then(|t| t.duration_since(sent.wall).ok())
            .filter(|t| *t <= upper)
            .unwrap_or(upper);
        if let Err(detail) = self.judge(response) {
            return Some(self.fail(now, Some(took), detail));
        }
        self.stats.record(self.check, true, Some(took));
        self.sent = None;
        // An interval from when it was due, as the check's plan counts.
        self.due = (self.due + self.interval).max(now);
        (!keep).then_some(Back::Resume { due: self.due })
    }

    fn judge(&self, r: Response) -> Result<(), String> {
        if r.status != 200 {
            return Err(format!("{} answered {}", self.url, r.status));
        }
        let s = stub_status::parse(&r.body).map_err(|e| e.to_string())?;
        self.stats.set_stub(s);
        Ok(())
    }

    fn fail(&self, now: Instant, took: Option<Duration>, detail: String) -> Back {
        self.stats.record(self.check, false, took);
        Back::Failed {
            due: self.due,
            at: now,
            detail,
        }
    }

    /// Reads what has come (never waits): whether the connection ended,
    /// and the arrival time of the last bytes read.
    fn drain(&mut self) -> Result<(bool, Option<SystemTime>), ProbeError> {
        let mut arrived = None;
        let mut chunk = [0u8; 4096];
        loop {
            if self.buf.len() > MAX_READ {
                return Err(ProbeError::Bad("response too large"));
            }
            let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
            let mut iov = [IoSliceMut::new(&mut chunk)];
            let r = recvmsg::<()>(
                self.conn.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_DONTWAIT,
            );
            let n = match r {
                Ok(m) => {
                    if let Ok(cmsgs) = m.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                                arrived = Some(
                                    SystemTime::UNIX_EPOCH
                                        + Duration::new(
                                            u64::try_from(ts.tv_sec()).unwrap_or(0),
                                            u32::try_from(ts.tv_nsec()).unwrap_or(0),
                                        ),
                                );
                            }
                        }
                    }
                    m.bytes
                }
                Err(nix::errno::Errno::EAGAIN) => return Ok((false, arrived)),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::ECONNRESET) => return Ok((true, arrived)),
                Err(e) => return Err(ProbeError::Io(e.into())),
            };
            if n == 0 {
                return Ok((true, arrived));
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

#[cfg(test)]
#[path = "lent_probe_tests.rs"]
mod tests;
