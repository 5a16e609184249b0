//! Files the daemon reads that are not regular files (issue 13, point 4):
//! a FIFO or /dev/zero as the declaration on SIGHUP, as nginx's pidfile,
//! as the VRRPv2 password file. Each is refused with an error naming the
//! path, and the daemon keeps advertising and answering `status` (a FIFO
//! used to freeze the event loop: no adverts, two masters; /dev/zero grew
//! memory without end). Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, require_root_and_tools, vip, wait_for};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn mkfifo(p: &Path) {
    let _ = std::fs::remove_file(p);
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// `status --json` of node `i`, and how long it took; None when it failed.
fn timed_status(lab: &Lab, i: usize) -> (Option<Value>, Duration) {
    let t = Instant::now();
    let mut c = std::process::Command::new(&lab.daemon_bin);
    c.args(["status", "--json", "--runtime-dir"])
        .arg(lab.runtime_dir(i))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = c.spawn().expect("spawn status");
    let st = wait_for(Duration::from_secs(5), || child.try_wait().ok().flatten());
    if st.is_none() {
        let _ = child.kill();
    }
    let _ = child.wait();
    let took = t.elapsed();
    let mut out = Vec::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_end(&mut out);
    }
    (
        st.filter(|s| s.success())
            .and_then(|_| serde_json::from_slice(&out).ok()),
        took,
    )
}

fn two_nodes() -> Lab {
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    start_pair(&mut lab);
    lab
}

/// node0 (priority 150) and node1 (100) with one instance, until node0
/// alone serves and node1 is BACKUP.
fn start_pair(lab: &mut Lab) {
    let inst = json!({ "web": lab::instance(VIP, json!({})) });
    for i in 0..2 {
        lab.start_nginx(i);
        let d = lab.declaration(i, if i == 0 { 150 } else { 100 }, inst.clone());
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(6), || {
        (lab.holders(vip()) == vec![0] && lab.state(1, "web") == "STATE=BACKUP").then_some(())
    })
    .expect("node0 never became the only master");
}

/// Watches, every 5 ms until stopped, that node0 alone holds the VIP;
/// returns how many looks saw otherwise.
fn watch_vip(lab: &Lab) -> (Arc<AtomicBool>, std::thread::JoinHandle<u32>) {
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let ns: Vec<String> = lab.nodes.iter().map(|n| n.ns.clone()).collect();
    let h = std::thread::spawn(move || {
        let mut bad = 0;
        while !stop2.load(Ordering::Relaxed) {
            let holds = |ns: &str| {
                let out = std::process::Command::new("ip")
                    .args(["-n", ns, "-o", "addr", "show", "dev", "eth0"])
                    .output()
                    .expect("ip");
                String::from_utf8_lossy(&out.stdout).contains(&format!("{VIP}/"))
            };
            if !holds(&ns[0]) || holds(&ns[1]) {
                bad += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bad
    });
    (stop, h)
}

#[test]
fn fifo_or_dev_zero_as_the_declaration_on_sighup_keeps_one_master() {
    if !require_root_and_tools() {
        return;
    }
    let lab = two_nodes();
    let cfg = lab.nodes[0].dir.join("nginx-ha.json");
    let (stop, watcher) = watch_vip(&lab);
    let mut worst = Duration::ZERO;
    let mut status_failures = Vec::new();
    for (what, make) in [
        (
            "a FIFO (named pipe)",
            Box::new(|p: &Path| mkfifo(p)) as Box<dyn Fn(&Path)>,
        ),
        (
            "a character device",
            Box::new(|p: &Path| {
                let _ = std::fs::remove_file(p);
                std::os::unix::fs::symlink("/dev/zero", p).unwrap();
            }),
        ),
    ] {
        make(&cfg);
        lab.signal_daemon(0, libc::SIGHUP);
        // Over more than a Master_Down_Interval (~0.4 s), status keeps
        // answering at once.
        let until = Instant::now() + Duration::from_millis(800);
        while Instant::now() < until {
            let (st, took) = timed_status(&lab, 0);
            worst = worst.max(took);
            if st.is_none_or(|st| st["instances"][0]["state"] != "MASTER") {
                status_failures.push(format!("after {what}: {took:?}"));
            }
        }
        if !status_failures.is_empty() {
            break;
        }
        let msg = format!("cannot read {}: it is {what}", cfg.display());
        wait_for(Duration::from_secs(3), || {
            lab.daemon_log(0).contains(&msg).then_some(())
        })
        .unwrap_or_else(|| panic!("no refusal naming {what}; log:\n{}", lab.daemon_log(0)));
    }
    stop.store(true, Ordering::Relaxed);
    let bad = watcher.join().unwrap();
    assert_eq!(bad, 0, "the VIP moved or was held twice ({bad} looks)");
    assert!(
        status_failures.is_empty(),
        "status failed or was not MASTER: {status_failures:?}"
    );
    lab.expect_state(1, "web", "STATE=BACKUP");
    assert!(
        worst < Duration::from_millis(500),
        "status took {worst:?} at worst"
    );
    eprintln!("status answered within {worst:?} at worst");
}

#[test]
fn fifo_or_dev_zero_as_the_pidfile_is_refused_and_named() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let fifo = lab.dir.path().join("nginx.pid.fifo");
    mkfifo(&fifo);
    for (pid_file, what) in [
        (fifo.clone(), "a FIFO (named pipe)"),
        ("/dev/zero".into(), "a character device"),
    ] {
        let mut d = lab.declaration(0, 150, json!({ "web": lab::instance(VIP, json!({})) }));
        d["checks"]["nginx"]["pidFile"] = json!(pid_file);
        lab.start_daemon(0, &d);
        let want = format!("cannot read {}: it is {what}", pid_file.display());
        let seen = wait_for(Duration::from_secs(5), || {
            let (st, took) = timed_status(&lab, 0);
            assert!(
                took < Duration::from_secs(1),
                "status took {took:?} with {what} as pidFile"
            );
            let st = st?;
            let detail = st["checks"][0]["detail"].as_str()?.to_string();
            (detail.contains(&want) && st["instances"][0]["state"] == "FAULT").then_some(detail)
        });
        assert!(
            seen.is_some(),
            "the nginx check never named {what}; last status: {:?}\nlog:\n{}",
            timed_status(&lab, 0).0,
            lab.daemon_log(0)
        );
        let pid = lab.daemon_pid(0).unwrap();
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
            .unwrap_or_default();
        eprintln!("{what} as pidFile: daemon RSS {rss}");
        lab.signal_daemon(0, libc::SIGTERM);
        assert!(lab.reap_daemon(0).is_some_and(|s| s.success()));
    }
}

#[test]
fn fifo_or_dev_zero_as_the_password_file_fails_start_at_once() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let fifo = lab.dir.path().join("pw.fifo");
    mkfifo(&fifo);
    for (pw, what) in [
        (fifo.clone(), "a FIFO (named pipe)"),
        ("/dev/zero".into(), "a character device"),
    ] {
        let d = lab.declaration(
            0,
            150,
            json!({ "legacy": { "interface": "eth0", "virtualRouterId": 52, "version": 2,
                                "virtualIps": [format!("{VIP}/24")], "authPasswordFile": pw } }),
        );
        let t = Instant::now();
        lab.start_daemon(0, &d);
        let st = lab.reap_daemon(0);
        let took = t.elapsed();
        assert!(
            st.is_some_and(|s| !s.success()),
            "{what} as password file: {st:?}"
        );
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let want = format!(
            "instances.legacy.authPasswordFile: cannot read {}: it is {what}",
            pw.display()
        );
        assert!(
            lab.daemon_log(0).contains(&want),
            "log lacks {want:?}:\n{}",
            lab.daemon_log(0)
        );
    }
}

/// Reloads read in a task of their own; a SIGHUP that arrives while one is
/// reading must still be honoured, or the last change is lost. The files
/// are padded near the 1 MiB limit so each read takes a while (tens of ms
/// in a debug build) and the second signal lands during the first read.
#[test]
fn sighup_during_a_reload_read_is_not_lost() {
    if !require_root_and_tools() {
        return;
    }
    let lab = two_nodes();
    let cfg = lab.nodes[0].dir.join("nginx-ha.json");
    let write = |prio: u64| {
        let mut d = lab.declaration(0, 150, json!({ "web": lab::instance(VIP, json!({})) }));
        d["node"]["priority"] = json!(prio);
        let mut bytes = serde_json::to_vec(&d).unwrap();
        bytes.pop();
        bytes.extend(std::iter::repeat_n(b' ', 1_000_000));
        bytes.push(b'}');
        let tmp = cfg.with_extension("tmp");
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
    };
    for round in 0..3u64 {
        let (first, second) = (160 + 2 * round, 161 + 2 * round);
        write(first);
        lab.signal_daemon(0, libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(10));
        write(second);
        lab.signal_daemon(0, libc::SIGHUP);
        let got = wait_for(Duration::from_secs(3), || {
            let (st, _) = timed_status(&lab, 0);
            let p = st?["instances"][0]["priority"].as_u64()?;
            (p == second).then_some(p)
        });
        assert!(
            got.is_some(),
            "round {round}: the second file (priority {second}) was not applied: {:?}",
            timed_status(&lab, 0)
                .0
                .map(|s| s["instances"][0]["priority"].clone())
        );
    }
    // A changed priority restarts the instance; it takes the VIP back.
    let back = wait_for(Duration::from_secs(3), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    });
    assert!(back.is_some(), "holders: {:?}", lab.holders(vip()));
}

/// A state file whose write hangs (a FIFO where its temporary file goes:
/// opening it blocks, as on a hung filesystem) delays that file, not
/// VRRP: the node elects itself and serves, and a SIGTERM still ends it
/// in bounded time (the stop gives up waiting for the files). The loop
/// used to write state files itself and froze before its first advert.
#[test]
fn a_state_file_write_that_hangs_does_not_stop_vrrp() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let run = lab.runtime_dir(0);
    std::fs::create_dir_all(&run).expect("runtime dir");
    mkfifo(&run.join(".web.state.tmp"));
    start_pair(&mut lab);
    assert_eq!(
        lab.get(vip(), Duration::from_secs(2)).as_deref(),
        Some("node0\n")
    );
    let (st, took) = timed_status(&lab, 0);
    let st = st.unwrap_or_else(|| panic!("no status from node0 ({took:?})"));
    assert_eq!(st["instances"][0]["state"], "MASTER");

    lab.signal_daemon(0, libc::SIGTERM);
    let exit = lab.reap_daemon(0).expect("node0 did not exit within 5 s");
    assert!(exit.success(), "node0 exited with {exit}");
    assert!(
        lab.daemon_log(0).contains("state files not all written"),
        "no word of the unwritten state files; log:\n{}",
        lab.daemon_log(0)
    );
    lab.poll_until(
        vip(),
        Duration::from_millis(10),
        Duration::from_secs(3),
        |b| b == "node1\n",
    )
    .expect("node1 never took over after node0 stopped");
}
