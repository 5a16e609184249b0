//! Issue 15's tables: kill-to-GARP, idle CPU per advert interval, and the
//! "Done when" verdicts, nginx-ha next to keepalived in each.

use crate::report::{Report, f1, median_of, ratio, stats, verdict};
use crate::scenarios::{GARP, SetupResult};
use crate::setups::Profile;
use std::fmt::Write as _;

/// nginx-ha's and keepalived's result in a profile (keepalived: the first
/// one run, i.e. vrrp_track_process in fast/fastest, vrrp_script in textbook).
fn pair(rs: &[SetupResult]) -> (Option<&SetupResult>, Option<&SetupResult>) {
    (
        rs.iter().find(|r| r.label.starts_with("nginx-ha")),
        rs.iter().find(|r| r.label.starts_with("keepalived")),
    )
}

fn cpu_pct(r: Option<&SetupResult>, role: usize) -> Option<f64> {
    let fp = r?.footprint.as_ref()?;
    Some((fp.cpu_own_s[role] + fp.cpu_children_s[role]) / fp.window.as_secs_f64() * 100.0)
}

fn wakeups(r: Option<&SetupResult>, role: usize) -> String {
    r.and_then(|r| r.footprint.as_ref())
        .map_or("–".into(), |fp| {
            format!("{:.0}", fp.wakeups[role] as f64 / fp.window.as_secs_f64())
        })
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
        "## Idle CPU per advert interval (% of one core, utime+stime incl. reaped children, {} s window)\n",
        rep.o.window.as_secs()
    );
    let _ = writeln!(
        m,
        "Wake-ups/s = voluntary context switches per second (/proc/PID/status, all the daemon's processes): a count, not swayed by other load the way CPU time is.\n"
    );
    let _ = writeln!(
        m,
        "| profile (adverts) | role | nginx-ha | keepalived | verdict (≤ keepalived) | wake-ups/s nginx-ha | wake-ups/s keepalived |\n|---|---|---|---|---|---|---|"
    );
    for (p, rs) in &rep.results {
        let (nh, ka) = pair(rs);
        for (k, role) in ["master", "backup"].iter().enumerate() {
            let (a, b) = (cpu_pct(nh, k), cpu_pct(ka, k));
            if a.is_none() && b.is_none() {
                continue;
            }
            let pc = |x: Option<f64>| x.map_or("–".into(), |x| format!("{x:.2}"));
            let _ = writeln!(
                m,
                "| {} ({} ms) | {role} | {} | {} | {} | {} | {} |",
                p.name(),
                p.advert().as_millis(),
                pc(a),
                pc(b),
                verdict(a.zip(b).map(|(a, b)| a <= b)),
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
        row(
            format!("kill-to-GARP {} ≤ keepalived's", p.name()),
            med(nh, GARP),
            med(ka, GARP),
            " ms",
        );
        if *p == Profile::Fastest {
            for (k, role) in ["master", "backup"].iter().enumerate() {
                let _ = writeln!(
                    m,
                    "| idle CPU at 10 ms adverts, {role} ≤ keepalived's | {} % | {} % | {} |",
                    cpu_pct(nh, k).map_or("–".into(), |x| format!("{x:.2}")),
                    cpu_pct(ka, k).map_or("–".into(), |x| format!("{x:.2}")),
                    verdict(cpu_pct(nh, k).zip(cpu_pct(ka, k)).map(|(a, b)| a <= b))
                );
            }
        }
    }
    let _ = writeln!(m);
}
