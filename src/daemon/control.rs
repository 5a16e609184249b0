//! The control socket (`<runtime-dir>/control.sock`, mode 0660): one
//! request line in, one JSON document out. `nginx-ha status` and
//! `nginx-ha maintenance on|off` are its clients.

use super::{DaemonError, io_err};
use crate::health::stub_status::StubStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, oneshot};

pub const SOCKET: &str = "control.sock";
const MAX_REQUEST: usize = 256;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Status,
    Maintenance(bool),
}

impl Command {
    fn parse(line: &str) -> Option<Command> {
        match line.trim() {
            "status" => Some(Command::Status),
            "maintenance on" => Some(Command::Maintenance(true)),
            "maintenance off" => Some(Command::Maintenance(false)),
            _ => None,
        }
    }
    fn line(self) -> &'static str {
        match self {
            Command::Status => "status\n",
            Command::Maintenance(true) => "maintenance on\n",
            Command::Maintenance(false) => "maintenance off\n",
        }
    }
}

pub struct Request {
    pub cmd: Command,
    pub reply: oneshot::Sender<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    pub address_mismatch: u64,
    /// Lower-priority adverts answered while master (another node thought
    /// it was master).
    #[serde(default)]
    pub lower_priority_answered: u64,
    /// VIPs found deleted while master and added back.
    #[serde(default)]
    pub vips_restored: u64,
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub seconds_ago: f64,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub name: String,
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub interface: String,
    pub virtual_router_id: u8,
    pub version: u8,
    pub virtual_ips: Vec<String>,
    pub master_address: Option<String>,
    pub last_transition: Option<Transition>,
    pub faults: Vec<String>,
    pub counters: Counters,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub name: String,
    /// None while the check has not yet decided (it counts as failing).
    pub healthy: Option<bool>,
    pub detail: String,
    pub weight: i64,
    pub seconds_since_change: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub node: String,
    pub maintenance: bool,
    pub instances: Vec<InstanceStatus>,
    pub checks: Vec<CheckStatus>,
    pub nginx: Option<StubStatus>,
    /// Packets dropped before reaching an instance, by reason.
    pub dropped: BTreeMap<String, u64>,
}

/// Binds the socket and serves it; requests go to the event loop.
pub fn listen(
    dir: &Path,
    tx: mpsc::Sender<Request>,
) -> Result<tokio::task::JoinHandle<()>, DaemonError> {
    let path = dir.join(SOCKET);
    // A socket left by a crash would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener =
        UnixListener::bind(&path).map_err(io_err(format!("binding {}", path.display())))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
        .map_err(io_err(format!("chmod {}", path.display())))?;
    Ok(tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let (r, mut w) = stream.into_split();
                let mut line = String::new();
                let mut r =
                    tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(r, MAX_REQUEST as u64));
                let read =
                    tokio::time::timeout(Duration::from_secs(2), r.read_line(&mut line)).await;
                let answer = match read {
                    Ok(Ok(_)) => match Command::parse(&line) {
                        Some(cmd) => {
                            let (reply, rx) = oneshot::channel();
                            if tx.send(Request { cmd, reply }).await.is_err() {
                                return;
                            }
                            rx.await.unwrap_or_default()
                        }
                        None => "{\"error\":\"unknown command\"}".to_string(),
                    },
                    _ => return,
                };
                let _ = w.write_all(answer.as_bytes()).await;
                let _ = w.write_all(b"\n").await;
            });
        }
    }))
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "cannot reach the daemon at {path}: {source} (is nginx-ha running? is --runtime-dir right?)"
    )]
    Connect {
        path: String,
        source: std::io::Error,
    },
    #[error("talking to the daemon: {0}")]
    Io(#[from] std::io::Error),
    #[error("the daemon's answer is not understood: {0}")]
    Answer(String),
}

/// Sends one command and returns the daemon's JSON answer.
pub fn request(dir: &Path, cmd: Command) -> Result<String, ClientError> {
    let path = dir.join(SOCKET);
    let mut s = StdUnixStream::connect(&path).map_err(|source| ClientError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(cmd.line().as_bytes())?;
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line)?;
    Ok(line)
}

pub fn status(dir: &Path) -> Result<(Status, String), ClientError> {
    let raw = request(dir, Command::Status)?;
    let st: Status = serde_json::from_str(&raw).map_err(|e| ClientError::Answer(e.to_string()))?;
    Ok((st, raw))
}

/// The human-readable form of `status`.
pub fn render(st: &Status) -> String {
    let mut out = format!(
        "node {}{}\n",
        st.node,
        if st.maintenance { " (MAINTENANCE)" } else { "" }
    );
    for i in &st.instances {
        out.push_str(&format!(
            "  {:<12} {:<7} prio {:>3} (base {:>3})  VRRPv{} vrid {} on {}  VIPs {}  master {}\n",
            i.name,
            i.state,
            i.effective_priority,
            i.priority,
            i.version,
            i.virtual_router_id,
            i.interface,
            i.virtual_ips.join(","),
            i.master_address.as_deref().unwrap_or("-"),
        ));
        if let Some(t) = &i.last_transition {
            out.push_str(&format!(
                "               last change {:.1}s ago: {}\n",
                t.seconds_ago, t.reason
            ));
        }
        for f in &i.faults {
            out.push_str(&format!("               fault: {f}\n"));
        }
        out.push_str(&format!(
            "               adverts sent {} received {} dropped {:?}\n",
            i.counters.adverts_sent, i.counters.adverts_received, i.counters.dropped
        ));
    }
    for c in &st.checks {
        let v = match c.healthy {
            Some(true) => "ok",
            Some(false) => "FAILING",
            None => "pending",
        };
        out.push_str(&format!(
            "  check {:<10} {:<8} weight {:>4}  {}\n",
            c.name, v, c.weight, c.detail
        ));
    }
    if let Some(n) = &st.nginx {
        out.push_str(&format!(
            "  nginx: active {} accepts {} handled {} requests {}\n",
            n.active, n.accepts, n.handled, n.requests
        ));
    }
    if !st.dropped.is_empty() {
        out.push_str(&format!("  dropped before dispatch: {:?}\n", st.dropped));
    }
    out
}
