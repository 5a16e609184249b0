//! The scale section: N instances over several interfaces and both address
//! families at 100 ms adverts, adverts counted on the wire.

use crate::lab::{self, Lab, wait_for};
use crate::procs::{cpu_delta, rss_kib, tree, tree_cpu};
use crate::setups::{Daemon, count_transitions, daemon_bin, prio};
use crate::{cmd_out, loadavg};
use serde_json::{Value, json};
use std::fmt::Write as _;
use std::fs;
use std::net::IpAddr;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------- scale

/// eth0..eth5 on each node, each on a bridge of its own.
pub const IFACES: usize = 6;
/// 2 families × 6 interfaces × VRIDs; the IPv4 VIP pool (`v4_vip`) holds
/// 540 addresses, enough for 1000 instances (500 of them IPv4).
pub const MAX_INSTANCES: usize = 1000;

/// Interface k's IPv4 network: eth0 is the lab's (192.0.2.0/24), eth3-5
/// reuse the three documentation networks with other host numbers.
pub fn net_v4(k: usize, host: u8) -> String {
    match k % 3 {
        0 => format!("192.0.2.{host}"),
        1 => format!("198.51.100.{host}"),
        _ => format!("203.0.113.{host}"),
    }
}
pub fn net_v6(k: usize, host: u16) -> String {
    format!("2001:db8:{k}::{host:x}")
}

/// The m-th IPv4 VIP (a /32: it needs no subnet on its interface), clear
/// of the nodes' (hosts 11-14), the client's (192.0.2.200) and the pair
/// lab's VIP (192.0.2.100).
pub fn v4_vip(m: usize) -> String {
    match m {
        0..230 => format!("198.51.100.{}", 20 + m),
        230..460 => format!("203.0.113.{}", 20 + m - 230),
        _ => format!("192.0.2.{}", 20 + (m - 460).min(79)),
    }
}

/// eth1.. on each node, each on a bridge of its own in the bridge namespace.
pub fn add_net(lab: &Lab, k: usize) {
    let br = format!("br{k}");
    lab.add_bridge(&br);
    for i in 0..2 {
        let host = 11 + i + 2 * (k / 3);
        let addrs = [
            format!("{}/24", net_v4(k, host as u8)),
            format!("{}/64", net_v6(k, 0x11 + i as u16)),
        ];
        lab.add_port(
            &lab.nodes[i].ns,
            &format!("p{i}k{k}"),
            &format!("eth{k}"),
            &br,
            &addrs,
        );
    }
}

pub struct ScaleInst {
    pub name: String,
    pub iface: String,
    pub vrid: usize,
    pub vip: String,
    pub prefix: u8,
}

/// Instance j: interface j % 12 / 2, IPv6 if j is odd, VRID j / 12 + 1;
/// IPv4 VIPs /32 from `v4_vip`, IPv6 VIPs in the interface's /64.
pub fn scale_plan(n: usize) -> Vec<ScaleInst> {
    (0..n)
        .map(|j| {
            let slot = j % (IFACES * 2);
            let k = slot / 2;
            let v6 = slot % 2 == 1;
            let vrid = j / (IFACES * 2) + 1;
            ScaleInst {
                name: format!("i{j:04}"),
                iface: format!("eth{k}"),
                vrid,
                vip: if v6 {
                    net_v6(k, 0x1000 + vrid as u16)
                } else {
                    v4_vip(j / 2)
                },
                prefix: if v6 { 64 } else { 32 },
            }
        })
        .collect()
}

pub fn scale_nginx_ha(lab: &Lab, i: usize, plan: &[ScaleInst]) -> Value {
    let mut insts = serde_json::Map::new();
    for s in plan {
        insts.insert(
            s.name.clone(),
            json!({
                "interface": s.iface,
                "virtualRouterId": s.vrid,
                "version": 3,
                "virtualIps": [format!("{}/{}", s.vip, s.prefix)],
                "advertInterval": "100ms",
            }),
        );
    }
    let mut d = lab.declaration(i, prio(i), Value::Object(insts));
    d["checks"] = json!({ "nginx": { "enable": false } });
    d
}

pub fn scale_keepalived(i: usize, plan: &[ScaleInst]) -> String {
    let mut c = format!("global_defs {{\n    router_id node{i}\n    vrrp_version 3\n}}\n");
    for s in plan {
        let _ = write!(
            c,
            "\nvrrp_instance {} {{\n    state BACKUP\n    interface {}\n    virtual_router_id {}\n\
             \x20   priority {}\n    advert_int 0.1\n    virtual_ipaddress {{\n        {}/{}\n    }}\n}}\n",
            s.name,
            s.iface,
            s.vrid,
            prio(i),
            s.vip,
            s.prefix
        );
    }
    c
}

pub fn vips_held(ns: &str, plan: &[ScaleInst]) -> usize {
    let out = cmd_out("ip", &["-n", ns, "-o", "addr", "show"]);
    let held: std::collections::HashSet<IpAddr> = out
        .split_whitespace()
        .filter_map(|w| w.split('/').next().and_then(|a| a.parse().ok()))
        .collect();
    plan.iter()
        .filter(|s| s.vip.parse().is_ok_and(|a: IpAddr| held.contains(&a)))
        .count()
}

/// VRRP frames entering the bridges from node0's and node1's ports:
/// [node0 v4, node0 v6, node1 v4, node1 v6].
pub fn wire_counters(lab: &Lab) -> [u64; 4] {
    let out = cmd_out(
        "ip",
        &[
            "netns",
            "exec",
            &lab.bridge_ns,
            "nft",
            "list",
            "chain",
            "bridge",
            "bench",
            "pre",
        ],
    );
    let mut v = Vec::new();
    for l in out.lines() {
        if let Some(rest) = l.split("counter packets ").nth(1) {
            v.push(
                rest.split_whitespace()
                    .next()
                    .and_then(|x| x.parse().ok())
                    .unwrap_or(0),
            );
        }
    }
    [0, 1, 2, 3].map(|k| v.get(k).copied().unwrap_or(0))
}

pub fn install_wire_counters(lab: &Lab) {
    let script = "add table bridge bench\n\
         add chain bridge bench pre { type filter hook prerouting priority 0 ; }\n\
         add rule bridge bench pre iifname \"p0*\" ip protocol 112 counter\n\
         add rule bridge bench pre iifname \"p0*\" ip6 nexthdr 112 counter\n\
         add rule bridge bench pre iifname \"p1*\" ip protocol 112 counter\n\
         add rule bridge bench pre iifname \"p1*\" ip6 nexthdr 112 counter\n";
    let f = lab.dir.path().join("bench.nft");
    fs::write(&f, script).expect("nft script");
    lab::sh(&[
        "ip",
        "netns",
        "exec",
        &lab.bridge_ns,
        "nft",
        "-f",
        &f.display().to_string(),
    ]);
}

pub fn adverts_sent_counter(lab: &Lab, i: usize) -> Option<u64> {
    let out = lab.cli(i, &["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    Some(
        v["instances"]
            .as_array()?
            .iter()
            .map(|x| x["counters"]["advertsSent"].as_u64().unwrap_or(0))
            .sum(),
    )
}

/// `f`'s value and when it is taken to have been read: the middle of the
/// call (`nft list` is a process of its own and takes milliseconds).
fn timed<T>(f: impl FnOnce() -> T) -> (T, Instant) {
    let a = Instant::now();
    let v = f();
    let b = Instant::now();
    (v, a + (b - a) / 2)
}

#[derive(Debug, Default)]
pub struct ScaleResult {
    pub daemon: String,
    pub n: usize,
    pub window_s: f64,
    pub converged: bool,
    pub expected: u64,
    pub wire_master: u64,
    pub wire_backup: u64,
    pub own_counter: Option<u64>,
    pub cpu_s: [f64; 2],
    pub rss_kib: [u64; 2],
    pub transitions: [usize; 2],
    pub held_end: [usize; 2],
    pub error: Option<String>,
    pub load: String,
}

pub fn run_scale(daemon: Daemon, n: usize, window: Duration) -> ScaleResult {
    let label = match daemon {
        Daemon::NginxHa => "nginx-ha",
        Daemon::Keepalived => "keepalived",
    };
    eprintln!("\n== scale: {label}, {n} instance(s), {window:?} ==");
    let mut r = ScaleResult {
        daemon: label.into(),
        n,
        load: loadavg(),
        ..Default::default()
    };
    let mut lab = Lab::new(2, &daemon_bin());
    for k in 1..IFACES {
        add_net(&lab, k);
    }
    install_wire_counters(&lab);
    let plan = scale_plan(n);
    for i in 0..2 {
        match daemon {
            Daemon::NginxHa => {
                let d = scale_nginx_ha(&lab, i, &plan);
                lab.start_daemon(i, &d);
            }
            Daemon::Keepalived => lab.start_keepalived(i, &scale_keepalived(i, &plan)),
        }
    }
    let ns0 = lab.nodes[0].ns.clone();
    let ns1 = lab.nodes[1].ns.clone();
    r.converged = wait_for(Duration::from_secs(40 + n as u64 / 20), || {
        (vips_held(&ns0, &plan) == n && vips_held(&ns1, &plan) == 0).then_some(())
    })
    .is_some();
    if !r.converged {
        r.error = Some(format!(
            "did not converge: node0 holds {}/{n}, node1 holds {}",
            vips_held(&ns0, &plan),
            vips_held(&ns1, &plan)
        ));
        return r;
    }
    std::thread::sleep(Duration::from_secs(2));
    let log = |lab: &Lab, i: usize| match daemon {
        Daemon::NginxHa => lab.daemon_log(i),
        Daemon::Keepalived => lab.keepalived_log(i),
    };
    let pid = |lab: &Lab, i: usize| match daemon {
        Daemon::NginxHa => lab.daemon_pid(i).unwrap_or(0),
        Daemon::Keepalived => lab.nodes[i].keepalived.as_ref().map_or(0, |c| c.id()),
    };
    let tr0 = [0, 1].map(|i| count_transitions(daemon, &log(&lab, i)));
    let cpu0 = [0, 1].map(|i| tree_cpu(pid(&lab, i)));
    let (w0, tw0) = timed(|| wire_counters(&lab));
    let own0 = (daemon == Daemon::NginxHa)
        .then(|| adverts_sent_counter(&lab, 0))
        .flatten();
    // A whole number of advert intervals (and 2 ms, so never a hair
    // short of it) from the first reading: then every instance that sends
    // on time sends that many adverts in the window (or one more), however
    // their phases lie. A thousand instances that took over together send
    // in step, and a window 40 ms past a whole number of intervals counted
    // either all of their extra adverts or none (0.995 to 1.005).
    let whole = Duration::from_millis(window.as_millis().div_ceil(100) as u64 * 100);
    let until = tw0 + whole + Duration::from_millis(2);
    std::thread::sleep(until.saturating_duration_since(Instant::now()));
    let (w1, tw1) = timed(|| wire_counters(&lab));
    let own1 = (daemon == Daemon::NginxHa)
        .then(|| adverts_sent_counter(&lab, 0))
        .flatten();
    // The wire's window: between the two counter readings. It once ran
    // from after the first reading to after the daemon's status that
    // follows the second (tens of ms at a thousand instances), which
    // expected adverts nobody could have sent in it.
    let el = tw1.saturating_duration_since(tw0);
    let cpu1 = [0, 1].map(|i| tree_cpu(pid(&lab, i)));
    let tr1 = [0, 1].map(|i| count_transitions(daemon, &log(&lab, i)));
    r.window_s = el.as_secs_f64();
    r.expected = (n as f64 * el.as_secs_f64() / 0.1).round() as u64;
    r.wire_master = (w1[0] - w0[0]) + (w1[1] - w0[1]);
    r.wire_backup = (w1[2] - w0[2]) + (w1[3] - w0[3]);
    r.own_counter = own0.zip(own1).map(|(a, b)| b - a);
    for k in 0..2 {
        // ns run time (see procs.rs), as in the footprint.
        r.cpu_s[k] = cpu_delta(&cpu0[k], &cpu1[k]).total_ns() as f64 / 1e9;
        r.rss_kib[k] = tree(pid(&lab, k)).iter().map(|&q| rss_kib(q)).sum();
        r.transitions[k] = tr1[k] - tr0[k];
    }
    r.held_end = [vips_held(&ns0, &plan), vips_held(&ns1, &plan)];
    if daemon == Daemon::Keepalived {
        for i in 0..2 {
            lab.stop_keepalived(i);
        }
    }
    drop(lab);
    r
}
