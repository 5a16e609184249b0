//! When this node wants its anycast prefixes announced: while every
//! tracked check is healthy and has stayed so for `announceAfter`, the node
//! is not in maintenance and not stopping. Withdrawal is immediate; nothing
//! is announced before the checks' first good verdict. The daemon carries
//! the wish out through BIRD (`nginx_ha::anycast`).

use super::checks::Checks;
use crate::config::Anycast;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why the prefixes are, or are not, wanted: for `status` and the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Why {
    /// Every tracked check has been healthy for the hold-down.
    Healthy,
    /// A tracked check has no verdict yet.
    Waiting(String),
    /// A tracked check fails.
    Failing(String),
    /// Healthy, but not yet for `announceAfter`.
    HoldDown,
    Maintenance,
    /// SIGTERM: withdrawn for the drain.
    Stopping,
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Healthy => write!(f, "checks healthy"),
            Why::Waiting(c) => write!(f, "waiting for the first verdict of check {c}"),
            Why::Failing(c) => write!(f, "check {c} fails"),
            Why::HoldDown => write!(f, "checks healthy, hold-down (announceAfter) running"),
            Why::Maintenance => write!(f, "maintenance mode"),
            Why::Stopping => write!(f, "stopping (drain)"),
        }
    }
}

/// The anycast policy of one node.
#[derive(Clone, Debug)]
pub struct Policy {
    pub decl: Anycast,
    /// Since when every tracked check has been healthy without a break.
    healthy_since: Option<Duration>,
    stopping: bool,
    /// The last wish handed to the daemon; `None` before the first.
    wanted: Option<bool>,
    why: Why,
    /// Node time of the last change of the wish.
    since: Duration,
}

impl Policy {
    pub fn new(decl: Anycast, now: Duration) -> Policy {
        Policy {
            decl,
            healthy_since: None,
            stopping: false,
            wanted: None,
            why: Why::Waiting(String::new()),
            since: now,
        }
    }

    /// A new declaration: the hold-down already served still counts if
    /// the checks stay healthy (`evaluate` restarts it if they are not).
    pub fn reconfigure(&mut self, decl: Anycast) {
        self.decl = decl;
    }

    pub fn stop(&mut self) {
        self.stopping = true;
    }

    pub fn wanted(&self) -> bool {
        self.wanted == Some(true)
    }

    pub fn why(&self) -> &Why {
        &self.why
    }

    pub fn since(&self) -> Duration {
        self.since
    }

    /// When `evaluate` must run again for the hold-down to end.
    pub fn deadline(&self) -> Option<Duration> {
        if self.why != Why::HoldDown {
            return None;
        }
        self.healthy_since
            .map(|t| t + self.decl.announce_after.as_duration())
    }

    /// Recomputes the wish; returns it when it changed (the first call
    /// always reports one, so a BIRD left announcing by an earlier run is
    /// told to withdraw).
    pub fn evaluate(&mut self, now: Duration, checks: &Checks, maintenance: bool) -> Option<bool> {
        let tracked = checks.tracked(self.decl.track_checks.as_deref());
        // A name no check has any more is skipped, as for the instances:
        // during a reload the node hears of the new checks and of the new
        // anycast section in two events. With none of them known, nothing
        // vouches for nginx, so that is not healthy either.
        let known: Vec<_> = tracked
            .iter()
            .filter_map(|n| checks.get(n).map(|c| (n, c)))
            .collect();
        let mut verdict = match known.first() {
            Some(_) => Why::Healthy,
            None => Why::Waiting(tracked.join(", ")),
        };
        for (name, c) in known {
            match c.healthy {
                Some(true) => {}
                Some(false) => {
                    verdict = Why::Failing(name.clone());
                    break;
                }
                None => {
                    if verdict == Why::Healthy {
                        verdict = Why::Waiting(name.clone());
                    }
                }
            }
        }
        if verdict == Why::Healthy {
            self.healthy_since.get_or_insert(now);
        } else {
            self.healthy_since = None;
        }
        let why = if self.stopping {
            Why::Stopping
        } else if maintenance {
            Why::Maintenance
        } else if verdict != Why::Healthy {
            verdict
        } else if self
            .healthy_since
            .is_some_and(|t| now < t + self.decl.announce_after.as_duration())
            && !self.wanted()
        {
            // Once announced, staying healthy keeps it announced: the
            // hold-down only delays a (re)announcement.
            Why::HoldDown
        } else {
            Why::Healthy
        };
        let want = why == Why::Healthy;
        self.why = why;
        if self.wanted == Some(want) {
            return None;
        }
        self.wanted = Some(want);
        self.since = now;
        Some(want)
    }
}

impl super::Node {
    pub(super) fn configure_anycast(&mut self, now: Duration, decl: Option<Anycast>) {
        match (decl, &mut self.anycast) {
            (None, None) => {}
            (None, Some(_)) => {
                // The section was removed: what BIRD announces is no longer
                // ours to keep up.
                self.anycast = None;
                self.out.push(super::Command::Anycast {
                    announce: false,
                    reason: "anycast removed from the declaration".into(),
                });
            }
            (Some(d), Some(p)) => p.reconfigure(d),
            (Some(d), None) => self.anycast = Some(Policy::new(d, now)),
        }
    }

    /// Hands the daemon a changed wish, with a log line saying why.
    pub(super) fn follow_anycast(&mut self, now: Duration) {
        let Some(p) = &mut self.anycast else {
            return;
        };
        let Some(announce) = p.evaluate(now, &self.checks, self.maintenance) else {
            return;
        };
        let reason = p.why().to_string();
        let prefixes: Vec<String> = p.decl.prefixes.iter().map(|x| x.to_string()).collect();
        // A failing check is news; waiting, maintenance and stopping are
        // what the operator or the start-up asked for.
        let (level, verb) = match (announce, p.why()) {
            (true, _) => (super::Level::Info, "announcing"),
            (false, Why::Failing(_)) => (super::Level::Warn, "withdrawing"),
            (false, _) => (super::Level::Info, "withdrawing"),
        };
        self.out.push(super::Command::Log {
            level,
            instance: None,
            message: format!("anycast: {verb} {}: {reason}", prefixes.join(", ")),
        });
        self.out.push(super::Command::Anycast { announce, reason });
    }

    pub(super) fn anycast_wish(&self, now: Duration) -> Option<super::status::AnycastWish> {
        self.anycast.as_ref().map(|p| super::status::AnycastWish {
            prefixes: p.decl.prefixes.iter().map(|x| x.to_string()).collect(),
            wanted: p.wanted(),
            reason: p.why().to_string(),
            seconds_since_change: now.saturating_sub(p.since()).as_secs_f64(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::Node;
    use super::super::event::{Command, Event};
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn node(announce_after: &str) -> Node {
        let decl: crate::config::Anycast = serde_json::from_value(serde_json::json!({
            "prefixes": ["203.0.113.80/32"],
            "announceAfter": announce_after,
        }))
        .expect("anycast");
        let weights = BTreeMap::from([("nginx".to_string(), 0), ("api".to_string(), -10)]);
        let mut n = Node::new(weights, false);
        let first = wishes(&n.handle(ms(0), Event::Anycast(Some(Box::new(decl)))));
        assert_eq!(
            first,
            [false],
            "a new node withdraws what an earlier run left"
        );
        n
    }

    fn wishes(cmds: &[Command]) -> Vec<bool> {
        cmds.iter()
            .filter_map(|c| match c {
                Command::Anycast { announce, .. } => Some(*announce),
                _ => None,
            })
            .collect()
    }

    fn verdict(n: &mut Node, at: u64, check: &str, healthy: bool) -> Vec<bool> {
        let ev = Event::Verdict {
            check: check.into(),
            healthy,
            detail: String::new(),
        };
        wishes(&n.handle(ms(at), ev))
    }

    /// Fires timers up to `until`; the wishes they produce.
    fn run_until(n: &mut Node, until: u64) -> Vec<bool> {
        let mut out = Vec::new();
        let mut guard = 0;
        while let Some(t) = n.poll_timeout() {
            if t > ms(until) {
                break;
            }
            guard += 1;
            assert!(guard < 100, "timer loop");
            out.extend(wishes(&n.handle(t, Event::Timer)));
        }
        out
    }

    #[test]
    fn announces_only_after_every_check_is_healthy_for_the_hold_down() {
        let mut n = node("1s");
        assert_eq!(verdict(&mut n, 100, "nginx", true), Vec::<bool>::new());
        assert_eq!(n.poll_timeout(), None, "api has no verdict yet");
        assert_eq!(verdict(&mut n, 200, "api", true), Vec::<bool>::new());
        assert_eq!(n.poll_timeout(), Some(ms(1200)));
        assert_eq!(run_until(&mut n, 1199), Vec::<bool>::new());
        assert_eq!(run_until(&mut n, 1200), [true]);
        assert_eq!(n.poll_timeout(), None);
        // Withdrawal is immediate, whatever the weight.
        assert_eq!(verdict(&mut n, 1500, "api", false), [false]);
    }

    #[test]
    fn a_flapping_check_restarts_the_hold_down() {
        let mut n = node("1s");
        verdict(&mut n, 0, "api", true);
        verdict(&mut n, 0, "nginx", true);
        for t in [300, 900, 1500] {
            assert_eq!(verdict(&mut n, t, "nginx", false), Vec::<bool>::new());
            assert_eq!(run_until(&mut n, t + 100), Vec::<bool>::new());
            assert_eq!(verdict(&mut n, t + 100, "nginx", true), Vec::<bool>::new());
        }
        assert_eq!(run_until(&mut n, 2599), Vec::<bool>::new());
        assert_eq!(run_until(&mut n, 2600), [true]);
    }

    #[test]
    fn zero_hold_down_announces_at_the_first_good_verdicts() {
        let mut n = node("0s");
        assert_eq!(verdict(&mut n, 10, "nginx", false), Vec::<bool>::new());
        assert_eq!(verdict(&mut n, 20, "api", true), Vec::<bool>::new());
        assert_eq!(verdict(&mut n, 30, "nginx", true), [true]);
    }

    #[test]
    fn maintenance_and_shutdown_withdraw_and_stay_withdrawn() {
        let mut n = node("0s");
        verdict(&mut n, 0, "api", true);
        assert_eq!(verdict(&mut n, 0, "nginx", true), [true]);
        assert_eq!(wishes(&n.handle(ms(10), Event::Maintenance(true))), [false]);
        assert_eq!(n.poll_timeout(), None, "no timer while in maintenance");
        assert_eq!(wishes(&n.handle(ms(20), Event::Maintenance(false))), [true]);
        assert_eq!(wishes(&n.handle(ms(30), Event::Shutdown)), [false]);
        assert_eq!(verdict(&mut n, 40, "nginx", true), Vec::<bool>::new());
        assert_eq!(
            n.report(ms(50)).anycast.expect("wish").reason,
            "stopping (drain)"
        );
    }

    #[test]
    fn maintenance_at_start_keeps_it_withdrawn() {
        let mut n = node("0s");
        n.handle(ms(0), Event::Maintenance(true));
        verdict(&mut n, 10, "api", true);
        assert_eq!(verdict(&mut n, 10, "nginx", true), Vec::<bool>::new());
        let w = n.report(ms(10)).anycast.expect("wish");
        assert!(!w.wanted);
        assert_eq!(w.reason, "maintenance mode");
    }

    #[test]
    fn a_reload_that_swaps_the_tracked_check_does_not_flap() {
        let mut n = node("0s");
        let both: crate::config::Anycast = serde_json::from_value(serde_json::json!({
            "prefixes": ["203.0.113.80/32"], "announceAfter": "0s", "trackChecks": ["api", "nginx"],
        }))
        .expect("anycast");
        n.handle(ms(0), Event::Anycast(Some(Box::new(both))));
        verdict(&mut n, 0, "api", true);
        assert_eq!(verdict(&mut n, 0, "nginx", true), [true]);
        // The checks change first (api removed), then the section.
        let ev = Event::Reload {
            plans: vec![],
            weights: BTreeMap::from([("nginx".to_string(), 0)]),
            restarted: vec![],
            on_link: BTreeMap::new(),
        };
        assert_eq!(wishes(&n.handle(ms(10), ev)), Vec::<bool>::new());
        let decl: crate::config::Anycast = serde_json::from_value(serde_json::json!({
            "prefixes": ["203.0.113.80/32"], "announceAfter": "0s", "trackChecks": ["nginx"],
        }))
        .expect("anycast");
        let ev = Event::Anycast(Some(Box::new(decl)));
        assert_eq!(wishes(&n.handle(ms(10), ev)), Vec::<bool>::new());
        // Only unknown names tracked: not healthy.
        let decl: crate::config::Anycast = serde_json::from_value(serde_json::json!({
            "prefixes": ["203.0.113.80/32"], "announceAfter": "0s", "trackChecks": ["gone"],
        }))
        .expect("anycast");
        assert_eq!(
            wishes(&n.handle(ms(20), Event::Anycast(Some(Box::new(decl))))),
            [false]
        );
    }

    #[test]
    fn removing_the_section_withdraws() {
        let mut n = node("0s");
        verdict(&mut n, 0, "api", true);
        verdict(&mut n, 0, "nginx", true);
        assert_eq!(wishes(&n.handle(ms(5), Event::Anycast(None))), [false]);
        assert!(n.report(ms(5)).anycast.is_none());
    }
}
