//! A network-namespace lab: N nodes and a client on one L2 segment. Each
//! node runs real nginx (its own prefix, pidfile and a page naming the
//! node) and the real nginx-ha; the client reaches the VIP over HTTP.

use crate::{CLIENT_V4, CLIENT_V6};
use crate::{children_of, http_get, in_netns, node_v4, node_v6, sh, wait_for};
use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

static SEQ: AtomicUsize = AtomicUsize::new(0);
/// Timing assertions need the machine to themselves: one lab at a time per
/// process.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A VRRPv3 instance on eth0, VRID 51, 100 ms adverts, carrying `vip`
/// (with /24 or /64), with `extra` keys merged in.
pub fn instance(vip: &str, extra: serde_json::Value) -> serde_json::Value {
    let len = if vip.contains(':') { 64 } else { 24 };
    let mut i = serde_json::json!({
        "interface": "eth0",
        "virtualRouterId": 51,
        "virtualIps": [format!("{vip}/{len}")],
        "advertInterval": "100ms"
    });
    if let (Some(o), Some(e)) = (i.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            o.insert(k.clone(), v.clone());
        }
    }
    i
}

pub struct Node {
    pub ns: String,
    pub name: String,
    pub dir: PathBuf,
    pub nginx: Option<Child>,
    pub daemon: Option<Child>,
    pub keepalived: Option<Child>,
}

pub struct Lab {
    pub prefix: String,
    pub bridge_ns: String,
    pub client_ns: String,
    pub nodes: Vec<Node>,
    pub dir: tempfile::TempDir,
    pub daemon_bin: PathBuf,
    /// Other processes started in the lab (keepalived, attackers, ...).
    pub extra: Vec<Child>,
    _guard: MutexGuard<'static, ()>,
}

impl Lab {
    pub fn new(n: usize, daemon_bin: &Path) -> Lab {
        let mut lab = Lab::bare(daemon_bin);
        let prefix = lab.prefix.clone();
        let bridge_ns = lab.bridge_ns.clone();
        let client_ns = lab.client_ns.clone();
        sh(&["ip", "netns", "add", &bridge_ns]);
        lab.add_bridge("br0");
        for i in 0..n {
            let ns = format!("{prefix}-n{i}");
            lab.add_host(
                &ns,
                &format!("p{i}"),
                &[format!("{}/24", node_v4(i)), format!("{}/64", node_v6(i))],
            );
            let ndir = lab.dir.path().join(format!("node{i}"));
            fs::create_dir_all(&ndir).expect("node dir");
            lab.nodes.push(Node {
                ns,
                name: format!("node{i}"),
                dir: ndir,
                nginx: None,
                daemon: None,
                keepalived: None,
            });
        }
        lab.add_host(
            &client_ns,
            "pc",
            &[format!("{CLIENT_V4}/24"), format!("{CLIENT_V6}/64")],
        );
        lab
    }

    /// A lab with its names, directory and lock, and no namespace yet:
    /// for topologies of their own (e.g. `AnycastLab`), which create the
    /// namespaces named `bridge_ns`, `client_ns` and the nodes', and get the
    /// node helpers and the clean-up of `Lab`.
    pub fn bare(daemon_bin: &Path) -> Lab {
        let guard = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
        let prefix = format!(
            "nha{}x{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("tempdir");
        Lab {
            bridge_ns: format!("{prefix}-br"),
            client_ns: format!("{prefix}-c"),
            prefix,
            nodes: Vec::new(),
            dir,
            daemon_bin: daemon_bin.to_path_buf(),
            extra: Vec::new(),
            _guard: guard,
        }
    }

    fn add_host(&self, ns: &str, port: &str, addrs: &[String]) {
        sh(&["ip", "netns", "add", ns]);
        // DAD would hold IPv6 addresses back for a second and more.
        for k in ["all", "default"] {
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{k}.accept_dad=0"),
            ]);
        }
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        self.add_port(ns, port, "eth0", "br0", addrs);
    }

    pub fn ns_cmd(&self, ns: &str, prog: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, prog]);
        c
    }

    /// Starts nginx in the foreground as our child (so that its death is
    /// seen at once, and never mistaken for a lingering zombie), serving a
    /// page that names the node and stub_status on 127.0.0.1:8081.
    pub fn start_nginx(&mut self, i: usize) {
        self.start_nginx_exe(i, Path::new("/usr/sbin/nginx"));
    }

    /// As `start_nginx`, through `exe` (e.g. a symlink to /usr/sbin/nginx
    /// whose name, the processes' comm, is unique to this node).
    pub fn start_nginx_exe(&mut self, i: usize, exe: &Path) {
        self.start_nginx_status(i, exe, "");
    }

    /// As `start_nginx_exe`, with `directives` added to the stub_status
    /// server (e.g. its keepalive_timeout).
    pub fn start_nginx_status(&mut self, i: usize, exe: &Path, directives: &str) {
        let body = format!(
            r#"    server {{
        listen 80;
        listen [::]:80;
        location / {{ return 200 "{name}\n"; }}
    }}
    server {{
        listen 127.0.0.1:8081;
        {directives}
        location = /nginx_status {{ stub_status; allow 127.0.0.1; deny all; }}
    }}
"#,
            name = self.nodes[i].name
        );
        self.spawn_nginx_exe(i, &body, exe);
    }

    /// Writes the main config around `http_body` (its own prefix, pidfile,
    /// temp paths, in the foreground) and starts nginx.
    fn spawn_nginx(&mut self, i: usize, http_body: &str) {
        self.spawn_nginx_exe(i, http_body, Path::new("/usr/sbin/nginx"));
    }

    fn spawn_nginx_exe(&mut self, i: usize, http_body: &str, exe: &Path) {
        let d = self.nodes[i].dir.clone();
        let conf = format!(
            r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {d}/tmp-body;
    proxy_temp_path {d}/tmp-proxy;
    fastcgi_temp_path {d}/tmp-fcgi;
    uwsgi_temp_path {d}/tmp-uwsgi;
    scgi_temp_path {d}/tmp-scgi;
    default_type text/plain;
{http_body}}}
"#,
            d = d.display()
        );
        fs::write(d.join("nginx.conf"), conf).expect("nginx.conf");
        let _ = fs::remove_file(d.join("nginx.pid"));
        let child = self
            .ns_cmd(&self.nodes[i].ns.clone(), &exe.display().to_string())
            .args(["-p", &d.display().to_string(), "-c"])
            .arg(d.join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn nginx");
        self.nodes[i].nginx = Some(child);
        let pidfile = d.join("nginx.pid");
        wait_for(Duration::from_secs(5), || pidfile.exists().then_some(()))
            .expect("nginx wrote its pidfile");
    }

    /// Starts nginx with the http-level config that `nginx-ha render-nginx`
    /// renders from `decl` (its `nginx` part), instead of the lab's own.
    pub fn start_nginx_rendered(&mut self, i: usize, decl: &serde_json::Value) {
        let d = self.nodes[i].dir.clone();
        let src = d.join("render-input.json");
        fs::write(&src, serde_json::to_vec_pretty(decl).expect("json")).expect("write");
        let rendered = d.join("rendered.conf");
        let out = Command::new(&self.daemon_bin)
            .args(["render-nginx", "--config"])
            .arg(&src)
            .arg("--out")
            .arg(&rendered)
            .output()
            .expect("render-nginx");
        assert!(
            out.status.success(),
            "render-nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = format!("    include {};\n", rendered.display());
        self.spawn_nginx(i, &body);
    }

    pub fn nginx_pidfile(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("nginx.pid")
    }

    /// A declaration with this lab's node facts filled in; `instances`
    /// comes from the caller.
    pub fn declaration(
        &self,
        i: usize,
        priority: u8,
        instances: serde_json::Value,
    ) -> serde_json::Value {
        serde_json::json!({
            "node": { "name": self.nodes[i].name, "priority": priority },
            "instances": instances,
            "checks": { "nginx": {
                "pidFile": self.nginx_pidfile(i),
                "statusUrl": "http://127.0.0.1:8081/nginx_status",
                "interval": "100ms", "timeout": "50ms", "rise": 2, "fall": 2
            } }
        })
    }

    pub fn start_daemon(&mut self, i: usize, decl: &serde_json::Value) {
        self.start_daemon_with(i, decl, &[], &[]);
    }

    pub fn write_declaration(&self, i: usize, decl: &serde_json::Value) -> PathBuf {
        let cfg = self.nodes[i].dir.join("nginx-ha.json");
        fs::write(&cfg, serde_json::to_vec_pretty(decl).expect("json")).expect("write decl");
        cfg
    }

    pub fn runtime_dir(&self, i: usize) -> PathBuf {
        self.nodes[i].dir.join("run")
    }

    pub fn daemon_pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].daemon.as_ref().map(|c| c.id())
    }

    /// Runs `nginx-ha ARGS --runtime-dir <node i's>` (the control socket is
    /// a file, reachable from any network namespace).
    pub fn cli(&self, i: usize, args: &[&str]) -> Output {
        Command::new(&self.daemon_bin)
            .args(args)
            .arg("--runtime-dir")
            .arg(self.runtime_dir(i))
            .output()
            .expect("run nginx-ha")
    }

    pub fn start_daemon_with(
        &mut self,
        i: usize,
        decl: &serde_json::Value,
        env: &[(&str, &str)],
        args: &[&str],
    ) {
        let d = self.nodes[i].dir.clone();
        let cfg = self.write_declaration(i, decl);
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("nginx-ha.log"))
            .expect("log file");
        let child = self
            .ns_cmd(
                &self.nodes[i].ns.clone(),
                &self.daemon_bin.display().to_string(),
            )
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .arg("--runtime-dir")
            .arg(d.join("run"))
            .arg("--state-dir")
            .arg(d.join("state"))
            // The lab runs as root; the daemon refuses that unless told it
            // is meant (or given --user).
            .args((!args.contains(&"--user")).then_some("--allow-root"))
            .args(args)
            .envs(env.iter().copied())
            .env("NGINX_HA_LOG_STDERR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nginx-ha");
        self.nodes[i].daemon = Some(child);
    }

    pub fn daemon_log(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].dir.join("nginx-ha.log")).unwrap_or_default()
    }

    /// Waits (at most 2 s) for the instance's state file to read `want`:
    /// the daemon writes state files off its event loop, a few ms after
    /// the transition the VIP or the client already shows.
    pub fn expect_state(&self, i: usize, instance: &str, want: &str) {
        let seen = crate::wait_for(Duration::from_secs(2), || {
            (self.state(i, instance) == want).then_some(())
        });
        assert!(
            seen.is_some(),
            "node{i} {instance}: the state file says {:?}, not {want:?}",
            self.state(i, instance)
        );
    }

    pub fn state(&self, i: usize, instance: &str) -> String {
        fs::read_to_string(
            self.nodes[i]
                .dir
                .join("run")
                .join(format!("{instance}.state")),
        )
        .unwrap_or_default()
        .trim()
        .to_string()
    }

    /// Sends a signal to node `i`'s daemon without waiting, so that timing
    /// starts at the signal.
    pub fn signal_daemon(&self, i: usize, sig: i32) {
        if let Some(c) = &self.nodes[i].daemon {
            // SAFETY: kill(2) on a PID this lab started and has not reaped.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Waits (bounded) for node `i`'s daemon to exit; its exit status.
    pub fn reap_daemon(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        let mut c = self.nodes[i].daemon.take()?;
        let st = wait_for(Duration::from_secs(5), || c.try_wait().ok().flatten());
        if st.is_none() {
            let _ = c.kill();
            let _ = c.wait();
        }
        st
    }

    /// kill -9 of nginx, master first, as `systemctl kill -s KILL nginx`
    /// does to the whole unit: orphaned workers would otherwise keep port
    /// 80 and stop the next nginx from starting.
    pub fn kill_nginx(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].nginx.take() {
            let workers = children_of(c.id());
            let _ = c.kill();
            for w in workers {
                // SAFETY: kill(2) on the workers of the nginx this lab started.
                unsafe { libc::kill(w as i32, libc::SIGKILL) };
            }
            let _ = c.wait();
        }
    }

    pub fn signal_nginx(&self, i: usize, sig: i32) {
        if let Some(c) = &self.nodes[i].nginx {
            // SAFETY: kill(2) on a PID this lab started.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// Which nodes have `vip` on their interface right now.
    pub fn holders(&self, vip: IpAddr) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                let out = Command::new("ip")
                    .args(["-n", &self.nodes[i].ns, "-o", "addr", "show", "dev", "eth0"])
                    .output();
                out.map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .split_whitespace()
                        .any(|w| w.split('/').next() == Some(&vip.to_string()))
                })
                .unwrap_or(false)
            })
            .collect()
    }

    /// Link down/up as seen by the node itself.
    pub fn set_link(&self, i: usize, up: bool) {
        sh(&[
            "ip",
            "-n",
            &self.nodes[i].ns,
            "link",
            "set",
            "eth0",
            if up { "up" } else { "down" },
        ]);
    }

    /// Drops VRRP (IP protocol 112) arriving at node `i` from node `j`.
    pub fn block_vrrp(&self, i: usize, j: usize) {
        let ns = &self.nodes[i].ns;
        let nft = |cmd: &str| {
            Command::new("ip")
                .args(["netns", "exec", ns, "nft", cmd])
                .output()
        };
        // The table and chain may exist from an earlier block.
        let _ = nft("add table inet lab");
        let _ = nft("add chain inet lab in { type filter hook input priority 0 ; }");
        for rule in [
            format!(
                "add rule inet lab in ip saddr {} meta l4proto 112 drop",
                node_v4(j)
            ),
            format!(
                "add rule inet lab in ip6 saddr {} meta l4proto 112 drop",
                node_v6(j)
            ),
            "add rule inet lab in ip6 saddr fe80::/10 meta l4proto 112 drop".to_string(),
        ] {
            let out = nft(&rule).expect("nft");
            assert!(
                out.status.success(),
                "nft {rule}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    pub fn unblock_vrrp(&self, i: usize) {
        let _ = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.nodes[i].ns,
                "nft",
                "delete",
                "table",
                "inet",
                "lab",
            ])
            .output();
    }

    /// One HTTP GET from the client namespace; the body, or None.
    pub fn get(&self, addr: IpAddr, timeout: Duration) -> Option<String> {
        in_netns(&self.client_ns, || {
            http_get(SocketAddr::new(addr, 80), timeout)
        })
    }

    /// Polls the VIP from the client every `every` until a body satisfies
    /// `want` or `limit` passes. Returns (when it did, failed requests).
    pub fn poll_until(
        &self,
        vip: IpAddr,
        every: Duration,
        limit: Duration,
        want: impl Fn(&str) -> bool + Send,
    ) -> Option<(Instant, u32)> {
        let ns = self.client_ns.clone();
        in_netns(&ns, move || {
            let start = Instant::now();
            let mut failed = 0;
            while start.elapsed() < limit {
                let t = Instant::now();
                match http_get(
                    SocketAddr::new(vip, 80),
                    every.max(Duration::from_millis(50)),
                ) {
                    Some(b) if want(&b) => return Some((Instant::now(), failed)),
                    _ => failed += 1,
                }
                if let Some(rest) = every.checked_sub(t.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            None
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.daemon.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(mut c) = n.nginx.take() {
                let workers = children_of(c.id());
                let _ = c.kill();
                for w in workers {
                    // SAFETY: kill(2) on the workers of an nginx we started.
                    unsafe { libc::kill(w as i32, libc::SIGKILL) };
                }
                let _ = c.wait();
            }
        }
        for i in 0..self.nodes.len() {
            self.stop_keepalived(i);
        }
        for mut c in self.extra.drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            for (i, n) in self.nodes.iter().enumerate() {
                eprintln!(
                    "--- node{i} nginx-ha log ---\n{}",
                    fs::read_to_string(n.dir.join("nginx-ha.log")).unwrap_or_default()
                );
                if let Ok(k) = fs::read_to_string(n.dir.join("keepalived.log")) {
                    eprintln!("--- node{i} keepalived log ---\n{k}");
                }
            }
        }
        let mut all: Vec<String> = self.nodes.iter().map(|n| n.ns.clone()).collect();
        all.push(self.client_ns.clone());
        all.push(self.bridge_ns.clone());
        for ns in all {
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }
}
