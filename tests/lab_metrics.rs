//! The Prometheus endpoint in the namespace lab, with real nginx and the
//! real daemon: `nginx_ha_instance_state` follows a failover on both nodes,
//! the exposition passes `promtool check metrics`, a real Prometheus in the
//! client namespace sees the failover within two scrape intervals, and a
//! metrics address that is already taken stops the start. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, in_netns, require_root_and_tools, vip, wait_for};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Inside each node's own namespace, so both nodes use the same address.
const METRICS: &str = "127.0.0.1:9586";

fn decl(lab: &Lab, i: usize, listen: &str) -> serde_json::Value {
    let prio = if i == 0 { 150 } else { 100 };
    let mut d = lab.declaration(i, prio, json!({ "web": lab::instance(VIP, json!({})) }));
    d["metrics"] = json!({ "listen": listen });
    d
}

/// GET /metrics from node `i`'s namespace; the body on a 200.
fn scrape(lab: &Lab, i: usize) -> Option<String> {
    scrape_at(lab, i, METRICS)
}

fn scrape_at(lab: &Lab, i: usize, at: &str) -> Option<String> {
    let addr: SocketAddr = at.parse().expect("address");
    in_netns(&lab.nodes[i].ns, || {
        let t = Duration::from_secs(1);
        let mut s = TcpStream::connect_timeout(&addr, t).ok()?;
        s.set_read_timeout(Some(t)).ok()?;
        // As Prometheus 2.x asks.
        s.write_all(
            b"GET /metrics HTTP/1.1\r\nHost: lab\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n",
        )
        .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        let om = head.contains("Content-Type: application/openmetrics-text; version=1.0.0");
        (head.starts_with("HTTP/1.1 200") && om).then(|| body.to_string())
    })
}

/// The value of the first series whose name and labels start with
/// `prefix` (e.g. `nginx_ha_instance_state{vrrp_instance="web",vrid="51",state="master"}`).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

fn state(text: &str, st: &str) -> Option<f64> {
    value(
        text,
        &format!(r#"nginx_ha_instance_state{{vrrp_instance="web",vrid="51",state="{st}"}}"#),
    )
}

/// Scrapes node `i` until `want` holds for a scrape, for at most `limit`.
fn scrape_until(lab: &Lab, i: usize, limit: Duration, want: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    wait_for(limit, || {
        last = scrape(lab, i).unwrap_or_default();
        want(&last).then_some(())
    })
    .unwrap_or_else(|| panic!("node{i} never scraped as wanted; last scrape:\n{last}"));
    last
}

/// The endpoint's OpenMetrics text in the classic text format that
/// `promtool check metrics` (2.42) lints: there a counter's HELP and TYPE
/// name the `_total` series, and there is no `# EOF`.
fn as_classic_text(om: &str) -> String {
    let counters: Vec<&str> = om
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::new();
    for line in om.lines() {
        if line == "# EOF" {
            continue;
        }
        let mut line = line.to_string();
        for c in &counters {
            for kind in ["# HELP ", "# TYPE "] {
                let family = format!("{kind}{c} ");
                if line.starts_with(&family) {
                    line = format!("{kind}{c}_total {}", &line[family.len()..]);
                }
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// `promtool check metrics` on the text, when promtool is installed
/// (scripts/setup-debian installs it; CI must have it).
fn promtool_check(om: &str) {
    let text = as_classic_text(om);
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is missing (scripts/setup-debian installs prometheus)"
        );
        eprintln!("SKIPPED: promtool check metrics (no promtool)");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n--- exposition:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two nodes with the endpoint on, once node0 is the only VIP holder.
fn elected_pair() -> Lab {
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    for i in 0..2 {
        lab.start_nginx(i);
        let d = decl(&lab, i, METRICS);
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("node0 never became the only holder");
    lab
}

#[test]
fn instance_state_follows_a_failover_on_both_nodes() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = elected_pair();

    let limit = Duration::from_secs(3);
    // Snapshots are published every 250 ms: wait for one taken after the
    // first adverts, not merely after the election.
    let sent = r#"nginx_ha_adverts_sent_total{vrrp_instance="web"}"#;
    let received = r#"nginx_ha_adverts_received_total{vrrp_instance="web"}"#;
    let before0 = scrape_until(&lab, 0, limit, |t| {
        state(t, "master") == Some(1.0)
            && value(t, r#"nginx_ha_check_healthy{check="nginx"}"#) == Some(1.0)
            && value(t, sent).is_some_and(|n| n > 0.0)
            // The kernel's addresses reach the node by netlink, just after
            // the transition.
            && value(t, r#"nginx_ha_vips_held{vrrp_instance="web"}"#) == Some(1.0)
    });
    let before1 = scrape_until(&lab, 1, limit, |t| {
        state(t, "backup") == Some(1.0) && value(t, received).is_some_and(|n| n > 0.0)
    });
    for st in ["backup", "fault", "init"] {
        assert_eq!(state(&before0, st), Some(0.0), "node0 {st}:\n{before0}");
    }
    assert_eq!(state(&before1, "master"), Some(0.0));
    assert_eq!(
        value(&before0, r#"nginx_ha_vips_held{vrrp_instance="web"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(&before1, r#"nginx_ha_vips_held{vrrp_instance="web"}"#),
        Some(0.0)
    );
    assert!(
        value(&before0, "nginx_ha_nginx_http_requests_total").is_some(),
        "{before0}"
    );
    for process in ["process_resident_memory_bytes", "process_open_fds"] {
        assert!(
            value(&before0, process).is_some_and(|n| n > 0.0),
            "{process}:\n{before0}"
        );
    }
    promtool_check(&before0);
    assert!(before0.ends_with("# EOF\n"), "{before0}");

    lab.kill_nginx(0);
    let after0 = scrape_until(&lab, 0, limit, |t| state(t, "fault") == Some(1.0));
    let after1 = scrape_until(&lab, 1, limit, |t| {
        state(t, "master") == Some(1.0)
            && value(t, r#"nginx_ha_vips_held{vrrp_instance="web"}"#) == Some(1.0)
    });
    assert_eq!(state(&after0, "master"), Some(0.0), "{after0}");
    assert_eq!(state(&after1, "backup"), Some(0.0), "{after1}");
    assert_eq!(
        value(&after0, r#"nginx_ha_check_healthy{check="nginx"}"#),
        Some(0.0)
    );
    assert_eq!(
        value(&after1, r#"nginx_ha_vips_held{vrrp_instance="web"}"#),
        Some(1.0)
    );
    // The metrics say what status says.
    lab.expect_state(0, "web", "STATE=FAULT");
    // Each node changed state once in the failover, and counted it once,
    // under the right from/to/reason.
    let transitions = r#"nginx_ha_transitions_total{vrrp_instance="web","#;
    for (before, after) in [(&before0, &after0), (&before1, &after1)] {
        let (b, a) = (sum(before, transitions), sum(after, transitions));
        assert_eq!(a, b + 1.0, "transitions {b} -> {a}");
    }
    assert_eq!(
        value(
            &after0,
            r#"nginx_ha_transitions_total{vrrp_instance="web",from="master",to="fault",reason="fault"}"#
        ),
        Some(1.0),
        "{after0}"
    );
    assert_eq!(
        sum(
            &after1,
            r#"nginx_ha_transitions_total{vrrp_instance="web",from="backup",to="master","#
        ),
        1.0,
        "{after1}"
    );
    // The backup saw the master change (node0 to itself) once.
    let changes = r#"nginx_ha_master_changes_total{vrrp_instance="web"}"#;
    assert_eq!(
        value(&after1, changes),
        value(&before1, changes).map(|n| n + 1.0),
        "{after1}"
    );
    // The probes: a run of passes before, of failures after, with timings.
    assert!(
        value(
            &before0,
            r#"nginx_ha_check_consecutive_passes{check="nginx"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{before0}"
    );
    assert!(
        value(
            &before0,
            r#"nginx_ha_check_probe_duration_seconds_count{check="nginx"}"#
        )
        .is_some_and(|n| n >= 2.0),
        "{before0}"
    );
    assert_eq!(
        value(
            &after0,
            r#"nginx_ha_check_consecutive_passes{check="nginx"}"#
        ),
        Some(0.0),
        "{after0}"
    );
    assert_eq!(
        value(&after0, r#"nginx_ha_check_changes_total{check="nginx"}"#),
        Some(1.0),
        "{after0}"
    );
    promtool_check(&after1);
}

/// The sum of every series that starts with `prefix` (all label values).
fn sum(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// The VIPs held come from the kernel, not from the state: a copy of the
/// VIP added by hand on the backup shows while the state says backup.
#[test]
fn vips_held_are_what_the_kernel_has() {
    if !require_root_and_tools() {
        return;
    }
    let lab = elected_pair();
    let held = r#"nginx_ha_vips_held{vrrp_instance="web"}"#;
    scrape_until(&lab, 1, Duration::from_secs(3), |t| {
        state(t, "backup") == Some(1.0) && value(t, held) == Some(0.0)
    });
    // A stray copy of the VIP on the backup (someone's `ip addr add`):
    // the state alone would say 0.
    let ns = lab.nodes[1].ns.clone();
    let st = lab
        .ns_cmd(&ns, "ip")
        .args(["addr", "add", &format!("{VIP}/32"), "dev", "eth0"])
        .status()
        .expect("ip addr add");
    assert!(st.success());
    let t = scrape_until(&lab, 1, Duration::from_secs(3), |t| {
        value(t, held) == Some(1.0)
    });
    assert_eq!(state(&t, "backup"), Some(1.0), "{t}");
    assert_eq!(
        value(&t, r#"nginx_ha_vips_declared{vrrp_instance="web"}"#),
        Some(1.0)
    );
}

/// A reload that changes `metrics.listen` moves the endpoint; one whose
/// address cannot be bound is refused whole and the old endpoint stays.
#[test]
fn a_reload_moves_the_metrics_endpoint_or_is_refused_whole() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let d = decl(&lab, 0, METRICS);
    lab.start_daemon(0, &d);
    scrape_until(&lab, 0, Duration::from_secs(5), |t| {
        state(t, "master") == Some(1.0)
    });

    let moved = "127.0.0.1:9587";
    lab.write_declaration(0, &decl(&lab, 0, moved));
    lab.signal_daemon(0, libc::SIGHUP);
    wait_for(Duration::from_secs(5), || {
        scrape_at(&lab, 0, moved).filter(|t| state(t, "master") == Some(1.0))
    })
    .expect("the endpoint never answered on its new address");
    assert!(
        scrape(&lab, 0).is_none(),
        "the old address still answers after the move"
    );

    // nginx's status page holds 127.0.0.1:8081: the bind fails, so the
    // whole reload is refused (the priority change is not applied either).
    let mut bad = decl(&lab, 0, "127.0.0.1:8081");
    bad["node"]["priority"] = json!(120);
    lab.write_declaration(0, &bad);
    lab.signal_daemon(0, libc::SIGHUP);
    wait_for(Duration::from_secs(5), || {
        lab.daemon_log(0)
            .contains("metrics.listen 127.0.0.1:8081: cannot listen")
            .then_some(())
    })
    .expect("the refused reload was not logged");
    let t = scrape_at(&lab, 0, moved).expect("the endpoint stopped answering");
    assert_eq!(
        value(&t, r#"nginx_ha_instance_priority{vrrp_instance="web"}"#),
        Some(150.0),
        "{t}"
    );
    assert!(lab.daemon_pid(0).is_some(), "the daemon exited");
}

#[test]
fn a_taken_metrics_address_stops_the_start() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    // nginx's status page listens there; without an nginx section in the
    // declaration check-config cannot know, so the bind has to say it.
    lab.start_nginx(0);
    let d = decl(&lab, 0, "127.0.0.1:8081");
    lab.start_daemon(0, &d);
    let st = lab.reap_daemon(0).expect("the daemon kept running");
    assert!(!st.success(), "{st:?}");
    let log = lab.daemon_log(0);
    assert!(
        log.contains("metrics.listen 127.0.0.1:8081: cannot listen"),
        "{log}"
    );
    assert!(
        lab.holders(vip()).is_empty(),
        "a VIP was added before the bind failed"
    );
}

/// Percent-encodes a PromQL query for a URL.
fn url_encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET from the Prometheus in the client namespace; the body on a 200.
fn prometheus_get(lab: &Lab, target: &str) -> Option<String> {
    let addr: SocketAddr = "127.0.0.1:9090".parse().expect("address");
    in_netns(&lab.client_ns, || {
        let t = Duration::from_secs(1);
        let mut s = TcpStream::connect_timeout(&addr, t).ok()?;
        s.set_read_timeout(Some(t)).ok()?;
        s.write_all(format!("GET {target} HTTP/1.0\r\nHost: lab\r\n\r\n").as_bytes())
            .ok()?;
        let mut buf = String::new();
        s.read_to_string(&mut buf).ok()?;
        let (head, body) = buf.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.0 200").then(|| body.to_string())
    })
}

/// `nginx_ha_instance_state{state=...}` per node (by its address), as the
/// real Prometheus has it now.
fn prometheus_states(lab: &Lab, st: &str) -> Vec<(String, String)> {
    let q = format!(r#"nginx_ha_instance_state{{vrrp_instance="web",state="{st}"}}"#);
    let Some(body) = prometheus_get(lab, &format!("/api/v1/query?query={}", url_encode(&q))) else {
        return Vec::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let mut out: Vec<(String, String)> = v["data"]["result"]
        .as_array()
        .map(|r| {
            r.iter()
                .map(|s| {
                    let node = s["metric"]["instance"].as_str().unwrap_or_default();
                    let val = s["value"][1].as_str().unwrap_or_default();
                    (node.to_string(), val.to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn a_real_prometheus_sees_the_failover_within_two_scrape_intervals() {
    if !require_root_and_tools() {
        return;
    }
    if !std::path::Path::new("/usr/bin/prometheus").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "prometheus is missing (scripts/setup-debian installs it)"
        );
        eprintln!("SKIPPED: no /usr/bin/prometheus");
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    // On the nodes' lab addresses, for the Prometheus in the client
    // namespace: a non-loopback listener, written down as it must be.
    let targets: Vec<String> = (0..2)
        .map(|i| format!("{}:9586", lab::node_v4(i)))
        .collect();
    for (i, t) in targets.iter().enumerate() {
        lab.start_nginx(i);
        let d = decl(&lab, i, t);
        lab.start_daemon(i, &d);
    }
    let scrape_every = Duration::from_secs(1);
    let dir = lab.dir.path().join("prometheus");
    std::fs::create_dir_all(&dir).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 500ms\nscrape_configs:\n  - job_name: nginx-ha\n    static_configs:\n      - targets: [\"{}\", \"{}\"]\n",
            targets[0], targets[1]
        ),
    )
    .expect("prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = lab
        .ns_cmd(&lab.client_ns.clone(), "/usr/bin/prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--web.listen-address=127.0.0.1:9090")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    lab.extra.push(child);

    let (m0, m1) = (targets[0].clone(), targets[1].clone());
    let pair = |a: &str, b: &str| vec![(m0.clone(), a.to_string()), (m1.clone(), b.to_string())];
    // Prometheus starts, scrapes, and node0 wins the election: bounded by
    // Prometheus's start-up on a busy machine.
    wait_for(Duration::from_secs(30), || {
        (prometheus_states(&lab, "master") == pair("1", "0")).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "Prometheus never saw node0 master: {:?}\n{}",
            prometheus_states(&lab, "master"),
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        )
    });

    let start = std::time::Instant::now();
    lab.kill_nginx(0);
    wait_for(Duration::from_secs(10), || {
        (prometheus_states(&lab, "master") == pair("0", "1")
            && prometheus_states(&lab, "fault") == pair("1", "0"))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "Prometheus never saw the failover: master {:?}, fault {:?}",
            prometheus_states(&lab, "master"),
            prometheus_states(&lab, "fault")
        )
    });
    let took = start.elapsed();
    // Two scrape intervals, plus the failover itself (well under 100 ms
    // with 100 ms adverts), the 250 ms snapshot and the query.
    let bound = 2 * scrape_every + Duration::from_millis(500);
    println!("kill -9 nginx -> Prometheus shows the new states: {took:?} (bound {bound:?})");
    assert!(took <= bound, "took {took:?}, bound {bound:?}");
}
