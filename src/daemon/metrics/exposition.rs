//! The status as Prometheus metrics: one place that decides the names,
//! labels and types. A fresh registry is filled from each snapshot, so a
//! scrape shows exactly what `status --json` would have shown.

use super::process::Process;
use crate::node::status::Status;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// The VRRP instance's label is `vrrp_instance`: Prometheus sets
// `instance` on every scraped series (the target), and would rename ours.
type Labels = Vec<(&'static str, String)>;
type Gauges = Family<Labels, Gauge>;
type Counters = Family<Labels, Counter>;

/// The states an instance can be in, as `nginx_ha_instance_state` labels.
const STATES: [&str; 4] = ["master", "backup", "fault", "init"];

/// The status of one moment, with the wall-clock time it was taken (for
/// timestamps derived from "seconds ago").
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub status: Status,
    pub taken: SystemTime,
}

fn gauge(reg: &mut Registry, name: &str, help: &str) -> Gauges {
    let f = Gauges::default();
    reg.register(name, help, f.clone());
    f
}

fn counter(reg: &mut Registry, name: &str, help: &str) -> Counters {
    let f = Counters::default();
    reg.register(name, help, f.clone());
    f
}

fn l(pairs: &[(&'static str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (*k, (*v).to_string())).collect()
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn render(snap: &Snapshot, process: Option<&Process>) -> String {
    let s = &snap.status;
    let mut root = Registry::default();
    let reg = root.sub_registry_with_prefix("nginx_ha");

    let build = gauge(reg, "build_info", "The nginx-ha version; always 1");
    build
        .get_or_create(&l(&[("version", env!("CARGO_PKG_VERSION"))]))
        .set(1);
    let maintenance = reg_gauge(
        reg,
        "maintenance",
        "1 while the node is in maintenance mode",
    );
    maintenance.set(i64::from(s.maintenance));

    let state = gauge(
        reg,
        "instance_state",
        "1 for the instance's current VRRP state, 0 for the others",
    );
    let priority = gauge(reg, "instance_priority", "The declared VRRP priority");
    let effective = gauge(
        reg,
        "instance_effective_priority",
        "The priority advertised after health-check weights",
    );
    let vips = gauge(
        reg,
        "vips_held",
        "Virtual IPs this node holds for the instance (all of them while master, else 0)",
    );
    let last = Family::<Labels, Gauge<f64, AtomicU64>>::default();
    reg.register(
        "instance_last_transition_timestamp_seconds",
        "When the instance last changed state (Unix time)",
        last.clone(),
    );
    let sent = counter(reg, "adverts_sent", "VRRP adverts sent");
    let received = counter(reg, "adverts_received", "VRRP adverts received");
    let p0_sent = counter(
        reg,
        "priority_zero_sent",
        "Priority-0 adverts sent (resigning master)",
    );
    let p0_received = counter(
        reg,
        "priority_zero_received",
        "Priority-0 adverts received (the master resigned)",
    );
    let lower = counter(
        reg,
        "lower_priority_answered",
        "Lower-priority adverts answered while master (another router thought it was master)",
    );
    let restored = counter(
        reg,
        "vips_restored",
        "VIPs found deleted while master and added back",
    );
    let transitions = counter(
        reg,
        "transitions",
        "State changes of the instance since the daemon started",
    );
    let mismatch = counter(
        reg,
        "address_mismatch",
        "Adverts whose virtual IP list differs from the declaration",
    );
    let dropped = counter(
        reg,
        "adverts_dropped",
        "Adverts for an instance dropped, by reason (as in status)",
    );
    for i in &s.instances {
        let inst = l(&[("vrrp_instance", &i.name)]);
        let vrid = i.virtual_router_id.to_string();
        let current = i.state.to_ascii_lowercase();
        for st in STATES {
            state
                .get_or_create(&l(&[
                    ("vrrp_instance", &i.name),
                    ("vrid", &vrid),
                    ("state", st),
                ]))
                .set(i64::from(current == st));
        }
        priority.get_or_create(&inst).set(i64::from(i.priority));
        effective
            .get_or_create(&inst)
            .set(i64::from(i.effective_priority));
        let held = if current == "master" {
            i.virtual_ips.len()
        } else {
            0
        };
        vips.get_or_create(&inst)
            .set(i64::try_from(held).unwrap_or(i64::MAX));
        if let Some(t) = &i.last_transition {
            let at = snap
                .taken
                .checked_sub(Duration::try_from_secs_f64(t.seconds_ago).unwrap_or_default())
                .and_then(|at| at.duration_since(UNIX_EPOCH).ok());
            if let Some(at) = at {
                last.get_or_create(&inst).set(at.as_secs_f64());
            }
        }
        let c = &i.counters;
        sent.get_or_create(&inst).inc_by(c.adverts_sent);
        received.get_or_create(&inst).inc_by(c.adverts_received);
        p0_sent.get_or_create(&inst).inc_by(c.priority_zero_sent);
        p0_received
            .get_or_create(&inst)
            .inc_by(c.priority_zero_received);
        lower.get_or_create(&inst).inc_by(c.lower_priority_answered);
        restored.get_or_create(&inst).inc_by(c.vips_restored);
        mismatch.get_or_create(&inst).inc_by(c.address_mismatch);
        transitions.get_or_create(&inst).inc_by(c.transitions);
        for (reason, n) in &c.dropped {
            dropped
                .get_or_create(&l(&[("vrrp_instance", &i.name), ("reason", reason)]))
                .inc_by(*n);
        }
    }

    let node_dropped = counter(
        reg,
        "packets_dropped",
        "Packets dropped before reaching an instance, by reason (as in status)",
    );
    for (reason, n) in &s.dropped {
        node_dropped
            .get_or_create(&l(&[("reason", reason)]))
            .inc_by(*n);
    }

    let healthy = gauge(
        reg,
        "check_healthy",
        "1 while the check passes; 0 while it fails or has not decided yet",
    );
    let weight = gauge(reg, "check_weight", "The check's declared weight");
    for c in &s.checks {
        let check = l(&[("check", &c.name)]);
        healthy
            .get_or_create(&check)
            .set(i64::from(c.healthy == Some(true)));
        weight.get_or_create(&check).set(c.weight);
    }

    if let Some(n) = &s.nginx {
        let g = |reg: &mut Registry, name, help, v| reg_gauge(reg, name, help).set(to_i64(v));
        g(
            reg,
            "nginx_connections_active",
            "nginx stub_status: active client connections",
            n.active,
        );
        g(
            reg,
            "nginx_connections_reading",
            "nginx stub_status: connections reading the request",
            n.reading,
        );
        g(
            reg,
            "nginx_connections_writing",
            "nginx stub_status: connections writing the response",
            n.writing,
        );
        g(
            reg,
            "nginx_connections_waiting",
            "nginx stub_status: idle keepalive connections",
            n.waiting,
        );
        let c = |reg: &mut Registry, name, help, v| {
            let m = Counter::<u64>::default();
            m.inc_by(v);
            reg.register(name, help, m);
        };
        c(
            reg,
            "nginx_connections_accepted",
            "nginx stub_status: accepted connections",
            n.accepts,
        );
        c(
            reg,
            "nginx_connections_handled",
            "nginx stub_status: handled connections",
            n.handled,
        );
        c(
            reg,
            "nginx_http_requests",
            "nginx stub_status: client requests",
            n.requests,
        );
    }

    if let Some(p) = process {
        // Prometheus's standard names, without the prefix.
        let rss = Gauge::<i64>::default();
        rss.set(to_i64(p.resident_memory_bytes));
        root.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            rss,
        );
        let fds = Gauge::<i64>::default();
        fds.set(to_i64(p.open_fds));
        root.register("process_open_fds", "Open file descriptors", fds);
        let start = Gauge::<f64, AtomicU64>::default();
        start.set(p.start_time_seconds);
        root.register(
            "process_start_time_seconds",
            "Start time of the process since the Unix epoch in seconds",
            start,
        );
        let cpu = Counter::<f64, AtomicU64>::default();
        cpu.inc_by(p.cpu_seconds);
        root.register(
            "process_cpu_seconds",
            "User and system CPU time spent in seconds",
            cpu,
        );
    }
    super::anycast::register(root.sub_registry_with_prefix("nginx_ha"), s);
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, &root);
    out
}

fn reg_gauge(reg: &mut Registry, name: &str, help: &str) -> Gauge {
    let g = Gauge::default();
    reg.register(name, help, g.clone());
    g
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::{CheckStatus, Counters, InstanceStatus, Transition};
    use nginx_ha_core::stub_status::StubStatus;
    use std::collections::BTreeMap;

    fn snapshot() -> Snapshot {
        let web = InstanceStatus {
            name: "web".into(),
            state: "MASTER".into(),
            priority: 150,
            effective_priority: 140,
            interface: "eth1".into(),
            virtual_router_id: 51,
            version: 3,
            virtual_ips: vec!["192.0.2.100/24".into(), "192.0.2.101/24".into()],
            master_address: None,
            last_transition: Some(Transition {
                seconds_ago: 10.0,
                reason: "master down".into(),
            }),
            faults: vec![],
            counters: Counters {
                adverts_sent: 7,
                adverts_received: 3,
                transitions: 2,
                dropped: BTreeMap::from([("auth".to_string(), 2)]),
                ..Counters::default()
            },
        };
        let api = InstanceStatus {
            name: "api".into(),
            state: "FAULT".into(),
            virtual_router_id: 52,
            last_transition: None,
            counters: Counters::default(),
            ..web.clone()
        };
        Snapshot {
            status: Status {
                node: "lb1".into(),
                maintenance: false,
                instances: vec![web, api],
                checks: vec![CheckStatus {
                    name: "nginx".into(),
                    healthy: Some(true),
                    detail: String::new(),
                    weight: 0,
                    seconds_since_change: 1.0,
                }],
                nginx: Some(StubStatus {
                    active: 3,
                    accepts: 10,
                    handled: 10,
                    requests: 42,
                    reading: 0,
                    writing: 1,
                    waiting: 2,
                }),
                dropped: BTreeMap::from([("ttl".to_string(), 4)]),
                anycast: None,
            },
            taken: UNIX_EPOCH + Duration::from_secs(1_000),
        }
    }

    const PROCESS: Process = Process {
        resident_memory_bytes: 4096,
        cpu_seconds: 1.5,
        open_fds: 12,
        start_time_seconds: 1_700_000_000.0,
    };

    #[test]
    fn status_becomes_these_series() {
        let text = render(&snapshot(), Some(&PROCESS));
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            r#"nginx_ha_instance_state{vrrp_instance="web",vrid="51",state="master"} 1"#,
            r#"nginx_ha_instance_state{vrrp_instance="web",vrid="51",state="backup"} 0"#,
            r#"nginx_ha_instance_state{vrrp_instance="web",vrid="51",state="fault"} 0"#,
            r#"nginx_ha_instance_state{vrrp_instance="web",vrid="51",state="init"} 0"#,
            r#"nginx_ha_instance_state{vrrp_instance="api",vrid="52",state="fault"} 1"#,
            r#"nginx_ha_instance_state{vrrp_instance="api",vrid="52",state="master"} 0"#,
            r#"nginx_ha_instance_priority{vrrp_instance="web"} 150"#,
            r#"nginx_ha_instance_effective_priority{vrrp_instance="web"} 140"#,
            r#"nginx_ha_vips_held{vrrp_instance="web"} 2"#,
            r#"nginx_ha_vips_held{vrrp_instance="api"} 0"#,
            r#"nginx_ha_instance_last_transition_timestamp_seconds{vrrp_instance="web"} 990.0"#,
            r#"nginx_ha_adverts_sent_total{vrrp_instance="web"} 7"#,
            r#"nginx_ha_adverts_received_total{vrrp_instance="web"} 3"#,
            r#"nginx_ha_adverts_dropped_total{vrrp_instance="web",reason="auth"} 2"#,
            r#"nginx_ha_packets_dropped_total{reason="ttl"} 4"#,
            r#"nginx_ha_transitions_total{vrrp_instance="web"} 2"#,
            r#"nginx_ha_check_healthy{check="nginx"} 1"#,
            "nginx_ha_nginx_connections_active 3",
            "nginx_ha_nginx_connections_accepted_total 10",
            "nginx_ha_nginx_http_requests_total 42",
            "nginx_ha_maintenance 0",
            concat!(
                r#"nginx_ha_build_info{version=""#,
                env!("CARGO_PKG_VERSION"),
                r#""} 1"#
            ),
            "# TYPE nginx_ha_adverts_sent counter",
            "# TYPE nginx_ha_instance_state gauge",
            "process_resident_memory_bytes 4096",
            "process_cpu_seconds_total 1.5",
            "process_open_fds 12",
            "process_start_time_seconds 1700000000.0",
            "# EOF",
        ] {
            assert!(lines.contains(&want), "missing {want:?} in:\n{text}");
        }
        // An instance with no transition yet has no timestamp, not 0.
        assert!(!text.contains(r#"last_transition_timestamp_seconds{vrrp_instance="api"}"#));
    }

    #[test]
    fn no_nginx_numbers_no_nginx_series() {
        let mut snap = snapshot();
        snap.status.nginx = None;
        assert!(!render(&snap, None).contains("nginx_ha_nginx_"));
    }
}
