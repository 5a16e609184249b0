//! What the benchmark runs on a pair: the open-loop client, failover
//! scenarios A-E and kill-to-GARP.

use crate::footprint::Footprint;
use crate::garp::{ArpCapture, mac_of};
use crate::lab::{Lab, children_of, http_get, in_netns};
use crate::setups::{Daemon, Pair, Setup, keepalived_conf};
use crate::{Opts, POLL_EVERY, REQ_TIMEOUT, VIP, jitter, loadavg, msf, vip};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

// ------------------------------------------------------------- the client

/// Open-loop client from `t0`: a new request (its own TCP connection, 500
/// ms timeout) every 10 ms until one returns `want`. Returns the time from
/// `t0` to that response and how many requests sent before it got no 200
/// at all (a 200 from the other node is not a failure).
/// How long nginx has run before the next kill (see its use).
const UP_BEFORE_KILL: Duration = Duration::from_secs(3);

pub fn poll(
    lab: &Lab,
    t0: Instant,
    want: &'static str,
    limit: Duration,
) -> Option<(Duration, u32)> {
    let addr = SocketAddr::new(vip(), 80);
    in_netns(&lab.client_ns, move || {
        // (sent, got a 200, got `want`, done)
        let (tx, rx) = mpsc::channel::<(Instant, bool, bool, Instant)>();
        let mut res: Vec<(Instant, bool, bool, Instant)> = Vec::new();
        let first =
            |res: &[(Instant, bool, bool, Instant)]| res.iter().filter(|r| r.2).map(|r| r.3).min();
        std::thread::scope(|sc| {
            let mut next = Instant::now();
            while first(&res).is_none() && t0.elapsed() < limit {
                let tx = tx.clone();
                // Threads inherit this thread's network namespace.
                sc.spawn(move || {
                    let sent = Instant::now();
                    let r = http_get(addr, REQ_TIMEOUT);
                    let wanted = r.as_deref() == Some(want);
                    let _ = tx.send((sent, r.is_some(), wanted, Instant::now()));
                });
                next += POLL_EVERY;
                while let Some(rest) = next.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(rest) {
                        Ok(r) => res.push(r),
                        Err(_) => break,
                    }
                }
            }
            drop(tx);
        });
        res.extend(rx.try_iter());
        let f = first(&res)?;
        let failed = res.iter().filter(|r| !r.1 && r.0 <= f).count() as u32;
        Some((f - t0, failed))
    })
}

// ------------------------------------------------------------ scenarios

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ms: f64,
    pub failed: u32,
}

pub const SCENARIOS: [(char, &str); 5] = [
    ('A', "kill -9 of the master's nginx → backup serves"),
    ('B', "SIGTERM of the master's VRRP daemon → backup serves"),
    ('C', "master's link down → backup serves"),
    (
        'D',
        "nginx restarted after A → original master serves again",
    ),
    (
        'E',
        "VRRP daemon restarted after B → original master serves again",
    ),
];

/// Not a client-side scenario: kill -9 of the master's nginx (in A) → the
/// backup's first gratuitous ARP for the VIP on the wire.
pub const GARP: char = 'G';

/// kill -9 of node i's nginx master and workers, as `Lab::kill_nginx`,
/// but with the PIDs found first and the clocks read right before the
/// first kill(2): (monotonic, realtime for the capture's timestamps).
pub fn kill_nginx_timed(lab: &mut Lab, i: usize) -> (Instant, SystemTime) {
    let now = || (Instant::now(), SystemTime::now());
    let Some(mut c) = lab.nodes[i].nginx.take() else {
        return now();
    };
    let workers = children_of(c.id());
    let t = now();
    // SAFETY: kill(2) on the nginx this lab started (not yet reaped) and
    // its workers.
    unsafe {
        libc::kill(c.id() as i32, libc::SIGKILL);
        for w in workers {
            libc::kill(w as i32, libc::SIGKILL);
        }
    }
    let _ = c.wait();
    t
}

#[derive(Default)]
pub struct SetupResult {
    pub label: String,
    pub samples: BTreeMap<char, Vec<Sample>>,
    pub errors: Vec<String>,
    pub footprint: Option<Footprint>,
    pub loads: Vec<String>,
    pub configs: Vec<(String, String)>,
}

pub fn configs_of(p: &Pair) -> Vec<(String, String)> {
    (0..2)
        .map(|i| match p.s.daemon {
            Daemon::NginxHa => (
                format!("node{i} nginx-ha.json"),
                serde_json::to_string_pretty(&p.decls[i]).unwrap_or_default(),
            ),
            Daemon::Keepalived => (format!("node{i} keepalived.conf"), keepalived_conf(i, p.s)),
        })
        .collect()
}

impl SetupResult {
    pub fn new(s: Setup) -> SetupResult {
        SetupResult {
            label: s.label(),
            ..Default::default()
        }
    }
}

/// A freshly started and settled pair of setup `s`; None, with the error
/// in `r`, if it did not start.
pub fn start_pair(s: Setup, r: &mut SetupResult) -> Option<Pair> {
    eprintln!("\n== {} ==", r.label);
    r.loads.push(loadavg());
    let mut p = Pair::new(s);
    if r.configs.is_empty() {
        r.configs = configs_of(&p);
    }
    if let Err(e) = p.start() {
        r.errors.push(format!("did not start: {e}"));
        r.errors
            .push(format!("node0 log tail: {}", tail(&p.log(0), 8)));
        return None;
    }
    Some(p)
}

/// Every run of the scenarios in `scen` on a started pair.
pub fn run_scenarios(p: &mut Pair, r: &mut SetupResult, o: &Opts, scen: &[char]) {
    let has = |c: char| scen.contains(&c);
    if scen.is_empty() {
        return;
    }
    let mac1 = mac_of(&p.lab.nodes[1].ns, "eth0");
    let vip4: Ipv4Addr = VIP.parse().unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut nginx_started: Option<Instant> = None;
    for run in 0..o.runs {
        if has('A') || has('D') {
            // Each kill hits an nginx that has run a while: nginx-ha holds
            // down an nginx that exits within rise × interval (2 s at the
            // defaults) of turning healthy, as a crash loop. Both daemons
            // get the same spacing.
            if let Some(t) = nginx_started {
                std::thread::sleep(UP_BEFORE_KILL.saturating_sub(t.elapsed()));
            }
            jitter();
            let cap = ArpCapture::open(&p.lab.client_ns, "eth0");
            let (t0, wall0) = kill_nginx_timed(&mut p.lab, 0);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(r, 'A', run, d, f),
                None => r.errors.push(format!("run {run} A: backup never served")),
            }
            let garp = match (&cap, mac1) {
                (Ok(c), Some(mac)) => c.first_garp(mac, vip4, wall0, Duration::from_secs(2)),
                _ => None,
            };
            match (garp.and_then(|g| g.duration_since(wall0).ok()), &cap) {
                (Some(d), _) => push(r, GARP, run, d, 0),
                (None, Err(e)) => r.errors.push(format!("run {run} GARP capture: {e}")),
                (None, Ok(_)) => r.errors.push(format!("run {run}: no GARP from node1 seen")),
            }
            jitter();
            let t0 = Instant::now();
            p.start_nginx(0);
            nginx_started = Some(t0);
            match poll(&p.lab, t0, "node0\n", Duration::from_secs(30)) {
                Some((d, f)) => push(r, 'D', run, d, f),
                None => r
                    .errors
                    .push(format!("run {run} D: node0 never served again")),
            }
            if let Err(e) = p.settle("after A/D") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
        if has('B') || has('E') {
            jitter();
            let t0 = Instant::now();
            p.sigterm_daemon(0);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(r, 'B', run, d, f),
                None => r.errors.push(format!("run {run} B: backup never served")),
            }
            p.reap_daemon(0);
            if has('E') {
                // Wait until the backup serves: the poll above saw it.
                jitter();
                let t0 = Instant::now();
                p.start_daemon(0);
                match poll(&p.lab, t0, "node0\n", Duration::from_secs(30)) {
                    Some((d, f)) => push(r, 'E', run, d, f),
                    None => r
                        .errors
                        .push(format!("run {run} E: node0 never served again")),
                }
            } else {
                p.start_daemon(0);
            }
            if let Err(e) = p.settle("after B") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
        if has('C') {
            jitter();
            let t0 = Instant::now();
            p.lab.set_link(0, false);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(r, 'C', run, d, f),
                None => r.errors.push(format!("run {run} C: backup never served")),
            }
            p.lab.set_link(0, true);
            if let Err(e) = p.settle("after C") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
    }
    r.loads.push(loadavg());
}

pub fn push(r: &mut SetupResult, sc: char, run: usize, d: Duration, failed: u32) {
    eprintln!(
        "  {} run {run} {sc}: {:.1} ms, {failed} failed",
        r.label,
        msf(d)
    );
    r.samples
        .entry(sc)
        .or_default()
        .push(Sample { ms: msf(d), failed });
}

pub fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join(" | ")
}
