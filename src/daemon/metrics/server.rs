//! The HTTP side of the metrics endpoint: bounded connections, a deadline
//! per connection, one request per connection, rendered from the latest
//! snapshot.

use super::exposition::{Snapshot, render};
use crate::node::status::Status;
use log::warn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

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

/// The event loop's end: it publishes, the HTTP task reads.
pub struct Publisher {
    tx: watch::Sender<Option<Arc<Snapshot>>>,
    #[cfg_attr(not(test), allow(dead_code))]
    local: SocketAddr,
}

impl Publisher {
    pub fn publish(&self, status: Status) {
        self.tx.send_replace(Some(Arc::new(Snapshot {
            status,
            taken: SystemTime::now(),
        })));
    }
}

/// Binds the listener now, so a taken or foreign address is an error at
/// start, and spawns the task that serves it.
pub fn bind(addr: SocketAddr) -> std::io::Result<Publisher> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(std_listener)?;
    let local = listener.local_addr()?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(serve(listener, rx));
    Ok(Publisher { tx, local })
}

async fn serve(listener: TcpListener, rx: watch::Receiver<Option<Arc<Snapshot>>>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                warn!("metrics endpoint: accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            continue; // dropped: closed at once
        };
        let snap = rx.borrow().clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(CLIENT_DEADLINE, answer(stream, snap)).await;
            drop(permit);
        });
    }
}

/// Reads the request head and answers it. Errors mean the client went
/// away; there is no one to tell.
async fn answer(mut stream: TcpStream, snap: Option<Arc<Snapshot>>) -> std::io::Result<()> {
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
    let process = super::process::read().await;
    let body = render(&snap, process.as_ref());
    let body = if method == "HEAD" {
        String::new()
    } else {
        body
    };
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
        let p = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
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
        let p = bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        assert!(bind(p.local).is_err());
    }
}
