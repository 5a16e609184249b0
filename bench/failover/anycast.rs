//! Health-gated BGP anycast next to VRRP (issue 17): how soon the router
//! stops (or starts again) sending new connections to a node, and how many
//! requests fail meanwhile.
//!
//! The routed lab of `tests/lab_anycast.rs`: a router with BIRD (ECMP,
//! BGP + BFD 100 ms × 3) and two nodes with nginx, nginx-ha and BIRD.
//! The anycast keys are nginx-ha's defaults (`announceAfter` 1 s, `drain`
//! 5 s); the nginx check is the lab's (100 ms, rise 2 / fall 2, as in the
//! VRRP benchmark's fast profile). The client is the VRRP benchmark's: a
//! new connection to the service address every 10 ms, open loop (each
//! request in its own thread, so a hanging one does not hold the next
//! back), 500 ms timeout; a request fails when it gets no 200 from either
//! node. The time is from the clock read right before the action to the
//! router's kernel route having the expected next hops (polled every ms
//! through `ip route`, a few ms of resolution).

use crate::setups::daemon_bin;
use crate::{POLL_EVERY, REQ_TIMEOUT, jitter, msf};
use nginx_ha_lab as lab;

use lab::anycast::{AnycastLab, SERVICE};
use lab::{http_get, in_netns, wait_for};
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The node whose failures are measured; node 0 keeps serving.
const VICTIM: usize = 1;
/// nginx-ha's default hold-down, which the restart includes.
const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);
/// How long the client goes on after the router changed: requests sent
/// just before may still fail, those after should not.
const TAIL: Duration = Duration::from_millis(300);
const ROUTE_LIMIT: Duration = Duration::from_secs(5);

pub const SCENARIOS: [(&str, &str, &str); 5] = [
    (
        "kill",
        "kill -9 nginx → route withdrawn",
        "A (kill -9 nginx)",
    ),
    (
        "maint",
        "`maintenance on` → route withdrawn",
        "— (VRRP hands the VIP over; not benchmarked)",
    ),
    (
        "term",
        "SIGTERM of nginx-ha (drain) → route withdrawn",
        "B (daemon SIGTERM)",
    ),
    (
        "cut",
        "link cut (packets dropped, BFD) → route withdrawn",
        "C (link down)",
    ),
    (
        "back",
        "nginx restarted → route back (with `announceAfter` 1 s)",
        "D (nginx back → failback)",
    ),
];

#[derive(Clone)]
struct Run {
    ms: f64,
    failed: u32,
    /// When each failed request was sent, in ms relative to the router's
    /// change (negative: before it).
    failed_at: Vec<f64>,
}

/// One request of the client: when it was sent and whether it got a 200.
type Req = (Instant, bool);

/// The open-loop client, in the client namespace, until `stop` (bounded
/// to a minute); every request it sent, once all have returned.
fn client(a: &AnycastLab, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<Req>> {
    let ns = a.lab.client_ns.clone();
    let addr = SocketAddr::new(IpAddr::V4(SERVICE), 80);
    std::thread::spawn(move || {
        in_netns(&ns, move || {
            let (tx, rx) = mpsc::channel::<Req>();
            let end = Instant::now() + Duration::from_secs(60);
            std::thread::scope(|sc| {
                let mut next = Instant::now();
                while !stop.load(Ordering::SeqCst) && Instant::now() < end {
                    let tx = tx.clone();
                    // Threads inherit this thread's network namespace.
                    sc.spawn(move || {
                        let sent = Instant::now();
                        let ok = http_get(addr, REQ_TIMEOUT).is_some();
                        let _ = tx.send((sent, ok));
                    });
                    next += POLL_EVERY;
                    if let Some(rest) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(rest);
                    }
                }
            });
            drop(tx);
            rx.try_iter().collect()
        })
    })
}

/// Runs the client around `act`, which does the action and waits for the
/// router; `act` returns the clock read before the action and the time to
/// the router's change. The failed requests sent from then on.
fn measured(
    a: &mut AnycastLab,
    act: impl FnOnce(&mut AnycastLab) -> Result<(Instant, Duration), String>,
) -> Result<Run, String> {
    let stop = Arc::new(AtomicBool::new(false));
    let c = client(a, stop.clone());
    // The client runs through the pause: requests before the action are
    // the baseline (none may fail).
    jitter();
    let r = act(a);
    if r.is_ok() {
        std::thread::sleep(TAIL);
    }
    stop.store(true, Ordering::SeqCst);
    let reqs = c.join().map_err(|_| "client thread panicked".to_string())?;
    let (t0, took) = r?;
    let early = reqs.iter().filter(|r| r.0 < t0 && !r.1).count();
    if early > 0 {
        return Err(format!("{early} requests failed before the action"));
    }
    let changed = t0 + took;
    let failed_at: Vec<f64> = reqs
        .iter()
        .filter(|r| r.0 >= t0 && !r.1)
        .map(|r| match r.0.checked_duration_since(changed) {
            Some(d) => msf(d),
            None => -msf(changed - r.0),
        })
        .collect();
    Ok(Run {
        ms: msf(took),
        failed: failed_at.len() as u32,
        failed_at,
    })
}

/// Waits for the router to route to `want`; time since `t0`.
fn route(a: &AnycastLab, t0: Instant, want: &[usize], what: &str) -> Result<Duration, String> {
    a.wait_nexthops(want, ROUTE_LIMIT)
        .map(|_| t0.elapsed())
        .ok_or_else(|| {
            format!(
                "{what}: router still at {:?} after {ROUTE_LIMIT:?}",
                a.nexthops()
            )
        })
}

/// nginx-ha's declaration for node `i`: the lab's, with the anycast keys
/// the lab sets for speed removed, so the defaults apply.
fn declaration(a: &AnycastLab, i: usize) -> Value {
    let mut d = a.declaration(i, serde_json::json!({}));
    if let Some(o) = d["anycast"].as_object_mut() {
        o.remove("announceAfter");
        o.remove("drain");
    }
    d
}

fn bfd_up(a: &AnycastLab) -> Result<(), String> {
    wait_for(Duration::from_secs(10), || {
        (a.birdc(0, "show bfd sessions")
            .lines()
            .filter(|l| l.contains(" Up "))
            .count()
            == 2)
            .then_some(())
    })
    .ok_or_else(|| "BFD sessions not both up at the router".to_string())
}

fn both(a: &AnycastLab, what: &str) -> Result<(), String> {
    a.wait_nexthops(&[0, 1], Duration::from_secs(20))
        .map(|_| ())
        .ok_or_else(|| format!("{what}: router never had both nodes again"))
}

type Samples = Vec<(&'static str, Run)>;

fn one_round(a: &mut AnycastLab, decls: &[Value], out: &mut Samples) -> Result<(), String> {
    // kill -9 nginx, then nginx back (VRRP's A then D).
    let r = measured(a, |a| {
        let t0 = Instant::now();
        a.lab.kill_nginx(VICTIM);
        Ok((t0, route(a, t0, &[0], "kill")?))
    })?;
    out.push(("kill", r));
    let r = measured(a, |a| {
        let t0 = Instant::now();
        a.lab.start_nginx(VICTIM);
        Ok((t0, route(a, t0, &[0, 1], "nginx back")?))
    })?;
    out.push(("back", r));

    let r = measured(a, |a| {
        let t0 = Instant::now();
        let o = a.lab.cli(VICTIM, &["maintenance", "on"]);
        if !o.status.success() {
            return Err(format!(
                "maintenance on: {}",
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Ok((t0, route(a, t0, &[0], "maintenance")?))
    })?;
    if r.ms > 100.0 {
        // An outlier: the daemon's view, for whoever reads the run's stderr.
        let log = a.lab.daemon_log(VICTIM);
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        eprintln!(
            "  maintenance withdrawn only after {:.1} ms; node1's log, newest first:\n{}",
            r.ms,
            tail.join("\n")
        );
    }
    out.push(("maint", r));
    let o = a.lab.cli(VICTIM, &["maintenance", "off"]);
    if !o.status.success() {
        return Err("maintenance off failed".into());
    }
    both(a, "maintenance off")?;

    let r = measured(a, |a| {
        let t0 = Instant::now();
        a.lab.signal_daemon(VICTIM, libc::SIGTERM);
        Ok((t0, route(a, t0, &[0], "SIGTERM")?))
    })?;
    out.push(("term", r));
    // The default drain is 5 s; the lab's reap waits 5 s, so wait here.
    if let Some(c) = a.lab.nodes[VICTIM].daemon.as_mut() {
        wait_for(Duration::from_secs(10), || c.try_wait().ok().flatten())
            .ok_or("the daemon did not exit within 10 s of SIGTERM")?;
    }
    a.lab.reap_daemon(VICTIM);
    a.lab.start_daemon(VICTIM, &decls[VICTIM]);
    both(a, "daemon restarted")?;

    bfd_up(a)?;
    let r = measured(a, |a| {
        let t0 = Instant::now();
        a.cut(VICTIM, true);
        Ok((t0, route(a, t0, &[0], "cut")?))
    });
    a.cut(VICTIM, false);
    out.push(("cut", r?));
    both(a, "link back")
}

fn run(runs: usize) -> (Samples, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut a = AnycastLab::new(2, &daemon_bin());
    let decls: Vec<Value> = (0..2).map(|i| declaration(&a, i)).collect();
    for (i, d) in decls.iter().enumerate() {
        a.lab.start_nginx(i);
        a.start_node_bird(i);
        a.lab.start_daemon(i, d);
    }
    if let Err(e) = both(&a, "start") {
        return (out, vec![e]);
    }
    for r in 0..runs {
        if let Err(e) = one_round(&mut a, &decls, &mut out) {
            errors.push(format!("run {r}: {e}"));
            break;
        }
        eprintln!("  anycast run {r} done");
    }
    (out, errors)
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let med = if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (med, v[0], v[v.len() - 1])
}

fn fmt3((med, min, max): (f64, f64, f64), digits: usize) -> String {
    format!("{med:.digits$} | {min:.digits$} | {max:.digits$}")
}

/// The report's section: one row per scenario, or why there is none.
pub fn section(runs: usize) -> String {
    let mut m = format!(
        "## Anycast (BGP + BFD) next to VRRP, {runs} run(s) per scenario\n\n\
         The routed lab of `tests/lab_anycast.rs`: a router namespace with BIRD (ECMP over BGP, BFD 100 ms × 3) and two nodes each with nginx, nginx-ha and BIRD announcing 203.0.113.80/32. \
         nginx-ha's anycast defaults (`announceAfter` 1 s, `drain` 5 s); the lab's nginx check (100 ms, rise 2 / fall 2, as in the fast VRRP profile). \
         Same client as the VRRP scenarios: a new connection every 10 ms, open loop, 500 ms timeout, failed = no 200 from either node, counted from the action until {} ms after the router changed. \
         Time: from the clock read right before the action to the router's kernel route having lost (or regained) node1 as a next hop; each action after a random 0-1 s pause.\n\n",
        TAIL.as_millis()
    );
    if !Path::new("/usr/sbin/bird").exists() || !Path::new("/usr/sbin/nft").exists() {
        m.push_str("Not measured: needs bird2 (/usr/sbin/bird) and nft.\n\n");
        return m;
    }
    let (samples, errors) = run(runs);
    m.push_str("| scenario | VRRP counterpart | n | time median ms | min | max | failed median | min | max |\n|---|---|---|---|---|---|---|---|---|\n");
    for (key, name, vrrp) in SCENARIOS {
        let rs: Vec<Run> = samples
            .iter()
            .filter(|s| s.0 == key)
            .map(|s| s.1.clone())
            .collect();
        if rs.is_empty() {
            m.push_str(&format!("| {name} | {vrrp} | 0 | | | | | | |\n"));
            continue;
        }
        let t = stats(rs.iter().map(|r| r.ms).collect());
        let f = stats(rs.iter().map(|r| f64::from(r.failed)).collect());
        m.push_str(&format!(
            "| {name} | {vrrp} | {} | {} | {} |\n",
            rs.len(),
            fmt3(t, 1),
            fmt3(f, 0)
        ));
        if key == "back" {
            let hold = msf(ANNOUNCE_AFTER);
            m.push_str(&format!(
                "| … of which beyond `announceAfter` (check rise + BGP) | | {} | {} | | | |\n",
                rs.len(),
                fmt3((t.0 - hold, t.1 - hold, t.2 - hold), 1)
            ));
        }
    }
    m.push('\n');
    for (key, name, _) in SCENARIOS {
        let at: Vec<String> = samples
            .iter()
            .filter(|s| s.0 == key)
            .flat_map(|s| s.1.failed_at.iter().map(|v| format!("{v:+.0}")))
            .collect();
        if !at.is_empty() && key != "cut" {
            m.push_str(&format!(
                "- {name}: the failed requests were sent at {} ms relative to the router's change.\n",
                at.join(", ")
            ));
        }
    }
    let drain_failed = samples
        .iter()
        .any(|s| (s.0 == "maint" || s.0 == "term") && s.1.failed > 0);
    if drain_failed {
        m.push_str(
            "\nA request failing on a maintenance or a drain (nginx still serves) was most likely in flight to the node when the router withdrew it: \
             its next packets take the remaining path and the other node resets it (plain hash-threshold ECMP, the caveat in docs/anycast.md); \
             the times above say how close to the withdrawal they were sent.\n",
        );
    }
    m.push_str(
        "\nNext to VRRP (the failover section of this report or docs/benchmarks.md, same client): with VRRP a dead nginx costs the backup's takeover — \
         Skew_Time after the master resigns, about 620 ms with 1 s adverts and 70 ms with 100 ms adverts — and every request \
         sent meanwhile fails, because the VIP has one holder. With anycast the other node serves all along: only new \
         connections the router hashes to the dead node before the withdrawal fail, so a kill or a cut loses about half \
         the requests of the detection time, and a maintenance or a drain (the route goes while nginx still serves) \
         none but the odd request in flight at that moment. The cut is BFD's detection (3 × 100 ms), next to VRRP's Master_Down_Interval (about 3 s, or 300 ms with \
         100 ms adverts). Coming back, anycast waits `announceAfter` by design; the other node serves meanwhile, \
         unlike a VRRP failback, where the VIP moves. The rare failure on a maintenance, a drain or a return is a \
         request in flight at the very moment the router changed its next hops.\n",
    );
    for e in &errors {
        m.push_str(&format!("\nError: {e}\n"));
    }
    m.push('\n');
    m
}
