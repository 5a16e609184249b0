//! The nginx check's schedule and verdict. The daemon tells it what it saw
//! (a master process appeared, it exited, a stub_status probe answered or
//! not), each with `now`; it answers when the next probe is due and
//! whether the verdict changed.
//!
//! Why not one probe per interval: a returning nginx would need `rise`
//! probes an interval apart before it counts, seconds of failback for
//! nothing. Instead a new master process is probed at once, retried a few
//! ms apart (backing off) while it does not listen yet, and once it
//! answers the rest of the rise is taken `RISE_GAP` apart. `rise` keeps
//! its meaning: that many answers in a row. Failing is never hurried (fall
//! probes stay an interval apart, so one slow answer moves nothing) except
//! when the master process exits, which fails at once. The crash-loop
//! hold-down (`hold_down`) may hold the healthy verdict back further.

use super::hold_down::HoldDown;
use super::rise_fall::RiseFall;
use crate::config::check_spec::Timing;
use std::time::Duration;

/// Between the answers of one rise.
pub const RISE_GAP: Duration = Duration::from_millis(5);
/// The first retry of a new master process that does not answer yet;
/// doubled on each further one up to the interval.
pub const FIRST_RETRY: Duration = Duration::from_millis(5);

/// How often a missing nginx's pidfile is looked for right after it went
/// away (systemd restarts it within RestartSec, 100 ms by default) ...
pub const PIDFILE_POLL_FAST: Duration = Duration::from_millis(10);
/// ... for this long ...
pub const PIDFILE_FAST_FOR: Duration = Duration::from_secs(5);
/// ... and then, while it stays away, this often.
pub const PIDFILE_POLL: Duration = Duration::from_millis(50);

#[derive(Clone, Debug, PartialEq, Eq)]
struct Process {
    since: Duration,
    answered: bool,
    retries: u32,
    /// Found running when the check started (the daemon restarted next
    /// to it), not seen starting: its exit says nothing about a crash loop.
    inherited: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxPlan {
    interval: Duration,
    verdict: RiseFall,
    hold_down: HoldDown,
    process: Option<Process>,
    /// When the check last turned healthy.
    healthy_since: Duration,
    /// When the last master process exited (or the check started).
    gone_since: Duration,
    due: Duration,
}

impl NginxPlan {
    /// Undecided, with the first probe due at once.
    pub fn new(timing: &Timing, now: Duration) -> NginxPlan {
        let interval = timing.interval.max(Duration::from_millis(1));
        NginxPlan {
            interval,
            verdict: RiseFall::new(timing.rise, timing.fall),
            hold_down: HoldDown::new(interval.saturating_mul(timing.rise.max(1))),
            process: None,
            healthy_since: now,
            gone_since: now,
            due: now,
        }
    }

    /// `None` until the first verdict.
    pub fn healthy(&self) -> Option<bool> {
        self.verdict.healthy()
    }

    /// When the next probe is due (it may be in the past: probe now).
    pub fn due(&self) -> Duration {
        self.due
    }

    /// Whether a master process is being watched. Without one a due probe
    /// needs no I/O: it fails ("nginx is not running").
    pub fn running(&self) -> bool {
        self.process.is_some()
    }

    /// The current crash-loop hold-down.
    pub fn hold(&self) -> Duration {
        self.hold_down.hold()
    }

    /// How long until the pidfile is looked at again while no master
    /// process is watched.
    pub fn pidfile_poll(&self, now: Duration) -> Duration {
        if now.saturating_sub(self.gone_since) < PIDFILE_FAST_FOR {
            PIDFILE_POLL_FAST
        } else {
            PIDFILE_POLL
        }
    }

    /// A new master process is watched (its pidfile read, its pidfd armed):
    /// probe it at once.
    pub fn process_appeared(&mut self, now: Duration) {
        self.process = Some(Process {
            since: now,
            answered: false,
            retries: 0,
            inherited: false,
        });
        self.due = now;
    }

    /// The master process found when the check starts: watched and probed
    /// at once like a new one, but it may have run for days (the daemon,
    /// not nginx, restarted), so its exit does not count as a crash.
    pub fn process_found_running(&mut self, now: Duration) {
        self.process_appeared(now);
        if let Some(p) = self.process.as_mut() {
            p.inherited = true;
        }
    }

    /// The watched master process exited: the verdict fails at once.
    pub fn process_exited(&mut self, now: Duration) -> Option<bool> {
        if let Some(p) = self.process.take() {
            let healthy_for = (self.healthy() == Some(true) && !p.inherited)
                .then(|| now.saturating_sub(self.healthy_since));
            self.hold_down.exited(healthy_for);
        }
        self.gone_since = now;
        self.due = now + self.interval;
        self.verdict.fail_now()
    }

    /// Whether the next probe is routine: nginx answered, the verdict is
    /// healthy and no failure is being counted. A routine probe that
    /// passes changes nothing but `due`, so a run of them may be made
    /// elsewhere (the event loop's lent probe) and handed back with
    /// `lent_back`; the first one that fails is given back to `probed`.
    pub fn routine(&self) -> bool {
        self.healthy() == Some(true)
            && self.verdict.steady()
            && self.process.as_ref().is_some_and(|p| p.answered)
    }

    /// Routine probes made elsewhere (see `routine`) all passed, and the
    /// next one is due at `next_due`: the plan as if each had been
    /// `probed` here.
    pub fn lent_back(&mut self, next_due: Duration) {
        if self.routine() {
            self.due = self.due.max(next_due);
        }
    }

    /// A probe finished at `now`; `ok` when stub_status answered. Returns
    /// the verdict when it changed.
    pub fn probed(&mut self, now: Duration, ok: bool) -> Option<bool> {
        // An interval apart from when the probe was due, not from when it
        // finished: a slow answer must not stretch the period (fall would
        // otherwise cost a timeout more per failure).
        let cadence = (self.due + self.interval).max(now);
        let Some(p) = self.process.as_mut() else {
            self.due = cadence;
            return self.verdict.record(false);
        };
        if !ok && !p.answered && now < p.since + self.interval {
            // Still starting (not listening yet): not a failure, a retry.
            let backoff = FIRST_RETRY.saturating_mul(1 << p.retries.min(16));
            p.retries += 1;
            self.due = now + backoff.min(self.interval);
            return None;
        }
        p.answered |= ok;
        let hold_end = p.since + self.hold_down.hold();
        let change = self.verdict.record_held(ok, now >= hold_end);
        self.due = if self.verdict.rise_reached() {
            // Only the hold-down is missing: probe on, and again right
            // when it ends.
            cadence.min(hold_end)
        } else if ok && self.healthy() != Some(true) {
            now + RISE_GAP
        } else {
            cadence
        };
        if change == Some(true) {
            self.healthy_since = now;
        }
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn plan(rise: u32, fall: u32) -> NginxPlan {
        let t = Timing {
            interval: ms(1000),
            timeout: ms(500),
            rise,
            fall,
        };
        NginxPlan::new(&t, ms(0))
    }

    #[test]
    fn a_new_process_is_probed_at_once_and_rises_tightly() {
        let mut p = plan(3, 2);
        p.process_appeared(ms(10));
        assert_eq!(p.due(), ms(10));
        assert_eq!(p.probed(ms(11), true), None);
        assert_eq!(p.due(), ms(11) + RISE_GAP);
        assert_eq!(p.probed(ms(17), true), None);
        assert_eq!(p.probed(ms(23), true), Some(true));
        // The last one was due at 22: an interval from then.
        assert_eq!(p.due(), ms(1022));
    }

    #[test]
    fn not_listening_yet_is_retried_with_backoff_then_counts() {
        let mut p = plan(2, 2);
        p.process_appeared(ms(0));
        let mut now = ms(0);
        let mut gaps = Vec::new();
        while now < ms(1000) {
            assert_eq!(p.probed(now, false), None, "at {now:?}");
            gaps.push((p.due() - now).as_millis());
            now = p.due();
        }
        assert_eq!(gaps[..4], [5, 10, 20, 40]);
        assert!(gaps.iter().all(|&g| g <= 1000));
        // Past the first interval, failures count toward fall.
        assert_eq!(p.probed(now, false), None);
        assert_eq!(p.probed(now + ms(1000), false), Some(false));
    }

    #[test]
    fn exit_fails_at_once_and_no_process_fails_on_the_interval() {
        let mut p = plan(1, 2);
        p.process_appeared(ms(0));
        assert_eq!(p.probed(ms(1), true), Some(true));
        assert_eq!(p.process_exited(ms(500)), Some(false));
        assert!(!p.running());
        assert_eq!(p.due(), ms(1500));
        assert_eq!(p.probed(ms(1500), false), None);
        assert_eq!(p.pidfile_poll(ms(600)), PIDFILE_POLL_FAST);
        assert_eq!(p.pidfile_poll(ms(500) + PIDFILE_FAST_FOR), PIDFILE_POLL);
    }

    #[test]
    fn routine_probes_lent_out_and_back_leave_the_plan_as_probing_here() {
        let mut p = plan(2, 2);
        p.process_appeared(ms(0));
        assert!(!p.routine());
        p.probed(ms(1), true);
        // Rising: each answer counts, none is routine.
        assert!(!p.routine());
        assert_eq!(p.probed(ms(6), true), Some(true));
        assert!(p.routine());
        let lent = p.clone();
        let mut here = p.clone();
        let mut due = here.due();
        for _ in 0..5 {
            assert_eq!(here.probed(due + ms(1), true), None);
            due = here.due();
        }
        let mut back = lent.clone();
        back.lent_back(due);
        assert_eq!(back, here);
        // The failure that ends the lending is the first of a fall.
        assert_eq!(back.probed(due + ms(2), false), None);
        assert!(!back.routine());
        assert_eq!(back.due(), due + ms(1000));
        assert_eq!(back.probed(back.due(), false), Some(false));
        // Nothing lent back moves a plan that is not routine.
        let before = back.clone();
        back.lent_back(due + ms(9000));
        assert_eq!(back, before);
    }

    #[test]
    fn a_quick_crash_holds_the_next_rise() {
        let mut p = plan(2, 2);
        p.process_appeared(ms(0));
        p.probed(ms(1), true);
        assert_eq!(p.probed(ms(6), true), Some(true));
        assert_eq!(p.process_exited(ms(200)), Some(false));
        assert_eq!(p.hold(), ms(1000));
        // The hold-down counts from the new process's appearance.
        p.process_appeared(ms(300));
        p.probed(ms(301), true);
        assert_eq!(p.probed(ms(306), true), None);
        // Held: the next probe is at the hold-down's end.
        assert_eq!(p.due(), ms(1300));
        assert_eq!(p.probed(ms(1300), true), Some(true));
        // Up longer than rise × interval: no crash, no longer hold.
        p.process_exited(ms(3400));
        assert_eq!(p.hold(), ms(1000));
        p.process_appeared(ms(3500));
        p.probed(ms(3501), true);
        assert_eq!(p.probed(ms(3506), true), None);
    }

    #[test]
    fn the_process_found_at_start_is_no_crash_when_it_exits_soon() {
        // The daemon restarted next to an nginx that has run for days; that
        // nginx dies a moment after the check turned healthy. Its successor
        // is not held down (the bench's D after E waited 1 s for it).
        let mut p = plan(2, 2);
        p.process_found_running(ms(0));
        p.probed(ms(1), true);
        assert_eq!(p.probed(ms(6), true), Some(true));
        assert_eq!(p.process_exited(ms(500)), Some(false));
        assert_eq!(p.hold(), ms(0));
        p.process_appeared(ms(600));
        p.probed(ms(601), true);
        assert_eq!(p.probed(ms(606), true), Some(true));
        // A process seen starting still counts: it crashes quickly, the
        // next one is held.
        assert_eq!(p.process_exited(ms(800)), Some(false));
        assert_eq!(p.hold(), ms(1000));
    }
}
