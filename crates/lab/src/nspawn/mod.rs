//! The systemd-level twin of the NixOS VM tests: one systemd-nspawn
//! container per node, booted from a minimal Debian rootfs into the node
//! namespaces of the network lab (`crate::Lab`), running the shipped
//! `contrib/systemd/nginx-ha.service` unchanged, Debian's nginx under
//! systemd, and the freshly built `nginx-ha` as `/usr/bin/nginx-ha`.
//!
//! - The rootfs is built once per machine by `vm-tests/nspawn/build-rootfs`
//!   (debootstrap, cached under /var/cache/nginx-ha-nspawn/<hash>); the
//!   first test of a run calls it, the others reuse its answer.
//! - Each node gets its own writable root: an overlayfs (the shared rootfs
//!   as the read-only lower layer, a per-node upper directory in the lab's
//!   temporary directory) mounted in a private mount namespace
//!   (`unshare -m`) that exists only as long as that node's
//!   `systemd-nspawn`, so no mount outlives the test, even when it is
//!   killed. The node's files (declaration, nginx site, binary, unit) are
//!   put into the upper directory before boot.
//! - nspawn keeps CAP_NET_ADMIN out of a container's bounding set unless
//!   it made the network namespace itself; a VM's systemd has it, and the
//!   namespace is the node's own, so `--capability=CAP_NET_ADMIN` gives it
//!   back (without it the daemon cannot add the VIP: EPERM from netlink).
//! - Commands run inside with `nsenter -t <container's PID 1> -m -u -i -n -p`.
//! - Every wait is bounded. On drop each container is halted (SIGTERM to
//!   its nspawn, which asks the container's systemd to power off), then
//!   killed if it has not stopped in time; only PIDs this harness started
//!   are signalled. The lab then deletes the namespaces.
mod inside;

pub use inside::check_caps;

use crate::{Lab, ms, node_v4, skew_100ms, wait_for};
pub use crate::{VIP, vip};
use serde_json::{Value, json};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const VRID: u64 = 51;
pub const PRIORITIES: [u64; 2] = [150, 100];
pub const UNIT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../contrib/systemd/nginx-ha.service"
);
const BUILD_ROOTFS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../vm-tests/nspawn/build-rootfs"
);

/// The README's failover bound for the backup (priority 100): it takes over
/// Skew_Time after the master's priority-0 advert; 250 ms covers detection
/// and the client's poll.
pub fn failover_bound() -> Duration {
    skew_100ms(PRIORITIES[1]) + ms(250)
}

/// Skips (loudly) when the harness cannot run here; fails instead under CI,
/// where a skipped twin would hide a broken install. Returns the rootfs.
pub fn require() -> Option<PathBuf> {
    static ROOTFS: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = ROOTFS.get_or_init(|| {
        if unsafe { libc::geteuid() } != 0 {
            return Err("needs root".into());
        }
        for (tool, pkg) in [
            ("systemd-nspawn", "systemd-container"),
            ("debootstrap", "debootstrap"),
            ("nsenter", "util-linux"),
            ("unshare", "util-linux"),
            ("ip", "iproute2"),
            ("systemd-analyze", "systemd"),
        ] {
            let found = std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
                .unwrap_or(false)
                || ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                    .iter()
                    .any(|d| Path::new(d).join(tool).is_file());
            if !found {
                return Err(format!("{tool} not found (apt-get install {pkg})"));
            }
        }
        let t = Instant::now();
        let out = Command::new(BUILD_ROOTFS)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("{BUILD_ROOTFS}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{BUILD_ROOTFS} failed ({})", out.status));
        }
        let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        eprintln!(
            "nspawn: rootfs {} ready in {:.1} s",
            root.display(),
            t.elapsed().as_secs_f64()
        );
        Ok(root)
    });
    match r {
        Ok(p) => Some(p.clone()),
        Err(e) if std::env::var_os("CI").is_some() => {
            panic!("nspawn twins cannot run: {e} (CI installs debootstrap and systemd-container)")
        }
        Err(e) => {
            eprintln!("SKIPPED: nspawn twin: {e}");
            None
        }
    }
}

pub struct Container {
    pub name: String,
    pub ns: String,
    pub dir: PathBuf,
    pub nspawn: Option<Child>,
    /// The container's PID 1 (its systemd), as seen from the host.
    pub leader: i32,
}

pub struct NspawnLab {
    pub nodes: Vec<Container>,
    pub rootfs: PathBuf,
    /// Dropped after the containers (see Drop): the namespaces go last.
    pub lab: Lab,
}

/// What the harness writes into node `i` before it boots.
pub struct NodeSetup {
    pub declaration: Value,
    /// Extra files, path inside the container → contents.
    pub files: Vec<(String, String)>,
}

/// The cluster declaration of the VM tests (vm-tests/common.nix), with the
/// lab's addresses: instance `web`, unicast between the two nodes,
/// 100 ms adverts, preemptDelay 2 s, Debian's nginx pidfile.
pub fn declaration(i: usize) -> Value {
    json!({
        "node": { "name": format!("node{i}"), "priority": PRIORITIES[i] },
        "instances": { "web": {
            "interface": "eth0",
            "virtualRouterId": VRID,
            "virtualIps": [format!("{VIP}/24")],
            "advertInterval": "100ms",
            "unicastPeers": [node_v4(0).to_string(), node_v4(1).to_string()],
            "unicastSource": node_v4(i).to_string(),
            "preemptDelay": "2s"
        } },
        "checks": { "nginx": {
            "pidFile": "/run/nginx.pid",
            "statusUrl": "http://127.0.0.1:8081/nginx_status",
            "interval": "200ms",
            "timeout": "100ms"
        } }
    })
}

pub fn default_setup(i: usize) -> NodeSetup {
    NodeSetup {
        declaration: declaration(i),
        files: Vec::new(),
    }
}

fn nginx_site(name: &str) -> String {
    format!(
        r#"# nginx-ha nspawn twin: the page names the node; stub_status for the checks.
server {{
    listen 80 default_server;
    listen [::]:80 default_server;
    access_log off;
    default_type text/plain;
    location / {{ return 200 "{name}\n"; }}
}}
server {{
    listen 127.0.0.1:8081;
    access_log off;
    location = /nginx_status {{ stub_status; allow 127.0.0.1; deny all; }}
}}
"#
    )
}

/// Debian's nginx.service has no Restart=; the VM tests' NixOS nginx has.
const NGINX_RESTART: &str = "[Service]\nRestart=always\nRestartSec=1\n";

fn write(root: &Path, path: &str, contents: &[u8], mode: u32) {
    let p = root.join(path.trim_start_matches('/'));
    let parent = p.parent().expect("parent");
    fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{}: {e}", parent.display()));
    fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Result of one command run inside a container.
pub struct Ran {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl NspawnLab {
    /// Boots two nodes (priorities 150 and 100) with the default setup and
    /// the client namespace; waits until both containers' systemd answer.
    /// `daemon_bin` is the nginx-ha binary put into every container.
    pub fn boot(rootfs: &Path, daemon_bin: &Path) -> NspawnLab {
        Self::boot_with(rootfs, daemon_bin, default_setup)
    }

    pub fn boot_with(
        rootfs: &Path,
        daemon_bin: &Path,
        setup: impl Fn(usize) -> NodeSetup,
    ) -> NspawnLab {
        let lab = Lab::new(2, daemon_bin);
        let mut me = NspawnLab {
            nodes: Vec::new(),
            rootfs: rootfs.to_path_buf(),
            lab,
        };
        let t = Instant::now();
        for i in 0..2 {
            let s = setup(i);
            me.start_container(i, &s);
        }
        for i in 0..2 {
            me.wait_booted(i);
        }
        eprintln!(
            "nspawn: 2 containers booted in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        me
    }

    fn start_container(&mut self, i: usize, s: &NodeSetup) {
        let name = format!("node{i}");
        let ns = self.lab.nodes[i].ns.clone();
        let dir = self.lab.nodes[i].dir.clone();
        let (upper, work, root) = (dir.join("upper"), dir.join("work"), dir.join("root"));
        for d in [&upper, &work, &root] {
            fs::create_dir_all(d).expect("overlay dirs");
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let bin = fs::read(&self.lab.daemon_bin).expect("nginx-ha binary");
        write(&upper, "/usr/bin/nginx-ha", &bin, 0o755);
        let unit = fs::read(UNIT).expect("shipped unit");
        write(&upper, "/etc/systemd/system/nginx-ha.service", &unit, 0o644);
        fs::create_dir_all(upper.join("etc/systemd/system/multi-user.target.wants")).unwrap();
        std::os::unix::fs::symlink(
            "/etc/systemd/system/nginx-ha.service",
            upper.join("etc/systemd/system/multi-user.target.wants/nginx-ha.service"),
        )
        .expect("enable nginx-ha");
        write(
            &upper,
            "/etc/nginx-ha/nginx-ha.json",
            &serde_json::to_vec_pretty(&s.declaration).unwrap(),
            0o644,
        );
        write(
            &upper,
            "/etc/nginx/sites-enabled/nginx-ha-twin",
            nginx_site(&name).as_bytes(),
            0o644,
        );
        write(
            &upper,
            "/etc/systemd/system/nginx.service.d/restart.conf",
            NGINX_RESTART.as_bytes(),
            0o644,
        );
        for (p, c) in &s.files {
            write(&upper, p, c.as_bytes(), 0o644);
        }

        let console = fs::File::create(dir.join("console.log")).expect("console log");
        let script = format!(
            "mount -t overlay overlay -o lowerdir={lower},upperdir={upper},workdir={work} {root} && \
             exec systemd-nspawn --quiet -b -D {root} --register=no --keep-unit \
             --network-namespace-path=/run/netns/{ns} --machine={prefix}-{name} --hostname={name} \
             --capability=CAP_NET_ADMIN --console=read-only",
            lower = self.rootfs.display(),
            upper = upper.display(),
            work = work.display(),
            root = root.display(),
            prefix = self.lab.prefix,
        );
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .expect("spawn systemd-nspawn");
        let pid = child.id() as i32;
        self.nodes.push(Container {
            name,
            ns,
            dir,
            nspawn: Some(child),
            leader: 0,
        });
        // The container's PID 1: a descendant of nspawn that is PID 1 in
        // its own PID namespace.
        let leader = wait_for(Duration::from_secs(20), || {
            if let Some(c) = self.nodes[i].nspawn.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!(
                    "node{i}: systemd-nspawn exited ({st}) before booting:\n{}",
                    self.console(i)
                );
            }
            find_leader(pid)
        })
        .unwrap_or_else(|| {
            panic!(
                "node{i}: no container PID 1 after 20 s:\n{}",
                self.console(i)
            )
        });
        self.nodes[i].leader = leader;
    }

    pub fn console(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].dir.join("console.log")).unwrap_or_default()
    }

    /// Waits (bounded) until the container's systemd has finished booting
    /// (or given up on some unit: `degraded`), or at least answers and has
    /// reached multi-user.target's jobs.
    fn wait_booted(&self, i: usize) {
        let r = wait_for(Duration::from_secs(60), || {
            let o = self.run(i, &["systemctl", "is-system-running"]);
            let s = o.stdout.trim().to_string();
            matches!(s.as_str(), "running" | "degraded" | "starting")
                .then_some(s)
                .filter(|s| {
                    s != "starting" || self.unit_prop(i, "nginx", "ActiveState") == "active"
                })
        });
        if r.is_none() {
            panic!(
                "node{i}: systemd did not boot in 60 s:\n{}",
                self.console(i)
            );
        }
    }

    fn stop_container(&mut self, i: usize) {
        let Some(mut c) = self.nodes[i].nspawn.take() else {
            return;
        };
        // SIGTERM to nspawn: it asks the container's systemd to power off.
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let done = wait_for(Duration::from_secs(15), || c.try_wait().ok().flatten());
        if done.is_none() {
            let leader = self.nodes[i].leader;
            if leader > 0 && find_leader(c.id() as i32) == Some(leader) {
                // SAFETY: the container's PID 1, started by our nspawn;
                // its death takes the whole container with it.
                unsafe { libc::kill(leader, libc::SIGKILL) };
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Finds the container's PID 1 below nspawn `pid`: a descendant whose
/// `NSpid` ends in 1 (PID 1 in its own PID namespace).
fn find_leader(pid: i32) -> Option<i32> {
    let mut todo = vec![pid];
    let mut seen = 0;
    while let Some(p) = todo.pop() {
        seen += 1;
        if seen > 64 {
            break;
        }
        let Ok(tasks) = fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for t in tasks.flatten() {
            let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids
                .split_whitespace()
                .filter_map(|k| k.parse::<i32>().ok())
            {
                let st = fs::read_to_string(format!("/proc/{k}/status")).unwrap_or_default();
                let nspid = st
                    .lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>();
                if nspid.len() >= 2 && nspid.last() == Some(&"1") {
                    return Some(k);
                }
                todo.push(k);
            }
        }
    }
    None
}

impl Drop for NspawnLab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for i in 0..self.nodes.len() {
                if self.nodes[i].nspawn.is_some() {
                    eprintln!("--- node{i} journal (nginx-ha) ---\n{}", self.journal(i));
                    eprintln!(
                        "--- node{i} status ---\n{}",
                        self.run(
                            i,
                            &["systemctl", "status", "--no-pager", "nginx-ha", "nginx"]
                        )
                        .stdout
                    );
                }
            }
        }
        let t = Instant::now();
        // Ask every container to power off at once, then wait for each.
        for n in &self.nodes {
            if let Some(c) = &n.nspawn {
                // SAFETY: kill(2) on a child we spawned and have not reaped.
                unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            }
        }
        for i in 0..self.nodes.len() {
            self.stop_container(i);
        }
        eprintln!(
            "nspawn: containers stopped in {:.1} s",
            t.elapsed().as_secs_f64()
        );
    }
}
