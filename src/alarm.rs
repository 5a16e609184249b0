//! A one-shot timer on a timerfd of its own rather than a tokio timer: the
//! nginx check's for its next probe and the probe's deadline. (The event
//! loop needs none: its own epoll waits with the node's deadline as the
//! timeout, to the nanosecond; `daemon::poller`.)
//!
//! Why not tokio's timer: its wheel counts whole milliseconds and rounds a
//! deadline up to the next one, and the runtime sleeps in `epoll_wait`
//! with a millisecond timeout, so a Skew_Time of 6.1 ms fired after 7 ms
//! or more (keepalived arms a timerfd to the microsecond). And re-arming a
//! tokio timer after it fired wakes the runtime's own driver through its
//! eventfd (a `write` and one more `epoll_wait` per advert a master sends),
//! as does a new tokio timer due before the runtime's next one (a probe's
//! deadline); and a tokio timer more than 64 ms away wakes the runtime
//! once early, when the wheel moves it to a finer level.
//! A timerfd is armed to the nanosecond with one `timerfd_settime` and
//! wakes `epoll_wait` directly.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// The shortest arming: a zero `it_value` would disarm the timer.
const AT_ONCE: Duration = Duration::from_nanos(1);

/// AsyncFd wants `AsRawFd`; nix's TimerFd only has `AsFd`.
struct Timer(TimerFd);

impl AsRawFd for Timer {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub struct Alarm {
    fd: AsyncFd<Timer>,
    at: Option<Instant>,
}

impl Alarm {
    #[allow(unsafe_code)] // AsyncFd::register: see the SAFETY comment.
    pub fn new() -> io::Result<Alarm> {
        // CLOCK_MONOTONIC: the clock tokio's (and std's) Instant reads, so
        // when the timer fires `Instant::now()` has reached the deadline.
        let t = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        // SAFETY: the TimerFd owns its fd, and AsyncFd keeps it (and so
        // the fd) alive and unchanged until it deregisters on drop.
        let fd = unsafe { AsyncFd::register_with_interest(Timer(t), Interest::READABLE)? };
        Ok(Alarm { fd, at: None })
    }

    /// Due at `at` (never with None). Unchanged deadlines cost nothing.
    pub fn set(&mut self, at: Option<Instant>) -> io::Result<()> {
        if at == self.at {
            return Ok(());
        }
        self.at = at;
        let t = &self.fd.get_ref().0;
        match at {
            // Relative to a clock read just before arming, so the timer
            // can only fire late by the time between the two, never early.
            Some(at) => {
                let after = at.saturating_duration_since(Instant::now()).max(AT_ONCE);
                t.set(
                    Expiration::OneShot(TimeSpec::from_duration(after)),
                    TimerSetTimeFlags::empty(),
                )?;
            }
            None => t.unset()?,
        }
        Ok(())
    }

    /// Resolves when the deadline is reached; never without one.
    ///
    /// The expiration count is never read: re-arming resets it, and the
    /// fd's readiness only says "look at the clock". A readiness left from
    /// an expiration the loop re-armed past (it handled a packet first) is
    /// cleared here and waited past, so this returns only once the clock
    /// has reached the deadline, and at once if it already has.
    pub async fn wait(&self) -> io::Result<()> {
        let Some(at) = self.at else {
            return std::future::pending().await;
        };
        loop {
            if Instant::now() >= at {
                return Ok(());
            }
            self.fd.readable().await?.clear_ready();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::timeout;

    #[tokio::test]
    async fn fires_at_the_deadline_it_was_moved_to_and_never_without_one() {
        let mut a = Alarm::new().expect("timerfd");
        let t0 = Instant::now();
        a.set(Some(t0 + Duration::from_secs(60))).expect("set");
        // Moved earlier, then later again: the last deadline counts.
        a.set(Some(t0 + Duration::from_millis(5))).expect("set");
        a.set(Some(t0 + Duration::from_millis(30))).expect("set");
        timeout(Duration::from_secs(5), a.wait())
            .await
            .expect("fires")
            .expect("timerfd");
        assert!(t0.elapsed() >= Duration::from_millis(30));
        // Fired and set to the same deadline again: still due (the loop
        // must not sleep past a deadline the node has not dealt with).
        a.set(Some(t0 + Duration::from_millis(30))).expect("set");
        timeout(Duration::from_millis(500), a.wait())
            .await
            .expect("still due")
            .expect("timerfd");
        a.set(None).expect("unset");
        assert!(
            timeout(Duration::from_millis(50), a.wait()).await.is_err(),
            "nothing due, nothing fires"
        );
    }

    #[tokio::test]
    async fn a_stale_expiration_does_not_end_a_later_wait() {
        let mut a = Alarm::new().expect("timerfd");
        let t0 = Instant::now();
        a.set(Some(t0 + Duration::from_millis(5))).expect("set");
        // Expires while nobody waits; then re-armed past it, as when the
        // loop handled a packet first.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let t1 = Instant::now();
        a.set(Some(t1 + Duration::from_millis(60))).expect("set");
        timeout(Duration::from_secs(5), a.wait())
            .await
            .expect("fires")
            .expect("timerfd");
        assert!(
            t1.elapsed() >= Duration::from_millis(60),
            "returned on the old expiration after {:?}",
            t1.elapsed()
        );
    }
}
