//! keepalived's rise/fall: a check changes its verdict only after `rise`
//! successes or `fall` failures in a row, so one slow answer does not move
//! a VIP. Pure; the probes feed it.

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tracker {
    rise: u32,
    fall: u32,
    streak: u32,
    healthy: bool,
}

impl Tracker {
    /// Starts unhealthy: a node takes no VIP before its checks have passed
    /// `rise` times.
    pub fn new(rise: u32, fall: u32) -> Tracker {
        Tracker {
            rise: rise.max(1),
            fall: fall.max(1),
            streak: 0,
            healthy: false,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Records one result; returns the new verdict when it changed.
    pub fn record(&mut self, ok: bool) -> Option<bool> {
        if ok == self.healthy {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        let need = if ok { self.rise } else { self.fall };
        if self.streak >= need {
            self.healthy = ok;
            self.streak = 0;
            Some(ok)
        } else {
            None
        }
    }

    /// A failure that needs no confirmation (the process is gone).
    pub fn fail_now(&mut self) -> Option<bool> {
        self.streak = 0;
        if self.healthy {
            self.healthy = false;
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
    fn rise_and_fall_need_streaks() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        // A success in between resets the failure streak.
        assert_eq!(t.record(true), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        assert!(!t.healthy());
    }

    #[test]
    fn fail_now_skips_fall() {
        let mut t = Tracker::new(1, 5);
        t.record(true);
        assert_eq!(t.fail_now(), Some(false));
        assert_eq!(t.fail_now(), None);
    }
}
