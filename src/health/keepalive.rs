//! stub_status over one kept-alive HTTP/1.1 connection: a probe every
//! interval (or every few ms while a rise is taken) would otherwise cost a
//! TCP handshake and teardown each, on both sides. Responses are framed by
//! Content-Length or chunked encoding, every size is bounded, and any
//! doubt (an error, `Connection: close`, bytes left over) drops the
//! connection so the next probe starts clean. nginx closes idle or
//! long-used keep-alive connections by itself (keepalive_timeout,
//! keepalive_requests); a probe that finds its reused connection closed is
//! retried once on a fresh one, so that is never taken for nginx failing.

use super::url::HttpUrl;
use crate::alarm::Alarm;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// A status page is a few hundred bytes; a check must not buffer whatever
/// a broken backend sends.
const MAX_BODY: usize = 64 * 1024;
const MAX_HEAD: usize = 8 * 1024;
/// A chunk-size line: hex digits and perhaps an extension.
const MAX_LINE: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("connect {0}: {1}")]
    Connect(std::net::SocketAddr, std::io::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed before a whole response")]
    Closed,
    #[error("{0}")]
    Bad(&'static str),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

pub struct Response {
    pub status: u16,
    pub body: String,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One stub_status URL and the connection kept to it.
pub struct StatusClient {
    url: HttpUrl,
    request: Vec<u8>,
    conn: Option<Conn>,
    /// Connections opened so far (for tests and status).
    pub connects: u64,
}

impl StatusClient {
    pub fn new(url: HttpUrl) -> StatusClient {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: nginx-ha\r\n\r\n",
            url.path, url.host
        )
        .into_bytes();
        StatusClient {
            url,
            request,
            conn: None,
            connects: 0,
        }
    }

    /// Forgets the connection (nginx restarted: the old one is dead).
    pub fn reset(&mut self) {
        self.conn = None;
    }

    /// The kept-alive connection, idle, and the request, for the event
    /// loop's probe (`lent_probe`); the next probe here starts afresh.
    pub fn lend(&mut self) -> Option<(std::net::TcpStream, Vec<u8>)> {
        let s = self.conn.take()?.stream.into_std().ok()?;
        Some((s, self.request.clone()))
    }

    /// One GET, all of it (a retry included) within `limit`, timed by
    /// `alarm` (the caller's: a check task has one timer, see `alarm`).
    pub async fn get(
        &mut self,
        limit: Duration,
        alarm: &mut Alarm,
    ) -> Result<Response, ProbeError> {
        alarm.set(Some(Instant::now() + limit))?;
        let work = async {
            if let Some(conn) = self.conn.take() {
                match exchange(conn, &self.request).await {
                    Ok((r, keep)) => {
                        self.conn = keep;
                        return Ok(r);
                    }
                    // Closed or reset under us: nginx's keep-alive ended.
                    // Say nothing yet; a fresh connection decides.
                    Err(ProbeError::Io(_) | ProbeError::Closed) => {}
                    Err(e) => return Err(e),
                }
            }
            let stream = TcpStream::connect(self.url.addr)
                .await
                .map_err(|e| ProbeError::Connect(self.url.addr, e))?;
            self.connects += 1;
            let _ = stream.set_nodelay(true);
            let conn = Conn {
                stream,
                buf: Vec::with_capacity(1024),
            };
            let (r, keep) = exchange(conn, &self.request).await?;
            self.conn = keep;
            Ok(r)
        };
        tokio::select! {
            biased;
            r = work => r,
            r = alarm.wait() => {
                r?;
                self.conn = None;
                Err(ProbeError::Timeout(limit))
            }
        }
    }
}

/// Sends the request and reads one response; gives the connection back
/// when it may be used again.
async fn exchange(mut c: Conn, request: &[u8]) -> Result<(Response, Option<Conn>), ProbeError> {
    c.buf.clear();
    c.stream.write_all(request).await?;
    loop {
        if let Some(f) = frame(&c.buf)? {
            // Kept only when the response was all there was.
            c.buf.clear();
            let keep = f.keep.then_some(c);
            return Ok((f.response, keep));
        }
        if c.buf.len() > MAX_BODY + MAX_HEAD {
            return Err(ProbeError::Bad("response too large"));
        }
        if c.stream.read_buf(&mut c.buf).await? == 0 {
            return frame_at_eof(&c.buf).map(|r| (r, None));
        }
    }
}

/// One response framed out of the bytes read so far.
pub(super) struct Framed {
    pub response: Response,
    /// Nothing but this response came, and the connection may carry the
    /// next request.
    pub keep: bool,
}

/// The response at the start of `buf`, if all of it is there (framed by
/// Content-Length or chunked encoding, or having no body); `None` while
/// more is to come, or when only the end of the connection can frame it
/// (`frame_at_eof`). Pure, so that the event loop's probe (`lent_probe`)
/// and the check's own read responses alike.
pub(super) fn frame(buf: &[u8]) -> Result<Option<Framed>, ProbeError> {
    let Some(head_end) = find(buf, b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            return Err(ProbeError::Bad("HTTP header too long"));
        }
        return Ok(None);
    };
    let head = Head::parse(&buf[..head_end])?;
    let rest = &buf[head_end + 4..];
    let (body, used) = if !head.has_body() {
        (Vec::new(), 0)
    } else if head.chunked {
        match dechunk(rest)? {
            Some(b) => b,
            None => return Ok(None),
        }
    } else if let Some(n) = head.length {
        if n > MAX_BODY {
            return Err(ProbeError::Bad("response body too large"));
        }
        if rest.len() < n {
            return Ok(None);
        }
        (rest[..n].to_vec(), n)
    } else {
        return Ok(None);
    };
    Ok(Some(Framed {
        keep: head.keep_alive && used == rest.len(),
        response: Response {
            status: head.status,
            body: String::from_utf8_lossy(&body).into_owned(),
        },
    }))
}

/// The connection ended after `buf`: a response framed by that end, or
/// a response cut short.
pub(super) fn frame_at_eof(buf: &[u8]) -> Result<Response, ProbeError> {
    let head_end = find(buf, b"\r\n\r\n").ok_or(ProbeError::Closed)?;
    let head = Head::parse(&buf[..head_end])?;
    if !head.has_body() || head.chunked || head.length.is_some() {
        // Framed otherwise, and `frame` found it incomplete.
        return Err(ProbeError::Closed);
    }
    let body = &buf[head_end + 4..];
    if body.len() > MAX_BODY {
        return Err(ProbeError::Bad("response body too large"));
    }
    Ok(Response {
        status: head.status,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

/// A chunked body at the start of `rest`: the body and the bytes it took,
/// once the last chunk and the trailers are there.
fn dechunk(rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, ProbeError> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let Some(line) = line_at(rest, at)? else {
            return Ok(None);
        };
        let size = std::str::from_utf8(&rest[at..at + line])
            .ok()
            .and_then(|l| l.split(';').next())
            .and_then(|h| usize::from_str_radix(h.trim(), 16).ok())
            .ok_or(ProbeError::Bad("bad chunk size"))?;
        at += line + 2;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            loop {
                let Some(line) = line_at(rest, at)? else {
                    return Ok(None);
                };
                at += line + 2;
                if line == 0 {
                    return Ok(Some((body, at)));
                }
            }
        }
        if body.len() + size > MAX_BODY {
            return Err(ProbeError::Bad("response body too large"));
        }
        if rest.len() < at + size + 2 {
            return Ok(None);
        }
        if &rest[at + size..at + size + 2] != b"\r\n" {
            return Err(ProbeError::Bad("chunk not followed by CRLF"));
        }
        body.extend_from_slice(&rest[at..at + size]);
        at += size + 2;
    }
}

/// The length of the line starting at `at`, once its CRLF is there.
fn line_at(buf: &[u8], at: usize) -> Result<Option<usize>, ProbeError> {
    let tail = &buf[at.min(buf.len())..];
    match find(tail, b"\r\n") {
        Some(i) if i <= MAX_LINE => Ok(Some(i)),
        Some(_) => Err(ProbeError::Bad("chunk line too long")),
        None if tail.len() > MAX_LINE => Err(ProbeError::Bad("chunk line too long")),
        None => Ok(None),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    keep_alive: bool,
}

impl Head {
    fn parse(raw: &[u8]) -> Result<Head, ProbeError> {
        let text = std::str::from_utf8(raw).map_err(|_| ProbeError::Bad("header is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.split_whitespace();
        let version = parts.next().unwrap_or_default();
        if !version.starts_with("HTTP/1.") {
            return Err(ProbeError::Bad("not an HTTP/1 response"));
        }
        let status = parts
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            // No interim (1xx) answers to a plain GET are expected.
            .filter(|c| (200..1000).contains(c))
            .ok_or(ProbeError::Bad("no status code"))?;
        let mut h = Head {
            status,
            length: None,
            chunked: false,
            keep_alive: version == "HTTP/1.1",
        };
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(ProbeError::Bad("malformed header line"));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    let n = value
                        .parse::<usize>()
                        .map_err(|_| ProbeError::Bad("bad Content-Length"))?;
                    if h.length.is_some_and(|m| m != n) {
                        return Err(ProbeError::Bad("conflicting Content-Length"));
                    }
                    h.length = Some(n);
                }
                "transfer-encoding" => {
                    h.chunked = value
                        .rsplit(',')
                        .next()
                        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
                    if !h.chunked {
                        return Err(ProbeError::Bad("unsupported Transfer-Encoding"));
                    }
                }
                "connection" => {
                    for t in value.split(',').map(str::trim) {
                        if t.eq_ignore_ascii_case("close") {
                            h.keep_alive = false;
                        } else if t.eq_ignore_ascii_case("keep-alive") {
                            h.keep_alive = true;
                        }
                    }
                }
                _ => {}
            }
        }
        if h.chunked {
            // Chunked wins over a length (RFC 9112 §6.3).
            h.length = None;
        }
        Ok(h)
    }

    fn has_body(&self) -> bool {
        !(self.status == 204 || self.status == 304)
    }
}

#[cfg(test)]
#[path = "keepalive_tests.rs"]
mod tests;
