//! systemd-level twins of the NixOS VM tests (vm-tests/): each node is a
//! Debian systemd-nspawn container running the shipped unit file, Debian's
//! nginx under systemd and the freshly built daemon. See crates/lab/src/nspawn/
//! for the harness and vm-tests/README.md for which VM subtest each one
//! mirrors. Needs root, debootstrap and systemd-container (CI installs
//! them); fails under CI=1 when it cannot run, says SKIPPED otherwise.

use nginx_ha_lab as lab;
use nginx_ha_lab::nspawn as harness;

use harness::{NodeSetup, NspawnLab, default_setup, failover_bound, require};
use lab::ms;
use std::time::{Duration, Instant};

/// The freshly built daemon, copied into every container.
const DAEMON: &str = env!("CARGO_BIN_EXE_nginx-ha");

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
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
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
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
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

/// The negative controls: the same unit with one of its two capabilities
/// removed (a drop-in on node0) must make the start-up promises fail —
/// without CAP_NET_RAW the daemon cannot open its raw VRRP socket, without
/// CAP_NET_ADMIN it cannot add the VIP — while the harness itself still
/// works (node1 becomes the single holder and serves).
fn negative_control(keep: &str, missing: &str) {
    let Some(root) = require() else { return };
    let lab = NspawnLab::boot_with(&root, DAEMON.as_ref(), |i| {
        let mut s: NodeSetup = default_setup(i);
        if i == 0 {
            s.files.push((
                "/etc/systemd/system/nginx-ha.service.d/drop-cap.conf".into(),
                format!(
                    "[Service]\nAmbientCapabilities=\nAmbientCapabilities={keep}\n\
                     CapabilityBoundingSet=\nCapabilityBoundingSet={keep}\n"
                ),
            ));
        }
        s
    });
    let r = lab.check_started(Duration::from_secs(8));
    let err =
        r.expect_err("the start-up promises held with a capability removed: the check is blind");
    eprintln!("negative control (only {keep}): the check failed as it must: {err}");
    assert!(
        lab::wait_for(Duration::from_secs(5), || (lab.holders() == vec![1])
            .then_some(()))
        .is_some(),
        "node1 did not take the VIP: {:?}",
        lab.holders()
    );
    assert!(lab.served_by(1, Duration::from_secs(3)).is_some());
    // Failed for the right reason: the daemon names what it lacks.
    let j = lab.journal(0);
    assert!(
        j.lines()
            .any(|l| l.contains("nginx-ha[") && l.contains(missing)),
        "node0's daemon never said {missing} is missing:\n{j}"
    );
}

#[test]
fn negative_control_without_cap_net_raw_fails() {
    negative_control("CAP_NET_ADMIN", "CAP_NET_RAW");
}

#[test]
fn negative_control_without_cap_net_admin_fails() {
    negative_control("CAP_NET_RAW", "CAP_NET_ADMIN");
}

/// failover: kill nginx + nginx back — `systemctl kill -s KILL nginx` on
/// the master: the daemon sees nginx die (pidfd) and hands over with a
/// priority-0 advert, so the client gets node1's page within the README
/// bound (backup's Skew_Time + 250 ms); systemd restarts nginx (drop-in
/// Restart=always, RestartSec=1) and node0 takes the VIP back after rise
/// and preemptDelay (2 s).
#[test]
fn failover_kill_nginx_and_back() {
    let Some(root) = require() else { return };
    let t0 = Instant::now();
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let restarts_before: u32 = lab.unit_prop(0, "nginx", "NRestarts").parse().unwrap_or(0);
    // nginx's processes, read before the kill: on this host's hybrid cgroup
    // setup systemd's cgroup kill sometimes fails on the workers ("Failed
    // to send signal SIGKILL to auxiliary processes: Input/output error"),
    // and a surviving worker holds port 80 so that the restarted nginx
    // cannot bind. They are killed by PID afterwards, as systemd meant to.
    let nginx_pids = lab.ok(
        0,
        &[
            "sh",
            "-c",
            "m=$(cat /run/nginx.pid); echo $m; ps -o pid= --ppid $m || true",
        ],
    );
    let t = Instant::now();
    let mut kill = lab
        .cmd(0, &["systemctl", "kill", "-s", "KILL", "nginx"])
        .spawn()
        .expect("systemctl kill");
    let served = lab.served_by(1, Duration::from_secs(5));
    let _ = kill.wait();
    let pids: Vec<&str> = nginx_pids
        .split_whitespace()
        .filter(|p| p.parse::<u32>().is_ok())
        .collect();
    if !pids.is_empty() {
        let mut args = vec!["kill", "-KILL"];
        args.extend(pids);
        // Already dead is the normal case: ignore the exit status.
        let _ = lab.cmd(0, &args).output();
    }
    let (at, failed) = served.expect("client never got node1's page after killing node0's nginx");
    let took = at - t;
    eprintln!(
        "failover_kill_nginx: node1 serves {} after `systemctl kill -s KILL nginx` ({failed} failed requests), bound {}",
        secs(took),
        secs(failover_bound())
    );
    assert!(
        took <= failover_bound(),
        "failover took {} > {}",
        secs(took),
        secs(failover_bound())
    );
    // Before systemd restarts nginx (RestartSec=1), node1 is the single master.
    lab.wait_single_master(1, ms(800))
        .unwrap_or_else(|e| panic!("after the kill: {e}"));
    // systemd restarts nginx; node0 takes the VIP back.
    let tb = Instant::now();
    lab.wait_single_master(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("nginx back: {e}"));
    let restarts: u32 = lab.unit_prop(0, "nginx", "NRestarts").parse().unwrap_or(0);
    assert!(
        restarts > restarts_before,
        "systemd did not restart nginx (NRestarts {restarts})"
    );
    assert!(lab.served_by(0, Duration::from_secs(3)).is_some());
    eprintln!(
        "failover_nginx_back: node0 master again {} after the failover; total {}",
        secs(tb.elapsed()),
        secs(t0.elapsed())
    );
}

/// reload with an unchanged declaration: `systemctl reload nginx-ha`
/// (SIGHUP) keeps the master and its VIP — no movement at any time — and
/// the same main PID, and the unit comes back to active.
#[test]
fn reload_unchanged_keeps_vip() {
    let Some(root) = require() else { return };
    let t0 = Instant::now();
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = lab.main_pid(0);
    let mut reload = lab
        .cmd(0, &["systemctl", "reload", "nginx-ha"])
        .spawn()
        .expect("systemctl reload");
    let end = Instant::now() + Duration::from_secs(3);
    let mut samples = 0;
    while Instant::now() < end {
        let h = lab.holders();
        assert_eq!(h, vec![0], "the VIP moved during reload");
        samples += 1;
        std::thread::sleep(ms(20));
    }
    let st = reload.wait().expect("systemctl reload");
    assert!(st.success(), "systemctl reload nginx-ha failed");
    assert_eq!(lab.main_pid(0), pid, "reload restarted the daemon");
    assert_eq!(lab.unit_prop(0, "nginx-ha", "ActiveState"), "active");
    assert_eq!(lab.state(0, "web"), "STATE=MASTER");
    assert_eq!(lab.state(1, "web"), "STATE=BACKUP");
    let j = lab.journal(0);
    assert!(
        j.contains("Reloaded") || j.contains("reload"),
        "no reload in the journal:\n{j}"
    );
    eprintln!(
        "reload_unchanged_keeps_vip: {samples} samples, one holder throughout; {}",
        secs(t0.elapsed())
    );
}

/// tls-maintenance: maintenance on / off — `nginx-ha maintenance on` on
/// node0 moves the VIP to node1; it stays there across
/// `systemctl restart nginx-ha` (persisted in the StateDirectory), and
/// StatusText and `nginx-ha status` say maintenance; `maintenance off`
/// brings node0 back.
#[test]
fn maintenance_persists_across_restart() {
    let Some(root) = require() else { return };
    let t0 = Instant::now();
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    lab.ok(0, &["nginx-ha", "maintenance", "on"]);
    lab.wait_single_master(1, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("maintenance on: {e}"));
    assert!(lab.served_by(1, Duration::from_secs(3)).is_some());
    eprintln!("maintenance on: node1 master after {}", secs(t.elapsed()));
    let pid = lab.main_pid(0);
    lab.ok(0, &["systemctl", "restart", "nginx-ha"]);
    assert_ne!(lab.main_pid(0), pid, "restart kept the old daemon");
    // Longer than preemptDelay (2 s) + rise: node0 would be back by now.
    let end = Instant::now() + Duration::from_secs(4);
    while Instant::now() < end {
        assert_eq!(
            lab.holders(),
            vec![1],
            "the VIP came back across the restart"
        );
        std::thread::sleep(ms(50));
    }
    let text = lab.unit_prop(0, "nginx-ha", "StatusText");
    assert!(
        text.contains("MAINTENANCE"),
        "StatusText after restart: {text:?}"
    );
    let st = lab.ok(0, &["nginx-ha", "status"]);
    assert!(
        st.to_lowercase().contains("maintenance"),
        "`nginx-ha status` does not say maintenance:\n{st}"
    );
    let t = Instant::now();
    lab.ok(0, &["nginx-ha", "maintenance", "off"]);
    lab.wait_single_master(0, Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("maintenance off: {e}"));
    eprintln!(
        "maintenance off: node0 master again after {}; total {}",
        secs(t.elapsed()),
        secs(t0.elapsed())
    );
}

/// The operating promises, seen from inside the containers: StatusText
/// names each instance's state; `nginx-ha status` says master / backup;
/// the journal has the transitions with INSTANCE, STATE, PREVIOUS_STATE,
/// VRRP_PRIORITY and REASON; the watchdog is armed and fed; the main PID runs
/// as a non-root (dynamic) user with exactly CAP_NET_RAW + CAP_NET_ADMIN;
/// `systemd-analyze security nginx-ha` inside scores what the offline
/// analysis of the shipped unit file scores.
#[test]
fn operating_promises_from_inside() {
    let Some(root) = require() else { return };
    let t0 = Instant::now();
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));

    // StatusText: `web: MASTER prio 150` / `web: BACKUP prio 100`.
    for (i, want) in [(0, "web: MASTER prio 150"), (1, "web: BACKUP prio 100")] {
        let got = lab::wait_for(Duration::from_secs(3), || {
            let t = lab.unit_prop(i, "nginx-ha", "StatusText");
            (t == want).then_some(t)
        });
        assert!(
            got.is_some(),
            "node{i} StatusText {:?}, want {want:?}",
            lab.unit_prop(i, "nginx-ha", "StatusText")
        );
        assert_eq!(lab.unit_prop(i, "nginx-ha", "Type"), "notify");
        assert_eq!(lab.unit_prop(i, "nginx-ha", "ActiveState"), "active");
    }
    let s0 = lab.ok(0, &["nginx-ha", "status"]);
    let s1 = lab.ok(1, &["nginx-ha", "status"]);
    assert!(s0.to_uppercase().contains("MASTER"), "node0 status:\n{s0}");
    assert!(s1.to_uppercase().contains("BACKUP"), "node1 status:\n{s1}");
    let js = lab.ok(0, &["nginx-ha", "status", "--json"]);
    serde_json::from_str::<serde_json::Value>(&js)
        .unwrap_or_else(|e| panic!("`nginx-ha status --json` is not JSON ({e}):\n{js}"));

    // journald: the transitions with their structured fields.
    for (i, state, prio) in [(0, "MASTER", "150"), (1, "BACKUP", "100")] {
        let out = lab.ok(
            i,
            &[
                "journalctl",
                "--no-pager",
                "-u",
                "nginx-ha",
                "-o",
                "json",
                "INSTANCE=web",
                &format!("STATE={state}"),
            ],
        );
        let recs: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let r = recs
            .iter()
            .find(|r| r["STATE"] == state && r["INSTANCE"] == "web")
            .unwrap_or_else(|| {
                panic!(
                    "node{i}: no INSTANCE=web STATE={state} record:\n{out}\n{}",
                    lab.journal(i)
                )
            });
        for f in ["PREVIOUS_STATE", "VRRP_PRIORITY", "REASON"] {
            assert!(
                r.get(f).is_some(),
                "node{i}: transition record without {f}: {r}"
            );
        }
        assert_eq!(
            r["VRRP_PRIORITY"].as_str(),
            Some(prio),
            "node{i}: VRRP priority {prio} not logged: {r}"
        );
    }

    // Non-root, exactly the two capabilities (check_started did it for
    // both nodes); the user is a dynamic one.
    let st = lab.main_status(0).unwrap();
    let uid = &st.iter().find(|(k, _)| k == "Uid").unwrap().1;
    let uid: u32 = uid.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        (61184..=65519).contains(&uid),
        "uid {uid} is not a DynamicUser= uid"
    );
    let nnp = &st.iter().find(|(k, _)| k == "NoNewPrivs").unwrap().1;
    assert_eq!(nnp, "1", "no_new_privs not set");

    // The watchdog: armed (10 s from the unit) and fed — the keep-alive
    // timestamp moves, and the service outlives WatchdogSec unrestarted.
    for i in 0..2 {
        assert_eq!(lab.unit_prop(i, "nginx-ha", "WatchdogUSec"), "10s");
    }
    let pid = lab.main_pid(0);
    let w1 = lab.unit_prop(0, "nginx-ha", "WatchdogTimestampMonotonic");
    let fed = lab::wait_for(Duration::from_secs(8), || {
        let w = lab.unit_prop(0, "nginx-ha", "WatchdogTimestampMonotonic");
        (w != w1 && w != "0").then_some(w)
    });
    assert!(
        fed.is_some(),
        "the daemon never fed the watchdog (WatchdogTimestampMonotonic stays {w1})"
    );
    std::thread::sleep(
        Duration::from_secs(11).saturating_sub(t0.elapsed().min(Duration::from_secs(11))),
    );
    assert_eq!(lab.main_pid(0), pid, "the daemon was restarted");
    assert_eq!(lab.unit_prop(0, "nginx-ha", "NRestarts"), "0");

    // systemd-analyze security: the running unit inside agrees with the
    // offline score of the shipped file.
    let offline = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager", harness::UNIT])
        .output()
        .expect("systemd-analyze");
    let offline = exposure(&String::from_utf8_lossy(&offline.stdout))
        .expect("offline systemd-analyze printed no exposure");
    let inside = lab.run(
        0,
        &[
            "systemd-analyze",
            "security",
            "--no-pager",
            "nginx-ha.service",
        ],
    );
    let inside_score = exposure(&inside.stdout).unwrap_or_else(|| {
        panic!(
            "systemd-analyze inside printed no exposure:\n{}{}",
            inside.stdout, inside.stderr
        )
    });
    eprintln!("systemd-analyze security: offline {offline}, inside {inside_score}");
    assert_eq!(
        inside_score, offline,
        "the running unit scores differently from the shipped file:\n{}",
        inside.stdout
    );
    eprintln!("operating_promises_from_inside: {}", secs(t0.elapsed()));
}

/// journald's PRIORITY field is the syslog level (0..7) that `journalctl
/// -p` filters on: the VRRP priority must not land there (it once did, and a
/// transition record carried PRIORITY twice, e.g. ["5", "150"]).
#[test]
fn journald_priority_is_the_syslog_level() {
    let Some(root) = require() else { return };
    let lab = NspawnLab::boot(&root, DAEMON.as_ref());
    lab.check_started(Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = lab.ok(
        0,
        &[
            "journalctl",
            "--no-pager",
            "-u",
            "nginx-ha",
            "-o",
            "json",
            "INSTANCE=web",
            "STATE=MASTER",
        ],
    );
    let r: serde_json::Value = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no INSTANCE=web STATE=MASTER record:\n{out}"));
    let p = r["PRIORITY"]
        .as_str()
        .unwrap_or_else(|| panic!("PRIORITY is not one value: {r}"));
    assert!(
        matches!(p, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7"),
        "{r}"
    );
    assert!(
        r.as_object()
            .unwrap()
            .iter()
            .any(|(k, v)| k != "PRIORITY" && v == "150"),
        "the VRRP priority is in no field of its own: {r}"
    );
}

fn exposure(out: &str) -> Option<String> {
    let l = out.lines().find(|l| l.contains("Overall exposure level"))?;
    let v = l.split(':').nth(1)?.split_whitespace().next()?;
    Some(v.to_string())
}
