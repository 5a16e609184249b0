//! Many instances on one pair (issue 15, point 4): 200 instances, half
//! IPv4, half IPv6, move in one go. Every VIP ends on the new master and
//! none on the old, every state file holds its instance's latest state,
//! and a clean stop leaves INIT in all of them. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, require_root_and_tools, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

const N: usize = 200;

/// Instance j: IPv4 for the first half (192.0.2.20 + j), IPv6 for the
/// rest (2001:db8::1:j); VRIDs 1..=100 in each family.
fn vip(j: usize) -> (IpAddr, u8) {
    if j < N / 2 {
        (format!("192.0.2.{}", 20 + j).parse().expect("v4"), 24)
    } else {
        (format!("2001:db8::1:{:x}", j).parse().expect("v6"), 64)
    }
}

fn name(j: usize) -> String {
    format!("i{j:03}")
}

fn declaration(lab: &Lab, i: usize) -> Value {
    let mut insts = serde_json::Map::new();
    for j in 0..N {
        let (a, len) = vip(j);
        insts.insert(
            name(j),
            json!({
                "interface": "eth0",
                "virtualRouterId": j % (N / 2) + 1,
                "version": 3,
                "virtualIps": [format!("{a}/{len}")],
                "advertInterval": "100ms",
            }),
        );
    }
    lab.declaration(i, if i == 0 { 150 } else { 100 }, Value::Object(insts))
}

/// How many of the instances' VIPs node `i` has on eth0.
fn held(lab: &Lab, i: usize) -> usize {
    let out = std::process::Command::new("ip")
        .args(["-n", &lab.nodes[i].ns, "-o", "addr", "show", "dev", "eth0"])
        .output()
        .expect("ip addr");
    let on: BTreeSet<IpAddr> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|w| w.split('/').next().and_then(|a| a.parse().ok()))
        .collect();
    (0..N).filter(|&j| on.contains(&vip(j).0)).count()
}

/// The instances whose state file on node `i` does not say `state`.
fn not_in(lab: &Lab, i: usize, state: &str) -> Vec<String> {
    let want = format!("STATE={state}");
    (0..N)
        .map(name)
        .filter(|n| lab.state(i, n) != want)
        .collect()
}

#[test]
fn two_hundred_instances_move_together_and_their_state_files_follow() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
        let d = declaration(&lab, i);
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(30), || {
        (held(&lab, 0) == N && held(&lab, 1) == 0 && not_in(&lab, 1, "BACKUP").is_empty())
            .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "node0 never held all {N} VIPs alone: node0 {}, node1 {}, node1 not BACKUP: {:?}",
            held(&lab, 0),
            held(&lab, 1),
            not_in(&lab, 1, "BACKUP")
        )
    });

    // One event resigns all 200 on node0: its answer comes once the loop
    // has carried out the whole batch.
    let t = Instant::now();
    let out = lab.cli(0, &["maintenance", "on"]);
    let took = t.elapsed();
    assert!(out.status.success(), "maintenance on failed: {out:?}");
    println!("maintenance on (200 instances resign, one batch): {took:?}");
    wait_for(Duration::from_secs(10), || {
        (held(&lab, 1) == N && held(&lab, 0) == 0).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "the VIPs did not all move: node0 {}, node1 {}",
            held(&lab, 0),
            held(&lab, 1)
        )
    });
    for j in [0, N / 2 - 1, N / 2, N - 1] {
        let body = lab.get(vip(j).0, Duration::from_secs(2));
        assert_eq!(body.as_deref(), Some("node1\n"), "through {}", vip(j).0);
    }
    // The files follow the burst; each says its instance's latest state.
    wait_for(Duration::from_secs(5), || {
        (not_in(&lab, 0, "FAULT").is_empty() && not_in(&lab, 1, "MASTER").is_empty()).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "state files: node0 not FAULT {:?}, node1 not MASTER {:?}",
            not_in(&lab, 0, "FAULT"),
            not_in(&lab, 1, "MASTER")
        )
    });

    // A clean stop: every instance's stop state is on disk when the
    // process is gone.
    lab.signal_daemon(1, libc::SIGTERM);
    let st = lab.reap_daemon(1).expect("node1 did not exit within 5 s");
    assert!(st.success(), "node1 exited with {st}");
    assert_eq!(
        not_in(&lab, 1, "INIT"),
        Vec::<String>::new(),
        "state files without the stop state"
    );
    assert_eq!(held(&lab, 1), 0, "node1 left VIPs behind");
}
