//! The control socket under stress (issue 13, point 5): it keeps serving
//! after accept errors (EMFILE), holds a bounded number of connections,
//! answers non-UTF-8 input with an error, is not held up by slow clients,
//! and refuses users other than root, the daemon's and its group's even
//! when the socket's mode would let them in. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, require_root_and_tools, wait_for};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

fn one_node() -> Lab {
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let d = lab.declaration(0, 150, json!({ "web": lab::instance(VIP, json!({})) }));
    lab.start_daemon(0, &d);
    wait_for(Duration::from_secs(5), || {
        lab.cli(0, &["status"]).status.success().then_some(())
    })
    .unwrap_or_else(|| panic!("status never answered:\n{}", lab.daemon_log(0)));
    lab
}

fn socket(lab: &Lab) -> std::path::PathBuf {
    lab.runtime_dir(0).join("control.sock")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Sends `bytes`, returns what the daemon answered (empty if nothing).
fn exchange(lab: &Lab, bytes: &[u8]) -> String {
    let mut s = UnixStream::connect(socket(lab)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(4))).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Times one `nginx-ha status`; whether it succeeded.
fn timed_status(lab: &Lab) -> (bool, Duration) {
    let t = Instant::now();
    let ok = lab.cli(0, &["status"]).status.success();
    (ok, t.elapsed())
}

#[test]
fn accept_errors_do_not_end_the_control_socket() {
    if !require_root_and_tools() {
        return;
    }
    let lab = one_node();
    let pid = lab.daemon_pid(0).unwrap();
    // Room for a few connections more than the daemon holds now; then
    // every further accept fails with EMFILE.
    let limit = open_fds(pid) + 3;
    lab::sh(&[
        "prlimit",
        "--pid",
        &pid.to_string(),
        &format!("--nofile={limit}:{limit}"),
    ]);
    let held: Vec<UnixStream> = (0..40)
        .filter_map(|_| UnixStream::connect(socket(&lab)).ok())
        .collect();
    let log_says = wait_for(Duration::from_secs(3), || {
        lab.daemon_log(0).contains("accept failed").then_some(())
    });
    drop(held);
    // Enough descriptors again: status must work, without a restart.
    let back = wait_for(Duration::from_secs(5), || {
        lab.cli(0, &["status"]).status.success().then_some(())
    });
    assert!(
        back.is_some(),
        "status never answered again after the accept errors:\n{}",
        lab.daemon_log(0)
    );
    assert!(
        log_says.is_some(),
        "no accept error was logged (did EMFILE happen?)"
    );
    let lines = lab.daemon_log(0).matches("accept failed").count();
    assert!(lines <= 2, "accept errors not rate-limited: {lines} lines");
}

#[test]
fn non_utf8_and_oversized_requests_get_an_error_answer() {
    if !require_root_and_tools() {
        return;
    }
    let lab = one_node();
    let a = exchange(&lab, b"stat\xff\xfeus\n");
    assert!(
        a.contains("\"error\"") && a.contains("not UTF-8"),
        "answer: {a:?}"
    );
    let a = exchange(&lab, &[b'x'; 1000]);
    assert!(
        a.contains("\"error\"") && a.contains("longer than"),
        "answer: {a:?}"
    );
    let a = exchange(&lab, b"status\n");
    assert!(a.contains("\"instances\""), "answer: {a:?}");
}

#[test]
fn slow_and_idle_clients_neither_block_status_nor_pile_up() {
    if !require_root_and_tools() {
        return;
    }
    let lab = one_node();
    let pid = lab.daemon_pid(0).unwrap();
    let base = open_fds(pid);
    // A few slow clients, each with half a request.
    let mut slow: Vec<UnixStream> = (0..4)
        .map(|_| UnixStream::connect(socket(&lab)).expect("connect"))
        .collect();
    for s in &mut slow {
        s.write_all(b"sta").unwrap();
    }
    let (ok, took) = timed_status(&lab);
    assert!(
        ok && took < Duration::from_millis(500),
        "status with slow clients: {ok} {took:?}"
    );
    eprintln!("status beside 4 slow clients: {took:?}");
    // Hundreds of idle connections: the daemon holds a bounded number.
    let idle: Vec<UnixStream> = (0..300)
        .filter_map(|_| UnixStream::connect(socket(&lab)).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let held = open_fds(pid).saturating_sub(base);
    eprintln!(
        "{} idle clients connected; the daemon holds {held} more descriptors",
        idle.len()
    );
    assert!(
        held <= 24,
        "the daemon holds {held} connections' descriptors"
    );
    drop(idle);
    drop(slow);
    // The held ones time out (2 s) or close; status is served again.
    let back = wait_for(Duration::from_secs(4), || {
        let (ok, took) = timed_status(&lab);
        (ok && took < Duration::from_millis(500)).then_some(took)
    });
    assert!(
        back.is_some(),
        "status did not recover after the idle clients left"
    );
}

#[test]
fn other_users_are_refused_even_through_a_widened_socket_mode() {
    if !require_root_and_tools() {
        return;
    }
    let lab = one_node();
    // Let nobody reach the socket through the filesystem.
    for d in [
        lab.dir.path().to_path_buf(),
        lab.nodes[0].dir.clone(),
        lab.runtime_dir(0),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(socket(&lab), std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid",
            "65534",
            "--regid",
            "65534",
            "--clear-groups",
            "--",
        ])
        .arg(&lab.daemon_bin)
        .args(["maintenance", "on", "--runtime-dir"])
        .arg(lab.runtime_dir(0))
        .output()
        .expect("setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "nobody switched maintenance on: {err}"
    );
    assert!(err.contains("uid 65534 is not allowed"), "stderr: {err}");
    let st = lab.cli(0, &["status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["maintenance"], false);
    // Root still may.
    assert!(lab.cli(0, &["status"]).status.success());
}
