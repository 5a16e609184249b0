//! When a master announces its VIPs (gratuitous ARP / unsolicited NA): a
//! burst of `count` spaced `delay` apart on becoming master (and again when
//! it has to win clients back), then every `refresh` if set. Anything else
//! than MASTER stops it.

use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcements {
    left: u64,
    next: Option<Duration>,
    refresh_next: Option<Duration>,
}

#[derive(Clone, Copy, Debug)]
pub struct Schedule {
    pub count: u64,
    pub delay: Duration,
    pub refresh: Duration,
}

impl Announcements {
    /// A new burst, its first announcement due now.
    pub fn burst(&mut self, s: Schedule, now: Duration) {
        self.left = s.count;
        self.next = (s.count > 0).then_some(now);
    }

    /// Whether to announce now; moves the schedule on when so.
    pub fn due(&mut self, s: Schedule, now: Duration, master: bool) -> bool {
        let burst_due = self.next.is_some_and(|t| t <= now);
        let refresh_due = self.refresh_next.is_some_and(|t| t <= now);
        if !(burst_due || refresh_due) {
            return false;
        }
        if !master {
            *self = Announcements::default();
            return false;
        }
        if burst_due {
            self.left = self.left.saturating_sub(1);
            self.next = (self.left > 0).then(|| now + s.delay);
        }
        if refresh_due || (burst_due && self.refresh_next.is_none()) {
            self.refresh_next = (!s.refresh.is_zero()).then(|| now + s.refresh);
        }
        true
    }

    pub fn deadline(&self) -> Option<Duration> {
        match (self.next, self.refresh_next) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn times(s: Schedule, until: Duration, master_until: Duration) -> Vec<u128> {
        let mut a = Announcements::default();
        a.burst(s, Duration::ZERO);
        let mut out = Vec::new();
        while let Some(t) = a.deadline() {
            if t > until {
                break;
            }
            if a.due(s, t, t < master_until) {
                out.push(t.as_millis());
            }
        }
        out
    }

    #[test]
    fn burst_then_refresh() {
        let s = Schedule {
            count: 3,
            delay: 200 * MS,
            refresh: 1000 * MS,
        };
        assert_eq!(
            times(s, 2500 * MS, 10_000 * MS),
            vec![0, 200, 400, 1000, 2000]
        );
    }

    #[test]
    fn no_refresh_means_burst_only() {
        let s = Schedule {
            count: 2,
            delay: 100 * MS,
            refresh: Duration::ZERO,
        };
        assert_eq!(times(s, 10_000 * MS, 10_000 * MS), vec![0, 100]);
    }

    #[test]
    fn leaving_master_stops_everything() {
        let s = Schedule {
            count: 5,
            delay: 100 * MS,
            refresh: 1000 * MS,
        };
        assert_eq!(times(s, 10_000 * MS, 250 * MS), vec![0, 100, 200]);
    }

    #[test]
    fn zero_count_announces_nothing() {
        let s = Schedule {
            count: 0,
            delay: 100 * MS,
            refresh: 1000 * MS,
        };
        assert_eq!(times(s, 10_000 * MS, 10_000 * MS), Vec::<u128>::new());
    }
}
