//! VRRP on real Linux networking: two nodes and a client in network
//! namespaces, real nginx, the real daemon. Needs root (CI runs it as root).

use nginx_ha_lab as lab;

use lab::{Lab, mdi_100ms, ms, require_root_and_tools, skew_100ms, wait_for};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const VIP4: &str = "192.0.2.100";
const VIP6: &str = "2001:db8::100";

fn vip4() -> IpAddr {
    VIP4.parse().unwrap()
}

/// Two nodes with nginx and the daemon, priorities 150 and 100; waits for
/// node0 to hold the VIP and serve it.
fn pair(vip: &str, extra: impl Fn(usize) -> Value) -> Lab {
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
    }
    for (i, prio) in [(0, 150), (1, 100)] {
        let d = lab.declaration(i, prio, json!({ "web": lab::instance(vip, extra(i)) }));
        lab.start_daemon(i, &d);
    }
    let v: IpAddr = vip.parse().unwrap();
    wait_for(Duration::from_secs(5), || {
        (lab.holders(v) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| panic!("node0 never became the only holder: {:?}", lab.holders(v)));
    let served = lab.poll_until(v, ms(10), Duration::from_secs(3), |b| b == "node0\n");
    assert!(served.is_some(), "client never got node0's page");
    lab
}

fn no_extra(_: usize) -> Value {
    json!({})
}

#[test]
fn a_two_nodes_elect_one_master_and_serve() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair(VIP4, no_extra);
    lab.expect_state(0, "web", "STATE=MASTER");
    lab.expect_state(1, "web", "STATE=BACKUP");
    // And it stays that way: 10 advert intervals, one holder throughout.
    for _ in 0..20 {
        assert_eq!(lab.holders(vip4()), vec![0]);
        std::thread::sleep(ms(50));
    }
    assert_eq!(lab.get(vip4(), ms(500)).as_deref(), Some("node0\n"));
}

#[test]
fn b_sigterm_on_master_backup_serves_within_skew_time() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = pair(VIP4, no_extra);
    let start = Instant::now();
    lab.signal_daemon(0, libc::SIGTERM);
    let (at, _) = lab
        .poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("backup never served");
    let took = at - start;
    assert!(
        lab.reap_daemon(0).is_some_and(|s| s.success()),
        "daemon did not exit cleanly"
    );
    let bound = skew_100ms(100) + ms(100);
    println!("SIGTERM -> backup serving: {took:?} (bound {bound:?})");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    assert!(lab.holders(vip4()) == vec![1], "VIP left behind on node0");
}

#[test]
fn c_sigkill_on_master_backup_serves_within_master_down_interval() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair(VIP4, no_extra);
    let start = Instant::now();
    lab.signal_daemon(0, libc::SIGKILL);
    // The VIP stays on node0 after a crash; remove it as a crashed host's
    // would vanish, so the client cannot reach the dead master by luck.
    lab::sh(&[
        "ip",
        "-n",
        &lab.nodes[0].ns,
        "addr",
        "del",
        &format!("{VIP4}/24"),
        "dev",
        "eth0",
    ]);
    let (at, _) = lab
        .poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("backup never served");
    let took = at - start;
    let bound = mdi_100ms(100) + ms(100);
    println!("SIGKILL -> backup serving: {took:?} (bound {bound:?})");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    assert!(
        took >= mdi_100ms(100) - ms(120),
        "took over too early: {took:?}"
    );
}

#[test]
fn d_link_down_fails_over_and_link_up_preempts_back() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair(VIP4, no_extra);
    lab.set_link(0, false);
    lab.poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("backup never served after link down");
    lab.expect_state(0, "web", "STATE=FAULT");
    assert!(!lab.holders(vip4()).contains(&0), "FAULT node kept the VIP");
    lab.set_link(0, true);
    wait_for(Duration::from_secs(3), || {
        (lab.holders(vip4()) == vec![0]).then_some(())
    })
    .expect("higher priority never preempted back");
    lab.poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node0\n")
        .expect("client never reached node0 again");
}

#[test]
fn d_link_up_does_not_preempt_with_preempt_off() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair(VIP4, |_| json!({ "preempt": false }));
    lab.set_link(0, false);
    lab.poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("backup never served after link down");
    lab.set_link(0, true);
    wait_for(Duration::from_secs(3), || {
        (lab.state(0, "web") == "STATE=BACKUP").then_some(())
    })
    .expect("node0 did not come back as backup");
    // Several Master_Down_Intervals later node1 still holds it.
    std::thread::sleep(mdi_100ms(150) * 3);
    assert_eq!(lab.holders(vip4()), vec![1]);
}

#[test]
fn e_blocked_vrrp_gives_two_masters_and_healing_converges_with_announcements() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair(VIP4, no_extra);
    lab.block_vrrp(1, 0);
    lab.block_vrrp(0, 1);
    wait_for(Duration::from_secs(3), || {
        (lab.holders(vip4()) == vec![0, 1]).then_some(())
    })
    .expect("split brain did not happen while VRRP was blocked");
    // Point the client at node1 (its GARP did that), then heal.
    lab.poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("client never followed node1's announcement");
    lab.unblock_vrrp(0);
    lab.unblock_vrrp(1);
    let healed = std::time::Instant::now();
    wait_for(mdi_100ms(100) + ms(200), || {
        (lab.holders(vip4()) == vec![0]).then_some(())
    })
    .expect("did not converge to one master within a Master_Down_Interval");
    println!("converged {:?} after healing", healed.elapsed());
    // node0's announcements re-point the client without waiting for ARP
    // to expire.
    lab.poll_until(vip4(), ms(10), Duration::from_secs(1), |b| b == "node0\n")
        .expect("client still sent to node1: no announcement");
}

#[test]
fn f_ipv6_vip_elects_serves_and_fails_over() {
    if !require_root_and_tools() {
        return;
    }
    let v6: IpAddr = VIP6.parse().unwrap();
    let lab = pair(VIP6, no_extra);
    let start = Instant::now();
    lab.signal_daemon(0, libc::SIGTERM);
    let (at, _) = lab
        .poll_until(v6, ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("IPv6 backup never served");
    let took = at - start;
    println!("IPv6 SIGTERM -> backup serving: {took:?}");
    assert!(took <= skew_100ms(100) + ms(100), "took {took:?}");
}

#[test]
fn g_unicast_pair_elects_and_fails_over() {
    if !require_root_and_tools() {
        return;
    }
    let peers = json!([lab::node_v4(0).to_string(), lab::node_v4(1).to_string()]);
    let lab = pair(
        VIP4,
        |i| json!({ "unicastPeers": peers, "unicastSource": lab::node_v4(i).to_string() }),
    );
    let start = Instant::now();
    lab.signal_daemon(0, libc::SIGTERM);
    let (at, _) = lab
        .poll_until(vip4(), ms(10), Duration::from_secs(3), |b| b == "node1\n")
        .expect("unicast backup never served");
    let took = at - start;
    println!("unicast SIGTERM -> backup serving: {took:?}");
    // A unicast pair takes over at once on priority 0 (fastTakeover auto).
    assert!(took <= ms(100), "took {took:?}");
}

#[test]
fn h_stale_vip_is_cleaned_at_start() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
    }
    // A crash left the VIP on node1.
    lab::sh(&[
        "ip",
        "-n",
        &lab.nodes[1].ns,
        "addr",
        "add",
        &format!("{VIP4}/24"),
        "dev",
        "eth0",
    ]);
    let d1 = lab.declaration(1, 100, json!({ "web": lab::instance(VIP4, json!({})) }));
    lab.start_daemon(1, &d1);
    wait_for(Duration::from_secs(2), || {
        lab.daemon_log(1)
            .contains("removing stale VIP")
            .then_some(())
    })
    .expect("stale VIP not reported");
    let d0 = lab.declaration(0, 150, json!({ "web": lab::instance(VIP4, json!({})) }));
    lab.start_daemon(0, &d0);
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip4()) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| panic!("holders {:?}", lab.holders(vip4())));
}

#[test]
fn vip_add_failure_is_a_fault_not_a_silent_master() {
    if !require_root_and_tools() {
        return;
    }
    let v6: IpAddr = VIP6.parse().unwrap();
    // node1 is the preferred master here; node0 waits as backup.
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for (i, prio) in [(1, 150), (0, 100)] {
        lab.start_nginx(i);
        let d = lab.declaration(i, prio, json!({ "web": lab::instance(VIP6, json!({})) }));
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(v6) == vec![1]).then_some(())
    })
    .expect("node1 never became master");
    // The kernel now refuses IPv6 addresses on node0's eth0.
    lab::sh(&[
        "ip",
        "netns",
        "exec",
        &lab.nodes[0].ns,
        "sysctl",
        "-qw",
        "net.ipv6.conf.eth0.disable_ipv6=1",
    ]);
    lab.signal_daemon(1, libc::SIGTERM);
    wait_for(Duration::from_secs(3), || {
        lab.daemon_log(0).contains("cannot add VIP").then_some(())
    })
    .expect("node0 never tried to take over");
    wait_for(Duration::from_secs(1), || {
        (lab.state(0, "web") == "STATE=FAULT").then_some(())
    })
    .unwrap_or_else(|| panic!("node0 is {} without its VIP", lab.state(0, "web")));
    assert!(lab.holders(v6).is_empty());
}

/// IPv4 and IPv6 instances on the same interface: the loop reads both
/// families' sockets into one set of buffers, and an IPv6 advert must
/// still find room for its hop limit and destination after an IPv4 one
/// (the kernel shrinks a reused header's control length; reused headers
/// had every IPv6 advert dropped as `bad_ip_header` and both nodes
/// master of the IPv6 instance).
#[test]
fn i_dual_stack_instances_both_stay_backup_on_the_backup() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
    }
    for (i, prio) in [(0, 150), (1, 100)] {
        let d = lab.declaration(
            i,
            prio,
            json!({
                "web4": lab::instance(VIP4, json!({})),
                "web6": lab::instance(VIP6, json!({ "virtualRouterId": 52 })),
            }),
        );
        lab.start_daemon(i, &d);
    }
    let v6: IpAddr = VIP6.parse().unwrap();
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip4()) == vec![0] && lab.holders(v6) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "node0 never the only holder: v4 {:?}, v6 {:?}",
            lab.holders(vip4()),
            lab.holders(v6)
        )
    });
    // Well past a Master_Down_Interval (~360 ms) of adverts of both
    // families: node1 must have heard node0 on both all along.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        assert_eq!(lab.holders(v6), vec![0], "node1 took the IPv6 VIP");
        assert_eq!(lab.holders(vip4()), vec![0], "node1 took the IPv4 VIP");
        std::thread::sleep(ms(20));
    }
    let st = lab.cli(1, &["status", "--json"]);
    let st: Value = serde_json::from_slice(&st.stdout).expect("json");
    assert!(st["dropped"].get("bad_ip_header").is_none(), "{st}");
    for inst in st["instances"].as_array().expect("instances") {
        assert_eq!(inst["state"], "BACKUP", "{inst}");
        assert!(
            inst["counters"]["advertsReceived"].as_u64().unwrap_or(0) > 5,
            "{inst}"
        );
    }
}

/// The voluntary context switches of process `pid`'s main thread (the
/// daemon's event loop): how often it slept and was woken.
fn loop_wakeups(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).expect("status");
    s.lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("voluntary_ctxt_switches")
}

fn adverts_received(lab: &Lab, i: usize) -> u64 {
    let out = lab.cli(i, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("status --json");
    v["instances"][0]["counters"]["advertsReceived"]
        .as_u64()
        .unwrap_or_else(|| panic!("no advertsReceived in {v}"))
}

#[test]
fn i_a_backup_reads_the_masters_repeats_late_and_still_takes_over_in_time() {
    if !require_root_and_tools() {
        return;
    }
    // 10 ms adverts: a backup that woke for each would wake 100 times a
    // second; reading the unchanged repeats when Master_Down_Interval
    // (36 ms) is due, about 30.
    let lab = pair(VIP4, |_| json!({ "version": 3, "advertInterval": "10ms" }));
    lab.expect_state(1, "web", "STATE=BACKUP");
    let pid = lab.daemon_pid(1).expect("node1's daemon");
    let log0 = lab.daemon_log(1).len();
    let (w0, r0, t0) = (loop_wakeups(pid), adverts_received(&lab, 1), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let (w1, r1) = (loop_wakeups(pid), adverts_received(&lab, 1));
    let secs = t0.elapsed().as_secs_f64();
    let wakeups = (w1 - w0) as f64 / secs;
    let received = (r1 - r0) as f64 / secs;
    println!("backup: {wakeups:.0} wake-ups/s, {received:.0} adverts/s counted");
    assert!(
        wakeups < 60.0,
        "{wakeups:.0} wake-ups/s: woken by every advert"
    );
    // Every repeat is still handed to the node (late, at most one
    // Master_Down_Interval), so the counters keep up.
    assert!(received > 70.0, "only {received:.0} adverts/s counted");
    // Never mistaken for a dead master: node1 stayed BACKUP throughout.
    let log = lab.daemon_log(1);
    let during = log.get(log0..).unwrap_or_default();
    assert_eq!(during.matches("-> MASTER").count(), 0, "{log}");
    assert_eq!(lab.holders(vip4()), vec![0]);
    // A master that dies silently is still noticed after
    // Master_Down_Interval, measured from its last advert's arrival.
    let start = Instant::now();
    lab.signal_daemon(0, libc::SIGKILL);
    wait_for(Duration::from_secs(2), || {
        lab.holders(vip4()).contains(&1).then_some(())
    })
    .expect("node1 never took the VIP");
    let took = start.elapsed();
    println!("SIGKILL -> node1 holds the VIP: {took:?}");
    assert!(
        took >= ms(20),
        "took over before three adverts were missed: {took:?}"
    );
}
