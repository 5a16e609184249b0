//! Issue 15's tables: kill-to-GARP, idle CPU per advert interval, the
//! footprint, and the "Done when" verdicts, nginx-ha next to keepalived in
//! each.

use crate::footprint::cell;
use crate::report::{Report, f1, median_of, ratio, stats, verdict};
use crate::scenarios::{GARP, SetupResult};
use crate::setups::Profile;
use std::fmt::Write as _;

/// Issue 15 point 3: kill-to-GARP in the default unicast pair.
const PAIR_GARP_MS: f64 = 5.0;

/// nginx-ha's and keepalived's result in a profile (keepalived: the first
/// one run, i.e. vrrp_track_process in fast/fastest, vrrp_script in textbook).
fn pair(rs: &[SetupResult]) -> (Option<&SetupResult>, Option<&SetupResult>) {
    (
        rs.iter().find(|r| r.label.starts_with("nginx-ha")),
        rs.iter().find(|r| r.label.starts_with("keepalived")),
    )
}

/// µs of CPU per second, (median, min, max) over the windows.
fn cpu(r: Option<&SetupResult>, role: usize) -> Option<(f64, f64, f64)> {
    r?.footprint.as_ref()?.cpu_us_per_s(role)
}

fn wakeups(r: Option<&SetupResult>, role: usize) -> String {
    cell(r.and_then(|r| r.footprint.as_ref()?.wakeups_per_s(role)), 0)
}

/// µs of CPU per advert sent (master) or received (backup): one per
/// advert interval.
fn per_advert(s: Option<(f64, f64, f64)>, p: Profile) -> String {
    let a = p.advert().as_secs_f64();
    cell(s.map(|(md, mn, mx)| (md * a, mn * a, mx * a)), 1)
}

/// The verdict on the medians, and whether the windows' ranges overlap
/// (then the machine's noise is as large as the difference).
fn cpu_verdict(a: Option<(f64, f64, f64)>, b: Option<(f64, f64, f64)>) -> String {
    let v = verdict(a.zip(b).map(|(a, b)| a.0 <= b.0));
    match a.zip(b) {
        Some((a, b)) if a.1 <= b.2 && b.1 <= a.2 => format!("{v} (ranges overlap)"),
        _ => v.to_string(),
    }
}

/// nginx-ha's CPU over keepalived's, turn by turn: each turn's two
/// windows come one after the other (`interleave`), so a drift of the
/// machine's load moves both; median (min–max) of the ratios, and in how
/// many turns nginx-ha's was the lower.
fn paired(nh: Option<&SetupResult>, ka: Option<&SetupResult>, role: usize) -> String {
    let (Some(a), Some(b)) = (
        nh.and_then(|r| r.footprint.as_ref()),
        ka.and_then(|r| r.footprint.as_ref()),
    ) else {
        return "–".into();
    };
    let ratios: Vec<f64> = a
        .windows
        .iter()
        .zip(&b.windows)
        .map(|(x, y)| x.cpu_us_per_s(role) / y.cpu_us_per_s(role).max(1e-9))
        .collect();
    let lower = ratios.iter().filter(|r| **r < 1.0).count();
    match crate::footprint::spread(&ratios) {
        Some((md, mn, mx)) => format!(
            "{md:.2} ({mn:.2}–{mx:.2}), lower in {lower} of {}",
            ratios.len()
        ),
        None => "–".into(),
    }
}

fn garp_cell(r: Option<&SetupResult>) -> String {
    match r
        .and_then(|r| r.samples.get(&GARP))
        .filter(|v| !v.is_empty())
    {
        Some(v) => {
            let (mn, md, _, mx) = stats(&v.iter().map(|x| x.ms).collect::<Vec<_>>());
            format!("{md:.1} ({mn:.1}–{mx:.1}, n={})", v.len())
        }
        None => "–".into(),
    }
}

pub fn write_issue15(m: &mut String, rep: &Report) {
    let _ = writeln!(
        m,
        "## Kill-to-GARP: kill -9 of the master's nginx → backup's first gratuitous ARP on the wire\n"
    );
    let _ = writeln!(
        m,
        "Clock read right before the kill(2) (after the PIDs are found); the GARP stamped by the kernel on arrival in the client's namespace (AF_PACKET, SO_TIMESTAMPNS). ms, median (min–max).\n"
    );
    let _ = writeln!(
        m,
        "| profile (adverts) | nginx-ha | keepalived | ratio of medians |\n|---|---|---|---|"
    );
    for (p, rs) in &rep.results {
        let (nh, ka) = pair(rs);
        let _ = writeln!(
            m,
            "| {} ({} ms) | {} | {} ({}) | {} |",
            p.name(),
            p.advert().as_millis(),
            garp_cell(nh),
            garp_cell(ka),
            ka.map_or("–", |k| k.label.as_str()),
            ratio(
                nh.and_then(|r| median_of(r, GARP)),
                ka.and_then(|r| median_of(r, GARP))
            )
        );
    }
    let _ = writeln!(m);

    let _ = writeln!(
        m,
        "## Idle CPU per advert interval (µs of CPU per second; median (min–max) over {} windows of {} s per setup)\n",
        rep.o.cpu_windows,
        rep.o.cpu_window.as_secs()
    );
    let _ = writeln!(
        m,
        "CPU = run time of every thread of every process of the daemon, in ns (/proc/PID/task/TID/schedstat; through the process's CPU clock, so that threads that exit inside a window count too), plus children it reaped (keepalived's check scripts: cutime+cstime, ticks). nginx-ha's and keepalived's windows take turns, each in a freshly started pair. Turn by turn = nginx-ha's window over the keepalived window right after it: the machine's load drifts between turns more than within one. 10 000 µs/s = 1 % of one core. µs/advert = µs/s × the advert interval: per advert sent (master) or received (backup). Wake-ups/s = voluntary context switches per second over all threads: a count, not swayed by other load the way CPU time is.\n"
    );
    let _ = writeln!(
        m,
        "| profile (adverts) | role | nginx-ha µs/s | keepalived µs/s | nginx-ha % core | keepalived % core | verdict (≤ keepalived) | nginx-ha ÷ keepalived, turn by turn | nginx-ha µs/advert | keepalived µs/advert | wake-ups/s nginx-ha | wake-ups/s keepalived |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
    );
    for (p, rs) in &rep.results {
        let (nh, ka) = pair(rs);
        for (k, role) in ["master", "backup"].iter().enumerate() {
            let (a, b) = (cpu(nh, k), cpu(ka, k));
            if a.is_none() && b.is_none() {
                continue;
            }
            let pc = |x: Option<(f64, f64, f64)>| {
                x.map_or("–".into(), |x| format!("{:.3}", x.0 / 1e4))
            };
            let _ = writeln!(
                m,
                "| {} ({} ms) | {role} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.name(),
                p.advert().as_millis(),
                cell(a, 1),
                cell(b, 1),
                pc(a),
                pc(b),
                cpu_verdict(a, b),
                paired(nh, ka, k),
                per_advert(a, *p),
                per_advert(b, *p),
                wakeups(nh, k),
                wakeups(ka, k)
            );
        }
    }
    let _ = writeln!(m);

    let _ = writeln!(m, "## Issue 15 \"Done when\" (from the tables above)\n");
    let _ = writeln!(
        m,
        "| target | nginx-ha | keepalived | verdict |\n|---|---|---|---|"
    );
    for (p, rs) in &rep.results {
        let (nh, ka) = pair(rs);
        let med = |r: Option<&SetupResult>, sc| r.and_then(|r| median_of(r, sc));
        let mut row = |what: String, a: Option<f64>, b: Option<f64>, unit: &str| {
            let _ = writeln!(
                m,
                "| {what} | {}{unit} | {}{unit} | {} |",
                f1(a),
                f1(b),
                verdict(a.zip(b).map(|(a, b)| a <= b))
            );
        };
        if *p != Profile::Fast {
            row(
                format!(
                    "D {}: failback after nginx restarts ≤ keepalived's",
                    p.name()
                ),
                med(nh, 'D'),
                med(ka, 'D'),
                " ms",
            );
            row(
                format!(
                    "E {}: failback after the daemon restarts ≤ keepalived's",
                    p.name()
                ),
                med(nh, 'E'),
                med(ka, 'E'),
                " ms",
            );
        }
        let fmt1 = |v: Option<f64>| v.map_or("–".into(), |x| format!("{x:.1}"));
        let (ga, gk) = (med(nh, GARP), med(ka, GARP));
        let _ = writeln!(
            m,
            "| kill-to-GARP {} ≤ keepalived's | {} ms | {} ms | {} |",
            p.name(),
            fmt1(ga),
            fmt1(gk),
            verdict(ga.zip(gk).map(|(a, b)| a <= b))
        );
        if *p == Profile::Pair {
            let _ = writeln!(
                m,
                "| kill-to-GARP in the default unicast pair ≤ {PAIR_GARP_MS} ms (issue 15 point 3) | {} ms | {} ms | {} |",
                fmt1(ga),
                fmt1(gk),
                verdict(ga.map(|a| a <= PAIR_GARP_MS))
            );
        }
        if *p == Profile::Fastest {
            for (k, role) in ["master", "backup"].iter().enumerate() {
                let (a, b) = (cpu(nh, k), cpu(ka, k));
                let _ = writeln!(
                    m,
                    "| idle CPU at 10 ms adverts, {role} ≤ keepalived's (µs/s, median of the windows; turn by turn: {}) | {} | {} | {} |",
                    paired(nh, ka, k),
                    cell(a, 1),
                    cell(b, 1),
                    cpu_verdict(a, b)
                );
            }
        }
    }
    let _ = writeln!(m);
}

pub fn write_footprint(m: &mut String, rep: &Report) {
    let _ = writeln!(
        m,
        "## Footprint (idle; {} windows of {} s per setup, nginx-ha's and keepalived's in turns)\n",
        rep.o.cpu_windows,
        rep.o.cpu_window.as_secs()
    );
    let _ = writeln!(
        m,
        "RSS summed over every process of the daemon (keepalived: parent + VRRP child + any running check script), sampled every second (mean: median of the windows' means; max: over all windows). CPU: µs per second, median (min–max) over the windows; the daemon's processes (CPU clock, ns: schedstat run time of the live threads plus the threads that exited) and, separately, the children it reaped (keepalived's check scripts; ticks).\n"
    );
    let _ = writeln!(
        m,
        "| setup | role | processes | RSS mean KiB | RSS max KiB | CPU µs/s | of which reaped children µs/s | % of one core (median) |\n|---|---|---|---|---|---|---|---|"
    );
    let mut exited = Vec::new();
    for (_, rs) in &rep.results {
        for r in rs {
            let Some(fp) = &r.footprint else { continue };
            for (k, role) in ["master", "backup"].iter().enumerate() {
                let c = fp.cpu_us_per_s(k);
                let _ = writeln!(
                    m,
                    "| {} | {role} | {} | {} | {} | {} | {} | {} |",
                    r.label,
                    fp.procs(k),
                    f1(fp.rss_mean_kib(k)),
                    fp.rss_max_kib(k),
                    cell(c, 1),
                    cell(fp.reaped_us_per_s(k), 1),
                    c.map_or("–".into(), |c| format!("{:.3}", c.0 / 1e4)),
                );
            }
            let (n, us) = fp.exited();
            if n > 0 {
                exited.push(format!("{} ({n}; {us:.1} µs/s)", r.label));
            }
        }
    }
    if !exited.is_empty() {
        let _ = writeln!(
            m,
            "\nThreads or processes that exited inside a window (how many over all windows; the threads' run time there, median µs/s of master + backup, is counted through the process's CPU clock, a process's through its parent's cutime+cstime): {}.",
            exited.join(", ")
        );
    }
    let _ = writeln!(m);
}
