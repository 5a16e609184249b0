//! Rate-limited log lines for conditions that can repeat with every packet
//! (a peer with the wrong password sends one per advert interval): the
//! first occurrence is logged at once, then at most one line per key and
//! period, saying how many were not logged in between.

use std::collections::BTreeMap;
use std::time::Duration;

/// How often one kind of line may repeat.
pub const PERIOD: Duration = Duration::from_secs(30);

/// Bounds memory when keys come from the network (source addresses).
const MAX_KEYS: usize = 256;

#[derive(Default)]
pub struct LogLimit {
    seen: BTreeMap<String, Entry>,
}

struct Entry {
    last: Duration,
    suppressed: u64,
}

impl LogLimit {
    /// Whether a line for `key` may be logged at `now` (time since an
    /// arbitrary origin), and how many were suppressed since the last one.
    pub fn allow(&mut self, key: &str, now: Duration) -> Option<u64> {
        match self.seen.get_mut(key) {
            Some(e) if now.saturating_sub(e.last) < PERIOD => {
                e.suppressed += 1;
                None
            }
            Some(e) => {
                let n = e.suppressed;
                e.last = now;
                e.suppressed = 0;
                Some(n)
            }
            None => {
                if self.seen.len() >= MAX_KEYS {
                    // Forget what was quiet longest ago; a flood of new keys
                    // then costs at most MAX_KEYS lines per period.
                    let oldest = self
                        .seen
                        .iter()
                        .min_by_key(|(_, e)| e.last)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = oldest {
                        self.seen.remove(&k);
                    }
                }
                self.seen.insert(
                    key.to_string(),
                    Entry {
                        last: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

/// " (N more since the last report)" or nothing.
pub fn more(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_logged_then_one_per_period_with_the_count() {
        let mut l = LogLimit::default();
        let t = Duration::from_secs(100);
        assert_eq!(l.allow("a", t), Some(0));
        assert_eq!(l.allow("a", t + Duration::from_secs(1)), None);
        assert_eq!(l.allow("a", t + Duration::from_secs(2)), None);
        assert_eq!(l.allow("b", t), Some(0), "keys are independent");
        assert_eq!(l.allow("a", t + PERIOD), Some(2));
        assert_eq!(l.allow("a", t + PERIOD), None);
    }

    #[test]
    fn keys_are_bounded() {
        let mut l = LogLimit::default();
        for i in 0..10 * MAX_KEYS {
            l.allow(&i.to_string(), Duration::from_millis(i as u64));
        }
        assert!(l.seen.len() <= MAX_KEYS);
    }
}
