//! Child processes (issue 13, point 7): exec checks and notify hooks.
//! A timeout kills the command's whole process group; children get a
//! clean environment and no capabilities, whether the daemon runs as root
//! or unprivileged with ambient capabilities (systemd's way); a flapping
//! instance runs a bounded number of hooks, the last for its current
//! state; the `stop` hook runs on SIGTERM. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, require_root_and_tools, vip, wait_for};
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

fn decl(lab: &Lab, i: usize) -> Value {
    lab.declaration(i, 150, json!({ "web": lab::instance(VIP, json!({})) }))
}

/// Alive and not a zombie.
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

fn pids_in(file: &Path) -> Vec<u32> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Kills what a failed run of the old code leaves behind: only PIDs the
/// test's own script recorded, and only while they are still its sleep.
fn kill_leftovers(pids: &[u32]) {
    for &p in pids {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        if running(p) && cmd.starts_with(b"sleep\x00300") {
            // SAFETY: kill(2) on a sleep the test's script started.
            unsafe { libc::kill(p as i32, libc::SIGKILL) };
        }
    }
}

#[test]
fn exec_check_timeout_kills_the_grandchildren_too() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let pids = lab.dir.path().join("sleeps");
    let mut d = decl(&lab, 0);
    // The shell (the direct child) starts a sleep and waits for it, so the
    // check overruns its timeout every time.
    d["checks"]["extra"] = json!({ "slow": {
        "type": "exec",
        "command": ["/bin/sh", "-c", format!("sleep 300 & echo $! >> {}; wait", pids.display())],
        "interval": "300ms", "timeout": "100ms", "weight": -1
    }});
    lab.start_daemon(0, &d);
    // Every run overruns: by the third, the first timed out long ago.
    let seen = wait_for(Duration::from_secs(5), || {
        (pids_in(&pids).len() >= 3).then_some(())
    });
    let first = pids_in(&pids);
    let early_alive: Vec<u32> = first
        .iter()
        .take(1)
        .copied()
        .filter(|&p| running(p))
        .collect();
    // On SIGTERM the running check is cancelled: its group goes too.
    lab.signal_daemon(0, libc::SIGTERM);
    let _ = lab.reap_daemon(0);
    let all = pids_in(&pids);
    let left = wait_for(Duration::from_secs(2), || {
        all.iter().all(|&p| !running(p)).then_some(())
    });
    let alive: Vec<u32> = all.iter().copied().filter(|&p| running(p)).collect();
    kill_leftovers(&all);
    assert!(
        seen.is_some(),
        "the check never ran three times:\n{}",
        lab.daemon_log(0)
    );
    assert!(
        early_alive.is_empty(),
        "the sleep of the first overrun outlived its timeout: {early_alive:?}"
    );
    assert!(
        left.is_some(),
        "sleeps left running after their checks: {alive:?} of {all:?}"
    );
}

/// A check runs every interval: a command that backgrounds a process and
/// exits would start one more process each time.
#[test]
fn exec_check_leftovers_are_killed_when_it_exits() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let pids = lab.dir.path().join("sleeps");
    let mut d = decl(&lab, 0);
    d["checks"]["extra"] = json!({ "bg": {
        "type": "exec",
        "command": ["/bin/sh", "-c", format!("sleep 300 & echo $! >> {}; exit 0", pids.display())],
        "interval": "100ms", "timeout": "100ms", "weight": -1
    }});
    lab.start_daemon(0, &d);
    let seen = wait_for(Duration::from_secs(5), || {
        (pids_in(&pids).len() >= 3).then_some(())
    });
    // All but the newest run have long exited; the newest may be between
    // its exit and the kill.
    let ran = pids_in(&pids);
    let gone = wait_for(Duration::from_secs(2), || {
        ran.iter().all(|&p| !running(p)).then_some(())
    });
    let alive: Vec<u32> = ran.iter().copied().filter(|&p| running(p)).collect();
    lab.signal_daemon(0, libc::SIGTERM);
    let _ = lab.reap_daemon(0);
    kill_leftovers(&pids_in(&pids));
    assert!(
        seen.is_some(),
        "the check never ran three times:\n{}",
        lab.daemon_log(0)
    );
    assert!(
        gone.is_some(),
        "sleeps outlived their checks: {alive:?} of {ran:?}"
    );
}

/// Which capability and environment lines a hook and an exec check saw.
fn probe_command(out: &Path) -> Vec<String> {
    vec![
        "/bin/sh".into(),
        "-c".into(),
        format!(
            "{{ grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status; env; }} > {}.tmp && mv {0}.tmp {0}",
            out.display()
        ),
    ]
}

fn assert_clean(what: &str, text: &str) {
    let mut names = Vec::new();
    for l in text.lines() {
        if l.starts_with("Cap") {
            assert!(
                l.ends_with("0000000000000000"),
                "{what}: a child holds capabilities: {l}\n{text}"
            );
        } else if let Some((k, v)) = l.split_once('=') {
            names.push(k.to_string());
            if k == "PATH" {
                assert_eq!(v, nginx_ha::child::PATH, "{what}");
            }
        }
    }
    // What sh itself sets is allowed; nothing of the daemon's.
    for n in &names {
        assert!(
            ["PATH", "PWD", "SHLVL", "_", "OLDPWD"].contains(&n.as_str()),
            "{what}: the child inherited {n}:\n{text}"
        );
    }
    assert!(
        names.iter().any(|n| n == "PATH"),
        "{what}: no PATH:\n{text}"
    );
}

#[test]
fn children_get_no_daemon_environment_and_no_capabilities() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    // node1 runs unprivileged with ambient capabilities, as systemd starts
    // it; it must reach its files.
    let nobody = 65534;
    std::fs::set_permissions(lab.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = lab.dir.path().join("probe");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o1777)).unwrap();
    for i in 0..2 {
        lab.start_nginx(i);
        let dir = lab.nodes[i].dir.clone();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["run", "state"].iter().filter(|_| i == 1) {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).unwrap();
            std::os::unix::fs::chown(&p, Some(nobody), Some(nobody)).unwrap();
        }
        let mut d = decl(&lab, i);
        d["node"]["priority"] = json!(if i == 0 { 150 } else { 100 });
        d["checks"]["extra"] = json!({ "probe": {
            "type": "exec", "command": probe_command(&out.join(format!("check{i}"))),
            "interval": "100ms", "timeout": "100ms", "weight": -1
        }});
        d["notify"] = json!({ "master": [probe_command(&out.join(format!("hook{i}")))],
                              "backup": [probe_command(&out.join(format!("hook{i}")))] });
        let env = [
            ("NGINX_HA_TEST_SECRET", "leak"),
            ("NOTIFY_SOCKET", "/nonexistent"),
        ];
        if i == 0 {
            lab.start_daemon_with(0, &d, &env, &[]);
        } else {
            let cfg = lab.write_declaration(1, &d);
            let log = std::fs::File::create(dir.join("nginx-ha.log")).unwrap();
            let ns = lab.nodes[1].ns.clone();
            let child = lab
                .ns_cmd(&ns, "/usr/bin/setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .args(["--inh-caps", "+net_raw,+net_admin"])
                .args(["--ambient-caps", "+net_raw,+net_admin", "--"])
                .arg(&lab.daemon_bin)
                .arg("run")
                .arg("--config")
                .arg(&cfg)
                .arg("--runtime-dir")
                .arg(dir.join("run"))
                .arg("--state-dir")
                .arg(dir.join("state"))
                .envs(env)
                .env("NGINX_HA_LOG_STDERR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap();
            lab.nodes[1].daemon = Some(child);
        }
    }
    wait_for(Duration::from_secs(6), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "no single master:\n{}\n{}",
            lab.daemon_log(0),
            lab.daemon_log(1)
        )
    });
    for (i, how) in [(1, "unprivileged with ambient capabilities"), (0, "root")] {
        let st = std::fs::read_to_string(format!("/proc/{}/status", lab.daemon_pid(i).unwrap()))
            .unwrap();
        assert!(
            st.contains("CapPrm:\t0000000000003000"),
            "node{i} ({how}):\n{st}"
        );
        for what in ["check", "hook"] {
            let f = out.join(format!("{what}{i}"));
            let text = wait_for(Duration::from_secs(3), || std::fs::read_to_string(&f).ok())
                .unwrap_or_else(|| panic!("node{i}: no {what} ran:\n{}", lab.daemon_log(i)));
            assert_clean(&format!("node{i} ({how}) {what}"), &text);
        }
    }
}

#[test]
fn flapping_runs_few_hooks_the_last_for_the_current_state_and_stop_runs_on_sigterm() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let runs = lab.dir.path().join("runs");
    let stopped = lab.dir.path().join("stopped");
    // Each hook takes 200 ms, so a flap of 40 transitions in ~2 s would
    // queue ~8 s of hooks for states long gone.
    let hook = |file: &Path| {
        json!([
            "/bin/sh",
            "-c",
            format!("echo $2 >> {}; sleep 0.2", file.display()),
            "hook"
        ])
    };
    let mut d = decl(&lab, 0);
    d["notify"] = json!({
        "master": [hook(&runs)], "backup": [hook(&runs)], "fault": [hook(&runs)],
        "stop": [["/bin/sh", "-c", format!("sleep 0.3; echo $2 > {}", stopped.display()), "hook"]],
        "timeout": "2s"
    });
    lab.start_daemon(0, &d);
    let lines = || {
        std::fs::read_to_string(&runs)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    wait_for(Duration::from_secs(5), || {
        lines().last().is_some_and(|l| l == "MASTER").then_some(())
    })
    .expect("never master");
    let before = lines().len();
    let transitions = |lab: &Lab| lab.daemon_log(0).matches(" -> ").count();
    let t0 = transitions(&lab);
    let flap_start = std::time::Instant::now();
    for k in 0..40 {
        let out = lab.cli(0, &["maintenance", if k % 2 == 0 { "on" } else { "off" }]);
        assert!(out.status.success(), "maintenance: {:?}", out);
        std::thread::sleep(Duration::from_millis(40));
    }
    let flap_time = flap_start.elapsed();
    let flapped = transitions(&lab) - t0;
    // Settles as MASTER after maintenance off; the hooks catch up.
    let settled = wait_for(Duration::from_secs(4), || {
        (lab.state(0, "web") == "STATE=MASTER" && lines().last().is_some_and(|l| l == "MASTER"))
            .then_some(())
    });
    let ran = lines().len() - before;
    eprintln!("{flapped} transitions in {flap_time:?} of flapping; {ran} hook runs");
    assert!(
        flapped >= 30,
        "the instance did not flap: {flapped} transitions"
    );
    assert!(
        settled.is_some(),
        "the last hook is not for the current state: {:?} (state {})",
        lines().iter().rev().take(5).collect::<Vec<_>>(),
        lab.state(0, "web")
    );
    // Each run takes at least 200 ms; with at most one job waiting per
    // instance, the runs fit the flapping time plus the one running, the
    // one waiting and the final MASTER.
    let bound = (flap_time.as_millis() / 200) as usize + 4;
    assert!(
        ran <= bound && ran < flapped / 2,
        "{ran} hook runs for {flapped} transitions in {flap_time:?} (bound {bound}): states long gone were hooked"
    );

    lab.signal_daemon(0, libc::SIGTERM);
    let st = lab.reap_daemon(0);
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    let text = std::fs::read_to_string(&stopped).unwrap_or_default();
    assert_eq!(
        text.trim(),
        "INIT",
        "the stop hook did not run before exit:\n{}",
        lab.daemon_log(0)
    );
}
