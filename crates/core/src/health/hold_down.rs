//! The crash-loop hold-down. Tight rise probes let a restarted nginx count
//! as healthy within milliseconds, so an nginx that dies a moment after
//! each start would pull the VIP over and push it back on every restart.
//! The rule: when nginx's master process exits less than `rise × interval`
//! after its check turned healthy (sooner than it could have turned
//! healthy with probes an interval apart), the next healthy verdict also
//! needs the new master process to have been up for a hold-down: 1 s the
//! first time, doubling on every further quick exit up to 30 s. A process
//! that stays healthy for `STABLE` wipes the slate. Failing is never held.
//! The window is deliberately that short: an nginx restarted by hand, or
//! killed a second after it came back, still fails back at once.

use std::time::Duration;

/// The hold-down after the first quick exit.
pub const FIRST_HOLD: Duration = Duration::from_secs(1);
/// The longest hold-down: a crash-looping nginx that finally stays up
/// gets the VIP back within this.
pub const MAX_HOLD: Duration = Duration::from_secs(30);
/// Healthy this long before exiting: the earlier crashes are forgiven.
pub const STABLE: Duration = Duration::from_secs(60);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HoldDown {
    /// An exit this soon after the healthy verdict counts as a crash.
    quick: Duration,
    hold: Duration,
}

impl HoldDown {
    pub fn new(quick: Duration) -> HoldDown {
        HoldDown {
            quick,
            hold: Duration::ZERO,
        }
    }

    /// How long a new master process must be up before it may turn the
    /// check healthy.
    pub fn hold(&self) -> Duration {
        self.hold
    }

    /// The master process exited, after being healthy for `healthy_for`
    /// (`None`: it never was). A process that never turned healthy moved
    /// no VIP, so it teaches nothing: the hold-down that kept it from
    /// turning healthy was long enough.
    pub fn exited(&mut self, healthy_for: Option<Duration>) {
        match healthy_for {
            None => {}
            Some(d) if d >= STABLE => self.hold = Duration::ZERO,
            Some(d) if d < self.quick => {
                self.hold = if self.hold.is_zero() {
                    FIRST_HOLD
                } else {
                    (self.hold * 2).min(MAX_HOLD)
                }
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    const QUICK: Duration = Duration::from_millis(200);

    #[test]
    fn quick_exits_double_up_to_the_cap() {
        let mut h = HoldDown::new(QUICK);
        assert_eq!(h.hold(), Duration::ZERO);
        let mut seen = Vec::new();
        for _ in 0..8 {
            h.exited(Some(Duration::from_millis(150)));
            seen.push(h.hold().as_secs());
        }
        assert_eq!(seen, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn never_healthy_and_middling_exits_change_nothing() {
        let mut h = HoldDown::new(QUICK);
        h.exited(None);
        h.exited(Some(s(30)));
        assert_eq!(h.hold(), Duration::ZERO);
        h.exited(Some(Duration::from_millis(1)));
        h.exited(None);
        h.exited(Some(QUICK));
        assert_eq!(h.hold(), FIRST_HOLD);
    }

    #[test]
    fn a_stable_run_forgives() {
        let mut h = HoldDown::new(QUICK);
        for _ in 0..10 {
            h.exited(Some(Duration::ZERO));
        }
        assert_eq!(h.hold(), MAX_HOLD);
        h.exited(Some(STABLE));
        assert_eq!(h.hold(), Duration::ZERO);
    }
}
