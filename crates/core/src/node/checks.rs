//! What the health checks do to an instance, with keepalived's weight
//! semantics: weight 0 puts the tracking instances in FAULT while the
//! check fails; a negative weight is subtracted from the priority while it
//! fails; a positive one is added while it is healthy. A check without a
//! first verdict has no effect yet: instances that track it wait for it
//! before they start, since starting earlier would either take the VIP
//! with an untested nginx or report a FAULT that only means "not known".

use std::collections::BTreeMap;
use std::time::Duration;

/// What a check's weight does (keepalived's semantics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// weight 0: FAULT while failing.
    Fault,
    /// weight < 0: subtracted while failing; weight > 0: added while healthy.
    Weight(i64),
}

impl Effect {
    pub fn of(weight: i64) -> Effect {
        if weight == 0 {
            Effect::Fault
        } else {
            Effect::Weight(weight)
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct CheckState {
    /// `None` until the first verdict.
    pub healthy: Option<bool>,
    pub detail: String,
    /// Node time of the last change.
    pub since: Duration,
    pub weight: i64,
    /// Verdict changes between passing and failing since the check
    /// (re)started; the first verdict is not a change. Flapping shows here.
    pub changes: u64,
}

impl CheckState {
    fn waiting(weight: i64, now: Duration) -> CheckState {
        CheckState {
            healthy: None,
            detail: "waiting for the first results".into(),
            since: now,
            weight,
            changes: 0,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Checks(BTreeMap<String, CheckState>);

impl Checks {
    /// Every configured check, by name, with its weight; none decided.
    pub fn new(weights: BTreeMap<String, i64>, now: Duration) -> Checks {
        Checks(
            weights
                .into_iter()
                .map(|(n, w)| (n, CheckState::waiting(w, now)))
                .collect(),
        )
    }

    /// Whether a verdict changes anything: false for a check that is not
    /// configured (a late verdict from a check removed by a reload) and
    /// for the verdict the check has already (the event loop passes on a
    /// watched process's exit before the check's own verdict says it).
    pub fn is_news(&self, name: &str, healthy: bool, detail: &str) -> bool {
        self.0
            .get(name)
            .is_some_and(|c| c.healthy != Some(healthy) || c.detail != detail)
    }

    /// A new verdict. Returns false for a check that is not configured
    /// (a late verdict from a check removed by a reload).
    pub fn verdict(&mut self, name: &str, healthy: bool, detail: String, now: Duration) -> bool {
        let Some(c) = self.0.get_mut(name) else {
            return false;
        };
        if c.healthy.is_some_and(|h| h != healthy) {
            c.changes += 1;
        }
        c.healthy = Some(healthy);
        c.detail = detail;
        c.since = now;
        true
    }

    /// After a reload: the new set of checks and weights. Checks that were
    /// restarted (changed) or are new start undecided; unchanged ones keep
    /// their verdicts.
    pub fn reconfigure(
        &mut self,
        weights: BTreeMap<String, i64>,
        restarted: &[String],
        now: Duration,
    ) {
        self.0.retain(|n, _| weights.contains_key(n));
        for (n, w) in weights {
            let fresh = restarted.contains(&n) || !self.0.contains_key(&n);
            let c = self
                .0
                .entry(n)
                .or_insert_with(|| CheckState::waiting(w, now));
            c.weight = w;
            if fresh {
                *c = CheckState::waiting(w, now);
            }
        }
    }

    /// The checks an instance tracks: the listed ones, or all.
    pub fn tracked(&self, track: Option<&[String]>) -> Vec<String> {
        match track {
            Some(list) => list.to_vec(),
            None => self.0.keys().cloned().collect(),
        }
    }

    /// Whether a tracked check has no verdict yet.
    pub fn pending(&self, tracked: &[String]) -> bool {
        tracked
            .iter()
            .any(|n| self.0.get(n).is_some_and(|c| c.healthy.is_none()))
    }

    /// The failing weight-0 checks (name, reason) and the effective
    /// priority, clamped to 1..=254 (255 belongs to an address owner, whose
    /// priority the state machine keeps fixed anyway).
    pub fn effect(&self, tracked: &[String], base: u8) -> (Vec<(String, String)>, u8) {
        let mut faults = Vec::new();
        let mut prio = i64::from(base);
        for name in tracked {
            let Some(c) = self.0.get(name) else { continue };
            let Some(healthy) = c.healthy else { continue };
            match Effect::of(c.weight) {
                Effect::Fault if !healthy => {
                    faults.push((name.clone(), format!("check {name}: {}", c.detail)))
                }
                Effect::Fault => {}
                Effect::Weight(w) if w < 0 && !healthy => prio += w,
                Effect::Weight(w) if w > 0 && healthy => prio += w,
                Effect::Weight(_) => {}
            }
        }
        (faults, prio.clamp(1, 254) as u8)
    }

    pub fn get(&self, name: &str) -> Option<&CheckState> {
        self.0.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&String, &CheckState)> {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(list: &[(&str, i64)]) -> Checks {
        Checks::new(
            list.iter().map(|(n, w)| (n.to_string(), *w)).collect(),
            Duration::ZERO,
        )
    }
    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn undecided_checks_are_pending_and_have_no_effect() {
        let c = checks(&[("nginx", 0), ("api", -60)]);
        let all = c.tracked(None);
        assert!(c.pending(&all));
        assert_eq!(c.effect(&all, 150), (vec![], 150));
    }

    #[test]
    fn weights_follow_keepalived() {
        let mut c = checks(&[("nginx", 0), ("api", -60), ("bonus", 20)]);
        let t = Duration::from_secs(1);
        c.verdict("nginx", true, "ok".into(), t);
        c.verdict("api", false, "503".into(), t);
        c.verdict("bonus", true, "ok".into(), t);
        let all = c.tracked(None);
        assert!(!c.pending(&all));
        assert_eq!(c.effect(&all, 150), (vec![], 110));
        c.verdict("nginx", false, "gone".into(), t);
        let (faults, _) = c.effect(&all, 150);
        assert_eq!(faults, vec![("nginx".into(), "check nginx: gone".into())]);
        // Only the tracked checks count.
        assert_eq!(c.effect(&names(&["bonus"]), 150), (vec![], 170));
    }

    #[test]
    fn priority_is_clamped_to_1_254() {
        let mut c = checks(&[("a", -254), ("b", 254)]);
        c.verdict("a", false, "x".into(), Duration::ZERO);
        assert_eq!(c.effect(&names(&["a"]), 100).1, 1);
        c.verdict("b", true, "x".into(), Duration::ZERO);
        assert_eq!(c.effect(&names(&["b"]), 100).1, 254);
    }

    #[test]
    fn reconfigure_keeps_unchanged_verdicts_only() {
        let mut c = checks(&[("nginx", 0), ("api", -60)]);
        c.verdict("nginx", true, "ok".into(), Duration::ZERO);
        c.verdict("api", true, "ok".into(), Duration::ZERO);
        let weights = [
            ("nginx".to_string(), 0),
            ("api".to_string(), -30),
            ("db".to_string(), 0),
        ]
        .into_iter()
        .collect();
        c.reconfigure(weights, &names(&["api"]), Duration::from_secs(5));
        let h: Vec<(String, Option<bool>, i64)> = c
            .iter()
            .map(|(n, s)| (n.clone(), s.healthy, s.weight))
            .collect();
        assert_eq!(
            h,
            vec![
                ("api".into(), None, -30),
                ("db".into(), None, 0),
                ("nginx".into(), Some(true), 0)
            ]
        );
        assert!(!c.verdict("gone", true, String::new(), Duration::ZERO));
    }
}
