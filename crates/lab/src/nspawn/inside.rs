//! Looking into a running container: commands through `nsenter`, unit
//! properties, the daemon's state file, status and journal, and the
//! operating promises every scenario checks first.

use super::{NspawnLab, Ran, write};
use crate::{ms, vip, wait_for};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

impl NspawnLab {
    /// `nsenter` into node `i`'s container with a clean environment.
    pub fn cmd(&self, i: usize, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.args([
            "-t",
            &self.nodes[i].leader.to_string(),
            "-m",
            "-u",
            "-i",
            "-n",
            "-p",
            "--",
        ])
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null());
        c
    }

    /// Runs a command inside node `i` (bounded: `timeout 30`).
    pub fn run(&self, i: usize, args: &[&str]) -> Ran {
        let mut full = vec!["timeout", "30"];
        full.extend_from_slice(args);
        let o: Output = self
            .cmd(i, &full)
            .output()
            .unwrap_or_else(|e| panic!("nsenter: {e}"));
        Ran {
            ok: o.status.success(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

    /// Runs a command inside node `i`; fails the test unless it succeeds.
    pub fn ok(&self, i: usize, args: &[&str]) -> String {
        let r = self.run(i, args);
        assert!(r.ok, "node{i}: {args:?} failed:\n{}{}", r.stdout, r.stderr);
        r.stdout
    }

    /// One property of a unit (`systemctl show -p P --value U`).
    pub fn unit_prop(&self, i: usize, unit: &str, prop: &str) -> String {
        self.run(i, &["systemctl", "show", "-p", prop, "--value", unit])
            .stdout
            .trim()
            .to_string()
    }

    /// The contents of the daemon's classic state file for `instance`.
    pub fn state(&self, i: usize, instance: &str) -> String {
        self.run(i, &["cat", &format!("/run/nginx-ha/{instance}.state")])
            .stdout
            .trim()
            .to_string()
    }

    /// Writes a file inside the running container (through its root).
    pub fn write_file(&self, i: usize, path: &str, contents: &str) {
        let root = PathBuf::from(format!("/proc/{}/root", self.nodes[i].leader));
        write(&root, path, contents.as_bytes(), 0o644);
    }

    pub fn holders(&self) -> Vec<usize> {
        self.lab.holders(vip())
    }

    /// Waits until exactly node `m` holds the VIP and says MASTER in its
    /// state file, and the other's daemon runs and is not MASTER (BACKUP,
    /// or FAULT when its nginx is down or it is in maintenance); Err with
    /// what was seen otherwise.
    pub fn wait_single_master(&self, m: usize, limit: Duration) -> Result<(), String> {
        let other = 1 - m;
        let mut last = String::new();
        let got = wait_for(limit, || {
            let h = self.holders();
            let (sm, so) = (self.state(m, "web"), self.state(other, "web"));
            last = format!("holders {h:?}, node{m}: {sm:?}, node{other}: {so:?}");
            (h == vec![m] && sm == "STATE=MASTER" && so != "STATE=MASTER" && !so.is_empty())
                .then_some(())
        });
        got.ok_or_else(|| format!("node{m} never the single master in {limit:?}: {last}"))
    }

    /// The client polls the VIP until node `m`'s page comes back.
    pub fn served_by(&self, m: usize, limit: Duration) -> Option<(Instant, u32)> {
        let want = format!("node{m}\n");
        self.lab
            .poll_until(vip(), ms(10), limit, move |b| b == want)
    }

    /// The main PID of nginx-ha inside node `i` (0 when not running).
    pub fn main_pid(&self, i: usize) -> u32 {
        self.unit_prop(i, "nginx-ha", "MainPID")
            .parse()
            .unwrap_or(0)
    }

    /// `Name:\tvalue` lines of /proc/<main pid>/status, read inside.
    pub fn main_status(&self, i: usize) -> Result<Vec<(String, String)>, String> {
        let pid = self.main_pid(i);
        if pid == 0 {
            return Err(format!("node{i}: nginx-ha has no main PID"));
        }
        let r = self.run(i, &["cat", &format!("/proc/{pid}/status")]);
        if !r.ok {
            return Err(format!("node{i}: /proc/{pid}/status: {}", r.stderr));
        }
        Ok(r.stdout
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_string(), v.trim().to_string()))
            .collect())
    }

    /// The daemon's journal inside node `i` (short format), for messages.
    pub fn journal(&self, i: usize) -> String {
        self.run(
            i,
            &[
                "journalctl",
                "--no-pager",
                "-q",
                "-u",
                "nginx-ha",
                "-o",
                "short-monotonic",
            ],
        )
        .stdout
    }

    /// The operating promises checked in every scenario's start: exactly
    /// one master (node 0) that the client reaches through the VIP, and a
    /// daemon that runs as a non-root user with exactly CAP_NET_RAW and
    /// CAP_NET_ADMIN. Err says which promise broke.
    pub fn check_started(&self, limit: Duration) -> Result<(), String> {
        self.wait_single_master(0, limit)?;
        // node1 may still be waiting for its checks' first verdict (INIT).
        let backup = wait_for(Duration::from_secs(5), || {
            (self.state(1, "web") == "STATE=BACKUP").then_some(())
        });
        if backup.is_none() {
            return Err(format!(
                "node1 is {:?}, not STATE=BACKUP",
                self.state(1, "web")
            ));
        }
        if self.holders() != vec![0] {
            return Err(format!("VIP holders {:?}, want [0]", self.holders()));
        }
        if self.served_by(0, Duration::from_secs(3)).is_none() {
            return Err("the client never got node0's page through the VIP".into());
        }
        for i in 0..2 {
            check_caps(i, &self.main_status(i)?)?;
        }
        Ok(())
    }
}

/// Non-root, exactly CAP_NET_RAW (13) and CAP_NET_ADMIN (12) effective and
/// permitted.
pub fn check_caps(i: usize, status: &[(String, String)]) -> Result<(), String> {
    let get = |k: &str| {
        status
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let uid = get("Uid");
    if uid.split_whitespace().any(|u| u == "0") || uid.is_empty() {
        return Err(format!("node{i}: nginx-ha runs with uid {uid:?}"));
    }
    for k in ["CapEff", "CapPrm"] {
        let v = get(k);
        if v != "0000000000003000" {
            return Err(format!(
                "node{i}: {k} is {v:?}, not 0000000000003000 (CAP_NET_ADMIN + CAP_NET_RAW)"
            ));
        }
    }
    Ok(())
}
