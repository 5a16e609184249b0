//! A routed anycast lab: a router namespace running BIRD with ECMP over
//! BGP sessions (with BFD) to N nodes, each with real nginx, the real
//! nginx-ha and its own BIRD announcing the service address, and a client
//! behind the router. Links: router–node i on 198.51.100.(4i)/30, router–
//! client on 192.0.2.0/24; the service address is 203.0.113.80/32 on every
//! node's `lo`. Built on `Lab::bare`, so nginx, the daemon and the clean-up
//! are the same as in the L2 lab.

use crate::{Lab, http_get, in_netns, sh, wait_for};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub const SERVICE: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 80);
pub const SERVICE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x80, 0, 0, 0, 0, 1);
const ROUTER_AS: u32 = 64600;
const CLIENT: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const ROUTER_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// The router's address on the link to node `i`.
pub fn router_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, (4 * i + 1) as u8)
}

/// Node `i`'s address on its link to the router.
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, (4 * i + 2) as u8)
}

/// The router's IPv6 address on the link to node `i`.
pub fn router_addr6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, i as u16 + 1, 0, 0, 0, 1)
}

/// Node `i`'s IPv6 address on its link to the router.
pub fn node_addr6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, i as u16 + 1, 0, 0, 0, 2)
}

const CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 0x10);
const ROUTER_CLIENT_SIDE6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);

pub fn node_as(i: usize) -> u32 {
    64512 + i as u32
}

/// BFD as the docs recommend: 100 ms × 3.
const BFD: &str = r#"protocol bfd {
  interface "*" { min rx interval 100 ms; min tx interval 100 ms; multiplier 3; };
}
"#;

/// Short BGP retry timers: a restarted BIRD is back in a second or two
/// rather than BIRD's default five.
const FAST_RETRY: &str = "connect delay time 1; connect retry time 1; error wait time 1, 2;";

/// One request of the client: when it started, and the node that
/// answered (None: it failed).
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub at: Instant,
    pub node: Option<usize>,
}

pub struct AnycastLab {
    pub lab: Lab,
    pub router_ns: String,
    /// BIRD processes: the router's, then one per node.
    birds: Vec<Option<Child>>,
}

impl AnycastLab {
    pub fn new(n: usize, daemon_bin: &Path) -> AnycastLab {
        let mut lab = Lab::bare(daemon_bin);
        let router_ns = lab.bridge_ns.clone();
        let client_ns = lab.client_ns.clone();
        netns(&router_ns);
        for k in [
            "net.ipv4.ip_forward=1",
            // ECMP per connection (5-tuple), not per address pair: one
            // client would otherwise always reach the same node.
            "net.ipv4.fib_multipath_hash_policy=1",
            "net.ipv6.conf.all.forwarding=1",
            "net.ipv6.fib_multipath_hash_policy=1",
        ] {
            sh(&["ip", "netns", "exec", &router_ns, "sysctl", "-qw", k]);
        }
        netns(&client_ns);
        veth(&router_ns, "c0", &client_ns, "eth0");
        addr(&router_ns, "c0", &format!("{ROUTER_CLIENT_SIDE}/24"));
        addr(&client_ns, "eth0", &format!("{CLIENT}/24"));
        addr(&router_ns, "c0", &format!("{ROUTER_CLIENT_SIDE6}/64"));
        addr(&client_ns, "eth0", &format!("{CLIENT6}/64"));
        default_via(&client_ns, &ROUTER_CLIENT_SIDE.to_string());
        default_via(&client_ns, &ROUTER_CLIENT_SIDE6.to_string());
        for i in 0..n {
            let ns = format!("{}-n{i}", lab.prefix);
            netns(&ns);
            veth(&router_ns, &format!("n{i}"), &ns, "eth0");
            addr(
                &router_ns,
                &format!("n{i}"),
                &format!("{}/30", router_addr(i)),
            );
            addr(&ns, "eth0", &format!("{}/30", node_addr(i)));
            addr(
                &router_ns,
                &format!("n{i}"),
                &format!("{}/64", router_addr6(i)),
            );
            addr(&ns, "eth0", &format!("{}/64", node_addr6(i)));
            default_via(&ns, &router_addr(i).to_string());
            default_via(&ns, &router_addr6(i).to_string());
            let dir = lab.dir.path().join(format!("node{i}"));
            fs::create_dir_all(&dir).expect("node dir");
            lab.nodes.push(crate::Node {
                ns,
                name: format!("node{i}"),
                dir,
                nginx: None,
                daemon: None,
                keepalived: None,
            });
        }
        let mut a = AnycastLab {
            lab,
            router_ns,
            birds: (0..=n).map(|_| None).collect(),
        };
        a.write_router_config(n);
        for i in 0..n {
            a.write_node_config(i);
        }
        a.start_bird(0);
        a
    }

    fn bird_dir(&self, who: usize) -> PathBuf {
        match who {
            0 => self.lab.dir.path().join("router"),
            i => self.lab.nodes[i - 1].dir.clone(),
        }
    }

    fn bird_ns(&self, who: usize) -> String {
        match who {
            0 => self.router_ns.clone(),
            i => self.lab.nodes[i - 1].ns.clone(),
        }
    }

    /// Node `i`'s BIRD control socket: what its declaration names.
    pub fn socket(&self, i: usize) -> PathBuf {
        self.lab.nodes[i].dir.join("bird.ctl")
    }

    fn write_router_config(&self, n: usize) {
        let mut conf = format!(
            "router id {ROUTER_CLIENT_SIDE};\nlog stderr all;\nprotocol device {{ scan time 10; }}\n\
             protocol kernel kernel4 {{\n  ipv4 {{ import none; export all; }};\n  merge paths on;\n}}\n\
             protocol kernel kernel6 {{\n  ipv6 {{ import none; export all; }};\n  merge paths on;\n}}\n{BFD}"
        );
        for i in 0..n {
            conf.push_str(&format!(
                "protocol bgp node{i} {{\n  local {} as {ROUTER_AS};\n  neighbor {} as {};\n  bfd on;\n  {FAST_RETRY}\n  ipv4 {{ import all; export none; }};\n  ipv6 {{ import all; export none; }};\n}}\n",
                router_addr(i),
                node_addr(i),
                node_as(i)
            ));
        }
        let dir = self.bird_dir(0);
        fs::create_dir_all(&dir).expect("router dir");
        fs::write(dir.join("bird.conf"), conf).expect("router bird.conf");
    }

    /// The node's BIRD config as docs/anycast.md gives it (the static
    /// protocol `disabled;`, exported only to BGP, no kernel protocol).
    fn write_node_config(&self, i: usize) {
        let conf = format!(
            "router id {me};\nlog stderr all;\nprotocol device {{ scan time 10; }}\n\
             protocol static nginx_ha4 {{\n  disabled;\n  ipv4;\n  route {SERVICE}/32 blackhole;\n}}\n\
             protocol static nginx_ha6 {{\n  disabled;\n  ipv6;\n  route {SERVICE6}/128 blackhole;\n}}\n{BFD}\
             protocol bgp upstream {{\n  local {me} as {asn};\n  neighbor {peer} as {ROUTER_AS};\n  bfd on;\n  {FAST_RETRY}\n  ipv4 {{ import none; export where proto = \"nginx_ha4\"; }};\n  ipv6 {{ import none; export where proto = \"nginx_ha6\"; }};\n}}\n",
            me = node_addr(i),
            asn = node_as(i),
            peer = router_addr(i),
        );
        fs::write(self.bird_dir(i + 1).join("bird.conf"), conf).expect("node bird.conf");
    }

    /// Starts BIRD for `who` (0: the router, i + 1: node i) in the
    /// foreground, as our child; waits for its control socket.
    pub fn start_bird(&mut self, who: usize) {
        let dir = self.bird_dir(who);
        let sock = dir.join("bird.ctl");
        let _ = fs::remove_file(&sock);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("bird.log"))
            .expect("bird log");
        let child = self
            .lab
            .ns_cmd(&self.bird_ns(who), "/usr/sbin/bird")
            .arg("-f")
            .arg("-c")
            .arg(dir.join("bird.conf"))
            .arg("-s")
            .arg(&sock)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bird");
        self.birds[who] = Some(child);
        wait_for(Duration::from_secs(5), || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        })
        .unwrap_or_else(|| panic!("bird {who} did not open {}", sock.display()));
    }

    /// SIGKILL to BIRD of `who`, reaped.
    pub fn kill_bird(&mut self, who: usize) {
        if let Some(mut c) = self.birds[who].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn start_node_bird(&mut self, i: usize) {
        self.start_bird(i + 1);
    }

    /// `birdc` against `who`'s BIRD.
    pub fn birdc(&self, who: usize, cmd: &str) -> String {
        let out = Command::new("/usr/sbin/birdc")
            .arg("-s")
            .arg(self.bird_dir(who).join("bird.ctl"))
            .args(cmd.split_whitespace())
            .output()
            .expect("birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A declaration for node `i`: the lab's nginx check, no VRRP
    /// instance, anycast of the service address through its BIRD, with
    /// `anycast` keys merged in.
    pub fn declaration(&self, i: usize, anycast: serde_json::Value) -> serde_json::Value {
        let mut d = self.lab.declaration(i, 100, serde_json::json!({}));
        let mut a = serde_json::json!({
            "prefixes": [format!("{SERVICE}/32")],
            "bird": { "socket": self.socket(i) },
            "announceAfter": "0s",
            "drain": "1s",
        });
        if let (Some(o), Some(e)) = (a.as_object_mut(), anycast.as_object()) {
            for (k, v) in e {
                o.insert(k.clone(), v.clone());
            }
        }
        d["anycast"] = a;
        d
    }

    /// The nodes the router's kernel sends the IPv4 service address to.
    pub fn nexthops(&self) -> Vec<usize> {
        self.nexthops_of(IpAddr::V4(SERVICE))
    }

    /// The nodes the router's kernel sends `service` to now (by the link
    /// each next hop is on).
    pub fn nexthops_of(&self, service: IpAddr) -> Vec<usize> {
        let (family, len) = if service.is_ipv4() {
            ("-4", 32)
        } else {
            ("-6", 128)
        };
        let out = Command::new("ip")
            .args([
                family,
                "-n",
                &self.router_ns,
                "route",
                "show",
                &format!("{service}/{len}"),
            ])
            .output()
            .expect("ip route");
        let text = String::from_utf8_lossy(&out.stdout);
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut v: Vec<usize> = words
            .windows(2)
            .filter(|w| w[0] == "dev")
            .filter_map(|w| w[1].strip_prefix('n')?.parse().ok())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Waits (polling every ms) until the router routes the IPv4 service
    /// address to exactly `want`; how long that took.
    pub fn wait_nexthops(&self, want: &[usize], limit: Duration) -> Option<Duration> {
        self.wait_nexthops_of(IpAddr::V4(SERVICE), want, limit)
    }

    pub fn wait_nexthops_of(
        &self,
        service: IpAddr,
        want: &[usize],
        limit: Duration,
    ) -> Option<Duration> {
        let t = Instant::now();
        let end = t + limit;
        loop {
            if self.nexthops_of(service) == want {
                return Some(t.elapsed());
            }
            if Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Drops everything on node `i`'s link inside the node, while both
    /// ends stay up: a failure only BFD sees (a cut behind a switch). A
    /// link set down would be seen at once by the interface state instead.
    pub fn cut(&self, i: usize, cut: bool) {
        let ns = &self.lab.nodes[i].ns;
        let rules = if cut {
            "table inet cut {\n chain i { type filter hook input priority -300; iifname \"eth0\" drop; }\n chain o { type filter hook output priority -300; oifname \"eth0\" drop; }\n}\n"
        } else {
            "delete table inet cut\n"
        };
        let mut c = Command::new("ip")
            .args(["netns", "exec", ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .expect("nft");
        if let Some(mut stdin) = c.stdin.take() {
            use std::io::Write;
            stdin.write_all(rules.as_bytes()).expect("nft rules");
        }
        assert!(c.wait().expect("nft").success(), "nft {rules}");
    }

    /// A client that opens a new connection to the service address every
    /// `every` until `stop`; its samples.
    pub fn client(
        &self,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Sample>> {
        self.client_to(IpAddr::V4(SERVICE), every, stop)
    }

    /// The same against `service` (e.g. the IPv6 one).
    pub fn client_to(
        &self,
        service: IpAddr,
        every: Duration,
        stop: Arc<AtomicBool>,
    ) -> std::thread::JoinHandle<Vec<Sample>> {
        let ns = self.lab.client_ns.clone();
        let n = self.lab.nodes.len();
        std::thread::spawn(move || {
            in_netns(&ns, move || {
                let mut out = Vec::new();
                // Bounded: at most ten minutes of samples.
                let limit = (600_000 / every.as_millis().max(1)) as usize;
                while !stop.load(Ordering::SeqCst) && out.len() < limit {
                    let at = Instant::now();
                    let body = http_get(SocketAddr::new(service, 80), Duration::from_millis(200));
                    let node = body.and_then(|b| (0..n).find(|i| b.trim() == format!("node{i}")));
                    out.push(Sample { at, node });
                    if let Some(rest) = every.checked_sub(at.elapsed()) {
                        std::thread::sleep(rest);
                    }
                }
                out
            })
        })
    }

    pub fn bird_log(&self, who: usize) -> String {
        fs::read_to_string(self.bird_dir(who).join("bird.log")).unwrap_or_default()
    }
}

impl Drop for AnycastLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for who in 0..self.birds.len() {
                eprintln!("--- bird {who} log ---\n{}", self.bird_log(who));
            }
            eprintln!("--- router routes ---\n{}", self.birdc(0, "show route"));
        }
        for who in 0..self.birds.len() {
            self.kill_bird(who);
        }
        // The lab's own Drop stops nginx and the daemons and deletes the
        // namespaces (the router's is its `bridge_ns`).
    }
}

fn netns(ns: &str) {
    sh(&["ip", "netns", "add", ns]);
    // DAD would hold link-local addresses (BGP next hops) back a second.
    for k in ["all", "default"] {
        let key = format!("net.ipv6.conf.{k}.accept_dad=0");
        sh(&["ip", "netns", "exec", ns, "sysctl", "-qw", &key]);
    }
    sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
}

fn veth(ns_a: &str, a: &str, ns_b: &str, b: &str) {
    sh(&[
        "ip", "-n", ns_a, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns_b,
    ]);
    sh(&["ip", "-n", ns_a, "link", "set", a, "up"]);
    sh(&["ip", "-n", ns_b, "link", "set", b, "up"]);
}

fn addr(ns: &str, dev: &str, a: &str) {
    // No DAD: it would hold IPv6 addresses back for a second and more.
    sh(&["ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
}

fn default_via(ns: &str, gw: &str) {
    sh(&["ip", "-n", ns, "route", "add", "default", "via", gw]);
}
