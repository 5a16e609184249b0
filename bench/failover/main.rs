//! Side-by-side benchmark of nginx-ha and Debian's keepalived (issues 7
//! and 15): failover and failback time and failed requests (scenarios A-E)
//! in three multicast advert profiles (1 s, 100 ms, 10 ms) and the unicast
//! pair (`pair`: nginx-ha's default unicast pair, 1 s adverts, next to
//! keepalived's unicast pair with vrrp_track_process; scenarios A, B, D, E),
//! nginx-ha at its default check settings throughout; kill-to-GARP on the
//! wire; footprint; scale; in the network-namespace lab (real nginx, a
//! client polling the VIP every 10 ms). Writes its own Markdown report.
//!
//! Idle CPU is the daemons' run time in ns (every thread, exited ones
//! included, see `procs.rs`) over several windows in which nginx-ha's and keepalived's
//! pairs take turns (`interleave.rs`); the report gives µs of CPU per
//! second (median and min–max over the windows), % of a core and µs per
//! advert (the master sends, the backup receives, one per advert interval).
//!
//! Run as root through `scripts/bench` (installs, builds --release, runs):
//!
//!     sudo scripts/bench                 # N=10, 60 s windows, BENCHMARKS.md
//!     sudo scripts/bench --quick         # 1 run, 10 s windows
//!     target/release/examples/failover --runs 5 --out /tmp/b.md --sections failover
//!     target/release/examples/failover --quick --profiles fastest --sections failover,footprint
//!     target/release/examples/failover --quick --runs 3 --profiles pair,fastest --sections failover,footprint
//!     target/release/examples/failover --quick --sections scale --scale 1000 --scale-window 600
//!     target/release/examples/failover --quick --sections anycast  # BGP anycast next to VRRP (needs bird2, nft)
//!
//! Not a test and not run by CI's test suite. Its own unit tests (the CPU
//! readings; no root needed): `cargo test --release --example failover`.

mod anycast;
mod footprint;
mod garp;
mod interleave;
mod jitter;
mod procs;
mod report;
mod report_tables;
mod scale;
mod scenarios;
mod setups;

use nginx_ha_lab as lab;
use report::{Report, write_report};
use scale::{run_scale, scale_keepalived, scale_nginx_ha, scale_plan};
use scenarios::SCENARIOS;
use setups::{Daemon, Profile, daemon_bin};

use lab::{Lab, VIP, vip};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub const POLL_EVERY: Duration = Duration::from_millis(10);
/// Per-request timeout of the client (each request is its own connection).
pub const REQ_TIMEOUT: Duration = Duration::from_millis(500);

/// A pause of 0-1 s (uniform) before each timed action, so that it falls at
/// a random phase of the daemons' timers (1 s adverts and check scripts,
/// 100 ms adverts and probes). Without it every run starts at the same
/// phase (right after the lab settled) and the runs are not independent.
pub fn jitter() {
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

pub fn msf(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------- options

pub struct Opts {
    pub runs: usize,
    pub quick: bool,
    pub out: PathBuf,
    pub window: Duration,
    pub sections: Vec<String>,
    pub profiles: Vec<Profile>,
    /// Instance counts of the scale section.
    pub scale_n: Vec<usize>,
    /// The scale section's window (default: --window).
    pub scale_window: Option<Duration>,
    pub max_load: f64,
    pub load_wait: Duration,
    /// Idle-CPU windows per setup and profile, and their length.
    pub cpu_windows: usize,
    pub cpu_window: Duration,
}

pub fn parse_args() -> Opts {
    let mut o = Opts {
        runs: 10,
        quick: false,
        out: PathBuf::from("BENCHMARKS.md"),
        window: Duration::from_secs(60),
        sections: vec![
            "failover".into(),
            "footprint".into(),
            "scale".into(),
            "jitter".into(),
            "anycast".into(),
        ],
        profiles: Profile::ALL.to_vec(),
        scale_n: vec![1, 50, 200, 1000],
        scale_window: None,
        max_load: 1.5,
        load_wait: Duration::from_secs(300),
        cpu_windows: 5,
        cpu_window: Duration::from_secs(12),
    };
    let mut cpu_windows_given = None;
    let mut cpu_window_given = None;
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
            "--profiles" => {
                o.profiles = val("--profiles")
                    .split(',')
                    .map(|p| {
                        Profile::parse(p)
                            .unwrap_or_else(|| usage("--profiles textbook,fast,fastest,pair"))
                    })
                    .collect()
            }
            "--scale" => {
                o.scale_n = val("--scale")
                    .split(',')
                    .map(|n| n.parse().unwrap_or_else(|_| usage("--scale N,N,...")))
                    .collect()
            }
            "--scale-window" => {
                o.scale_window = Some(Duration::from_secs(
                    val("--scale-window")
                        .parse()
                        .unwrap_or_else(|_| usage("--scale-window SECONDS")),
                ))
            }
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
            "--cpu-windows" => {
                cpu_windows_given = Some(
                    val("--cpu-windows")
                        .parse()
                        .unwrap_or_else(|_| usage("--cpu-windows N")),
                )
            }
            "--cpu-window" => {
                cpu_window_given = Some(Duration::from_secs(
                    val("--cpu-window")
                        .parse()
                        .unwrap_or_else(|_| usage("--cpu-window SECONDS")),
                ))
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
        o.cpu_windows = 3;
        o.cpu_window = Duration::from_secs(10);
    }
    if let Some(n) = cpu_windows_given {
        o.cpu_windows = n;
    }
    if let Some(w) = cpu_window_given {
        o.cpu_window = w;
    }
    if o.cpu_windows == 0 || o.cpu_window.is_zero() {
        usage("--cpu-windows and --cpu-window must be at least 1");
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
    if o.scale_n
        .iter()
        .any(|&n| n == 0 || n > scale::MAX_INSTANCES)
    {
        usage(&format!("--scale: 1 to {} instances", scale::MAX_INSTANCES));
    }
    o
}

pub fn usage(msg: &str) -> ! {
    if !msg.is_empty() {
        eprintln!("failover: {msg}");
    }
    eprintln!(
        "usage: failover [--runs N (10)] [--quick] [--out FILE (BENCHMARKS.md)] [--window SECONDS (60)]\n\
         \x20               [--sections failover,footprint,scale,jitter,anycast] [--profiles textbook,fast,fastest,pair]\n\
         \x20               [--scale 1,50,200,1000 (instance counts)] [--scale-window SECONDS (--window)]\n\
         \x20               [--cpu-windows N (5; 3 with --quick)] [--cpu-window SECONDS (12; 10 with --quick)]\n\
         \x20               [--max-load X (1.5)] [--load-wait SECONDS (300)]"
    );
    std::process::exit(2)
}

// ---------------------------------------------------------------- machine

pub fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
pub fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(99.0)
}

/// Waits (bounded) for the 1-minute load to drop below `max`; the machine
/// is shared. Returns the load seen when it went on.
pub fn wait_for_quiet(max: f64, limit: Duration) -> String {
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

pub fn cmd_out(prog: &str, args: &[&str]) -> String {
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

pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
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
        extra: Vec::new(),
    };
    if want("failover") || want("footprint") {
        let scen: Vec<char> = if want("failover") {
            all.clone()
        } else {
            Vec::new()
        };
        let fp = want("footprint");
        for prof in o.profiles.clone() {
            let rs = interleave::run_profile(prof, &o, &scen, fp, &mut rep.notes);
            rep.results.push((prof, rs));
        }
        rep.notes.push("keepalived textbook: `weight -60` instead of the recipe's -20 so that a failing check takes priority 150 below the backup's 100 (with 150/100, -20 would never fail over); keepalived's defaults rise 1 / fall 1 (nginx-ha's defaults are rise 2 / fall 2).".into());
        rep.notes.push("nginx-ha runs at its default check settings in every profile (interval 1s, timeout 500ms, rise 2, fall 2, weight 0); only advertInterval differs (1s / 100ms / 10ms). The pair profile sets only `unicastPeers` (both nodes) besides interface, VRID and VIP: VRRPv3, 1 s adverts and `fastTakeover: auto` (on, with one peer) are the defaults; keepalived there: `unicast_src_ip`/`unicast_peer`, VRRPv3, `advert_int 1`, vrrp_track_process with weight 0; scenario C is not run in the pair profile. Before issue 15 the fast profile set interval 100ms, timeout 50ms.".into());
        rep.notes.push("Idle CPU: each window starts once the freshly started pair has settled (node0 holds the VIP and serves the client, then 3 advert intervals). keepalived's vrrp_track_process listens to the kernel's process-event connector, which reports every fork, exec and exit on the machine: its wake-ups and CPU grow with the machine's process churn (on a shared machine, other users' builds), not with the adverts alone.".into());
        rep.notes.push("A/D: every kill of nginx comes at least 3 s after the nginx it kills was started (both daemons): nginx-ha treats an nginx that exits within rise × interval (2 s at its defaults) of turning healthy as crash-looping and holds the next one down for 1 s, which tests/lab_crashloop.rs covers; D is about a failback.".into());
        rep.notes.push("kill-to-GARP (table G): the clocks are read after the nginx PIDs are found, right before the first kill(2); the GARP (sender = target = VIP, from node1's MAC) is seen by an AF_PACKET socket in the client's namespace and stamped by the kernel (SO_TIMESTAMPNS).".into());
        rep.notes.push("keepalived fast, fastest and pair: `vrrp_track_process` needs keepalived's own `-s <netns>` (under `ip netns exec` the netlink process connector is missing). All lab nodes share one PID namespace, so `process nginx` would count every node's nginx (and other nginx on the machine): each node's nginx runs through a symlink with a name of its own (`ngx<pid>n<node>`) and keepalived tracks that name (comm). Matching by command line instead (`process /usr/sbin/nginx -p DIR ...`) is unreliable with nginx: keepalived reads the command line at exec time and at its own start, and nginx rewrites it (`nginx: master process ...`) right after exec, so a restarted keepalived or a restarted nginx was not matched. `weight 0` (FAULT) in these profiles for both trackers: leaving MASTER sends priority 0, the quickest handover keepalived has.".into());
    }
    if want("scale") {
        let window = o.scale_window.unwrap_or(o.window);
        for &n in &o.scale_n {
            for d in [Daemon::NginxHa, Daemon::Keepalived] {
                rep.scale.push(run_scale(d, n, window));
            }
        }
        // Show the first two instances of each daemon's config.
        let lab_decl = {
            let plan = scale_plan(2);
            let lab = Lab::new(2, &daemon_bin());
            let d = scale_nginx_ha(&lab, 0, &plan);
            serde_json::to_string_pretty(&d).unwrap_or_default()
        };
        rep.scale_configs.push((
            "node0 nginx-ha.json, first 2 of N instances (instance j: see the scale section)"
                .into(),
            lab_decl,
        ));
        rep.scale_configs.push((
            "node0 keepalived.conf, first 2 of N instances".into(),
            scale_keepalived(0, &scale_plan(2)),
        ));
    }
    if want("jitter") {
        rep.extra.push(jitter::section(o.window));
    }
    if want("anycast") {
        rep.extra.push(anycast::section(o.runs));
    }
    let md = write_report(&rep);
    fs::write(&o.out, &md).unwrap_or_else(|e| panic!("{}: {e}", o.out.display()));
    println!("{md}");
    eprintln!("report written to {}", o.out.display());
}
