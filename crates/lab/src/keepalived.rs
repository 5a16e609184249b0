//! Debian's keepalived on a lab node: the interop tests and the benchmark
//! run it beside (or instead of) nginx-ha.

use crate::{Lab, wait_for};
use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

impl Lab {
    /// Starts Debian's keepalived on node `i` in the foreground with its
    /// own config and pid files (nothing under /etc or /run is touched).
    pub fn start_keepalived(&mut self, i: usize, conf: &str) {
        self.start_keepalived_opts(i, conf, false);
    }

    /// As `start_keepalived`; with `own_netns` keepalived is started from
    /// the root namespace with its own `-s <netns>` option instead of under
    /// `ip netns exec`: `vrrp_track_process` needs that (the netlink
    /// process-events connector exists only in the initial namespace).
    /// The log is appended to, so restarts keep the earlier transitions.
    pub fn start_keepalived_opts(&mut self, i: usize, conf: &str, own_netns: bool) {
        let d = self.nodes[i].dir.clone();
        fs::write(d.join("keepalived.conf"), conf).expect("keepalived.conf");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("keepalived.log"))
            .expect("log");
        let ns = self.nodes[i].ns.clone();
        let mut c = if own_netns {
            let mut c = Command::new("keepalived");
            c.args(["-s", &ns]);
            c
        } else {
            self.ns_cmd(&ns, "keepalived")
        };
        c.arg("-f")
            .arg(d.join("keepalived.conf"))
            .args(["--vrrp", "--dont-fork", "--log-console", "--no-syslog"])
            .arg(format!("--pid={}", d.join("ka.pid").display()))
            .arg(format!("--vrrp_pid={}", d.join("ka-vrrp.pid").display()))
            .arg(format!(
                "--checkers_pid={}",
                d.join("ka-checkers.pid").display()
            ))
            .arg(format!("--bfd_pid={}", d.join("ka-bfd.pid").display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        self.nodes[i].keepalived = Some(c.spawn().expect("spawn keepalived"));
    }

    /// Stops keepalived: SIGTERM makes its VRRP child send priority 0.
    /// Its VRRP child is killed too if it outlives the parent.
    pub fn stop_keepalived(&mut self, i: usize) {
        let vrrp_pidfile = self.nodes[i].dir.join("ka-vrrp.pid");
        let vrrp_pid = fs::read_to_string(&vrrp_pidfile)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok());
        if let Some(mut c) = self.nodes[i].keepalived.take() {
            // SAFETY: kill(2) on the keepalived this lab started.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            if wait_for(Duration::from_secs(5), || c.try_wait().ok().flatten()).is_none() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(p) = vrrp_pid
                && p > 1
                && fs::read_to_string(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.contains("keepalived"))
            {
                // SAFETY: the VRRP child of the keepalived this lab started.
                unsafe { libc::kill(p, libc::SIGKILL) };
            }
        }
    }

    pub fn keepalived_log(&self, i: usize) -> String {
        fs::read_to_string(self.nodes[i].dir.join("keepalived.log")).unwrap_or_default()
    }
}
