//! The Markdown report (BENCHMARKS.md): statistics over the runs, the
//! verdicts against issue 7's targets, and the configs used.

use crate::scale::{IFACES, ScaleResult};
use crate::scenarios::{SCENARIOS, SetupResult};
use crate::setups::Profile;
use crate::{Opts, REQ_TIMEOUT, VIP, cmd_out, loadavg, msf};
use std::fmt::Write as _;
use std::fs;

// --------------------------------------------------------------- report

pub fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    // Nearest rank.
    let p95 = s[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
    (s[0], med, p95, s[n - 1])
}

pub fn median_of(r: &SetupResult, sc: char) -> Option<f64> {
    r.samples
        .get(&sc)
        .filter(|v| !v.is_empty())
        .map(|v| stats(&v.iter().map(|x| x.ms).collect::<Vec<_>>()).1)
}
pub fn median_failed(r: &SetupResult, sc: char) -> Option<f64> {
    r.samples
        .get(&sc)
        .filter(|v| !v.is_empty())
        .map(|v| stats(&v.iter().map(|x| x.failed as f64).collect::<Vec<_>>()).1)
}

pub fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**MET**",
        Some(false) => "**MISSED**",
        None => "n/a (no data)",
    }
}

pub fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.0}"))
}

pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        (Some(_), Some(_)) => "–".into(),
        _ => "–".into(),
    }
}

pub struct Report<'a> {
    pub o: &'a Opts,
    pub started: String,
    pub load_start: String,
    pub results: Vec<(Profile, Vec<SetupResult>)>,
    pub scale: Vec<ScaleResult>,
    pub scale_configs: Vec<(String, String)>,
    pub notes: Vec<String>,
    /// Sections that render themselves (e.g. the scrape-storm jitter).
    pub extra: Vec<String>,
}

pub fn git(args: &[&str]) -> String {
    cmd_out("git", &[&["-C", env!("CARGO_MANIFEST_DIR")], args].concat())
}

pub fn write_report(rep: &Report) -> String {
    let o = rep.o;
    let mut m = String::new();
    let rev = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let _ = writeln!(m, "# Benchmarks: nginx-ha and keepalived side by side\n");
    let _ = writeln!(
        m,
        "Written by `bench/failover/` (`sudo scripts/bench`), issue 7. Everything below is from one run.\n"
    );
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(
        m,
        "| date (UTC) | {} → {} |",
        rep.started,
        cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S"])
    );
    let _ = writeln!(m, "| nginx-ha | git {rev}{dirty}, release build |");
    let _ = writeln!(
        m,
        "| keepalived | {} |",
        cmd_out("keepalived", &["--version"])
            .lines()
            .next()
            .unwrap_or("?")
    );
    let _ = writeln!(m, "| nginx | {} |", cmd_out("nginx", &["-v"]));
    let _ = writeln!(m, "| kernel | {} |", cmd_out("uname", &["-sr"]));
    let _ = writeln!(
        m,
        "| machine | {} CPU(s), {cpu}; shared with other users |",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        m,
        "| load (1/5/15 min) | at start {}, at end {} |",
        rep.load_start,
        loadavg()
    );
    let _ = writeln!(
        m,
        "| runs | N = {} per scenario{}; idle CPU {} × {} s windows per setup, nginx-ha's and keepalived's in turns; scale window {} s |",
        o.runs,
        if o.quick { " (`--quick`)" } else { "" },
        o.cpu_windows,
        o.cpu_window.as_secs(),
        o.scale_window.unwrap_or(o.window).as_secs()
    );
    let _ = writeln!(
        m,
        "| client | from its own namespace, a new HTTP/1.0 request (own TCP connection, {} ms timeout) to the VIP every 10 ms, open loop; time = action → first response from the expected node; failed = requests sent before that which got no 200 at all; each timed action comes after a random 0-1 s pause (random phase against the daemons' timers) |",
        REQ_TIMEOUT.as_millis()
    );
    let _ = writeln!(
        m,
        "| p95 | nearest rank (with N = 10 it is the 10th value, i.e. the max) |\n"
    );

    // ---- failover tables
    let _ = writeln!(m, "## Failover\n");
    for (sc, what) in SCENARIOS {
        let _ = writeln!(m, "### {sc}. {what}\n");
        let _ = writeln!(
            m,
            "| setup | n | min ms | median ms | p95 ms | max ms | failed requests median (max) |\n|---|---|---|---|---|---|---|"
        );
        for (_, rs) in &rep.results {
            for r in rs {
                let Some(v) = r.samples.get(&sc).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let (mn, md, p95, mx) = stats(&v.iter().map(|x| x.ms).collect::<Vec<_>>());
                let fails: Vec<f64> = v.iter().map(|x| x.failed as f64).collect();
                let (_, fmed, _, fmax) = stats(&fails);
                let _ = writeln!(
                    m,
                    "| {} | {} | {mn:.0} | {md:.0} | {p95:.0} | {mx:.0} | {fmed:.0} ({fmax:.0}) |",
                    r.label,
                    v.len()
                );
            }
        }
        let _ = writeln!(m);
    }

    // ---- ratios
    let _ = writeln!(m, "### Ratios nginx-ha / keepalived (medians, same run)\n");
    let _ = writeln!(
        m,
        "| profile | keepalived baseline | A time | A failed | B time | C time | D time | E time |\n|---|---|---|---|---|---|---|---|"
    );
    for (prof, rs) in &rep.results {
        let Some(nh) = rs.iter().find(|r| r.label.starts_with("nginx-ha")) else {
            continue;
        };
        for ka in rs.iter().filter(|r| r.label.starts_with("keepalived")) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                prof.name(),
                ka.label,
                ratio(median_of(nh, 'A'), median_of(ka, 'A')),
                ratio(median_failed(nh, 'A'), median_failed(ka, 'A')),
                ratio(median_of(nh, 'B'), median_of(ka, 'B')),
                ratio(median_of(nh, 'C'), median_of(ka, 'C')),
                ratio(median_of(nh, 'D'), median_of(ka, 'D')),
                ratio(median_of(nh, 'E'), median_of(ka, 'E')),
            );
        }
    }
    let _ = writeln!(m);

    crate::report_tables::write_issue15(&mut m, rep);

    crate::report_tables::write_footprint(&mut m, rep);

    for section in &rep.extra {
        m.push_str(section);
    }

    // ---- scale
    if !rep.scale.is_empty() {
        let _ = writeln!(
            m,
            "## Scale (VRRPv3, 100 ms adverts, {} s)\n",
            o.scale_window.unwrap_or(o.window).as_secs()
        );
        let _ = writeln!(
            m,
            "Instances spread over {IFACES} interfaces (eth0-eth{}, each on its own bridge) × IPv4/IPv6 (instance j: eth(j%12/2), IPv6 if j odd, VRID j/12+1; IPv4 VIPs /32); node0 priority 150 (master of all), node1 100. Adverts counted on the wire by nft counters in the bridge namespace (prerouting, per ingress port), the same way for both daemons; expected = instances × the time between the two counter readings (each taken at the middle of its `nft list`; a whole number of 100 ms intervals and 2 ms apart, so that every instance sending on time sends that many or one more, whatever its phase) / 100 ms; nginx-ha's own `status --json` advertsSent alongside (read just after each counter reading, so over a window a few ms off). No health checks in this part (VRRP only). CPU = run time of every thread of the daemon's processes (schedstat, ns; see the footprint). Spurious transitions = state changes logged by either node during the window (must be 0). On time: sent/expected ≥ 0.999.\n",
            IFACES - 1
        );
        let _ = writeln!(
            m,
            "| daemon | instances | expected adverts | on the wire from master | sent/expected | daemon's own count | from backup | CPU master ms (% core) | CPU backup ms (% core) | RSS master/backup KiB | spurious transitions | VIPs held at end (master/backup) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for s in &rep.scale {
            if let Some(e) = &s.error {
                let _ = writeln!(
                    m,
                    "| {} | {} | – | – | – | – | – | – | – | – | – | {e} |",
                    s.daemon, s.n
                );
                continue;
            }
            let pc = |x: f64| x / s.window_s * 100.0;
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {:.3} | {} | {} | {:.1} ({:.2}%) | {:.1} ({:.2}%) | {} / {} | {} | {}/{} |",
                s.daemon,
                s.n,
                s.expected,
                s.wire_master,
                s.wire_master as f64 / s.expected.max(1) as f64,
                s.own_counter.map_or("–".into(), |c| c.to_string()),
                s.wire_backup,
                s.cpu_s[0] * 1000.0,
                pc(s.cpu_s[0]),
                s.cpu_s[1] * 1000.0,
                pc(s.cpu_s[1]),
                s.rss_kib[0],
                s.rss_kib[1],
                s.transitions[0] + s.transitions[1],
                s.held_end[0],
                s.held_end[1],
            );
        }
        let _ = writeln!(m);
    }

    // ---- targets
    let _ = writeln!(m, "## Issue 7 targets (from the tables above)\n");
    let _ = writeln!(m, "| target | measured | verdict |\n|---|---|---|");
    let find = |p: Profile, pre: &str| {
        rep.results
            .iter()
            .filter(|(q, _)| *q == p)
            .flat_map(|(_, rs)| rs.iter())
            .filter(|r| r.label.starts_with(pre))
            .collect::<Vec<_>>()
    };
    let nh_t = find(Profile::Textbook, "nginx-ha").into_iter().next();
    let ka_t = find(Profile::Textbook, "keepalived").into_iter().next();
    let nh_f = find(Profile::Fast, "nginx-ha").into_iter().next();
    // keepalived's fastest working configuration for A.
    let ka_f = find(Profile::Fast, "keepalived")
        .into_iter()
        .filter(|r| median_of(r, 'A').is_some())
        .min_by(|a, b| {
            median_of(a, 'A')
                .partial_cmp(&median_of(b, 'A'))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let med = |r: Option<&SetupResult>, sc| r.and_then(|r| median_of(r, sc));
    let fmed = |r: Option<&SetupResult>, sc| r.and_then(|r| median_failed(r, sc));
    let tb = Profile::Textbook;
    let fa = Profile::Fast;
    let both = |a: Option<f64>, b: Option<f64>, f: &dyn Fn(f64, f64) -> bool| {
        a.zip(b).map(|(a, b)| f(a, b))
    };
    {
        let (a, k) = (med(nh_t, 'A'), med(ka_t, 'A'));
        let _ = writeln!(
            m,
            "| A textbook: nginx-ha median ≤ 1/5 of keepalived's | {} ms vs {} ms (ratio {}) | {} |",
            f1(a),
            f1(k),
            ratio(a, k),
            verdict(both(a, k, &|a, k| a * 5.0 <= k))
        );
        let bound = msf(tb.skew()) + 25.0;
        let _ = writeln!(
            m,
            "| A textbook: nginx-ha median ≤ Skew_Time + 25 ms = {bound:.0} ms | {} ms | {} |",
            f1(a),
            verdict(a.map(|a| a <= bound))
        );
        let (a, k) = (fmed(nh_t, 'A'), fmed(ka_t, 'A'));
        let _ = writeln!(
            m,
            "| A textbook: failed requests ≤ 1/5 of keepalived's | {} vs {} | {} |",
            f1(a),
            f1(k),
            verdict(both(a, k, &|a, k| a * 5.0 <= k))
        );
        let (a, k) = (med(nh_f, 'A'), med(ka_f, 'A'));
        let _ = writeln!(
            m,
            "| A fast: nginx-ha median ≤ 100 ms | {} ms | {} |",
            f1(a),
            verdict(a.map(|a| a <= 100.0))
        );
        let _ = writeln!(
            m,
            "| A fast: no slower than keepalived's fastest ({}) | {} ms vs {} ms | {} |",
            ka_f.map_or("–".to_string(), |r| r.label.clone()),
            f1(a),
            f1(k),
            verdict(both(a, k, &|a, k| a <= k))
        );
    }
    for (p, nh, ka) in [(tb, nh_t, ka_t), (fa, nh_f, ka_f)] {
        let b = med(nh, 'B');
        let bound = msf(p.skew()) + 25.0;
        let _ = writeln!(
            m,
            "| B {}: nginx-ha median ≤ Skew_Time + 25 ms = {bound:.0} ms | {} ms (keepalived {} ms) | {} |",
            p.name(),
            f1(b),
            f1(med(ka, 'B')),
            verdict(b.map(|b| b <= bound))
        );
        let c = med(nh, 'C');
        let bound = msf(p.master_down()) + 25.0;
        let _ = writeln!(
            m,
            "| C {}: nginx-ha median ≤ Master_Down_Interval + 25 ms = {bound:.0} ms | {} ms (keepalived {} ms) | {} |",
            p.name(),
            f1(c),
            f1(med(ka, 'C')),
            verdict(c.map(|c| c <= bound))
        );
        let (d, k) = (med(nh, 'D'), med(ka, 'D'));
        let _ = writeln!(
            m,
            "| D {}: nginx-ha median no slower than keepalived | {} ms vs {} ms | {} |",
            p.name(),
            f1(d),
            f1(k),
            verdict(both(d, k, &|d, k| d <= k))
        );
        let fp = |r: Option<&SetupResult>| r.and_then(|r| r.footprint.clone());
        if let (Some(a), Some(k)) = (fp(nh), fp(ka)) {
            for (i, role) in ["master", "backup"].iter().enumerate() {
                let (ra, rk) = (a.rss_mean_kib(i), k.rss_mean_kib(i));
                let _ = writeln!(
                    m,
                    "| Memory {} {role}: RSS no higher than keepalived's | {} KiB vs {} KiB | {} |",
                    p.name(),
                    f1(ra),
                    f1(rk),
                    verdict(both(ra, rk, &|a, k| a <= k))
                );
                let (ca, ck) = (
                    a.cpu_us_per_s(i).map(|s| s.0),
                    k.cpu_us_per_s(i).map(|s| s.0),
                );
                let _ = writeln!(
                    m,
                    "| Idle CPU {} {role}: no higher than keepalived's (median of the windows) | {} µs/s vs {} µs/s | {} |",
                    p.name(),
                    ca.map_or("–".into(), |x| format!("{x:.1}")),
                    ck.map_or("–".into(), |x| format!("{x:.1}")),
                    verdict(both(ca, ck, &|a, k| a <= k))
                );
            }
        }
    }
    for s in rep.scale.iter().filter(|s| s.daemon == "nginx-ha") {
        let _ = writeln!(
            m,
            "| Scale {} instance(s): zero spurious transitions | {} | {} |",
            s.n,
            if s.error.is_some() {
                "did not converge".to_string()
            } else {
                format!(
                    "{} transitions, VIPs {}/{}",
                    s.transitions[0] + s.transitions[1],
                    s.held_end[0],
                    s.held_end[1]
                )
            },
            verdict(if s.error.is_some() {
                Some(false)
            } else {
                Some(s.transitions == [0, 0] && s.held_end == [s.n, 0])
            })
        );
    }
    let _ = writeln!(m);

    // ---- errors and notes
    let errs: Vec<String> = rep
        .results
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.label)))
        .collect();
    if !errs.is_empty() || !rep.notes.is_empty() {
        let _ = writeln!(m, "## Errors and notes from this run\n");
        for e in errs.iter().chain(rep.notes.iter()) {
            let _ = writeln!(m, "- {e}");
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(
        m,
        "## Load during each block (1/5/15 min, before → after)\n"
    );
    for (_, rs) in &rep.results {
        for r in rs {
            let _ = writeln!(m, "- {}: {}", r.label, r.loads.join(" → "));
        }
    }
    for s in &rep.scale {
        let _ = writeln!(m, "- scale {} × {}: {}", s.daemon, s.n, s.load);
    }
    let _ = writeln!(m);

    // ---- configs
    let _ = writeln!(
        m,
        "## Exact configurations (node0; node1 differs only in name/router_id and priority 100)\n"
    );
    let _ = writeln!(
        m,
        "nginx in every node: `daemon off; master_process on; worker_processes 1;`, a server on port 80 answering `nodeN`, and `stub_status` on 127.0.0.1:8081 (`crates/lab/src/lab.rs`). Priorities 150/100, VRID 51, VIP {VIP}/24, preemption on, in both daemons; multicast except in the pair profile (unicast between the two nodes).\n"
    );
    for (_, rs) in &rep.results {
        for r in rs {
            if let Some((name, text)) = r.configs.first() {
                let lang = if name.ends_with(".json") { "json" } else { "" };
                let _ = writeln!(
                    m,
                    "<details><summary>{} — {name}</summary>\n\n```{lang}\n{text}\n```\n</details>\n",
                    r.label
                );
            }
        }
    }
    for (name, text) in &rep.scale_configs {
        let _ = writeln!(
            m,
            "<details><summary>scale — {name}</summary>\n\n```\n{text}\n```\n</details>\n"
        );
    }
    m
}
