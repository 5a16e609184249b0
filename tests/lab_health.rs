//! nginx health and the daemon's operating promises, in the namespace lab
//! with real nginx: failover on nginx death and hang, failback, maintenance,
//! reload, capabilities, sd_notify, status, hooks. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, mdi_100ms, ms, require_root_and_tools, skew_100ms, vip, wait_for};
use serde_json::{Value, json};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

fn decl(lab: &Lab, i: usize, extra: &Value) -> Value {
    let prio = if i == 0 { 150 } else { 100 };
    lab.declaration(i, prio, json!({ "web": lab::instance(VIP, extra.clone()) }))
}

fn pair_with(extra: Value) -> Lab {
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
        let d = decl(&lab, i, &extra);
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "node0 never became the only holder: {:?}",
            lab.holders(vip())
        )
    });
    lab.poll_until(vip(), ms(10), Duration::from_secs(3), |b| b == "node0\n")
        .expect("client never got node0's page");
    lab
}

fn served_by(lab: &Lab, node: &'static str, limit: Duration) -> Option<(Instant, u32)> {
    lab.poll_until(vip(), ms(10), limit, move |b| b == node)
}

#[test]
fn kill_nginx_on_master_backup_serves_within_skew_time() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = pair_with(json!({}));
    let start = Instant::now();
    lab.kill_nginx(0);
    let (at, failed) =
        served_by(&lab, "node1\n", Duration::from_secs(3)).expect("backup never served");
    let took = at - start;
    let bound = skew_100ms(100) + ms(100);
    println!(
        "kill -9 nginx -> backup serving: {took:?}, {failed} failed requests (bound {bound:?})"
    );
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
    lab.expect_state(0, "web", "STATE=FAULT");
    assert!(
        lab.daemon_log(0).contains("exited"),
        "the pidfd event was not what caught it"
    );
}

#[test]
fn kill_nginx_on_unicast_pair_fast_takeover() {
    if !require_root_and_tools() {
        return;
    }
    let peers = json!([lab::node_v4(0).to_string(), lab::node_v4(1).to_string()]);
    let mut lab = pair_with(json!({ "unicastPeers": peers }));
    let start = Instant::now();
    lab.kill_nginx(0);
    let (at, failed) =
        served_by(&lab, "node1\n", Duration::from_secs(3)).expect("backup never served");
    let took = at - start;
    println!("unicast pair, kill -9 nginx -> backup serving: {took:?}, {failed} failed requests");
    // No Skew_Time to wait: the only possible successor takes over at once.
    assert!(took <= ms(60), "took {took:?}");
}

#[test]
fn hung_nginx_is_caught_by_the_status_probe() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair_with(json!({}));
    let start = Instant::now();
    lab.signal_nginx(0, libc::SIGSTOP);
    // Workers still run but the master is stopped; stop the workers too so
    // nothing answers, as with a wedged nginx.
    let master = lab.nodes[0].nginx.as_ref().map(|c| c.id()).unwrap_or(0);
    let workers = lab::children_of(master);
    for w in &workers {
        // SAFETY: kill(2) on the workers of the nginx this lab started.
        unsafe { libc::kill(*w as i32, libc::SIGSTOP) };
    }
    wait_for(Duration::from_secs(3), || {
        (!lab.holders(vip()).contains(&0)).then_some(())
    })
    .expect("hung nginx never caught");
    let caught = start.elapsed();
    // interval 100 ms x fall 2 + timeout 50 ms, plus one interval of phase.
    let bound = ms(100 * 2 + 50 + 100 + 50);
    println!("SIGSTOP nginx -> VIP released: {caught:?} (bound {bound:?})");
    assert!(caught <= bound, "caught after {caught:?}");
    served_by(&lab, "node1\n", Duration::from_secs(2)).expect("backup never served");
    for w in &workers {
        // SAFETY: as above.
        unsafe { libc::kill(*w as i32, libc::SIGCONT) };
    }
    lab.signal_nginx(0, libc::SIGCONT);
}

#[test]
fn nginx_back_returns_to_backup_and_preempts_back() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = pair_with(json!({}));
    lab.kill_nginx(0);
    served_by(&lab, "node1\n", Duration::from_secs(3)).expect("backup never served");
    // systemd would restart nginx; the lab does.
    lab.start_nginx(0);
    wait_for(Duration::from_secs(3), || {
        (lab.state(0, "web") == "STATE=BACKUP" || lab.state(0, "web") == "STATE=MASTER")
            .then_some(())
    })
    .expect("node0 never left FAULT after nginx came back");
    served_by(&lab, "node0\n", Duration::from_secs(3)).expect("node0 never preempted back");
    assert!(lab.daemon_log(0).contains("FAULT -> INIT") || lab.daemon_log(0).contains("-> BACKUP"));
}

#[test]
fn preempt_delay_holds_the_failback() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = pair_with(json!({ "preemptDelay": "1500ms" }));
    lab.kill_nginx(0);
    served_by(&lab, "node1\n", Duration::from_secs(3)).expect("backup never served");
    let back = Instant::now();
    lab.start_nginx(0);
    let (at, _) = served_by(&lab, "node0\n", Duration::from_secs(5)).expect("no failback");
    let took = at - back;
    println!("nginx back -> failback with preemptDelay 1.5s: {took:?}");
    assert!(
        took >= ms(1500),
        "preempted after {took:?}, before the delay"
    );
}

#[test]
fn maintenance_moves_the_vip_and_survives_a_restart() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = pair_with(json!({}));
    let out = lab.cli(0, &["maintenance", "on"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    served_by(&lab, "node1\n", Duration::from_secs(2)).expect("maintenance did not hand over");
    let st = lab.cli(0, &["status", "--json"]);
    let st: Value = serde_json::from_slice(&st.stdout).expect("status json");
    assert_eq!(st["maintenance"], true);
    assert_eq!(st["instances"][0]["state"], "FAULT");
    // Restart the daemon: it must stay in maintenance.
    lab.signal_daemon(0, libc::SIGTERM);
    lab.reap_daemon(0);
    let d = decl(&lab, 0, &json!({}));
    lab.start_daemon(0, &d);
    wait_for(Duration::from_secs(3), || {
        (lab.state(0, "web") == "STATE=FAULT").then_some(())
    })
    .expect("restarted daemon forgot maintenance");
    std::thread::sleep(mdi_100ms(150) * 2);
    assert_eq!(
        lab.holders(vip()),
        vec![1],
        "VIP came back during maintenance"
    );
    let out = lab.cli(0, &["maintenance", "off"]);
    assert!(out.status.success());
    served_by(&lab, "node0\n", Duration::from_secs(3)).expect("no failback after maintenance off");
}

#[test]
fn sighup_with_unchanged_instance_does_not_move_the_vip() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair_with(json!({}));
    let before = lab.cli(0, &["status", "--json"]);
    let before: Value = serde_json::from_slice(&before.stdout).expect("status");
    lab.signal_daemon(0, libc::SIGHUP);
    // Watch for 1 s (10 advert intervals): node0 holds the VIP throughout.
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        assert_eq!(lab.holders(vip()), vec![0], "VIP moved during reload");
        std::thread::sleep(ms(20));
    }
    assert!(
        lab.daemon_log(0)
            .contains("reload done: 1 of 1 instance(s) unchanged"),
        "{}",
        lab.daemon_log(0)
    );
    let after = lab.cli(0, &["status", "--json"]);
    let after: Value = serde_json::from_slice(&after.stdout).expect("status");
    assert_eq!(
        before["instances"][0]["lastTransition"]["reason"],
        after["instances"][0]["lastTransition"]["reason"]
    );
    assert_eq!(after["instances"][0]["state"], "MASTER");
}

#[test]
fn sighup_with_changed_priority_restarts_only_that_instance() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair_with(json!({}));
    // Lower node0 below node1: after the reload node1 must take over.
    let mut d = decl(&lab, 0, &json!({}));
    d["node"]["priority"] = json!(50);
    lab.write_declaration(0, &d);
    lab.signal_daemon(0, libc::SIGHUP);
    served_by(&lab, "node1\n", Duration::from_secs(3)).expect("changed priority not applied");
}

#[test]
fn sighup_with_bad_file_keeps_running() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair_with(json!({}));
    let cfg = lab.nodes[0].dir.join("nginx-ha.json");
    std::fs::write(
        &cfg,
        b"{ \"node\": { \"name\": \"node0\", \"priority\": 0 } }",
    )
    .unwrap();
    lab.signal_daemon(0, libc::SIGHUP);
    wait_for(Duration::from_secs(2), || {
        lab.daemon_log(0).contains("reload refused").then_some(())
    })
    .expect("bad reload not refused");
    assert!(
        lab.daemon_log(0)
            .contains("node.priority: 0 is out of 1..=254")
    );
    let st = lab.cli(0, &["status"]);
    assert!(st.status.success(), "daemon stopped answering");
    for _ in 0..10 {
        assert_eq!(lab.holders(vip()), vec![0]);
        std::thread::sleep(ms(50));
    }
}

fn proc_status(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status")
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(str::trim)
        .unwrap_or_else(|| panic!("{key} not in /proc status"))
}

#[test]
fn daemon_keeps_only_net_raw_and_net_admin() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    // The unprivileged user must be able to reach its runtime dir.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for i in 0..2 {
        lab.start_nginx(i);
        std::fs::set_permissions(&lab.nodes[i].dir, std::fs::Permissions::from_mode(0o755))
            .unwrap();
    }
    // node0 as root, node1 switching to nobody; an exec check reports the
    // capabilities a child gets.
    let probe_dir = lab.dir.path().join("probe");
    std::fs::create_dir(&probe_dir).unwrap();
    std::fs::set_permissions(&probe_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let probe = probe_dir.join("child-caps");
    for i in 0..2 {
        let mut d = decl(&lab, i, &json!({}));
        d["checks"]["extra"] = json!({ "caps": {
            "type": "exec",
            "command": ["/bin/sh", "-c", format!("grep -E '^Cap(Eff|Prm|Amb)' /proc/self/status > {}.{i}", probe.display())],
            "interval": "100ms", "timeout": "100ms", "weight": -1
        }});
        let args: &[&str] = if i == 1 { &["--user", "nobody"] } else { &[] };
        lab.start_daemon_with(i, &d, &[], args);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("no master");
    for i in 0..2 {
        let st = proc_status(lab.daemon_pid(i).unwrap());
        assert_eq!(field(&st, "CapEff:"), "0000000000003000", "node{i}");
        assert_eq!(field(&st, "CapPrm:"), "0000000000003000", "node{i}");
        assert_eq!(field(&st, "CapInh:"), "0000000000000000", "node{i}");
        assert_eq!(field(&st, "CapAmb:"), "0000000000000000", "node{i}");
        assert_eq!(field(&st, "CapBnd:"), "0000000000003000", "node{i}");
        assert_eq!(field(&st, "NoNewPrivs:"), "1", "node{i}");
        let child = wait_for(Duration::from_secs(2), || {
            std::fs::read_to_string(format!("{}.{i}", probe.display()))
                .ok()
                .filter(|s| s.contains("CapAmb"))
        })
        .expect("exec check never ran");
        for l in child.lines() {
            assert!(
                l.ends_with("0000000000000000"),
                "node{i}: child has capabilities: {l}"
            );
        }
    }
    let st = proc_status(lab.daemon_pid(1).unwrap());
    let nobody = lab::sh(&["id", "-u", "nobody"]);
    let nobody = String::from_utf8_lossy(&nobody.stdout).trim().to_string();
    assert!(
        field(&st, "Uid:").starts_with(&nobody),
        "not running as nobody: {}",
        field(&st, "Uid:")
    );
}

#[test]
fn notify_socket_gets_ready_status_and_watchdog() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let sock_path = lab.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(ms(200))).unwrap();
    let d = decl(&lab, 0, &json!({}));
    let path = sock_path.display().to_string();
    lab.start_daemon_with(
        0,
        &d,
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "400000")],
        &[],
    );
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let got = wait_for(Duration::from_secs(5), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
        (seen.contains("READY=1")
            && seen.contains("STATUS=web: MASTER")
            && seen.contains("WATCHDOG=1"))
        .then_some(())
    });
    assert!(got.is_some(), "notify messages: {seen}");
    lab.signal_daemon(0, libc::SIGHUP);
    let got = wait_for(Duration::from_secs(3), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
        seen.contains("RELOADING=1").then_some(())
    });
    assert!(got.is_some(), "no RELOADING: {seen}");
    lab.signal_daemon(0, libc::SIGTERM);
    let got = wait_for(Duration::from_secs(3), || {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
        seen.contains("STOPPING=1").then_some(())
    });
    assert!(got.is_some(), "no STOPPING: {seen}");
}

#[test]
fn status_reports_state_checks_nginx_and_counters() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair_with(json!({}));
    let out = lab.cli(0, &["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: Value = serde_json::from_slice(&out.stdout).expect("json");
    let i = &st["instances"][0];
    assert_eq!(i["name"], "web");
    assert_eq!(i["state"], "MASTER");
    assert_eq!(i["priority"], 150);
    assert_eq!(i["masterAddress"], lab::node_v4(0).to_string());
    assert!(i["counters"]["advertsSent"].as_u64().unwrap() > 0);
    assert_eq!(st["checks"][0]["name"], "nginx");
    assert_eq!(st["checks"][0]["healthy"], true);
    assert!(
        st["nginx"]["requests"].as_u64().unwrap() > 0,
        "stub_status not parsed: {st}"
    );
    let b = lab.cli(1, &["status", "--json"]);
    let b: Value = serde_json::from_slice(&b.stdout).expect("json");
    assert_eq!(b["instances"][0]["state"], "BACKUP");
    assert!(
        b["instances"][0]["counters"]["advertsReceived"]
            .as_u64()
            .unwrap()
            > 0
    );
    let human = lab.cli(0, &["status"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("web") && human.contains("MASTER") && human.contains("check nginx"),
        "{human}"
    );
}

#[test]
fn notify_hooks_run_in_order() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let log = lab.dir.path().join("hooks.log");
    let hook = |what: &str| {
        json!([[
            "/bin/sh",
            "-c",
            format!("echo {what} \"$1 $2 $3\" >> {}", log.display()),
            "hook"
        ]])
    };
    for i in 0..2 {
        lab.start_nginx(i);
        let mut d = decl(&lab, i, &json!({}));
        if i == 0 {
            d["notify"] = json!({ "master": hook("master"), "backup": hook("backup"), "fault": hook("fault") });
        }
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("no master");
    lab.kill_nginx(0);
    let want = "backup web BACKUP 150\nmaster web MASTER 150\nfault web FAULT 150\n";
    let got = wait_for(Duration::from_secs(3), || {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|s| s.lines().count() >= 3)
    });
    assert_eq!(got.as_deref(), Some(want));
}

#[test]
fn negative_weight_lowers_priority_and_the_peer_preempts() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let flag = lab.dir.path().join("api-healthy");
    std::fs::write(&flag, b"").unwrap();
    for i in 0..2 {
        lab.start_nginx(i);
        let mut d = decl(&lab, i, &json!({}));
        if i == 0 {
            d["checks"]["extra"] = json!({ "api": {
                "type": "exec", "command": ["/usr/bin/test", "-e", flag],
                "interval": "100ms", "timeout": "100ms", "rise": 1, "fall": 2, "weight": -60
            }});
        }
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("no master");
    std::fs::remove_file(&flag).unwrap();
    // 150 - 60 = 90 < 100: node1 preempts once its Master_Down_Timer runs out.
    served_by(&lab, "node1\n", Duration::from_secs(3)).expect("peer never preempted");
    let st: Value =
        serde_json::from_slice(&lab.cli(0, &["status", "--json"]).stdout).expect("status");
    assert_eq!(st["instances"][0]["effectivePriority"], 90);
    assert_eq!(
        st["instances"][0]["state"], "BACKUP",
        "a weighted check is not a fault"
    );
    std::fs::write(&flag, b"").unwrap();
    served_by(&lab, "node0\n", Duration::from_secs(3))
        .expect("no failback after the check recovered");
}
