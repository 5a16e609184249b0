//! The control socket (`<runtime-dir>/control.sock`, mode 0660): one
//! request line in, one JSON document out. `nginx-ha status` and
//! `nginx-ha maintenance on|off` are its clients.

use super::{DaemonError, io_err};
use log::warn;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

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

pub use crate::node::status::{
    CheckStatus, Counters, InstanceStatus, MaintenanceAnswer, Status, Transition,
};

/// Connections served at once. Each costs a file descriptor and a task;
/// more are answered "busy" at once instead of queueing without bound.
const MAX_CONNECTIONS: usize = 16;
/// A client has this long to send its line, and to take the answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// After an accept error (EMFILE, ENFILE, ENOBUFS), wait this long before
/// the next try: the condition usually clears when other descriptors close.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one log line per this long for accept errors.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Who may talk to the daemon. The socket is 0660, so the kernel already
/// lets only its owner and group connect; this holds even where the mode
/// was widened (a umask, a chmod) or a connected descriptor was passed on.
#[derive(Clone, Copy, Debug)]
struct Allowed {
    uid: u32,
    gid: u32,
}

impl Allowed {
    /// Root, the daemon's own user, or a member of the socket's group
    /// (primary or, read from /proc, supplementary).
    async fn check(&self, stream: &UnixStream) -> Result<(), String> {
        let cred = stream
            .peer_cred()
            .map_err(|e| format!("cannot read the peer's credentials: {e}"))?;
        let (uid, gid) = (cred.uid(), cred.gid());
        if uid == 0 || uid == self.uid || gid == self.gid {
            return Ok(());
        }
        if let Some(pid) = cred.pid()
            && self.in_group(pid).await
        {
            return Ok(());
        }
        Err(format!(
            "uid {uid} is not allowed: only root, uid {} or members of group {} may use this socket",
            self.uid, self.gid
        ))
    }

    async fn in_group(&self, pid: i32) -> bool {
        let path = std::path::PathBuf::from(format!("/proc/{pid}/status"));
        let Ok(raw) = crate::file_read::read_regular_within(
            &path,
            64 * 1024,
            crate::file_read::Symlinks::Refuse,
            Duration::from_millis(200),
        )
        .await
        else {
            return false;
        };
        String::from_utf8_lossy(&raw)
            .lines()
            .find_map(|l| l.strip_prefix("Groups:"))
            .is_some_and(|g| {
                g.split_whitespace()
                    .any(|x| x.parse::<u32>() == Ok(self.gid))
            })
    }
}

fn error_answer(msg: &str) -> String {
    serde_json::json!({ "error": msg }).to_string()
}

/// Reads one request line: bounded in size and time, UTF-8 only. Err is
/// the answer to send back.
async fn read_request(r: tokio::net::unix::OwnedReadHalf) -> Result<Command, String> {
    let mut buf = Vec::new();
    let mut r = tokio::io::BufReader::new(tokio::io::AsyncReadExt::take(r, MAX_REQUEST as u64));
    match tokio::time::timeout(CLIENT_DEADLINE, r.read_until(b'\n', &mut buf)).await {
        Err(_) => return Err(error_answer("no request line within 2s")),
        Ok(Err(e)) => return Err(error_answer(&format!("reading the request: {e}"))),
        Ok(Ok(_)) => {}
    }
    if !buf.ends_with(b"\n") && buf.len() >= MAX_REQUEST {
        return Err(error_answer(&format!(
            "the request is longer than {MAX_REQUEST} bytes"
        )));
    }
    let line =
        std::str::from_utf8(&buf).map_err(|_| error_answer("the request is not UTF-8 text"))?;
    Command::parse(line).ok_or_else(|| {
        error_answer("unknown command (known: status, maintenance on, maintenance off)")
    })
}

async fn serve(stream: UnixStream, allowed: Allowed, tx: mpsc::Sender<Request>) {
    let allowed = allowed.check(&stream).await;
    let (r, w) = stream.into_split();
    // The request is read even from a refused peer: closing a unix socket
    // with unread data makes the peer's read fail with ECONNRESET, and the
    // refusal would never be seen.
    let request = read_request(r).await;
    let answer = match (allowed, request) {
        (Err(why), _) => {
            warn!("control socket: {why}");
            error_answer(&why)
        }
        (Ok(()), Err(e)) => e,
        (Ok(()), Ok(cmd)) => {
            let (reply, rx) = oneshot::channel();
            if tx.send(Request { cmd, reply }).await.is_err() {
                return;
            }
            rx.await.unwrap_or_default()
        }
    };
    write_answer(w, answer).await;
}

async fn write_answer(mut w: tokio::net::unix::OwnedWriteHalf, answer: String) {
    let _ = tokio::time::timeout(CLIENT_DEADLINE, async {
        w.write_all(answer.as_bytes()).await?;
        w.write_all(b"\n").await
    })
    .await;
}

/// Accept errors, logged at most once per ACCEPT_LOG_EVERY with a count
/// of the ones not logged.
#[derive(Default)]
struct AcceptErrors {
    last_log: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn record(&mut self, e: &std::io::Error) {
        let now = Instant::now();
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < ACCEPT_LOG_EVERY)
        {
            self.unlogged += 1;
            return;
        }
        if self.unlogged > 0 {
            warn!(
                "control socket: accept failed: {e} (and {} more times since the last report); retrying",
                self.unlogged
            );
        } else {
            warn!("control socket: accept failed: {e}; retrying");
        }
        self.last_log = Some(now);
        self.unlogged = 0;
    }
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
    let meta = std::fs::metadata(&path).map_err(io_err(format!("stat {}", path.display())))?;
    let allowed = Allowed {
        uid: nix::unistd::geteuid().as_raw(),
        gid: meta.gid(),
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        let mut errors = AcceptErrors::default();
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // One failure (EMFILE while many clients are connected)
                    // must not end the loop: nothing would ever answer
                    // again.
                    errors.record(&e);
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                // Whatever the client already sent is taken (without
                // waiting), so the close does not reset the connection
                // before the answer is read (see `serve`).
                let mut sink = [0u8; MAX_REQUEST];
                let _ = stream.try_read(&mut sink);
                let (_, w) = stream.into_split();
                // A short write to a fresh socket does not block; bounded
                // anyway, and inline so refusals cannot pile up tasks.
                let busy = error_answer("busy: too many control connections; try again");
                let _ =
                    tokio::time::timeout(Duration::from_millis(100), write_answer(w, busy)).await;
                continue;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                serve(stream, allowed, tx).await;
                drop(slot);
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
    #[error("the daemon refused: {0}")]
    Refused(String),
}

/// Sends one command and returns the daemon's JSON answer.
pub fn request(dir: &Path, cmd: Command) -> Result<String, ClientError> {
    let path = dir.join(SOCKET);
    let mut s = StdUnixStream::connect(&path).map_err(|source| ClientError::Connect {
        path: path.display().to_string(),
        source,
    })?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let sent = s.write_all(cmd.line().as_bytes());
    let mut line = String::new();
    // A daemon that refuses at once ("busy") may close before the request
    // is written; its answer is still there to read.
    let read = BufReader::new(s).read_line(&mut line);
    if line.is_empty() {
        sent?;
        read?;
    }
    if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(&line)
        && let Some(serde_json::Value::String(e)) = o.get("error")
    {
        return Err(ClientError::Refused(e.clone()));
    }
    Ok(line)
}

/// Switches maintenance mode; the daemon answers once it is persisted.
pub fn maintenance(dir: &Path, on: bool) -> Result<MaintenanceAnswer, ClientError> {
    let raw = request(dir, Command::Maintenance(on))?;
    let a: MaintenanceAnswer =
        serde_json::from_str(&raw).map_err(|e| ClientError::Answer(e.to_string()))?;
    if a.ok && a.maintenance == on {
        Ok(a)
    } else {
        Err(ClientError::Answer(raw.trim().to_string()))
    }
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
    if let Some(a) = &st.anycast {
        out.push_str(&crate::anycast::render_status(a));
    }
    out
}
