//! Side-by-side benchmark of nginx-ha and Debian's keepalived (issue 7):
//! failover time and failed requests, footprint, and scale, in the
//! network-namespace lab (real nginx, a client polling the VIP every 10 ms).
//! Writes its own Markdown report.
//!
//! Run as root through `scripts/bench` (installs, builds --release, runs):
//!
//!     sudo scripts/bench                 # N=10, 60 s windows, BENCHMARKS.md
//!     sudo scripts/bench --quick         # 1 run, 10 s windows
//!     target/release/examples/failover --runs 5 --out /tmp/b.md --sections failover
//!
//! Not a test and not run by CI's test suite.

use nginx_ha_lab as lab;

use lab::{Lab, children_of, http_get, in_netns, ms, wait_for};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const VIP: &str = "192.0.2.100";
const POLL_EVERY: Duration = Duration::from_millis(10);
/// Per-request timeout of the client (each request is its own connection).
const REQ_TIMEOUT: Duration = Duration::from_millis(500);

/// A pause of 0-1 s (uniform) before each timed action, so that it falls at
/// a random phase of the daemons' timers (1 s adverts and check scripts,
/// 100 ms adverts and probes). Without it every run starts at the same
/// phase (right after the lab settled) and the runs are not independent.
fn jitter() {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut x = STATE.load(Ordering::Relaxed);
    if x == 0 {
        x = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64)
            | 1;
    }
    // xorshift64
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    STATE.store(x, Ordering::Relaxed);
    std::thread::sleep(Duration::from_micros(x % 1_000_000));
}

fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
fn vip() -> IpAddr {
    VIP.parse().expect("vip")
}

// ---------------------------------------------------------------- options

struct Opts {
    runs: usize,
    quick: bool,
    out: PathBuf,
    window: Duration,
    sections: Vec<String>,
    max_load: f64,
    load_wait: Duration,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 10,
        quick: false,
        out: PathBuf::from("BENCHMARKS.md"),
        window: Duration::from_secs(60),
        sections: vec!["failover".into(), "footprint".into(), "scale".into()],
        max_load: 1.5,
        load_wait: Duration::from_secs(300),
    };
    let mut runs_given = None;
    let mut window_given = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--runs" => {
                runs_given = Some(val("--runs").parse().unwrap_or_else(|_| usage("--runs N")))
            }
            "--quick" => o.quick = true,
            "--out" => o.out = PathBuf::from(val("--out")),
            "--window" => {
                window_given = Some(Duration::from_secs(
                    val("--window")
                        .parse()
                        .unwrap_or_else(|_| usage("--window SECONDS")),
                ))
            }
            "--sections" => o.sections = val("--sections").split(',').map(str::to_string).collect(),
            "--max-load" => {
                o.max_load = val("--max-load")
                    .parse()
                    .unwrap_or_else(|_| usage("--max-load X"))
            }
            "--load-wait" => {
                o.load_wait = Duration::from_secs(
                    val("--load-wait")
                        .parse()
                        .unwrap_or_else(|_| usage("--load-wait SECONDS")),
                )
            }
            "-h" | "--help" => usage(""),
            // cargo bench/test harness flags, if run that way
            "--bench" | "--nocapture" => {}
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if o.quick {
        o.runs = 1;
        o.window = Duration::from_secs(10);
        o.load_wait = Duration::ZERO;
    }
    if let Some(r) = runs_given {
        o.runs = r;
    }
    if let Some(w) = window_given {
        o.window = w;
    }
    if o.runs == 0 {
        usage("--runs must be at least 1");
    }
    o
}

fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("failover: {msg}");
    }
    eprintln!(
        "usage: failover [--runs N (10)] [--quick] [--out FILE (BENCHMARKS.md)] [--window SECONDS (60)]\n\
         \x20               [--sections failover,footprint,scale] [--max-load X (1.5)] [--load-wait SECONDS (300)]"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------- machine

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(99.0)
}

/// Waits (bounded) for the 1-minute load to drop below `max`; the machine
/// is shared. Returns the load seen when it went on.
fn wait_for_quiet(max: f64, limit: Duration) -> String {
    let end = Instant::now() + limit;
    loop {
        let l = load1();
        if l < max || Instant::now() >= end {
            if l >= max {
                eprintln!(
                    "load {l:.2} still >= {max} after {limit:?}: measuring anyway (noted in the report)"
                );
            }
            return loadavg();
        }
        eprintln!(
            "load {l:.2} >= {max}: waiting (up to {:?} more)",
            end - Instant::now()
        );
        std::thread::sleep(Duration::from_secs(20).min(end - Instant::now()));
    }
}

fn cmd_out(prog: &str, args: &[&str]) -> String {
    Command::new(prog)
        .args(args)
        .output()
        .map(|o| {
            let mut s = String::from_utf8_lossy(&o.stdout).to_string();
            s.push_str(&String::from_utf8_lossy(&o.stderr));
            s.trim().to_string()
        })
        .unwrap_or_else(|e| format!("({prog}: {e})"))
}

fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

// ------------------------------------------------------------- processes

/// A process and all its descendants.
fn tree(pid: u32) -> Vec<u32> {
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
fn cpu_of(pid: u32) -> (f64, f64) {
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

fn rss_kib(pid: u32) -> u64 {
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
fn tree_cpu(root: u32) -> BTreeMap<u32, (f64, f64)> {
    tree(root).into_iter().map(|p| (p, cpu_of(p))).collect()
}

fn cpu_delta(a: &BTreeMap<u32, (f64, f64)>, b: &BTreeMap<u32, (f64, f64)>) -> (f64, f64) {
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
enum Daemon {
    NginxHa,
    Keepalived,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Profile {
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
    fn skew(self) -> Duration {
        self.advert() * (256 - 100) / 256
    }
    fn master_down(self) -> Duration {
        self.advert() * 3 + self.skew()
    }
    fn name(self) -> &'static str {
        match self {
            Profile::Textbook => "textbook",
            Profile::Fast => "fast",
        }
    }
}

/// How keepalived watches nginx.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum KaCheck {
    /// `vrrp_script` running curl against stub_status every 1 s.
    Script,
    /// `vrrp_track_process` on the node's nginx (netlink process events).
    TrackProcess,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Setup {
    daemon: Daemon,
    profile: Profile,
    ka: KaCheck,
}

impl Setup {
    fn label(&self) -> String {
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
fn nginx_comm(i: usize) -> String {
    format!("ngx{}n{i}", std::process::id() % 100_000)
}

fn prio(i: usize) -> u8 {
    if i == 0 { 150 } else { 100 }
}

fn nginx_ha_decl(lab: &Lab, i: usize, p: Profile) -> Value {
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

fn keepalived_conf(i: usize, s: Setup) -> String {
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

struct Pair {
    lab: Lab,
    s: Setup,
    decls: Vec<Value>,
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

fn count_transitions(d: Daemon, log: &str) -> usize {
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

fn daemon_bin() -> PathBuf {
    lab::daemon_next_to_examples()
}

// ------------------------------------------------------------- the client

/// Open-loop client from `t0`: a new request (its own TCP connection, 500
/// ms timeout) every 10 ms until one returns `want`. Returns the time from
/// `t0` to that response and how many requests sent before it got no 200
/// at all (a 200 from the other node is not a failure).
fn poll(lab: &Lab, t0: Instant, want: &'static str, limit: Duration) -> Option<(Duration, u32)> {
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
struct Sample {
    ms: f64,
    failed: u32,
}

const SCENARIOS: [(char, &str); 4] = [
    ('A', "kill -9 of the master's nginx → backup serves"),
    ('B', "SIGTERM of the master's VRRP daemon → backup serves"),
    ('C', "master's link down → backup serves"),
    (
        'D',
        "nginx restarted after A → original master serves again",
    ),
];

#[derive(Default)]
struct SetupResult {
    label: String,
    samples: BTreeMap<char, Vec<Sample>>,
    errors: Vec<String>,
    footprint: Option<Footprint>,
    loads: Vec<String>,
    configs: Vec<(String, String)>,
}

fn configs_of(p: &Pair) -> Vec<(String, String)> {
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

fn run_setup(s: Setup, o: &Opts, scen: &[char], with_fp: bool) -> SetupResult {
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

fn push(r: &mut SetupResult, sc: char, run: usize, d: Duration, failed: u32) {
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

fn tail(s: &str, n: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(n)..].join(" | ")
}

// ------------------------------------------------------------ footprint

#[derive(Clone, Debug, Default)]
struct Footprint {
    window: Duration,
    /// [master, backup]
    rss_mean_kib: [f64; 2],
    rss_max_kib: [u64; 2],
    procs: [usize; 2],
    cpu_own_s: [f64; 2],
    cpu_children_s: [f64; 2],
}

fn footprint(p: &Pair, window: Duration) -> Footprint {
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

const IFACES: usize = 3;

fn net_v4(k: usize, host: u8) -> String {
    match k {
        0 => format!("192.0.2.{host}"),
        1 => format!("198.51.100.{host}"),
        _ => format!("203.0.113.{host}"),
    }
}
fn net_v6(k: usize, host: u16) -> String {
    format!("2001:db8:{k}::{host:x}")
}

/// eth1.. on each node, each on a bridge of its own in the bridge namespace.
fn add_net(lab: &Lab, k: usize) {
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

struct ScaleInst {
    name: String,
    iface: String,
    vrid: usize,
    vip: String,
    prefix: u8,
}

/// Instance n: interface/family slot n % 6, VRID n / 6 + 1.
fn scale_plan(n: usize) -> Vec<ScaleInst> {
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

fn scale_nginx_ha(lab: &Lab, i: usize, plan: &[ScaleInst]) -> Value {
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

fn scale_keepalived(i: usize, plan: &[ScaleInst]) -> String {
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

fn vips_held(ns: &str, plan: &[ScaleInst]) -> usize {
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
fn wire_counters(lab: &Lab) -> [u64; 4] {
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

fn install_wire_counters(lab: &Lab) {
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

fn adverts_sent_counter(lab: &Lab, i: usize) -> Option<u64> {
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
struct ScaleResult {
    daemon: String,
    n: usize,
    window_s: f64,
    converged: bool,
    expected: u64,
    wire_master: u64,
    wire_backup: u64,
    own_counter: Option<u64>,
    cpu_s: [f64; 2],
    rss_kib: [u64; 2],
    transitions: [usize; 2],
    held_end: [usize; 2],
    error: Option<String>,
    load: String,
}

fn run_scale(daemon: Daemon, n: usize, window: Duration) -> ScaleResult {
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

// --------------------------------------------------------------- report

fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    // Nearest rank.
    let p95 = s[((0.95 * n as f64).ceil() as usize).clamp(1, n) - 1];
    (s[0], med, p95, s[n - 1])
}

fn median_of(r: &SetupResult, sc: char) -> Option<f64> {
    r.samples
        .get(&sc)
        .filter(|v| !v.is_empty())
        .map(|v| stats(&v.iter().map(|x| x.ms).collect::<Vec<_>>()).1)
}
fn median_failed(r: &SetupResult, sc: char) -> Option<f64> {
    r.samples
        .get(&sc)
        .filter(|v| !v.is_empty())
        .map(|v| stats(&v.iter().map(|x| x.failed as f64).collect::<Vec<_>>()).1)
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "**MET**",
        Some(false) => "**MISSED**",
        None => "n/a (no data)",
    }
}

fn f1(v: Option<f64>) -> String {
    v.map_or("–".into(), |x| format!("{x:.0}"))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        (Some(_), Some(_)) => "–".into(),
        _ => "–".into(),
    }
}

struct Report<'a> {
    o: &'a Opts,
    started: String,
    load_start: String,
    results: Vec<(Profile, Vec<SetupResult>)>,
    scale: Vec<ScaleResult>,
    scale_configs: Vec<(String, String)>,
    notes: Vec<String>,
}

fn git(args: &[&str]) -> String {
    cmd_out("git", &[&["-C", env!("CARGO_MANIFEST_DIR")], args].concat())
}

fn write_report(rep: &Report) -> String {
    let o = rep.o;
    let mut m = String::new();
    let rev = git(&["rev-parse", "--short", "HEAD"]);
    let dirty = if git(&["status", "--porcelain", "--untracked-files=no"]).is_empty() {
        ""
    } else {
        " (with uncommitted changes)"
    };
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let _ = writeln!(m, "# Benchmarks: nginx-ha and keepalived side by side\n");
    let _ = writeln!(
        m,
        "Written by `bench/failover.rs` (`sudo scripts/bench`), issue 7. Everything below is from one run.\n"
    );
    let _ = writeln!(m, "| | |\n|---|---|");
    let _ = writeln!(
        m,
        "| date (UTC) | {} → {} |",
        rep.started,
        cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S"])
    );
    let _ = writeln!(m, "| nginx-ha | git {rev}{dirty}, release build |");
    let _ = writeln!(
        m,
        "| keepalived | {} |",
        cmd_out("keepalived", &["--version"])
            .lines()
            .next()
            .unwrap_or("?")
    );
    let _ = writeln!(m, "| nginx | {} |", cmd_out("nginx", &["-v"]));
    let _ = writeln!(m, "| kernel | {} |", cmd_out("uname", &["-sr"]));
    let _ = writeln!(
        m,
        "| machine | {} CPU(s), {cpu}; shared with other users |",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let _ = writeln!(
        m,
        "| load (1/5/15 min) | at start {}, at end {} |",
        rep.load_start,
        loadavg()
    );
    let _ = writeln!(
        m,
        "| runs | N = {} per scenario{}; footprint/scale window {} s |",
        o.runs,
        if o.quick { " (`--quick`)" } else { "" },
        o.window.as_secs()
    );
    let _ = writeln!(
        m,
        "| client | from its own namespace, a new HTTP/1.0 request (own TCP connection, {} ms timeout) to the VIP every 10 ms, open loop; time = action → first response from the expected node; failed = requests sent before that which got no 200 at all; each timed action comes after a random 0-1 s pause (random phase against the daemons' timers) |",
        REQ_TIMEOUT.as_millis()
    );
    let _ = writeln!(
        m,
        "| p95 | nearest rank (with N = 10 it is the 10th value, i.e. the max) |\n"
    );

    // ---- failover tables
    let _ = writeln!(m, "## Failover\n");
    for (sc, what) in SCENARIOS {
        let _ = writeln!(m, "### {sc}. {what}\n");
        let _ = writeln!(
            m,
            "| setup | n | min ms | median ms | p95 ms | max ms | failed requests median (max) |\n|---|---|---|---|---|---|---|"
        );
        for (_, rs) in &rep.results {
            for r in rs {
                let Some(v) = r.samples.get(&sc).filter(|v| !v.is_empty()) else {
                    continue;
                };
                let (mn, md, p95, mx) = stats(&v.iter().map(|x| x.ms).collect::<Vec<_>>());
                let fails: Vec<f64> = v.iter().map(|x| x.failed as f64).collect();
                let (_, fmed, _, fmax) = stats(&fails);
                let _ = writeln!(
                    m,
                    "| {} | {} | {mn:.0} | {md:.0} | {p95:.0} | {mx:.0} | {fmed:.0} ({fmax:.0}) |",
                    r.label,
                    v.len()
                );
            }
        }
        let _ = writeln!(m);
    }

    // ---- ratios
    let _ = writeln!(m, "### Ratios nginx-ha / keepalived (medians, same run)\n");
    let _ = writeln!(
        m,
        "| profile | keepalived baseline | A time | A failed | B time | C time | D time |\n|---|---|---|---|---|---|---|"
    );
    for (prof, rs) in &rep.results {
        let Some(nh) = rs.iter().find(|r| r.label.starts_with("nginx-ha")) else {
            continue;
        };
        for ka in rs.iter().filter(|r| r.label.starts_with("keepalived")) {
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {} | {} | {} |",
                prof.name(),
                ka.label,
                ratio(median_of(nh, 'A'), median_of(ka, 'A')),
                ratio(median_failed(nh, 'A'), median_failed(ka, 'A')),
                ratio(median_of(nh, 'B'), median_of(ka, 'B')),
                ratio(median_of(nh, 'C'), median_of(ka, 'C')),
                ratio(median_of(nh, 'D'), median_of(ka, 'D')),
            );
        }
    }
    let _ = writeln!(m);

    // ---- footprint
    let _ = writeln!(m, "## Footprint (idle, {} s)\n", o.window.as_secs());
    let _ = writeln!(
        m,
        "RSS summed over every process of the daemon (keepalived: parent + VRRP child + any running check script), sampled every second; CPU = utime+stime of those processes over the window, plus the CPU of children they reaped (keepalived's check scripts).\n"
    );
    let _ = writeln!(
        m,
        "| setup | role | processes | RSS mean KiB | RSS max KiB | CPU own ms | CPU incl. children ms | % of one core |\n|---|---|---|---|---|---|---|---|"
    );
    for (_, rs) in &rep.results {
        for r in rs {
            if let Some(fp) = &r.footprint {
                for (k, role) in ["master", "backup"].iter().enumerate() {
                    let tot = fp.cpu_own_s[k] + fp.cpu_children_s[k];
                    let _ = writeln!(
                        m,
                        "| {} | {role} | {} | {:.0} | {} | {:.0} | {:.0} | {:.2} |",
                        r.label,
                        fp.procs[k],
                        fp.rss_mean_kib[k],
                        fp.rss_max_kib[k],
                        fp.cpu_own_s[k] * 1000.0,
                        tot * 1000.0,
                        tot / fp.window.as_secs_f64() * 100.0
                    );
                }
            }
        }
    }
    let _ = writeln!(m);

    // ---- scale
    if !rep.scale.is_empty() {
        let _ = writeln!(
            m,
            "## Scale (VRRPv3, 100 ms adverts, {} s)\n",
            o.window.as_secs()
        );
        let _ = writeln!(
            m,
            "Instances spread over 3 interfaces (eth0-eth2, each on its own bridge) × IPv4/IPv6; node0 priority 150 (master of all), node1 100. Adverts counted on the wire by nft counters in the bridge namespace (prerouting, per ingress port), the same way for both daemons; nginx-ha's own `status --json` advertsSent alongside. No health checks in this part (VRRP only). Spurious transitions = state changes logged by either node during the window (must be 0).\n"
        );
        let _ = writeln!(
            m,
            "| daemon | instances | expected adverts | on the wire from master | sent/expected | daemon's own count | from backup | CPU master ms (% core) | CPU backup ms (% core) | RSS master/backup KiB | spurious transitions | VIPs held at end (master/backup) |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
        );
        for s in &rep.scale {
            if let Some(e) = &s.error {
                let _ = writeln!(
                    m,
                    "| {} | {} | – | – | – | – | – | – | – | – | – | {e} |",
                    s.daemon, s.n
                );
                continue;
            }
            let pc = |x: f64| x / s.window_s * 100.0;
            let _ = writeln!(
                m,
                "| {} | {} | {} | {} | {:.3} | {} | {} | {:.0} ({:.1}%) | {:.0} ({:.1}%) | {} / {} | {} | {}/{} |",
                s.daemon,
                s.n,
                s.expected,
                s.wire_master,
                s.wire_master as f64 / s.expected.max(1) as f64,
                s.own_counter.map_or("–".into(), |c| c.to_string()),
                s.wire_backup,
                s.cpu_s[0] * 1000.0,
                pc(s.cpu_s[0]),
                s.cpu_s[1] * 1000.0,
                pc(s.cpu_s[1]),
                s.rss_kib[0],
                s.rss_kib[1],
                s.transitions[0] + s.transitions[1],
                s.held_end[0],
                s.held_end[1],
            );
        }
        let _ = writeln!(m);
    }

    // ---- targets
    let _ = writeln!(m, "## Issue 7 targets (from the tables above)\n");
    let _ = writeln!(m, "| target | measured | verdict |\n|---|---|---|");
    let find = |p: Profile, pre: &str| {
        rep.results
            .iter()
            .filter(|(q, _)| *q == p)
            .flat_map(|(_, rs)| rs.iter())
            .filter(|r| r.label.starts_with(pre))
            .collect::<Vec<_>>()
    };
    let nh_t = find(Profile::Textbook, "nginx-ha").into_iter().next();
    let ka_t = find(Profile::Textbook, "keepalived").into_iter().next();
    let nh_f = find(Profile::Fast, "nginx-ha").into_iter().next();
    // keepalived's fastest working configuration for A.
    let ka_f = find(Profile::Fast, "keepalived")
        .into_iter()
        .filter(|r| median_of(r, 'A').is_some())
        .min_by(|a, b| {
            median_of(a, 'A')
                .partial_cmp(&median_of(b, 'A'))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let med = |r: Option<&SetupResult>, sc| r.and_then(|r| median_of(r, sc));
    let fmed = |r: Option<&SetupResult>, sc| r.and_then(|r| median_failed(r, sc));
    let tb = Profile::Textbook;
    let fa = Profile::Fast;
    let both = |a: Option<f64>, b: Option<f64>, f: &dyn Fn(f64, f64) -> bool| {
        a.zip(b).map(|(a, b)| f(a, b))
    };
    {
        let (a, k) = (med(nh_t, 'A'), med(ka_t, 'A'));
        let _ = writeln!(
            m,
            "| A textbook: nginx-ha median ≤ 1/5 of keepalived's | {} ms vs {} ms (ratio {}) | {} |",
            f1(a),
            f1(k),
            ratio(a, k),
            verdict(both(a, k, &|a, k| a * 5.0 <= k))
        );
        let bound = msf(tb.skew()) + 25.0;
        let _ = writeln!(
            m,
            "| A textbook: nginx-ha median ≤ Skew_Time + 25 ms = {bound:.0} ms | {} ms | {} |",
            f1(a),
            verdict(a.map(|a| a <= bound))
        );
        let (a, k) = (fmed(nh_t, 'A'), fmed(ka_t, 'A'));
        let _ = writeln!(
            m,
            "| A textbook: failed requests ≤ 1/5 of keepalived's | {} vs {} | {} |",
            f1(a),
            f1(k),
            verdict(both(a, k, &|a, k| a * 5.0 <= k))
        );
        let (a, k) = (med(nh_f, 'A'), med(ka_f, 'A'));
        let _ = writeln!(
            m,
            "| A fast: nginx-ha median ≤ 100 ms | {} ms | {} |",
            f1(a),
            verdict(a.map(|a| a <= 100.0))
        );
        let _ = writeln!(
            m,
            "| A fast: no slower than keepalived's fastest ({}) | {} ms vs {} ms | {} |",
            ka_f.map_or("–".to_string(), |r| r.label.clone()),
            f1(a),
            f1(k),
            verdict(both(a, k, &|a, k| a <= k))
        );
    }
    for (p, nh, ka) in [(tb, nh_t, ka_t), (fa, nh_f, ka_f)] {
        let b = med(nh, 'B');
        let bound = msf(p.skew()) + 25.0;
        let _ = writeln!(
            m,
            "| B {}: nginx-ha median ≤ Skew_Time + 25 ms = {bound:.0} ms | {} ms (keepalived {} ms) | {} |",
            p.name(),
            f1(b),
            f1(med(ka, 'B')),
            verdict(b.map(|b| b <= bound))
        );
        let c = med(nh, 'C');
        let bound = msf(p.master_down()) + 25.0;
        let _ = writeln!(
            m,
            "| C {}: nginx-ha median ≤ Master_Down_Interval + 25 ms = {bound:.0} ms | {} ms (keepalived {} ms) | {} |",
            p.name(),
            f1(c),
            f1(med(ka, 'C')),
            verdict(c.map(|c| c <= bound))
        );
        let (d, k) = (med(nh, 'D'), med(ka, 'D'));
        let _ = writeln!(
            m,
            "| D {}: nginx-ha median no slower than keepalived | {} ms vs {} ms | {} |",
            p.name(),
            f1(d),
            f1(k),
            verdict(both(d, k, &|d, k| d <= k))
        );
        let fp = |r: Option<&SetupResult>| r.and_then(|r| r.footprint.clone());
        if let (Some(a), Some(k)) = (fp(nh), fp(ka)) {
            for (i, role) in ["master", "backup"].iter().enumerate() {
                let _ = writeln!(
                    m,
                    "| Memory {} {role}: RSS no higher than keepalived's | {:.0} KiB vs {:.0} KiB | {} |",
                    p.name(),
                    a.rss_mean_kib[i],
                    k.rss_mean_kib[i],
                    verdict(Some(a.rss_mean_kib[i] <= k.rss_mean_kib[i]))
                );
                let (ca, ck) = (
                    a.cpu_own_s[i] + a.cpu_children_s[i],
                    k.cpu_own_s[i] + k.cpu_children_s[i],
                );
                let _ = writeln!(
                    m,
                    "| Idle CPU {} {role}: no higher than keepalived's | {:.0} ms vs {:.0} ms | {} |",
                    p.name(),
                    ca * 1000.0,
                    ck * 1000.0,
                    verdict(Some(ca <= ck))
                );
            }
        }
    }
    for s in rep.scale.iter().filter(|s| s.daemon == "nginx-ha") {
        let _ = writeln!(
            m,
            "| Scale {} instance(s): zero spurious transitions | {} | {} |",
            s.n,
            if s.error.is_some() {
                "did not converge".to_string()
            } else {
                format!(
                    "{} transitions, VIPs {}/{}",
                    s.transitions[0] + s.transitions[1],
                    s.held_end[0],
                    s.held_end[1]
                )
            },
            verdict(if s.error.is_some() {
                Some(false)
            } else {
                Some(s.transitions == [0, 0] && s.held_end == [s.n, 0])
            })
        );
    }
    let _ = writeln!(m);

    // ---- errors and notes
    let errs: Vec<String> = rep
        .results
        .iter()
        .flat_map(|(_, rs)| rs.iter())
        .flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.label)))
        .collect();
    if !errs.is_empty() || !rep.notes.is_empty() {
        let _ = writeln!(m, "## Errors and notes from this run\n");
        for e in errs.iter().chain(rep.notes.iter()) {
            let _ = writeln!(m, "- {e}");
        }
        let _ = writeln!(m);
    }
    let _ = writeln!(
        m,
        "## Load during each block (1/5/15 min, before → after)\n"
    );
    for (_, rs) in &rep.results {
        for r in rs {
            let _ = writeln!(m, "- {}: {}", r.label, r.loads.join(" → "));
        }
    }
    for s in &rep.scale {
        let _ = writeln!(m, "- scale {} × {}: {}", s.daemon, s.n, s.load);
    }
    let _ = writeln!(m);

    // ---- configs
    let _ = writeln!(
        m,
        "## Exact configurations (node0; node1 differs only in name/router_id and priority 100)\n"
    );
    let _ = writeln!(
        m,
        "nginx in every node: `daemon off; master_process on; worker_processes 1;`, a server on port 80 answering `nodeN`, and `stub_status` on 127.0.0.1:8081 (`crates/lab/src/lab.rs`). Priorities 150/100, VRID 51, VIP {VIP}/24, multicast, preemption on, in both daemons.\n"
    );
    for (_, rs) in &rep.results {
        for r in rs {
            if let Some((name, text)) = r.configs.first() {
                let lang = if name.ends_with(".json") { "json" } else { "" };
                let _ = writeln!(
                    m,
                    "<details><summary>{} — {name}</summary>\n\n```{lang}\n{text}\n```\n</details>\n",
                    r.label
                );
            }
        }
    }
    for (name, text) in &rep.scale_configs {
        let _ = writeln!(
            m,
            "<details><summary>scale — {name}</summary>\n\n```\n{text}\n```\n</details>\n"
        );
    }
    m
}

// ----------------------------------------------------------------- main

fn main() {
    let o = parse_args();
    if !lab::require_root_and_tools() || !Path::new("/usr/sbin/keepalived").exists() {
        eprintln!("failover: needs root, nginx and keepalived (run `sudo scripts/bench`)");
        std::process::exit(1);
    }
    let load_start = wait_for_quiet(o.max_load, o.load_wait);
    let started = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M:%S"]);
    let want = |s: &str| o.sections.iter().any(|x| x == s);
    let all: Vec<char> = SCENARIOS.iter().map(|x| x.0).collect();
    let mut rep = Report {
        o: &o,
        started,
        load_start,
        results: Vec::new(),
        scale: Vec::new(),
        scale_configs: Vec::new(),
        notes: Vec::new(),
    };
    if want("failover") || want("footprint") {
        let scen: Vec<char> = if want("failover") {
            all.clone()
        } else {
            Vec::new()
        };
        let fp = want("footprint");
        for prof in [Profile::Textbook, Profile::Fast] {
            let mut rs = Vec::new();
            let nh = Setup {
                daemon: Daemon::NginxHa,
                profile: prof,
                ka: KaCheck::Script,
            };
            rs.push(run_setup(nh, &o, &scen, fp));
            match prof {
                Profile::Textbook => {
                    let ka = Setup {
                        daemon: Daemon::Keepalived,
                        profile: prof,
                        ka: KaCheck::Script,
                    };
                    rs.push(run_setup(ka, &o, &scen, fp));
                }
                Profile::Fast => {
                    let tp = Setup {
                        daemon: Daemon::Keepalived,
                        profile: prof,
                        ka: KaCheck::TrackProcess,
                    };
                    let r = run_setup(tp, &o, &scen, fp);
                    let tp_ok = r.samples.get(&'A').is_some_and(|v| !v.is_empty());
                    rs.push(r);
                    // The script variant: only A and D depend on the check;
                    // it carries the footprint if track_process failed.
                    let sc = Setup {
                        daemon: Daemon::Keepalived,
                        profile: prof,
                        ka: KaCheck::Script,
                    };
                    let ad: Vec<char> = if tp_ok {
                        scen.iter()
                            .copied()
                            .filter(|c| *c == 'A' || *c == 'D')
                            .collect()
                    } else {
                        rep.notes.push("vrrp_track_process did not work in the lab: keepalived's fast profile falls back to vrrp_script (see errors)".into());
                        scen.clone()
                    };
                    if !ad.is_empty() || !tp_ok {
                        rs.push(run_setup(sc, &o, &ad, fp && !tp_ok));
                    }
                }
            }
            rep.results.push((prof, rs));
        }
        rep.notes.push("keepalived textbook: `weight -60` instead of the recipe's -20 so that a failing check takes priority 150 below the backup's 100 (with 150/100, -20 would never fail over); keepalived's defaults rise 1 / fall 1 (nginx-ha's defaults are rise 2 / fall 2).".into());
        rep.notes.push("keepalived fast: `vrrp_track_process` needs keepalived's own `-s <netns>` (under `ip netns exec` the netlink process connector is missing). All lab nodes share one PID namespace, so `process nginx` would count every node's nginx (and other nginx on the machine): each node's nginx runs through a symlink with a name of its own (`ngx<pid>n<node>`) and keepalived tracks that name (comm). Matching by command line instead (`process /usr/sbin/nginx -p DIR ...`) is unreliable with nginx: keepalived reads the command line at exec time and at its own start, and nginx rewrites it (`nginx: master process ...`) right after exec, so a restarted keepalived or a restarted nginx was not matched. `weight 0` (FAULT) in the fast profile for both trackers: leaving MASTER sends priority 0, the quickest handover keepalived has.".into());
    }
    if want("scale") {
        for n in [1usize, 50, 200] {
            for d in [Daemon::NginxHa, Daemon::Keepalived] {
                rep.scale.push(run_scale(d, n, o.window));
            }
        }
        // Show the first two instances of each daemon's config.
        let lab_decl = {
            let plan = scale_plan(2);
            let lab = Lab::new(2, &daemon_bin());
            let d = scale_nginx_ha(&lab, 0, &plan);
            serde_json::to_string_pretty(&d).unwrap_or_default()
        };
        rep.scale_configs.push(("node0 nginx-ha.json, first 2 of N instances (instance j: interface eth(j%6/2), IPv6 if j%2, VRID j/6+1)".into(), lab_decl));
        rep.scale_configs.push((
            "node0 keepalived.conf, first 2 of N instances".into(),
            scale_keepalived(0, &scale_plan(2)),
        ));
    }
    let md = write_report(&rep);
    fs::write(&o.out, &md).unwrap_or_else(|e| panic!("{}: {e}", o.out.display()));
    println!("{md}");
    eprintln!("report written to {}", o.out.display());
}
