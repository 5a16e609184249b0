//! Interop with Debian's keepalived in the namespace lab, in both roles:
//! VRRPv2 with PASS authentication, VRRPv3 over IPv4 and IPv6, and unicast.
//! Each case elects the right master and fails over both ways. Needs root
//! and keepalived (CI installs it).

use nginx_ha_lab as lab;

use lab::{Lab, require_root_and_tools, wait_for};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
enum Case {
    V2Pass,
    V3Ipv4,
    V3Ipv6,
    V3Unicast,
}

impl Case {
    fn vip(self) -> &'static str {
        match self {
            Case::V3Ipv6 => "2001:db8::100",
            _ => "192.0.2.100",
        }
    }
    fn prefix(self) -> u8 {
        if matches!(self, Case::V3Ipv6) { 64 } else { 24 }
    }
    /// v2 carries whole seconds; v3 runs at 100 ms to keep the test short.
    fn interval_ms(self) -> u64 {
        if matches!(self, Case::V2Pass) {
            1000
        } else {
            100
        }
    }
}

fn keepalived_conf(case: Case, me: usize, other: usize, prio: u8) -> String {
    let version = if matches!(case, Case::V2Pass) { 2 } else { 3 };
    let advert = format!("{}", case.interval_ms() as f64 / 1000.0);
    let auth = if matches!(case, Case::V2Pass) {
        "    authentication {\n        auth_type PASS\n        auth_pass s3cret\n    }\n"
    } else {
        ""
    };
    let unicast = if matches!(case, Case::V3Unicast) {
        format!(
            "    unicast_src_ip {}\n    unicast_peer {{\n        {}\n    }}\n",
            lab::node_v4(me),
            lab::node_v4(other)
        )
    } else {
        String::new()
    };
    format!(
        "global_defs {{\n    router_id node{me}\n    vrrp_version {version}\n}}\n\n\
         vrrp_instance web {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
         \x20   priority {prio}\n    advert_int {advert}\n{auth}{unicast}\
         \x20   virtual_ipaddress {{\n        {}/{}\n    }}\n}}\n",
        case.vip(),
        case.prefix()
    )
}

fn nginx_ha_instance(case: Case, lab_dir: &std::path::Path) -> Value {
    let mut i = json!({
        "interface": "eth0",
        "virtualRouterId": 51,
        "virtualIps": [format!("{}/{}", case.vip(), case.prefix())],
        "advertInterval": format!("{}ms", case.interval_ms()),
        "version": if matches!(case, Case::V2Pass) { 2 } else { 3 },
    });
    if matches!(case, Case::V2Pass) {
        let pw = lab_dir.join("vrrp-password");
        std::fs::write(&pw, "s3cret\n").expect("password file");
        i["authPasswordFile"] = json!(pw);
    }
    if matches!(case, Case::V3Unicast) {
        i["unicastPeers"] = json!([lab::node_v4(0).to_string(), lab::node_v4(1).to_string()]);
    }
    i
}

/// keepalived on node `ka`, nginx-ha on the other; node0 has priority 150.
fn run(case: Case, ka: usize) {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let ours = 1 - ka;
    let vip: IpAddr = case.vip().parse().unwrap();
    let prio = |i: usize| if i == 0 { 150u8 } else { 100 };
    lab.start_nginx(ours);
    let inst = nginx_ha_instance(case, lab.dir.path());
    let d = lab.declaration(ours, prio(ours), json!({ "web": inst }));
    lab.start_daemon(ours, &d);
    lab.start_keepalived(ka, &keepalived_conf(case, ka, ours, prio(ka)));

    // Election: node0 (150) holds the VIP, whichever daemon it runs.
    let settle = Duration::from_millis(case.interval_ms() * 4 + 2000);
    wait_for(settle, || (lab.holders(vip) == vec![0]).then_some(()))
        .unwrap_or_else(|| panic!("expected node0 as master, holders {:?}", lab.holders(vip)));
    // Stable: the backup heard the master (no split brain).
    std::thread::sleep(Duration::from_millis(case.interval_ms() * 4));
    assert_eq!(
        lab.holders(vip),
        vec![0],
        "split brain: the daemons do not hear each other"
    );
    if ours == 1 {
        lab.expect_state(1, "web", "STATE=BACKUP");
        let st: Value =
            serde_json::from_slice(&lab.cli(1, &["status", "--json"]).stdout).expect("status");
        assert!(
            st["instances"][0]["counters"]["advertsReceived"]
                .as_u64()
                .unwrap_or(0)
                > 0
        );
        assert_eq!(
            st["instances"][0]["masterAddress"]
                .as_str()
                .map(|s| s.parse::<IpAddr>().is_ok()),
            Some(true)
        );
    }

    // Failover: the master stops gracefully (priority 0); node1 takes over.
    let start = Instant::now();
    if ka == 0 {
        lab.stop_keepalived(0);
    } else {
        lab.signal_daemon(0, libc::SIGTERM);
    }
    let bound = Duration::from_millis(case.interval_ms() * 3 + 1500);
    wait_for(bound, || (lab.holders(vip) == vec![1]).then_some(()))
        .unwrap_or_else(|| panic!("node1 did not take over, holders {:?}", lab.holders(vip)));
    println!(
        "{} took over after {:?}",
        if ka == 0 { "nginx-ha" } else { "keepalived" },
        start.elapsed()
    );
}

#[test]
fn v2_pass_keepalived_master_nginx_ha_backup() {
    run(Case::V2Pass, 0);
}
#[test]
fn v2_pass_nginx_ha_master_keepalived_backup() {
    run(Case::V2Pass, 1);
}
#[test]
fn v3_ipv4_keepalived_master_nginx_ha_backup() {
    run(Case::V3Ipv4, 0);
}
#[test]
fn v3_ipv4_nginx_ha_master_keepalived_backup() {
    run(Case::V3Ipv4, 1);
}
#[test]
fn v3_ipv6_keepalived_master_nginx_ha_backup() {
    run(Case::V3Ipv6, 0);
}
#[test]
fn v3_ipv6_nginx_ha_master_keepalived_backup() {
    run(Case::V3Ipv6, 1);
}
#[test]
fn v3_unicast_keepalived_master_nginx_ha_backup() {
    run(Case::V3Unicast, 0);
}
#[test]
fn v3_unicast_nginx_ha_master_keepalived_backup() {
    run(Case::V3Unicast, 1);
}

/// Negative control: with a wrong password nginx-ha must not accept
/// keepalived's adverts (RFC 3768 §7.1), so both become master.
#[test]
fn v2_wrong_password_is_refused() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let vip: IpAddr = Case::V2Pass.vip().parse().unwrap();
    lab.start_nginx(1);
    let inst = nginx_ha_instance(Case::V2Pass, lab.dir.path());
    std::fs::write(lab.dir.path().join("vrrp-password"), "wrong").unwrap();
    let d = lab.declaration(1, 100, json!({ "web": inst }));
    lab.start_daemon(1, &d);
    lab.start_keepalived(0, &keepalived_conf(Case::V2Pass, 0, 1, 150));
    wait_for(Duration::from_secs(8), || {
        (lab.holders(vip) == vec![0, 1]).then_some(())
    })
    .unwrap_or_else(|| {
        panic!(
            "wrong password still accepted: holders {:?}",
            lab.holders(vip)
        )
    });
    let st: Value =
        serde_json::from_slice(&lab.cli(1, &["status", "--json"]).stdout).expect("status");
    assert!(
        st["instances"][0]["counters"]["dropped"]["auth_mismatch"]
            .as_u64()
            .unwrap_or(0)
            > 0,
        "{st}"
    );
}
