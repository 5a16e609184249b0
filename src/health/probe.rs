//! One-shot probes: HTTP GET, TCP connect, a command. Each is bounded by
//! its timeout and reports why it failed.

use super::url::HttpUrl;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Responses larger than this are cut: a status page is a few hundred
/// bytes, and a check must not buffer whatever a broken backend sends.
const MAX_RESPONSE: usize = 64 * 1024;

/// GETs the URL; returns the status code and the body.
pub async fn http_get(url: &HttpUrl, limit: Duration) -> Result<(u16, String), String> {
    let work = async {
        let mut s = TcpStream::connect(url.addr)
            .await
            .map_err(|e| format!("connect {}: {e}", url.addr))?;
        let req = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: nginx-ha\r\nConnection: close\r\n\r\n",
            url.path, url.host
        );
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
            if buf.len() > MAX_RESPONSE {
                break;
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| "no HTTP header end".to_string())?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|_| head.starts_with("HTTP/"))
            .ok_or_else(|| "not an HTTP response".to_string())?;
        Ok((status, body.to_string()))
    };
    timeout(limit, work)
        .await
        .map_err(|_| format!("no answer within {limit:?}"))?
}

pub async fn tcp_connect(addr: std::net::SocketAddr, limit: Duration) -> Result<(), String> {
    match timeout(limit, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect {addr}: {e}")),
        Err(_) => Err(format!("connect {addr}: no answer within {limit:?}")),
    }
}

/// Runs a check command; healthy on exit status 0. When it exits or
/// overruns the timeout, everything it started is killed (see `child`).
pub async fn exec(argv: &[String], limit: Duration) -> Result<(), String> {
    crate::child::run(argv, &[], limit, crate::child::Leftovers::Kill).await
}
