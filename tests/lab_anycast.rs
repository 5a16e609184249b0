//! Health-gated BGP anycast in a routed namespace lab: a router running
//! BIRD with ECMP (`merge paths`) over BGP + BFD sessions to two nodes,
//! each with real nginx, the real nginx-ha and its own BIRD (Debian's
//! bird2), and a client behind the router that opens a new connection to
//! the service address every 10 ms. Every scenario asserts what the
//! client (or the router) sees. Needs root, nginx, bird2 and nft.

use nginx_ha_lab as lab;

use lab::anycast::{AnycastLab, Sample};
use lab::{ms, require_root_and_tools};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tools() -> bool {
    require_root_and_tools() && {
        let ok = Path::new("/usr/sbin/bird").exists() && Path::new("/usr/sbin/nft").exists();
        if !ok {
            if std::env::var_os("CI").is_some() {
                panic!("the anycast lab needs bird2 and nftables (scripts/setup-debian)");
            }
            eprintln!("SKIPPED: the anycast lab needs /usr/sbin/bird (bird2) and nft");
        }
        ok
    }
}

/// Two nodes with nginx, BIRD and nginx-ha (`anycast` keys merged into
/// each declaration), both announced at the router.
fn two_nodes(anycast: Value) -> AnycastLab {
    let mut a = AnycastLab::new(2, Path::new(env!("CARGO_BIN_EXE_nginx-ha")));
    for i in 0..2 {
        a.lab.start_nginx(i);
        a.start_node_bird(i);
        let d = a.declaration(i, anycast.clone());
        a.lab.start_daemon(i, &d);
    }
    a.wait_nexthops(&[0, 1], Duration::from_secs(20))
        .expect("the router has both nodes as ECMP next hops");
    a
}

fn status(a: &AnycastLab, i: usize) -> Value {
    let out = a.lab.cli(i, &["status", "--json"]);
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// Runs the client while `during` happens; its samples and when `during`
/// acted (what it returns).
fn with_client(
    a: &mut AnycastLab,
    settle: Duration,
    during: impl FnOnce(&mut AnycastLab) -> Instant,
) -> (Vec<Sample>, Instant) {
    let stop = Arc::new(AtomicBool::new(false));
    let client = a.client(ms(10), stop.clone());
    // Samples before the event, to compare with.
    std::thread::sleep(settle);
    let t = during(a);
    stop.store(true, Ordering::SeqCst);
    let samples = client.join().expect("client thread");
    (samples, t)
}

fn served_by(samples: &[Sample], node: usize) -> usize {
    samples.iter().filter(|s| s.node == Some(node)).count()
}

fn failed(samples: &[Sample]) -> usize {
    samples.iter().filter(|s| s.node.is_none()).count()
}

#[test]
fn both_healthy_nodes_share_new_connections() {
    if !tools() {
        return;
    }
    let mut a = two_nodes(json!({}));
    let (samples, _) = with_client(&mut a, Duration::from_secs(1), |_| Instant::now());
    eprintln!(
        "ECMP: {} requests, node0 {}, node1 {}, failed {}",
        samples.len(),
        served_by(&samples, 0),
        served_by(&samples, 1),
        failed(&samples)
    );
    assert!(samples.len() >= 20, "{} samples", samples.len());
    assert_eq!(failed(&samples), 0);
    assert!(served_by(&samples, 0) > 0 && served_by(&samples, 1) > 0);
    let st = status(&a, 0);
    assert_eq!(st["anycast"]["wanted"], json!(true), "{st}");
    assert_eq!(st["anycast"]["birdConnected"], json!(true), "{st}");
    assert_eq!(
        st["anycast"]["protocols"][0]["announced"],
        json!(true),
        "{st}"
    );
}

/// After `t`: how long until every new connection went to `survivor`
/// (start of the last request that did not reach it, minus `t`; zero when
/// none), and how many failed.
fn failover(samples: &[Sample], t: Instant, survivor: usize) -> (Duration, usize) {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= t).collect();
    let last_bad = after.iter().rev().find(|s| s.node != Some(survivor));
    let window = last_bad.map_or(Duration::ZERO, |s| s.at.saturating_duration_since(t));
    (window, after.iter().filter(|s| s.node.is_none()).count())
}

#[test]
fn killing_nginx_moves_new_connections_to_the_other_node() {
    if !tools() {
        return;
    }
    let mut a = two_nodes(json!({}));
    let mut route = None;
    let (samples, killed) = with_client(&mut a, Duration::from_millis(500), |a| {
        let t = Instant::now();
        a.lab.kill_nginx(1);
        route = a.wait_nexthops(&[0], Duration::from_secs(2));
        std::thread::sleep(Duration::from_millis(500));
        t
    });
    let route = route.expect("the router withdrew node1's route");
    let (window, lost) = failover(&samples, killed, 0);
    let before = samples.iter().filter(|s| s.at < killed).count();
    eprintln!(
        "kill -9 nginx: route withdrawn at the router after {route:?}; last request not served by node0 started {window:?} after the kill; {lost} failed of {} after the kill ({before} before)",
        samples.len() - before
    );
    assert!(served_by(&samples[..before], 1) > 0, "node1 served before");
    assert!(
        window <= Duration::from_millis(50),
        "new connections still reached node1 {window:?} after its nginx died"
    );
    // Only requests that started before the route was withdrawn can fail:
    // at one per 10 ms, that is the window's worth.
    assert!(
        lost as u128 <= window.as_millis() / 10 + 1,
        "{lost} failed in a {window:?} window"
    );
    let st = status(&a, 1);
    assert_eq!(st["anycast"]["wanted"], json!(false), "{st}");
    assert_eq!(
        st["anycast"]["protocols"][0]["announced"],
        json!(false),
        "{st}"
    );
}

#[test]
fn maintenance_drains_without_a_failed_request() {
    if !tools() {
        return;
    }
    let mut a = two_nodes(json!({}));
    let (samples, t) = with_client(&mut a, Duration::from_millis(500), |a| {
        let t = Instant::now();
        let out = a.lab.cli(1, &["maintenance", "on"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let took = a.wait_nexthops(&[0], Duration::from_secs(2));
        eprintln!("maintenance on: route withdrawn at the router after {took:?}");
        assert!(took.is_some(), "route of node1 withdrawn");
        std::thread::sleep(Duration::from_millis(500));
        t
    });
    let after: Vec<Sample> = samples.iter().filter(|s| s.at >= t).copied().collect();
    eprintln!(
        "maintenance: {} requests, {} failed, node1 {} before / {} after",
        samples.len(),
        failed(&samples),
        served_by(&samples, 1) - served_by(&after, 1),
        served_by(&after, 1)
    );
    assert_eq!(failed(&samples), 0, "a maintenance drain loses no request");
    let st = status(&a, 1);
    assert_eq!(st["anycast"]["reason"], json!("maintenance mode"), "{st}");
    let out = a.lab.cli(1, &["maintenance", "off"]);
    assert!(out.status.success());
    a.wait_nexthops(&[0, 1], Duration::from_secs(5))
        .expect("node1 announced again after maintenance off");
}

#[test]
fn sigterm_withdraws_then_drains_then_exits() {
    if !tools() {
        return;
    }
    let mut a = two_nodes(json!({ "drain": "1500ms" }));
    let mut exited = None;
    let (samples, t) = with_client(&mut a, Duration::from_millis(500), |a| {
        let t = Instant::now();
        a.lab.signal_daemon(1, libc::SIGTERM);
        let took = a.wait_nexthops(&[0], Duration::from_secs(2));
        eprintln!("SIGTERM: route withdrawn at the router after {took:?}");
        assert!(took.is_some());
        assert!(
            a.lab.nodes[1]
                .daemon
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none()),
            "the daemon still drains"
        );
        let st = a.lab.reap_daemon(1);
        exited = Some((t.elapsed(), st));
        t
    });
    let (after, st) = exited.expect("reaped");
    eprintln!(
        "SIGTERM: exited {after:?} after the signal ({st:?}); {} failed of {}",
        failed(&samples),
        samples.len()
    );
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    assert!(after >= ms(1500), "left before the drain: {after:?}");
    assert!(after < ms(4000), "drain is bounded: {after:?}");
    assert_eq!(failed(&samples), 0);
    assert!(
        samples
            .iter()
            .filter(|s| s.at > t + ms(100))
            .all(|s| s.node == Some(0))
    );
    // The service address stays on lo for in-flight connections.
    let lo = a
        .lab
        .ns_cmd(&a.lab.nodes[1].ns, "ip")
        .args(["-o", "addr", "show", "dev", "lo"])
        .output()
        .expect("ip");
    assert!(String::from_utf8_lossy(&lo.stdout).contains("203.0.113.80/32"));
}

#[test]
fn second_sigterm_cuts_the_drain_short() {
    if !tools() {
        return;
    }
    let mut a = two_nodes(json!({ "drain": "30s" }));
    let t = Instant::now();
    a.lab.signal_daemon(1, libc::SIGTERM);
    a.wait_nexthops(&[0], Duration::from_secs(2))
        .expect("withdrawn");
    a.lab.signal_daemon(1, libc::SIGTERM);
    let st = a.lab.reap_daemon(1);
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}
