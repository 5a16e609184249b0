//! What each check's probes did, for the metrics endpoint: the current
//! run of passes or failures, probe counts by result, and how long the
//! probes took. Kept apart from the verdicts (which go through the node):
//! probes are frequent, and the event loop has no use for their timings.
//!
//! Shared between the check tasks (writers) and the metrics server
//! (reader); every access is a few counter updates under a mutex that is
//! never held across an await.

use super::stub_status::StubStatus;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Probe durations, in seconds: from a local stub_status answer (well
/// under a millisecond) to a probe that runs into its timeout.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

pub type CheckLabel = Vec<(&'static str, String)>;

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Runs {
    /// Passing probes in a row up to the latest one (0 if it failed).
    pub passes: u64,
    /// Failing probes in a row up to the latest one (0 if it passed).
    pub failures: u64,
    pub passed_total: u64,
    pub failed_total: u64,
}

#[derive(Clone)]
pub struct Stats {
    runs: Arc<Mutex<BTreeMap<String, Runs>>>,
    latency: Family<CheckLabel, Histogram, fn() -> Histogram>,
    /// nginx's latest stub_status numbers, for `status`: kept here rather
    /// than sent to the event loop, which every probe would wake.
    stub: Arc<Mutex<Option<StubStatus>>>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            runs: Arc::default(),
            latency: Family::new_with_constructor(histogram),
            stub: Arc::default(),
        }
    }
}

impl Stats {
    pub fn set_stub(&self, s: StubStatus) {
        *self.stub.lock().unwrap_or_else(PoisonError::into_inner) = Some(s);
    }

    /// The numbers of the latest stub_status answer, if any came.
    pub fn stub(&self) -> Option<StubStatus> {
        *self.stub.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One probe's result; `took` is `None` when no probe was sent (nginx
    /// not running), which counts as a failure but has no duration.
    pub fn record(&self, check: &str, ok: bool, took: Option<Duration>) {
        {
            let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
            let r = runs.entry(check.to_string()).or_default();
            if ok {
                r.passes += 1;
                r.failures = 0;
                r.passed_total += 1;
            } else {
                r.failures += 1;
                r.passes = 0;
                r.failed_total += 1;
            }
        }
        if let Some(t) = took {
            self.latency
                .get_or_create(&vec![("check", check.to_string())])
                .observe(t.as_secs_f64());
        }
    }

    /// Forgets checks that are no longer configured (or were restarted).
    pub fn forget_except(&self, keep: impl Fn(&str) -> bool) {
        let mut runs = self.runs.lock().unwrap_or_else(PoisonError::into_inner);
        let gone: Vec<String> = runs.keys().filter(|k| !keep(k)).cloned().collect();
        for name in gone {
            runs.remove(&name);
            self.latency.remove(&vec![("check", name)]);
        }
    }

    pub fn runs(&self) -> BTreeMap<String, Runs> {
        self.runs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The probe-duration histograms (shared, not copied: registering the
    /// family in a scrape's registry shows the live buckets).
    pub fn latency(&self) -> Family<CheckLabel, Histogram, fn() -> Histogram> {
        self.latency.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_count_the_current_streak_and_totals() {
        let s = Stats::default();
        s.record("nginx", true, Some(Duration::from_millis(1)));
        s.record("nginx", true, Some(Duration::from_millis(1)));
        s.record("nginx", false, None);
        let r = s.runs()["nginx"];
        assert_eq!((r.passes, r.failures), (0, 1));
        assert_eq!((r.passed_total, r.failed_total), (2, 1));
        s.record("nginx", true, Some(Duration::from_millis(2)));
        assert_eq!(s.runs()["nginx"].passes, 1);
        s.forget_except(|n| n != "nginx");
        assert!(s.runs().is_empty());
    }
}
