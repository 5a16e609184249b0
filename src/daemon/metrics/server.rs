//! The HTTP side of the metrics endpoint: bounded connections, a deadline
//! per connection, one request per connection, rendered from the latest
//! snapshot.
//!
//! It runs on a thread of its own with its own small runtime, so a scrape
//! storm costs the VRRP event loop nothing but the snapshot it publishes
//! every 250 ms; and each snapshot is rendered once, however many scrapes
//! read it.

use super::exposition::{Snapshot, render};
use crate::health::stats::Stats;
use crate::node::status::Status;
use log::{error, warn};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, Semaphore, oneshot, watch};

/// Scrapes served at once; more are closed at once rather than queued.
const MAX_CONNECTIONS: usize = 16;
/// A scraper has this long to send its request and take the answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(2);
/// Request heads longer than this are refused.
const MAX_REQUEST: usize = 8 * 1024;
/// prometheus-client writes OpenMetrics text (a counter's family is
/// named without `_total`, its samples with it; `# EOF` at the end), which
/// Prometheus parses as such when told so.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How long closing the endpoint waits for its thread to let go of the
/// listener.
const CLOSE_DEADLINE: Duration = Duration::from_secs(2);

type Latest = watch::Receiver<Option<Arc<Snapshot>>>;

/// The event loop's end: it publishes, the endpoint's thread reads.
/// Dropping it stops the endpoint (the thread sees the channel close).
pub struct Publisher {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    local: SocketAddr,
    closed: Option<oneshot::Receiver<()>>,
}

impl Publisher {
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn publish(&self, status: Status) {
        self.tx.send_replace(Some(Arc::new(Snapshot {
            status,
            taken: SystemTime::now(),
        })));
    }

    /// Stops serving and waits (bounded) until the listener is closed, so
    /// its address can be bound again at once.
    pub async fn close(mut self) {
        let closed = self.closed.take();
        drop(self);
        if let Some(c) = closed {
            let _ = tokio::time::timeout(CLOSE_DEADLINE, c).await;
        }
    }
}

/// Binds the listener now, so a taken or foreign address is an error at
/// start, and starts the thread that serves it.
pub fn bind(addr: SocketAddr, probes: Stats) -> std::io::Result<Publisher> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (tx, rx) = watch::channel(None);
    let (closed_tx, closed) = oneshot::channel();
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            rt.block_on(async move {
                match TcpListener::from_std(std_listener) {
                    Ok(l) => serve(l, rx, probes).await,
                    Err(e) => error!("metrics endpoint {local}: {e}"),
                }
            });
            // The runtime, its listener and connections are gone now.
            drop(rt);
            let _ = closed_tx.send(());
        })?;
    Ok(Publisher {
        tx,
        local,
        closed: Some(closed),
    })
}

/// The rendered body of one snapshot, shared by the scrapes that read it.
#[derive(Default)]
struct Rendered {
    of: Option<Arc<Snapshot>>,
    body: Arc<String>,
}

async fn serve(listener: TcpListener, mut rx: Latest, probes: Stats) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let cache = Arc::new(Mutex::new(Rendered::default()));
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    warn!("metrics endpoint: accept: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            // Only an error matters: the publisher is gone.
            r = rx.changed() => match r {
                Ok(()) => continue,
                Err(_) => return,
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let snap = rx.borrow().clone();
        let (probes, cache) = (probes.clone(), cache.clone());
        tokio::spawn(async move {
            let _ =
                tokio::time::timeout(CLIENT_DEADLINE, answer(stream, snap, &probes, &cache)).await;
            drop(permit);
        });
    }
}

/// The snapshot's body, rendered by the first scrape that needs it.
async fn body_of(snap: &Arc<Snapshot>, probes: &Stats, cache: &Mutex<Rendered>) -> Arc<String> {
    let mut c = cache.lock().await;
    if c.of.as_ref().is_some_and(|s| Arc::ptr_eq(s, snap)) {
        return c.body.clone();
    }
    let process = super::process::read().await;
    let body = Arc::new(render(snap, process.as_ref(), probes));
    *c = Rendered {
        of: Some(snap.clone()),
        body: body.clone(),
    };
    body
}

/// Reads the request head and answers it. Errors mean the client went
/// away; there is no one to tell.
async fn answer(
    mut stream: TcpStream,
    snap: Option<Arc<Snapshot>>,
    probes: &Stats,
    cache: &Mutex<Rendered>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST {
            return respond(&mut stream, "431 Request Header Fields Too Large", "").await;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf);
    let mut first = head.lines().next().unwrap_or_default().split(' ');
    let (method, target) = (
        first.next().unwrap_or_default(),
        first.next().unwrap_or_default(),
    );
    let path = target.split('?').next().unwrap_or_default();
    if path != "/metrics" {
        return respond(&mut stream, "404 Not Found", "only /metrics is served\n").await;
    }
    if method != "GET" && method != "HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "").await;
    }
    let Some(snap) = snap else {
        return respond(&mut stream, "503 Service Unavailable", "starting\n").await;
    };
    let body = body_of(&snap, probes, cache).await;
    if method == "HEAD" {
        return respond(&mut stream, "200 OK", "").await;
    }
    respond(&mut stream, "200 OK", &body).await
}

async fn respond(stream: &mut TcpStream, status: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request.as_bytes()).await.expect("send");
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .expect("answered within 5s")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn serves_the_latest_snapshot_and_nothing_else() {
        let p = bind("127.0.0.1:0".parse().expect("addr"), Stats::default()).expect("bind");
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(get(p.local, req).await.starts_with("HTTP/1.1 503"));
        p.publish(Status {
            node: "lb1".into(),
            maintenance: true,
            instances: vec![],
            checks: vec![],
            nginx: None,
            dropped: BTreeMap::new(),
            anycast: None,
        });
        let ok = get(p.local, req).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("\nnginx_ha_maintenance 1\n"), "{ok}");
        let other = get(p.local, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        let post = get(p.local, "POST /metrics HTTP/1.1\r\n\r\n").await;
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
        // Exactly the limit and unterminated, so nothing is left unread
        // (which would turn the close into a reset).
        let mut huge = String::from("GET /metrics HTTP/1.1\r\nX: ");
        huge.push_str(&"a".repeat(MAX_REQUEST - huge.len()));
        assert!(get(p.local, &huge).await.starts_with("HTTP/1.1 431"));
    }

    #[tokio::test]
    async fn a_taken_address_is_an_error() {
        let p = bind("127.0.0.1:0".parse().expect("addr"), Stats::default()).expect("bind");
        assert!(bind(p.local, Stats::default()).is_err());
    }
}
