//! What the benchmark runs: the two daemons' setups (textbook and fast
//! profiles), a pair of nodes in the lab, the open-loop client, failover
//! scenarios A-D, the footprint window and the scale runs.

use crate::lab::{self, Lab, children_of, http_get, in_netns, ms, wait_for};
use crate::{Opts, POLL_EVERY, REQ_TIMEOUT, VIP, clk_tck, cmd_out, jitter, loadavg, msf, vip};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

// ------------------------------------------------------------- processes

/// A process and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let kids = children_of(out[i]);
        out.extend(kids);
        i += 1;
    }
    out
}

/// (utime+stime, cutime+cstime) in seconds.
pub fn cpu_of(pid: u32) -> (f64, f64) {
    let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (0.0, 0.0);
    };
    let Some(rest) = s.rsplit_once(')').map(|(_, r)| r) else {
        return (0.0, 0.0);
    };
    // After ")": state is field 3; utime is field 14.
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let t = clk_tck();
    if f.len() < 15 {
        return (0.0, 0.0);
    }
    ((f[11] + f[12]) / t, (f[13] + f[14]) / t)
}

pub fn rss_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds of a process tree: own (utime+stime) and reaped children
/// (cutime+cstime, e.g. keepalived's check scripts), keyed by pid so that
/// deltas survive processes coming and going.
pub fn tree_cpu(root: u32) -> BTreeMap<u32, (f64, f64)> {
    tree(root).into_iter().map(|p| (p, cpu_of(p))).collect()
}

pub fn cpu_delta(a: &BTreeMap<u32, (f64, f64)>, b: &BTreeMap<u32, (f64, f64)>) -> (f64, f64) {
    let mut own = 0.0;
    let mut kids = 0.0;
    for (p, (o, k)) in b {
        let (o0, k0) = a.get(p).copied().unwrap_or((0.0, 0.0));
        own += o - o0;
        kids += k - k0;
    }
    (own, kids)
}

// ------------------------------------------------------------ the setups

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Daemon {
    NginxHa,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Profile {
    Textbook,
    Fast,
}

impl Profile {
    fn advert(self) -> Duration {
        match self {
            Profile::Textbook => ms(1000),
            Profile::Fast => ms(100),
        }
    }
    /// RFC 5798 §6.1 Skew_Time of the backup (priority 100).
    pub fn skew(self) -> Duration {
        self.advert() * (256 - 100) / 256
    }
    pub fn master_down(self) -> Duration {
        self.advert() * 3 + self.skew()
    }
    pub fn name(self) -> &'static str {
        match self {
            Profile::Textbook => "textbook",
            Profile::Fast => "fast",
        }
    }
}

/// How keepalived watches nginx.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KaCheck {
    /// `vrrp_script` running curl against stub_status every 1 s.
    Script,
    /// `vrrp_track_process` on the node's nginx (netlink process events).
    TrackProcess,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Setup {
    pub daemon: Daemon,
    pub profile: Profile,
    pub ka: KaCheck,
}

impl Setup {
    pub fn label(&self) -> String {
        match self.daemon {
            Daemon::NginxHa => format!("nginx-ha {}", self.profile.name()),
            Daemon::Keepalived => format!(
                "keepalived {} ({})",
                self.profile.name(),
                match self.ka {
                    KaCheck::Script => "vrrp_script",
                    KaCheck::TrackProcess => "vrrp_track_process",
                }
            ),
        }
    }
    fn uses_track_process(&self) -> bool {
        self.daemon == Daemon::Keepalived && self.ka == KaCheck::TrackProcess
    }
}

/// The name (comm, at most 15 bytes) node i's nginx runs under when
/// keepalived tracks it with vrrp_track_process: unique to this run.
pub fn nginx_comm(i: usize) -> String {
    format!("ngx{}n{i}", std::process::id() % 100_000)
}

pub fn prio(i: usize) -> u8 {
    if i == 0 { 150 } else { 100 }
}

pub fn nginx_ha_decl(lab: &Lab, i: usize, p: Profile) -> Value {
    let inst = json!({ "web": {
        "interface": "eth0",
        "virtualRouterId": 51,
        "version": 3,
        "virtualIps": [format!("{VIP}/24")],
        "advertInterval": match p { Profile::Textbook => "1s", Profile::Fast => "100ms" },
    }});
    let mut d = lab.declaration(i, prio(i), inst);
    let c = &mut d["checks"]["nginx"];
    match p {
        // The daemon's defaults: interval 1s, timeout 500ms, rise 2, fall 2, weight 0.
        Profile::Textbook => {
            let o = c.as_object_mut().expect("check object");
            for k in ["interval", "timeout", "rise", "fall"] {
                o.remove(k);
            }
        }
        Profile::Fast => {
            c["interval"] = json!("100ms");
            c["timeout"] = json!("50ms");
            c["rise"] = json!(2);
            c["fall"] = json!(2);
        }
    }
    d
}

pub fn keepalived_conf(i: usize, s: Setup) -> String {
    let (version, advert) = match s.profile {
        Profile::Textbook => (2, "1"),
        Profile::Fast => (3, "0.1"),
    };
    // Textbook: priority lowered below the backup's (150-60 = 90 < 100;
    // the recipe's -20 only works with 101/100). Fast: weight 0 = FAULT,
    // which leaves MASTER at once with a priority-0 advert.
    let weight = match s.profile {
        Profile::Textbook => -60,
        Profile::Fast => 0,
    };
    let (tracker, track) = match s.ka {
        KaCheck::Script => (
            format!(
                "vrrp_script chk_nginx {{\n    script \"/usr/bin/curl -fsS -m 1 -o /dev/null http://127.0.0.1:8081/nginx_status\"\n    interval 1\n    weight {weight}\n}}\n"
            ),
            "    track_script {\n        chk_nginx\n    }\n".to_string(),
        ),
        // The lab's nodes share one PID namespace (and the machine runs
        // other nginx), so this node's nginx runs under a name of its own
        // (a symlink to /usr/sbin/nginx, see Pair::nginx_exe): matched by
        // its comm, as `process nginx` would be on a real machine.
        KaCheck::TrackProcess => (
            format!(
                "vrrp_track_process chk_nginx {{\n    process {}\n    quorum 1\n}}\n",
                nginx_comm(i)
            ),
            format!("    track_process {{\n        chk_nginx weight {weight}\n    }}\n"),
        ),
    };
    format!(
        "global_defs {{\n    router_id node{i}\n    vrrp_version {version}\n    script_user root\n}}\n\n\
         {tracker}\n\
         vrrp_instance web {{\n    state BACKUP\n    interface eth0\n    virtual_router_id 51\n\
         \x20   priority {}\n    advert_int {advert}\n\
         \x20   virtual_ipaddress {{\n        {VIP}/24\n    }}\n{track}}}\n",
        prio(i)
    )
}

// ------------------------------------------------------------- the pair

pub struct Pair {
    pub lab: Lab,
    pub s: Setup,
    pub decls: Vec<Value>,
}

impl Pair {
    fn new(s: Setup) -> Pair {
        let lab = Lab::new(2, &daemon_bin());
        let decls = (0..2).map(|i| nginx_ha_decl(&lab, i, s.profile)).collect();
        Pair { lab, s, decls }
    }

    fn start(&mut self) -> Result<(), String> {
        for i in 0..2 {
            self.start_node(i);
        }
        self.settle("start")
    }

    fn start_node(&mut self, i: usize) {
        self.start_nginx(i);
        self.start_daemon(i);
    }

    fn start_nginx(&mut self, i: usize) {
        if self.s.uses_track_process() {
            let exe = self.lab.dir.path().join(nginx_comm(i));
            if !exe.exists() {
                std::os::unix::fs::symlink("/usr/sbin/nginx", &exe).expect("nginx symlink");
            }
            self.lab.start_nginx_exe(i, &exe);
        } else {
            self.lab.start_nginx(i);
        }
    }

    fn start_daemon(&mut self, i: usize) {
        match self.s.daemon {
            Daemon::NginxHa => {
                let d = self.decls[i].clone();
                self.lab.start_daemon(i, &d);
            }
            Daemon::Keepalived => {
                let conf = keepalived_conf(i, self.s);
                self.lab
                    .start_keepalived_opts(i, &conf, self.s.uses_track_process());
            }
        }
    }

    fn daemon_pid(&self, i: usize) -> Option<u32> {
        match self.s.daemon {
            Daemon::NginxHa => self.lab.daemon_pid(i),
            Daemon::Keepalived => self.lab.nodes[i].keepalived.as_ref().map(|c| c.id()),
        }
    }

    /// SIGTERM to node i's VRRP daemon, not waiting for it.
    fn sigterm_daemon(&mut self, i: usize) {
        if let Some(p) = self.daemon_pid(i) {
            // SAFETY: kill(2) on a daemon this lab started.
            unsafe { libc::kill(p as i32, libc::SIGTERM) };
        }
    }

    fn reap_daemon(&mut self, i: usize) {
        match self.s.daemon {
            Daemon::NginxHa => {
                self.lab.reap_daemon(i);
            }
            Daemon::Keepalived => self.lab.stop_keepalived(i),
        }
    }

    /// Back to the start: node0 master and serving, node1 backup, steady.
    fn settle(&self, what: &str) -> Result<(), String> {
        wait_for(Duration::from_secs(30), || {
            (self.lab.holders(vip()) == vec![0]).then_some(())
        })
        .ok_or_else(|| format!("{what}: holders {:?}", self.lab.holders(vip())))?;
        let (_, _) = poll(
            &self.lab,
            Instant::now(),
            "node0\n",
            Duration::from_secs(10),
        )
        .ok_or_else(|| format!("{what}: client never got node0"))?;
        // A few adverts so the backup has heard the master.
        std::thread::sleep(self.s.profile.advert() * 3);
        if self.lab.holders(vip()) != vec![0] {
            return Err(format!(
                "{what}: unstable, holders {:?}",
                self.lab.holders(vip())
            ));
        }
        Ok(())
    }

    fn log(&self, i: usize) -> String {
        match self.s.daemon {
            Daemon::NginxHa => self.lab.daemon_log(i),
            Daemon::Keepalived => self.lab.keepalived_log(i),
        }
    }
}

pub fn count_transitions(d: Daemon, log: &str) -> usize {
    match d {
        Daemon::NginxHa => log
            .lines()
            .filter(|l| l.contains("instance ") && l.contains(" -> ") && l.contains("(priority"))
            .count(),
        Daemon::Keepalived => log
            .lines()
            .filter(|l| {
                (l.contains("Entering ") && l.contains(" STATE"))
                    || l.contains("entering FAULT state")
            })
            .count(),
    }
}

pub fn daemon_bin() -> PathBuf {
    lab::daemon_next_to_examples()
}

// ------------------------------------------------------------- the client

/// Open-loop client from `t0`: a new request (its own TCP connection, 500
/// ms timeout) every 10 ms until one returns `want`. Returns the time from
/// `t0` to that response and how many requests sent before it got no 200
/// at all (a 200 from the other node is not a failure).
pub fn poll(
    lab: &Lab,
    t0: Instant,
    want: &'static str,
    limit: Duration,
) -> Option<(Duration, u32)> {
    let addr = SocketAddr::new(vip(), 80);
    in_netns(&lab.client_ns, move || {
        // (sent, got a 200, got `want`, done)
        let (tx, rx) = mpsc::channel::<(Instant, bool, bool, Instant)>();
        let mut res: Vec<(Instant, bool, bool, Instant)> = Vec::new();
        let first =
            |res: &[(Instant, bool, bool, Instant)]| res.iter().filter(|r| r.2).map(|r| r.3).min();
        std::thread::scope(|sc| {
            let mut next = Instant::now();
            while first(&res).is_none() && t0.elapsed() < limit {
                let tx = tx.clone();
                // Threads inherit this thread's network namespace.
                sc.spawn(move || {
                    let sent = Instant::now();
                    let r = http_get(addr, REQ_TIMEOUT);
                    let wanted = r.as_deref() == Some(want);
                    let _ = tx.send((sent, r.is_some(), wanted, Instant::now()));
                });
                next += POLL_EVERY;
                while let Some(rest) = next.checked_duration_since(Instant::now()) {
                    match rx.recv_timeout(rest) {
                        Ok(r) => res.push(r),
                        Err(_) => break,
                    }
                }
            }
            drop(tx);
        });
        res.extend(rx.try_iter());
        let f = first(&res)?;
        let failed = res.iter().filter(|r| !r.1 && r.0 <= f).count() as u32;
        Some((f - t0, failed))
    })
}

// ------------------------------------------------------------ scenarios

#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub ms: f64,
    pub failed: u32,
}

pub const SCENARIOS: [(char, &str); 4] = [
    ('A', "kill -9 of the master's nginx → backup serves"),
    ('B', "SIGTERM of the master's VRRP daemon → backup serves"),
    ('C', "master's link down → backup serves"),
    (
        'D',
        "nginx restarted after A → original master serves again",
    ),
];

#[derive(Default)]
pub struct SetupResult {
    pub label: String,
    pub samples: BTreeMap<char, Vec<Sample>>,
    pub errors: Vec<String>,
    pub footprint: Option<Footprint>,
    pub loads: Vec<String>,
    pub configs: Vec<(String, String)>,
}

pub fn configs_of(p: &Pair) -> Vec<(String, String)> {
    (0..2)
        .map(|i| match p.s.daemon {
            Daemon::NginxHa => (
                format!("node{i} nginx-ha.json"),
                serde_json::to_string_pretty(&p.decls[i]).unwrap_or_default(),
            ),
            Daemon::Keepalived => (format!("node{i} keepalived.conf"), keepalived_conf(i, p.s)),
        })
        .collect()
}

pub fn run_setup(s: Setup, o: &Opts, scen: &[char], with_fp: bool) -> SetupResult {
    let mut r = SetupResult {
        label: s.label(),
        ..Default::default()
    };
    eprintln!("\n== {} ==", r.label);
    r.loads.push(loadavg());
    let mut p = Pair::new(s);
    r.configs = configs_of(&p);
    if let Err(e) = p.start() {
        r.errors.push(format!("did not start: {e}"));
        r.errors
            .push(format!("node0 log tail: {}", tail(&p.log(0), 8)));
        return r;
    }
    if with_fp {
        r.footprint = Some(footprint(&p, o.window));
    }
    let has = |c: char| scen.contains(&c);
    for run in 0..o.runs {
        if has('A') || has('D') {
            jitter();
            let t0 = Instant::now();
            p.lab.kill_nginx(0);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(&mut r, 'A', run, d, f),
                None => r.errors.push(format!("run {run} A: backup never served")),
            }
            jitter();
            let t0 = Instant::now();
            p.start_nginx(0);
            match poll(&p.lab, t0, "node0\n", Duration::from_secs(30)) {
                Some((d, f)) => push(&mut r, 'D', run, d, f),
                None => r
                    .errors
                    .push(format!("run {run} D: node0 never served again")),
            }
            if let Err(e) = p.settle("after A/D") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
        if has('B') {
            jitter();
            let t0 = Instant::now();
            p.sigterm_daemon(0);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(&mut r, 'B', run, d, f),
                None => r.errors.push(format!("run {run} B: backup never served")),
            }
            p.reap_daemon(0);
            p.start_daemon(0);
            if let Err(e) = p.settle("after B") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
        if has('C') {
            jitter();
            let t0 = Instant::now();
            p.lab.set_link(0, false);
            match poll(&p.lab, t0, "node1\n", Duration::from_secs(20)) {
                Some((d, f)) => push(&mut r, 'C', run, d, f),
                None => r.errors.push(format!("run {run} C: backup never served")),
            }
            p.lab.set_link(0, true);
            if let Err(e) = p.settle("after C") {
                r.errors.push(format!("run {run}: {e}"));
                break;
            }
        }
    }
    r.loads.push(loadavg());
    r
}

pub fn push(r: &mut SetupResult, sc: char, run: usize, d: Duration, failed: u32) {
    eprintln!(
        "  {} run {run} {sc}: {:.1} ms, {failed} failed",
        r.label,
        msf(d)
    );
    r.samples
        .entry(sc)
        .or_default()
        .push(Sample { ms: msf(d), failed });
}

pub fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join(" | ")
}

// ------------------------------------------------------------ footprint

#[derive(Clone, Debug, Default)]
pub struct Footprint {
    pub window: Duration,
    /// [master, backup]
    pub rss_mean_kib: [f64; 2],
    pub rss_max_kib: [u64; 2],
    pub procs: [usize; 2],
    pub cpu_own_s: [f64; 2],
    pub cpu_children_s: [f64; 2],
}

pub fn footprint(p: &Pair, window: Duration) -> Footprint {
    eprintln!("  footprint: {window:?} idle");
    let roots = [p.daemon_pid(0).unwrap_or(0), p.daemon_pid(1).unwrap_or(0)];
    let before = roots.map(tree_cpu);
    let start = Instant::now();
    let mut sums = [0u64; 2];
    let mut n = 0u64;
    let mut fp = Footprint {
        window,
        ..Default::default()
    };
    while start.elapsed() < window {
        for k in 0..2 {
            let t = tree(roots[k]);
            let rss: u64 = t.iter().map(|&q| rss_kib(q)).sum();
            sums[k] += rss;
            fp.rss_max_kib[k] = fp.rss_max_kib[k].max(rss);
            fp.procs[k] = fp.procs[k].max(t.len());
        }
        n += 1;
        std::thread::sleep(ms(1000).min(window.saturating_sub(start.elapsed())));
    }
    let after = roots.map(tree_cpu);
    for k in 0..2 {
        let (own, kids) = cpu_delta(&before[k], &after[k]);
        fp.cpu_own_s[k] = own;
        fp.cpu_children_s[k] = kids;
        fp.rss_mean_kib[k] = sums[k] as f64 / n.max(1) as f64;
    }
    fp
}

// ---------------------------------------------------------------- scale

pub const IFACES: usize = 3;

pub fn net_v4(k: usize, host: u8) -> String {
    match k {
        0 => format!("192.0.2.{host}"),
        1 => format!("198.51.100.{host}"),
        _ => format!("203.0.113.{host}"),
    }
}
pub fn net_v6(k: usize, host: u16) -> String {
    format!("2001:db8:{k}::{host:x}")
}

/// eth1.. on each node, each on a bridge of its own in the bridge namespace.
pub fn add_net(lab: &Lab, k: usize) {
    let br = format!("br{k}");
    lab.add_bridge(&br);
    for i in 0..2 {
        let addrs = [
            format!("{}/24", net_v4(k, 11 + i as u8)),
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

/// Instance n: interface/family slot n % 6, VRID n / 6 + 1.
pub fn scale_plan(n: usize) -> Vec<ScaleInst> {
    (0..n)
        .map(|j| {
            let slot = j % (IFACES * 2);
            let k = slot / 2;
            let v6 = slot % 2 == 1;
            let vrid = j / (IFACES * 2) + 1;
            ScaleInst {
                name: format!("i{j:03}"),
                iface: format!("eth{k}"),
                vrid,
                vip: if v6 {
                    net_v6(k, 0x1000 + vrid as u16)
                } else {
                    net_v4(k, 99 + vrid as u8)
                },
                prefix: if v6 { 64 } else { 24 },
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
    r.converged = wait_for(Duration::from_secs(40), || {
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
    let w0 = wire_counters(&lab);
    let own0 = (daemon == Daemon::NginxHa)
        .then(|| adverts_sent_counter(&lab, 0))
        .flatten();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let w1 = wire_counters(&lab);
    let own1 = (daemon == Daemon::NginxHa)
        .then(|| adverts_sent_counter(&lab, 0))
        .flatten();
    let el = t0.elapsed();
    let cpu1 = [0, 1].map(|i| tree_cpu(pid(&lab, i)));
    let tr1 = [0, 1].map(|i| count_transitions(daemon, &log(&lab, i)));
    r.window_s = el.as_secs_f64();
    r.expected = (n as f64 * el.as_secs_f64() / 0.1).round() as u64;
    r.wire_master = (w1[0] - w0[0]) + (w1[1] - w0[1]);
    r.wire_backup = (w1[2] - w0[2]) + (w1[3] - w0[3]);
    r.own_counter = own0.zip(own1).map(|(a, b)| b - a);
    for k in 0..2 {
        let (own, kids) = cpu_delta(&cpu0[k], &cpu1[k]);
        r.cpu_s[k] = own + kids;
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
