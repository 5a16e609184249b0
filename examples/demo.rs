//! The two-node demo: real nginx and real nginx-ha on two nodes in network
//! namespaces, a client polling the VIP every 10 ms, nginx killed on the
//! master, and how long the VIP took to serve from the other node.
//!
//! Run as root through `scripts/demo` (which installs and builds first).

use nginx_ha_lab as lab;

use lab::{Lab, VIP, wait_for};
use serde_json::json;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

struct Row {
    setup: &'static str,
    failover: Duration,
    failed: u32,
    failback: Duration,
}

fn daemon_bin() -> PathBuf {
    lab::daemon_next_to_examples()
}

fn run(setup: &'static str, unicast: bool) -> Row {
    let vip: IpAddr = VIP.parse().expect("vip");
    let mut lab = Lab::new(2, &daemon_bin());
    println!("\n== {setup} ==");
    for i in 0..2 {
        lab.start_nginx(i);
    }
    for (i, prio) in [(0usize, 150u8), (1, 100)] {
        let mut inst = json!({
            "interface": "eth0",
            "virtualRouterId": 51,
            "virtualIps": [format!("{VIP}/24")],
            "advertInterval": "1s"
        });
        if unicast {
            inst["unicastPeers"] =
                json!([lab::node_v4(0).to_string(), lab::node_v4(1).to_string()]);
        }
        let mut d = lab.declaration(i, prio, json!({ "web": inst }));
        d["checks"]["nginx"]["interval"] = json!("200ms");
        d["checks"]["nginx"]["timeout"] = json!("100ms");
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(10), || {
        (lab.holders(vip) == vec![0]).then_some(())
    })
    .expect("node0 never became master");
    lab.poll_until(
        vip,
        Duration::from_millis(10),
        Duration::from_secs(5),
        |b| b == "node0\n",
    )
    .expect("client never reached node0");
    let st = lab.cli(0, &["status"]);
    print!("{}", String::from_utf8_lossy(&st.stdout));

    println!("client polls http://{VIP}/ every 10 ms; kill -9 nginx on node0 (the master)...");
    let start = Instant::now();
    lab.kill_nginx(0);
    let (at, failed) = lab
        .poll_until(
            vip,
            Duration::from_millis(10),
            Duration::from_secs(10),
            |b| b == "node1\n",
        )
        .expect("node1 never served the VIP");
    let failover = at - start;
    println!(
        "node1 served the VIP {:.1} ms after nginx died ({failed} failed requests)",
        failover.as_secs_f64() * 1000.0
    );

    println!("nginx restarted on node0 (systemd's job in production)...");
    let back = Instant::now();
    lab.start_nginx(0);
    let (at, _) = lab
        .poll_until(
            vip,
            Duration::from_millis(10),
            Duration::from_secs(15),
            |b| b == "node0\n",
        )
        .expect("node0 never took the VIP back");
    let failback = at - back;
    println!(
        "node0 took the VIP back {:.1} ms after nginx started (rise, then preemption)",
        failback.as_secs_f64() * 1000.0
    );
    Row {
        setup,
        failover,
        failed,
        failback,
    }
}

fn main() {
    if !lab::require_root_and_tools() {
        std::process::exit(1);
    }
    let rows = [
        run("multicast, VRRPv3, 1 s adverts, priorities 150/100", false),
        run(
            "unicast pair, VRRPv3, 1 s adverts, priorities 150/100",
            true,
        ),
    ];
    println!(
        "\n| setup | kill -9 nginx -> backup serves | failed requests (10 ms polling) | nginx back -> failback |"
    );
    println!("|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.1} ms | {} | {:.0} ms |",
            r.setup,
            r.failover.as_secs_f64() * 1000.0,
            r.failed,
            r.failback.as_secs_f64() * 1000.0
        );
    }
    println!(
        "\nmulticast: the backup takes over after its Skew_Time (RFC 5798: (256-100)/256 x 1 s = 609 ms);\n\
         unicast pair: the only possible successor takes over at once (fastTakeover: auto)."
    );
}
