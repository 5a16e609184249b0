//! systemd-level twins of the NixOS VM tests (vm-tests/): each node is a
//! Debian systemd-nspawn container running the shipped unit file, Debian's
//! nginx under systemd and the freshly built daemon. See tests/nspawn/mod.rs
//! for the harness and vm-tests/README.md for which VM subtest each one
//! mirrors. Needs root, debootstrap and systemd-container (CI installs
//! them); fails under CI=1 when it cannot run, says SKIPPED otherwise.

#[path = "nspawn/mod.rs"]
mod harness;
mod lab;

use harness::{NodeSetup, NspawnLab, default_setup, failover_bound, ms, require};
use std::time::{Duration, Instant};

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// failover: one master at start — node0 (150) holds the VIP, node1 (100)
/// does not, the client gets node0's page through the VIP; the daemon runs
/// as a non-root user with exactly CAP_NET_RAW + CAP_NET_ADMIN.
#[test]
fn failover_one_master_at_start() {
    let Some(root) = require() else { return };
    let t = Instant::now();
    let lab = NspawnLab::boot(&root);
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    // And it stays that way for 20 advert intervals.
    for _ in 0..20 {
        assert_eq!(lab.holders(), vec![0], "VIP moved while nothing happened");
        std::thread::sleep(ms(100));
    }
    eprintln!("failover_one_master_at_start: {}", secs(t.elapsed()));
}

/// failover: stop nginx-ha — `systemctl stop nginx-ha` on the master: its
/// priority-0 advert lets node1 take over after Skew_Time, and node0 has
/// dropped the VIP. Then `systemctl start nginx-ha`: node0 is master again
/// (preempt, after preemptDelay).
#[test]
fn failover_stop_nginx_ha() {
    let Some(root) = require() else { return };
    let t0 = Instant::now();
    let lab = NspawnLab::boot(&root);
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    let mut stop = lab
        .cmd(0, &["systemctl", "stop", "--no-block", "nginx-ha"])
        .spawn()
        .expect("systemctl stop");
    let served = lab.served_by(1, Duration::from_secs(5));
    let _ = stop.wait();
    let (at, failed) = served.expect("client never got node1's page after stopping node0's daemon");
    let took = at - t;
    eprintln!(
        "failover_stop_nginx_ha: node1 serves {} after `systemctl stop` ({failed} failed requests), bound {}",
        secs(took),
        secs(failover_bound())
    );
    assert!(
        took <= failover_bound(),
        "takeover took {} > {}",
        secs(took),
        secs(failover_bound())
    );
    assert!(
        lab::wait_for(Duration::from_secs(3), || (lab.holders() == vec![1])
            .then_some(()))
        .is_some(),
        "node0 kept the VIP after stopping: {:?}",
        lab.holders()
    );
    lab.ok(0, &["systemctl", "start", "nginx-ha"]);
    lab.wait_single_master(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("after start: {e}"));
    eprintln!("failover_stop_nginx_ha: {}", secs(t0.elapsed()));
}

/// The negative control: the same unit with CAP_NET_RAW removed (a
/// drop-in on node0) must make the start-up promises fail — the daemon
/// cannot open its raw VRRP socket and never becomes master — while the
/// harness itself still works (node1 becomes master and serves).
#[test]
fn negative_control_without_cap_net_raw_fails() {
    let Some(root) = require() else { return };
    let lab = NspawnLab::boot_with(&root, |i| {
        let mut s: NodeSetup = default_setup(i);
        if i == 0 {
            s.files.push((
                "/etc/systemd/system/nginx-ha.service.d/no-net-raw.conf".into(),
                "[Service]\nAmbientCapabilities=\nAmbientCapabilities=CAP_NET_ADMIN\n\
                 CapabilityBoundingSet=\nCapabilityBoundingSet=CAP_NET_ADMIN\n"
                    .into(),
            ));
        }
        s
    });
    let r = lab.check_started(Duration::from_secs(8));
    let err = r.expect_err("the start-up promises held without CAP_NET_RAW: the check is blind");
    eprintln!("negative control: the check failed as it must: {err}");
    // The harness worked: node1 is the single holder and serves.
    assert!(
        lab::wait_for(Duration::from_secs(5), || (lab.holders() == vec![1])
            .then_some(()))
        .is_some(),
        "node1 did not take the VIP: {:?}",
        lab.holders()
    );
    assert!(lab.served_by(1, Duration::from_secs(3)).is_some());
    assert_ne!(lab.state(0, "web"), "STATE=MASTER");
    let j = lab.journal(0);
    eprintln!("node0 journal without CAP_NET_RAW:\n{j}");
}
