//! The nginx check's stub_status probe against real nginx: one kept-alive
//! connection carries the probes, and nginx closing it (keepalive_timeout,
//! keepalive_requests) is never taken for nginx failing. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, ms, require_root_and_tools, vip, wait_for};
use nginx_ha::health::stub_status::{self, StubStatus};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

/// node0 (priority 150) with `status_directives` in its stub_status
/// server, node1 (100); both checks with `fall` 1 so that a single failed
/// probe shows as a FAULT.
fn pair(status_directives: &str) -> Lab {
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        let extra = if i == 0 { status_directives } else { "" };
        lab.start_nginx_status(i, Path::new("/usr/sbin/nginx"), extra);
        let prio = if i == 0 { 150 } else { 100 };
        let mut d: Value = lab.declaration(
            i,
            prio,
            json!({ "web": lab::instance(lab::VIP, json!({})) }),
        );
        d["checks"]["nginx"]["fall"] = json!(1);
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("node0 never became the only holder");
    lab
}

/// node0's stub_status, read from inside its namespace on a connection
/// of our own.
fn stub(lab: &Lab) -> StubStatus {
    lab::in_netns(&lab.nodes[0].ns, || {
        let mut s = TcpStream::connect_timeout(&"127.0.0.1:8081".parse().expect("addr"), ms(500))
            .expect("connect stub_status");
        s.set_read_timeout(Some(ms(500))).expect("timeout");
        s.write_all(b"GET /nginx_status HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .expect("write");
        let mut buf = String::new();
        s.read_to_string(&mut buf).expect("read");
        let body = buf.split_once("\r\n\r\n").map(|x| x.1).unwrap_or_default();
        stub_status::parse(body).expect("stub_status body")
    })
}

/// Waits until node0's daemon has made `n` more probes; returns how many
/// it made and over how many new connections.
fn daemon_probes(lab: &Lab, n: u64) -> (u64, u64) {
    let before = stub(lab);
    // Each of our readings is a connection and a request of its own.
    let mut ours = 0;
    // At 100 ms per probe, 20 probes take about 2 s.
    let after = wait_for(Duration::from_secs(6), || {
        let s = stub(lab);
        ours += 1;
        (s.requests >= before.requests + ours + n).then_some(s)
    })
    .expect("the daemon stopped probing");
    (
        after.requests - before.requests - ours,
        after.accepts - before.accepts - ours,
    )
}

#[test]
fn stub_status_probes_share_one_connection() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair("");
    let (probes, connections) = daemon_probes(&lab, 20);
    println!("{probes} probes over {connections} new connections");
    assert!(
        connections <= 2,
        "{connections} connections for {probes} probes"
    );
}

#[test]
fn connections_closed_by_nginx_are_retried_not_failures() {
    if !require_root_and_tools() {
        return;
    }
    // nginx closes an idle connection after 30 ms, before every next probe
    // (100 ms apart), and any connection after 3 requests.
    let lab = pair("keepalive_timeout 30ms; keepalive_requests 3;");
    let before = stub(&lab);
    let mut ours = 0;
    let mut lost = Vec::new();
    let after = wait_for(Duration::from_secs(8), || {
        let h = lab.holders(vip());
        if h != vec![0] {
            lost.push(h);
        }
        let s = stub(&lab);
        ours += 1;
        (s.requests >= before.requests + ours + 30).then_some(s)
    })
    .expect("the daemon stopped probing");
    let probes = after.requests - before.requests - ours;
    let connections = after.accepts - before.accepts - ours;
    println!("{probes} probes over {connections} connections");
    let log = lab.daemon_log(0);
    assert!(
        !log.contains("check nginx fails"),
        "a closed keep-alive connection counted as a failure:\n{log}"
    );
    assert!(lost.is_empty(), "node0 lost the VIP: {lost:?}");
    assert!(connections >= 20, "nginx did not close the connections");
}

#[test]
fn first_verdict_at_daemon_start_comes_as_soon_as_nginx_answers() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let mut d: Value =
        lab.declaration(0, 150, json!({ "web": lab::instance(lab::VIP, json!({})) }));
    // The default timing: interval 1 s, rise 2. One probe per interval
    // would need a whole second for the first verdict.
    let c = d["checks"]["nginx"].as_object_mut().expect("check");
    for k in ["interval", "timeout", "rise", "fall"] {
        c.remove(k);
    }
    let t0 = std::time::Instant::now();
    lab.start_daemon(0, &d);
    wait_for(Duration::from_secs(5), || {
        let out = lab.cli(0, &["status", "--json"]);
        let st: Value = serde_json::from_slice(&out.stdout).ok()?;
        (st["checks"][0]["healthy"] == true).then_some(())
    })
    .expect("no healthy verdict");
    let took = t0.elapsed();
    println!("daemon start -> first healthy verdict: {took:?}");
    assert!(took < ms(700), "first verdict after {took:?}");
}

/// Context switches of the daemon's runtime thread(s), which ran every
/// probe before the event loop made the routine ones.
fn io_thread_switches(pid: u32) -> u64 {
    let mut n = 0;
    for t in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .flatten()
    {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if comm.trim() != "nginx-ha-io" {
            continue;
        }
        let status = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
        for line in status.lines() {
            if let Some(v) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                n += v.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    n
}

#[test]
fn routine_probes_ride_on_the_event_loop() {
    if !require_root_and_tools() {
        return;
    }
    let lab = pair("");
    let pid = lab.daemon_pid(0).expect("daemon");
    let switches = io_thread_switches(pid);
    let (probes, _) = daemon_probes(&lab, 20);
    let switched = io_thread_switches(pid) - switches;
    println!("{probes} probes, the runtime's thread woke {switched} times");
    // Made by the check's own thread, each probe woke it twice.
    assert!(
        switched * 4 < probes,
        "{switched} wake-ups of the runtime's thread for {probes} probes"
    );
}

#[test]
fn a_bad_answer_on_the_loops_probe_fails_the_check_and_nginx_back_rises() {
    if !require_root_and_tools() {
        return;
    }
    let dir = tempfile_dir();
    let flag = dir.join("fail");
    let lab = pair(&format!("if (-f {}) {{ return 500; }}", flag.display()));
    // Routine by now (risen, healthy): the next probe is the loop's.
    std::fs::write(&flag, b"").expect("flag");
    let t0 = std::time::Instant::now();
    wait_for(Duration::from_secs(3), || {
        (lab.holders(vip()) == vec![1]).then_some(())
    })
    .expect("a 500 from stub_status never moved the VIP");
    println!("stub_status 500 -> VIP on node1: {:?}", t0.elapsed());
    assert!(t0.elapsed() < ms(1000), "took {:?}", t0.elapsed());
    let log = lab.daemon_log(0);
    assert!(log.contains("answered 500"), "{log}");
    std::fs::remove_file(&flag).expect("unflag");
    wait_for(Duration::from_secs(3), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("node0 never took the VIP back");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("nginx-ha-probe-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp dir");
    d
}
