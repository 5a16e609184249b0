//! The footprint of an idle pair: CPU (ns, see `procs`), RSS and wake-ups
//! of the master's and the backup's daemon over several windows.
//!
//! The machine is shared and noisy, so one window decides nothing: the
//! windows of nginx-ha and keepalived alternate (each in a freshly started
//! pair; the lab runs one pair at a time) and the report gives the median
//! and the spread (min–max) over them.

use crate::lab::ms;
use crate::procs::{CpuDelta, cpu_delta, rss_kib, tree, tree_cpu, tree_wakeups};
use crate::setups::Pair;
use std::time::{Duration, Instant};

/// One window, [master, backup].
#[derive(Clone, Debug, Default)]
pub struct Window {
    pub len: Duration,
    pub cpu: [CpuDelta; 2],
    /// Voluntary context switches (the daemon slept and was woken): a
    /// count, unlike CPU time not swayed by a busy machine.
    pub wakeups: [u64; 2],
    pub rss_mean_kib: [f64; 2],
    pub rss_max_kib: [u64; 2],
    pub procs: [usize; 2],
}

impl Window {
    /// CPU in µs per second of the window, reaped children included.
    pub fn cpu_us_per_s(&self, role: usize) -> f64 {
        self.cpu[role].total_ns() as f64 / 1e3 / self.len.as_secs_f64().max(1e-9)
    }
    pub fn wakeups_per_s(&self, role: usize) -> f64 {
        self.wakeups[role] as f64 / self.len.as_secs_f64().max(1e-9)
    }
}

/// Measures one idle window on a started, settled pair: node0 is the
/// master, node1 the backup.
pub fn measure(p: &Pair, len: Duration) -> Window {
    eprintln!("  footprint: {len:?} idle");
    let roots = [p.daemon_pid(0).unwrap_or(0), p.daemon_pid(1).unwrap_or(0)];
    let mut w = Window::default();
    let mut sums = [0u64; 2];
    let mut n = 0u64;
    let sw0 = roots.map(tree_wakeups);
    let before = roots.map(tree_cpu);
    let start = Instant::now();
    // RSS once a second; the CPU readings bracket the window tightly.
    loop {
        for k in 0..2 {
            let t = tree(roots[k]);
            let rss: u64 = t.iter().map(|&q| rss_kib(q)).sum();
            sums[k] += rss;
            w.rss_max_kib[k] = w.rss_max_kib[k].max(rss);
            w.procs[k] = w.procs[k].max(t.len());
        }
        n += 1;
        let left = len.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(ms(1000).min(left));
    }
    let after = roots.map(tree_cpu);
    w.len = start.elapsed();
    let sw1 = roots.map(tree_wakeups);
    for k in 0..2 {
        w.cpu[k] = cpu_delta(&before[k], &after[k]);
        w.wakeups[k] = sw1[k].saturating_sub(sw0[k]);
        w.rss_mean_kib[k] = sums[k] as f64 / n.max(1) as f64;
    }
    w
}

/// All windows of one setup.
#[derive(Clone, Debug, Default)]
pub struct Footprint {
    pub windows: Vec<Window>,
}

/// Median, min and max.
pub fn spread(v: &[f64]) -> Option<(f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let (mn, md, _, mx) = crate::report::stats(v);
    Some((md, mn, mx))
}

impl Footprint {
    fn over(&self, f: impl Fn(&Window) -> f64) -> Option<(f64, f64, f64)> {
        spread(&self.windows.iter().map(f).collect::<Vec<_>>())
    }
    /// µs of CPU per second: (median, min, max) over the windows.
    pub fn cpu_us_per_s(&self, role: usize) -> Option<(f64, f64, f64)> {
        self.over(|w| w.cpu_us_per_s(role))
    }
    /// The part of it from reaped children (keepalived's check scripts).
    pub fn reaped_us_per_s(&self, role: usize) -> Option<(f64, f64, f64)> {
        self.over(|w| w.cpu[role].reaped_ns as f64 / 1e3 / w.len.as_secs_f64().max(1e-9))
    }
    pub fn wakeups_per_s(&self, role: usize) -> Option<(f64, f64, f64)> {
        self.over(|w| w.wakeups_per_s(role))
    }
    pub fn rss_mean_kib(&self, role: usize) -> Option<f64> {
        self.over(|w| w.rss_mean_kib[role]).map(|s| s.0)
    }
    pub fn rss_max_kib(&self, role: usize) -> u64 {
        self.windows
            .iter()
            .map(|w| w.rss_max_kib[role])
            .max()
            .unwrap_or(0)
    }
    pub fn procs(&self, role: usize) -> usize {
        self.windows
            .iter()
            .map(|w| w.procs[role])
            .max()
            .unwrap_or(0)
    }
    /// Threads or processes that exited inside a window, and the run time
    /// of the threads among them there (µs/s, median over the windows,
    /// both roles): counted through the process clock.
    pub fn exited(&self) -> (usize, f64) {
        let n = self
            .windows
            .iter()
            .map(|w| w.cpu[0].exited + w.cpu[1].exited)
            .sum();
        let us = self
            .over(|w| {
                (w.cpu[0].exited_ns + w.cpu[1].exited_ns) as f64
                    / 1e3
                    / w.len.as_secs_f64().max(1e-9)
            })
            .map_or(0.0, |s| s.0);
        (n, us)
    }
}

/// "median (min–max)" with `d` decimals.
pub fn cell(s: Option<(f64, f64, f64)>, d: usize) -> String {
    s.map_or("–".into(), |(md, mn, mx)| {
        format!("{md:.d$} ({mn:.d$}–{mx:.d$})")
    })
}
