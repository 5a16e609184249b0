//! sd_notify: READY, STATUS, WATCHDOG, RELOADING, STOPPING. Every call is a
//! no-op without $NOTIFY_SOCKET, so the daemon runs the same outside
//! systemd.

use log::warn;
use sd_notify::NotifyState;
use std::time::Duration;

/// Whether systemd listens (read once: the environment does not change).
pub fn active() -> bool {
    static ACTIVE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ACTIVE.get_or_init(|| std::env::var_os("NOTIFY_SOCKET").is_some())
}

fn send(states: &[NotifyState]) {
    if !active() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        warn!("sd_notify: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

pub fn reloading() {
    // MONOTONIC_USEC lets systemd ≥ 253 match READY=1 to this reload.
    match NotifyState::monotonic_usec_now() {
        Ok(m) => send(&[NotifyState::Reloading, m]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Half of WatchdogSec, as systemd recommends; None when not armed.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    watchdog_period(usec)
}

/// Below this the pings would be the loop's main work; a watchdog that
/// short cannot be met by any daemon, so it is met as well as is sane.
const MIN_WATCHDOG_PING: Duration = Duration::from_millis(10);

/// Half of `usec`, never zero (tokio's interval panics on zero, and
/// WATCHDOG_USEC=1 comes straight from the environment).
fn watchdog_period(usec: u64) -> Option<Duration> {
    if usec == 0 {
        return None;
    }
    let half = Duration::from_micros(usec / 2);
    if half < MIN_WATCHDOG_PING {
        warn!(
            "WATCHDOG_USEC={usec} is shorter than this daemon can serve; pinging every {:?}",
            MIN_WATCHDOG_PING
        );
        return Some(MIN_WATCHDOG_PING);
    }
    Some(half)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_period_is_never_zero() {
        assert_eq!(watchdog_period(0), None);
        for usec in [1, 2, 3, 19_999] {
            assert_eq!(watchdog_period(usec), Some(MIN_WATCHDOG_PING), "{usec}");
        }
        assert_eq!(watchdog_period(2_000_000), Some(Duration::from_secs(1)));
        assert!(watchdog_period(u64::MAX).is_some());
    }
}
