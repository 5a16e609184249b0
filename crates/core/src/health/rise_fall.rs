//! keepalived's rise/fall: a check changes its verdict only after `rise`
//! successes or `fall` failures in a row, so one slow answer does not move
//! a VIP. The probes feed it; a rise may be held back (the crash-loop
//! hold-down) without ever being shortened.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    /// Consecutive results that disagree with the verdict (or, before the
    /// first verdict, agree with `last`).
    streak: u32,
    last: Option<bool>,
    healthy: Option<bool>,
}

impl RiseFall {
    /// Starts undecided: the first verdict needs `rise` successes or
    /// `fall` failures, like every later one. Instances wait for it before
    /// they start, so a node takes no VIP before its checks have passed.
    pub fn new(rise: u32, fall: u32) -> RiseFall {
        RiseFall {
            rise: rise.max(1),
            fall: fall.max(1),
            streak: 0,
            last: None,
            healthy: None,
        }
    }

    pub fn healthy(&self) -> Option<bool> {
        self.healthy
    }

    /// Records one result; returns the verdict when it is new.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        self.record_held(ok, true)
    }

    /// Whether a result agreeing with the verdict would change nothing:
    /// there is a verdict and no streak against it is being counted.
    pub fn steady(&self) -> bool {
        self.healthy.is_some() && self.streak == 0
    }

    /// Whether the successes so far would have turned the verdict healthy
    /// had the rise not been held back.
    pub fn rise_reached(&self) -> bool {
        self.healthy != Some(true) && self.last == Some(true) && self.streak >= self.rise
    }

    /// As `record`, but a success that completes the rise only turns the
    /// verdict healthy when `may_rise`; otherwise the streak is kept (not
    /// lost, not counted twice) until a later success may.
    pub fn record_held(&mut self, ok: bool, may_rise: bool) -> Option<bool> {
        if Some(ok) == self.healthy {
            self.streak = 0;
            return None;
        }
        if self.last != Some(ok) {
            self.streak = 0;
        }
        self.last = Some(ok);
        self.streak += 1;
        let need = if ok { self.rise } else { self.fall };
        if ok && !may_rise {
            self.streak = self.streak.min(need);
            return None;
        }
        if self.streak >= need {
            self.healthy = Some(ok);
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }

    /// A failure that needs no confirmation (the process is gone).
    pub fn fail_now(&mut self) -> Option<bool> {
        self.streak = 0;
        self.last = Some(false);
        if self.healthy != Some(false) {
            self.healthy = Some(false);
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_verdict_needs_rise_or_fall() {
        let mut t = RiseFall::new(2, 3);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None);
        assert_eq!(t.healthy(), None);
        assert_eq!(t.record(true), Some(true));
        let mut t = RiseFall::new(2, 2);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
    }

    #[test]
    fn rise_and_fall_need_streaks() {
        let mut t = RiseFall::new(2, 3);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        // A success in between resets the failure streak.
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        assert_eq!(t.healthy(), Some(false));
    }

    #[test]
    fn fail_now_skips_fall() {
        let mut t = RiseFall::new(1, 5);
        t.record(true);
        assert_eq!(t.fail_now(), Some(false));
        assert_eq!(t.fail_now(), None);
        // Undecided becomes failing at once too.
        assert_eq!(RiseFall::new(1, 5).fail_now(), Some(false));
    }

    #[test]
    fn a_held_rise_waits_and_keeps_its_streak() {
        let mut t = RiseFall::new(2, 2);
        t.fail_now();
        assert_eq!(t.record_held(true, false), None);
        assert!(!t.rise_reached());
        assert_eq!(t.record_held(true, false), None);
        assert!(t.rise_reached());
        assert_eq!(t.record_held(true, false), None);
        assert_eq!(t.record_held(true, true), Some(true));
        assert!(!t.rise_reached());
        // A failure while held starts the rise over.
        t.fail_now();
        t.record_held(true, false);
        t.record_held(true, false);
        t.record_held(false, false);
        assert!(!t.rise_reached());
        assert_eq!(t.record_held(true, true), None);
        assert_eq!(t.record_held(true, true), Some(true));
    }
}
