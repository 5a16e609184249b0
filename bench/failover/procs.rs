//! Per-process readings of a daemon's process tree: CPU time in
//! nanoseconds, RSS and wake-ups.
//!
//! CPU is each thread's run time from /proc/PID/task/TID/schedstat (first
//! field, ns, the scheduler's own sum_exec_runtime), summed over every
//! thread of every process of the tree. /proc/PID/stat's utime+stime count
//! in clock ticks (10 ms): over a 10 s window of a daemon that runs a few
//! ms per second that is all noise. Children a tree member reaped
//! (keepalived's check scripts) are only known from cutime+cstime, in
//! ticks; they are added as such.
//!
//! A thread that exits inside a window takes its schedstat with it (the
//! kernel folds its run time into the process total: nginx-ha's blocking
//! pool threads come and go). So a process's CPU is its CPU clock
//! (clock_getcpuclockid: the same run time, ns, of its live threads plus
//! the ones that exited); the per-thread schedstat sums are the fallback
//! and show how much of it came from threads that exited in the window.

use crate::clk_tck;
use crate::lab::children_of;
use std::collections::BTreeMap;
use std::fs;

/// A process and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let kids = children_of(out[i]);
        out.extend(kids);
        i += 1;
    }
    out
}

fn tids(pid: u32) -> Vec<u32> {
    fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

/// One process's CPU: its CPU clock (ns), run time per live thread (ns)
/// and the reaped children's cutime+cstime (ns, tick resolution).
#[derive(Clone, Debug, Default)]
pub struct ProcCpu {
    pub clock_ns: Option<u64>,
    pub threads: BTreeMap<u32, u64>,
    pub reaped_ns: u64,
}

/// The CPU clock of a whole process: every thread, live or exited.
fn process_clock_ns(pid: u32) -> Option<u64> {
    let mut clk: libc::clockid_t = 0;
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: both calls write one value of the given type.
    unsafe {
        if libc::clock_getcpuclockid(pid as libc::pid_t, &mut clk) != 0
            || libc::clock_gettime(clk, &mut t) != 0
        {
            return None;
        }
    }
    Some(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// None if the process is gone.
pub fn cpu_of(pid: u32) -> Option<ProcCpu> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After ")": state is field 3, cutime field 16, cstime field 17.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
    let threads = tids(pid)
        .into_iter()
        .filter_map(|t| {
            let s = fs::read_to_string(format!("/proc/{pid}/task/{t}/schedstat")).ok()?;
            Some((t, s.split_whitespace().next()?.parse().ok()?))
        })
        .collect();
    Some(ProcCpu {
        clock_ns: process_clock_ns(pid),
        threads,
        reaped_ns: (ticks as f64 * 1e9 / clk_tck()) as u64,
    })
}

/// CPU of every process of a tree, keyed by pid so that deltas survive
/// processes coming and going.
pub type TreeCpu = BTreeMap<u32, ProcCpu>;

pub fn tree_cpu(root: u32) -> TreeCpu {
    tree(root)
        .into_iter()
        .filter_map(|p| Some((p, cpu_of(p)?)))
        .collect()
}

#[derive(Clone, Copy, Debug, Default)]
pub struct CpuDelta {
    /// Run time of the tree's threads (ns).
    pub own_ns: u64,
    /// CPU of children reaped by the tree (ns, tick resolution).
    pub reaped_ns: u64,
    /// Threads (or processes) seen at the start and gone at the end.
    pub exited: usize,
    /// Run time of threads that exited inside the window: in `own_ns`
    /// through the process clock, missing from the schedstat sums.
    pub exited_ns: u64,
}

impl CpuDelta {
    pub fn total_ns(&self) -> u64 {
        self.own_ns + self.reaped_ns
    }
}

/// What the tree used between two readings. Threads and processes that
/// appeared in between count from zero (they started inside the window).
pub fn cpu_delta(a: &TreeCpu, b: &TreeCpu) -> CpuDelta {
    let mut d = CpuDelta::default();
    for (pid, pb) in b {
        let pa = a.get(pid);
        let mut threads = 0;
        for (tid, ns) in &pb.threads {
            let before = pa.and_then(|p| p.threads.get(tid)).copied().unwrap_or(0);
            threads += ns.saturating_sub(before);
        }
        let clock = match (pa.map(|p| p.clock_ns), pb.clock_ns) {
            (Some(Some(x)), Some(y)) => Some(y.saturating_sub(x)),
            (None, Some(y)) => Some(y),
            _ => None,
        };
        d.own_ns += clock.unwrap_or(threads);
        d.exited_ns += clock.map_or(0, |c| c.saturating_sub(threads));
        d.reaped_ns += pb.reaped_ns.saturating_sub(pa.map_or(0, |p| p.reaped_ns));
    }
    for (pid, pa) in a {
        d.exited += match b.get(pid) {
            Some(pb) => pa
                .threads
                .keys()
                .filter(|t| !pb.threads.contains_key(t))
                .count(),
            None => 1,
        };
    }
    d
}

pub fn rss_kib(pid: u32) -> u64 {
    status_field(&format!("/proc/{pid}/status"), "VmRSS:").unwrap_or(0)
}

fn status_field(path: &str, key: &str) -> Option<u64> {
    fs::read_to_string(path).ok().and_then(|s| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
    })
}

/// Voluntary context switches of a process tree, every thread of every
/// process (/proc/PID/status alone counts the main thread only).
pub fn tree_wakeups(root: u32) -> u64 {
    tree(root)
        .into_iter()
        .flat_map(|p| tids(p).into_iter().map(move |t| (p, t)))
        .filter_map(|(p, t)| {
            status_field(
                &format!("/proc/{p}/task/{t}/status"),
                "voluntary_ctxt_switches:",
            )
        })
        .sum()
}

#[cfg(test)]
mod tests {
    //! `cargo test --release --example failover -- procs` (no root needed).

    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    fn thread_cpu_ns() -> u64 {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    fn sleeping(tid: u32) -> bool {
        let me = std::process::id();
        fs::read_to_string(format!("/proc/{me}/task/{tid}/stat"))
            .ok()
            .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? == "S"))
            .unwrap_or(false)
    }

    fn wait_sleeping(tid: u32) {
        let end = Instant::now() + Duration::from_secs(5);
        while !sleeping(tid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(sleeping(tid), "thread {tid} never went to sleep");
    }

    /// 3 ms of CPU in one thread reads as 3 ms, not as 0 or 10 ms (a clock
    /// tick); a thread that exits inside the window is reported and its run
    /// time still counted.
    #[test]
    fn procs_reads_a_threads_cpu_in_ns_and_counts_exited_threads() {
        let me = std::process::id();
        let (to_main, from_thread) = mpsc::channel::<u32>();
        let (to_thread, from_main) = mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            let tid = unsafe { libc::gettid() } as u32;
            let _ = to_main.send(tid);
            let _ = from_main.recv();
            let t0 = thread_cpu_ns();
            while thread_cpu_ns() - t0 < 3_000_000 {
                std::hint::spin_loop();
            }
            let _ = to_main.send(tid);
            // Parked until told to exit.
            let _ = from_main.recv();
        });
        let tid = from_thread.recv().expect("tid");
        wait_sleeping(tid);
        let a = tree_cpu(me);
        to_thread.send(()).expect("go");
        from_thread.recv().expect("burnt");
        wait_sleeping(tid);
        let b = tree_cpu(me);
        let ns = |t: &TreeCpu| t[&me].threads[&tid];
        let d = ns(&b) - ns(&a);
        assert!(
            (3_000_000..4_500_000).contains(&d),
            "3 ms of CPU read as {d} ns"
        );
        to_thread.send(()).expect("exit");
        h.join().expect("join");
        let c = tree_cpu(me);
        assert!(!c[&me].threads.contains_key(&tid));
        let gone = cpu_delta(&a, &c);
        assert!(gone.exited >= 1);
        assert!(
            gone.own_ns >= 3_000_000 && gone.exited_ns >= 3_000_000,
            "the exited thread's 3 ms are missing: {gone:?}"
        );
    }

    #[test]
    fn procs_delta_counts_new_threads_and_processes_from_zero() {
        let snap = |v: &[(u32, &[(u32, u64)], u64)]| -> TreeCpu {
            v.iter()
                .map(|(p, ts, r)| {
                    (
                        *p,
                        ProcCpu {
                            clock_ns: None,
                            threads: ts.iter().copied().collect(),
                            reaped_ns: *r,
                        },
                    )
                })
                .collect()
        };
        let a = snap(&[(10, &[(10, 100), (11, 50)], 1000)]);
        let b = snap(&[
            (10, &[(10, 130), (11, 50), (12, 7)], 3000),
            (20, &[(20, 40)], 0),
        ]);
        let d = cpu_delta(&a, &b);
        assert_eq!(d.own_ns, 30 + 7 + 40);
        assert_eq!(d.reaped_ns, 2000);
        assert_eq!(d.exited, 0);
        let gone = snap(&[(10, &[(10, 140)], 3000)]);
        // Threads 11 and 12 of process 10, and process 20.
        assert_eq!(cpu_delta(&b, &gone).exited, 3);
        // With the process clock, an exited thread's time still counts.
        let mut b2 = b.clone();
        let mut gone2 = gone.clone();
        b2.get_mut(&10).expect("10").clock_ns = Some(1_000);
        gone2.get_mut(&10).expect("10").clock_ns = Some(1_025);
        let d = cpu_delta(&b2, &gone2);
        assert_eq!((d.own_ns, d.exited_ns), (25, 15));
    }
}
