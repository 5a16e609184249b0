//! Hostile traffic in the namespace lab: malformed and forged adverts from
//! an attacker on the segment (the lab's client namespace), a garbage flood,
//! and SIGHUP storms. For each: the master keeps its VIP, the daemon keeps
//! answering `status`, memory stays bounded, and `status --json` counts
//! every drop by reason. Needs root.

use nginx_ha_lab as lab;

use lab::{Lab, VIP, in_netns, require_root_and_tools, vip, wait_for};
use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, MCAST_V4, Version};
use serde_json::{Value, json};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// One node (node0, sole master) with three instances on eth0: VRRPv3
/// multicast (VRID 51), VRRPv2 with PASS (52), VRRPv3 unicast (53).
fn target() -> Lab {
    let mut lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    lab.start_nginx(0);
    let pw = lab.dir.path().join("pw");
    std::fs::write(&pw, "s3cret").unwrap();
    let d = lab.declaration(
        0,
        150,
        json!({
            "web": { "interface": "eth0", "virtualRouterId": 51, "virtualIps": [format!("{VIP}/24")], "advertInterval": "100ms" },
            "legacy": { "interface": "eth0", "virtualRouterId": 52, "version": 2, "virtualIps": ["192.0.2.101/24"],
                        "advertInterval": "1s", "authPasswordFile": pw },
            "uni": { "interface": "eth0", "virtualRouterId": 53, "virtualIps": ["192.0.2.102/24"], "advertInterval": "100ms",
                     "unicastPeers": [lab::node_v4(0).to_string(), "192.0.2.12"] }
        }),
    );
    lab.start_daemon(0, &d);
    wait_for(Duration::from_secs(6), || {
        let all = ["192.0.2.100", "192.0.2.101", "192.0.2.102"]
            .iter()
            .all(|v| lab.holders(v.parse().unwrap()) == vec![0]);
        all.then_some(())
    })
    .expect("node0 never became master of all three");
    lab
}

fn status(lab: &Lab) -> Value {
    let out = lab.cli(0, &["status", "--json"]);
    assert!(
        out.status.success(),
        "status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status json")
}

fn dropped(st: &Value, instance: Option<&str>, reason: &str) -> u64 {
    let d = match instance {
        None => &st["dropped"],
        Some(name) => {
            let i = st["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == name)
                .unwrap();
            &i["counters"]["dropped"]
        }
    };
    d[reason].as_u64().unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sends raw VRRP payloads from the attacker (client) namespace.
struct Attacker {
    ns: String,
}

impl Attacker {
    /// Sends each payload from `src` to `dst` with the given TTL.
    fn send(&self, src: Ipv4Addr, dst: Ipv4Addr, ttl: u32, payloads: &[Vec<u8>]) {
        in_netns(&self.ns, || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112)))
                .expect("raw socket");
            s.bind(&SockAddr::from(SocketAddr::new(src.into(), 0)))
                .expect("bind source");
            s.set_ttl_v4(ttl).expect("ttl");
            s.set_multicast_ttl_v4(ttl).expect("mttl");
            s.set_multicast_if_v4(&src).expect("mif");
            let to = SockAddr::from(SocketAddr::new(dst.into(), 0));
            for p in payloads {
                s.send_to(p, &to).expect("send");
            }
        });
    }
}

fn advert(version: Version, vrid: u8, prio: u8, interval_cs: u16, vip: &str, auth: Auth) -> Advert {
    Advert {
        version,
        vrid,
        priority: prio,
        interval_cs,
        addrs: vec![vip.parse().unwrap()],
        auth,
    }
}

const ATTACKER: Ipv4Addr = lab::CLIENT_V4;

#[test]
fn malformed_and_forged_adverts_are_dropped_and_counted() {
    if !require_root_and_tools() {
        return;
    }
    let lab = target();
    let a = Attacker {
        ns: lab.client_ns.clone(),
    };
    let src = IpAddr::V4(ATTACKER);
    let mcast = IpAddr::V4(MCAST_V4);
    let node0 = lab::node_v4(0);
    let rfc = ChecksumStyle::Rfc;
    let strong = advert(Version::V3, 51, 254, 10, VIP, Auth::None);
    let n = 20;
    let many = |p: Vec<u8>| vec![p; n];

    // TTL 254: could come from off-link (RFC 5798 §7.1).
    a.send(
        ATTACKER,
        MCAST_V4,
        254,
        &many(strong.encode(src, mcast, rfc)),
    );
    // Wrong checksum.
    let mut bad = strong.encode(src, mcast, rfc);
    bad[6] ^= 0xff;
    a.send(ATTACKER, MCAST_V4, 255, &many(bad));
    // A VRID nobody configured.
    a.send(
        ATTACKER,
        MCAST_V4,
        255,
        &many(advert(Version::V3, 99, 254, 10, VIP, Auth::None).encode(src, mcast, rfc)),
    );
    // VRRPv2 to the VRRPv3 instance.
    a.send(
        ATTACKER,
        MCAST_V4,
        255,
        &many(advert(Version::V2, 51, 254, 100, VIP, Auth::None).encode(src, mcast, rfc)),
    );
    // Truncated, and count_ip larger than the packet.
    let full = strong.encode(src, mcast, rfc);
    a.send(ATTACKER, MCAST_V4, 255, &many(full[..6].to_vec()));
    let mut big = full.clone();
    big[3] = 40;
    a.send(ATTACKER, MCAST_V4, 255, &many(big));
    // Wrong PASS to the VRRPv2 instance.
    let wrong = advert(
        Version::V2,
        52,
        254,
        100,
        "192.0.2.101",
        Auth::pass(b"guess").unwrap(),
    );
    a.send(
        ATTACKER,
        MCAST_V4,
        255,
        &many(wrong.encode(src, mcast, rfc)),
    );
    // A non-peer to the unicast instance, sent to node0's own address.
    let uni = advert(Version::V3, 53, 254, 10, "192.0.2.102", Auth::None);
    a.send(
        ATTACKER,
        node0,
        255,
        &many(uni.encode(src, IpAddr::V4(node0), rfc)),
    );

    // Every advert above claimed priority 254 > 150: had any got through,
    // node0 would have yielded. It keeps all three.
    std::thread::sleep(Duration::from_millis(300));
    for v in ["192.0.2.100", "192.0.2.101", "192.0.2.102"] {
        assert_eq!(
            lab.holders(v.parse().unwrap()),
            vec![0],
            "{v} lost to a forged advert"
        );
    }
    let st = status(&lab);
    let n = n as u64;
    assert_eq!(dropped(&st, None, "bad_ttl"), n, "{st}");
    assert_eq!(dropped(&st, None, "bad_checksum"), n, "{st}");
    assert_eq!(dropped(&st, None, "unknown_vrid"), n, "{st}");
    assert_eq!(dropped(&st, Some("web"), "version_mismatch"), n, "{st}");
    assert_eq!(dropped(&st, None, "truncated"), 2 * n, "{st}");
    assert_eq!(dropped(&st, Some("legacy"), "auth_mismatch"), n, "{st}");
    assert_eq!(dropped(&st, None, "not_a_peer"), n, "{st}");
}

#[test]
fn higher_priority_flood_from_a_foreign_subnet_is_ignored() {
    if !require_root_and_tools() {
        return;
    }
    let lab = target();
    lab::sh(&[
        "ip",
        "-n",
        &lab.client_ns,
        "addr",
        "add",
        "198.51.100.66/24",
        "dev",
        "eth0",
    ]);
    let a = Attacker {
        ns: lab.client_ns.clone(),
    };
    let spoof = Ipv4Addr::new(198, 51, 100, 66);
    let p = advert(Version::V3, 51, 254, 10, VIP, Auth::None).encode(
        spoof.into(),
        MCAST_V4.into(),
        ChecksumStyle::Rfc,
    );
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        a.send(spoof, MCAST_V4, 255, &vec![p.clone(); 200]);
        assert_eq!(
            lab.holders(vip()),
            vec![0],
            "a foreign-subnet advert took the VIP"
        );
    }
    let st = status(&lab);
    assert!(dropped(&st, None, "foreign_source") > 0, "{st}");
    // The same advert from an on-link address is legitimate VRRP: the RFC
    // outcome is that the higher priority wins.
    let src = lab::CLIENT_V4;
    let p = advert(Version::V3, 51, 254, 10, VIP, Auth::None).encode(
        src.into(),
        MCAST_V4.into(),
        ChecksumStyle::Rfc,
    );
    a.send(src, MCAST_V4, 255, &[p]);
    wait_for(Duration::from_secs(1), || {
        lab.holders(vip()).is_empty().then_some(())
    })
    .expect("an on-link higher priority must win (RFC 5798 §6.4.3)");
}

#[test]
fn garbage_flood_for_ten_seconds_leaves_the_daemon_responsive() {
    if !require_root_and_tools() {
        return;
    }
    let lab = target();
    let pid = lab.daemon_pid(0).unwrap();
    let rss_before = rss_kib(pid);
    let ns = lab.client_ns.clone();
    let stop_at = Instant::now() + Duration::from_secs(10);
    let flood = std::thread::spawn(move || {
        in_netns(&ns, || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).expect("raw");
            s.set_multicast_ttl_v4(255).expect("ttl");
            s.set_multicast_if_v4(&ATTACKER).expect("mif");
            let to = SockAddr::from(SocketAddr::new(MCAST_V4.into(), 0));
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            let mut sent = 0u64;
            let mut buf = [0u8; 64];
            while Instant::now() < stop_at {
                for b in buf.iter_mut() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    *b = x as u8;
                }
                let len = 1 + (x % 64) as usize;
                if s.send_to(&buf[..len], &to).is_ok() {
                    sent += 1;
                }
            }
            sent
        })
    });
    // While the flood runs: the VIP stays, and status answers promptly.
    let mut slowest = Duration::ZERO;
    while Instant::now() < stop_at {
        let t = Instant::now();
        let _ = status(&lab);
        slowest = slowest.max(t.elapsed());
        assert_eq!(lab.holders(vip()), vec![0], "VIP lost during the flood");
        std::thread::sleep(Duration::from_millis(200));
    }
    let sent = flood.join().unwrap();
    let st = status(&lab);
    let counted: u64 = st["dropped"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|v| v.as_u64())
        .sum();
    let rss_after = rss_kib(pid);
    println!(
        "flood: {sent} packets in 10 s; {counted} counted as dropped; slowest status {slowest:?}; RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(
        sent > 10_000,
        "the flood was too weak to mean anything: {sent}"
    );
    assert!(counted > sent / 2, "drops not counted: {st}");
    assert!(slowest < Duration::from_secs(1), "status took {slowest:?}");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}

#[test]
fn sighup_storm_keeps_the_last_good_config_without_a_flap() {
    if !require_root_and_tools() {
        return;
    }
    let mut lab = Lab::new(2, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let inst = json!({ "web": { "interface": "eth0", "virtualRouterId": 51,
                                "virtualIps": [format!("{VIP}/24")], "advertInterval": "100ms" } });
    for i in 0..2 {
        lab.start_nginx(i);
        let d = lab.declaration(i, if i == 0 { 150 } else { 100 }, inst.clone());
        lab.start_daemon(i, &d);
    }
    wait_for(Duration::from_secs(5), || {
        (lab.holders(vip()) == vec![0]).then_some(())
    })
    .expect("no master");
    let good = lab.declaration(0, 150, inst.clone());
    let cfg = lab.nodes[0].dir.join("nginx-ha.json");
    let bad_bytes = b"{ \"node\": { \"name\": \"node0\", \"priority\": 0 } }".to_vec();
    let good_bytes = serde_json::to_vec(&good).unwrap();
    let watcher_ns = lab.nodes[0].ns.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    // Watch the VIP on node0 from another thread for the whole storm.
    let watch = std::thread::spawn(move || {
        let mut lost = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let out = std::process::Command::new("ip")
                .args(["-n", &watcher_ns, "-o", "addr", "show", "dev", "eth0"])
                .output()
                .expect("ip");
            if !String::from_utf8_lossy(&out.stdout).contains("192.0.2.100/") {
                lost += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        lost
    });
    for k in 0..100 {
        // Written aside and renamed, as a configuration manager would.
        let tmp = cfg.with_extension("tmp");
        std::fs::write(&tmp, if k % 2 == 0 { &bad_bytes } else { &good_bytes }).unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        lab.signal_daemon(0, libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lost = watch.join().unwrap();
    assert_eq!(lost, 0, "the VIP flapped during the storm");
    let st = status(&lab);
    assert_eq!(st["instances"][0]["state"], "MASTER");
    assert_eq!(st["instances"][0]["priority"], 150);
    let log = lab.daemon_log(0);
    assert!(
        log.contains("reload refused"),
        "no bad file was seen: the storm proved nothing"
    );
    assert!(log.contains("reload done"), "no good reload");
}

/// `dropped.socket_overrun` is what the kernel dropped on a VRRP socket
/// whose buffer was full (read from the socket, SO_MEMINFO's drops): a
/// socket nobody reads, flooded from the segment, counts the datagrams it
/// had no room for, and no more than were sent.
#[test]
fn a_full_vrrp_socket_counts_what_the_kernel_dropped() {
    if !require_root_and_tools() {
        return;
    }
    use nginx_ha::net::vrrp_socket::{RecvBatch, VrrpSocket};
    const FLOOD: u64 = 20_000;
    let lab = Lab::new(1, env!("CARGO_BIN_EXE_nginx-ha").as_ref());
    let client = lab.client_ns.clone();
    let (overruns, queued) = in_netns(&lab.nodes[0].ns, || {
        let index = nix::net::if_::if_nametoindex("eth0").expect("eth0");
        let sock = VrrpSocket::open("eth0", index, true).expect("VRRP socket");
        assert_eq!(sock.overruns(), 0, "a fresh socket has dropped nothing");
        in_netns(&client, || {
            let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(112))).expect("raw");
            let to = SockAddr::from(SocketAddr::new(lab::node_v4(0).into(), 0));
            for _ in 0..FLOOD {
                s.send_to(&[0x31, 51, 100, 1, 0, 100, 0, 0], &to)
                    .expect("send");
            }
        });
        // What arrives has arrived once the count stops moving.
        let mut last = u64::MAX;
        wait_for(Duration::from_secs(5), || {
            std::thread::sleep(Duration::from_millis(50));
            let now = sock.overruns();
            std::mem::replace(&mut last, now).eq(&now).then_some(())
        })
        .expect("the drop count settles");
        let mut rb = RecvBatch::default();
        let mut queued = 0u64;
        // Everything queued is there already: read until empty.
        for _ in 0..FLOOD {
            if sock.read_ready(&mut rb, |_| queued += 1).expect("read") == 0 {
                break;
            }
        }
        (sock.overruns(), queued)
    });
    println!("sent {FLOOD}: {queued} queued, {overruns} dropped by the kernel");
    assert!(overruns > 0, "a 4 MiB buffer cannot hold {FLOOD} datagrams");
    assert!(
        overruns + queued <= FLOOD,
        "{overruns} dropped + {queued} queued > {FLOOD} sent"
    );
}
