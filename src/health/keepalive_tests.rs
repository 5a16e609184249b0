//! Framing and reconnection against a scripted local HTTP server (the lab
//! test `lab_health` runs the client against real nginx).

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Serves, per accepted connection, one scripted reply per request; after
/// its replies a connection is closed. Returns the URL.
async fn server(conns: Vec<Vec<&'static str>>) -> HttpUrl {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        for replies in conns {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            for r in replies {
                let mut req = Vec::new();
                let mut b = [0u8; 512];
                while find(&req, b"\r\n\r\n").is_none() {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                assert!(req.starts_with(b"GET /s HTTP/1.1\r\n"));
                let _ = s.write_all(r.as_bytes()).await;
            }
        }
    });
    HttpUrl::parse(&format!("http://{addr}/s")).expect("url")
}

const LEN: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
const CHUNKED: &str =
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
const CLOSE: &str = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello";

fn alarm() -> Alarm {
    Alarm::new().expect("timerfd")
}

fn limit() -> Duration {
    Duration::from_secs(2)
}

#[tokio::test]
async fn one_connection_serves_many_probes() {
    let url = server(vec![vec![LEN, CHUNKED, LEN]]).await;
    let mut c = StatusClient::new(url);
    for _ in 0..3 {
        let r = c.get(limit(), &mut alarm()).await.expect("answer");
        assert_eq!((r.status, r.body.as_str()), (200, "hello"));
    }
    assert_eq!(c.connects, 1);
}

#[tokio::test]
async fn connection_close_and_a_closed_idle_connection_reconnect_silently() {
    // First connection: one answer that says close. Second: one answer,
    // then closed by the server as nginx's keepalive_timeout does.
    let url = server(vec![vec![CLOSE], vec![LEN], vec![LEN]]).await;
    let mut c = StatusClient::new(url);
    for _ in 0..3 {
        let r = c
            .get(limit(), &mut alarm())
            .await
            .expect("no false failure");
        assert_eq!(r.body, "hello");
    }
    assert_eq!(c.connects, 3);
}

#[tokio::test]
async fn a_fresh_connection_failing_is_a_failure() {
    let url = server(vec![vec![LEN]]).await;
    let mut c = StatusClient::new(url);
    c.get(limit(), &mut alarm()).await.expect("first");
    // The server is gone: the retry's connect fails and that counts.
    assert!(c.get(limit(), &mut alarm()).await.is_err());
}

#[tokio::test]
async fn oversized_and_malformed_answers_fail() {
    const HUGE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n";
    const BAD_CHUNK: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    const TWO_LENGTHS: &str = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab";
    const NOT_HTTP: &str = "SSH-2.0-x\r\n\r\n";
    for reply in [HUGE, BAD_CHUNK, TWO_LENGTHS, NOT_HTTP] {
        let url = server(vec![vec![reply]]).await;
        let mut c = StatusClient::new(url);
        assert!(
            matches!(c.get(limit(), &mut alarm()).await, Err(ProbeError::Bad(_))),
            "{reply:?}"
        );
    }
}

#[tokio::test]
async fn a_silent_server_times_out_within_the_limit() {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let url = HttpUrl::parse(&format!("http://{addr}/s")).expect("url");
    let mut c = StatusClient::new(url);
    let t = Instant::now();
    let r = c.get(Duration::from_millis(100), &mut alarm()).await;
    assert!(matches!(r, Err(ProbeError::Timeout(_))));
    assert!(t.elapsed() < Duration::from_millis(500));
    drop(l);
}

#[test]
fn http10_and_connection_headers() {
    let h = Head::parse(b"HTTP/1.0 200 OK\r\nContent-Length: 1").expect("head");
    assert!(!h.keep_alive);
    let h = Head::parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive").expect("head");
    assert!(h.keep_alive);
    let h = Head::parse(b"HTTP/1.1 204 No Content\r\nConnection: close").expect("head");
    assert!(!h.keep_alive && !h.has_body());
    let h = Head::parse(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked")
        .expect("head");
    assert!(h.chunked && h.length.is_none());
    assert!(Head::parse(b"HTTP/1.1 100 Continue").is_err());
}

#[test]
fn a_response_is_framed_only_once_all_of_it_is_there() {
    for whole in [LEN, CHUNKED, CLOSE] {
        let b = whole.as_bytes();
        for cut in 0..b.len() {
            assert!(
                frame(&b[..cut]).expect("a prefix is no error").is_none(),
                "{whole:?} framed at {cut} bytes"
            );
        }
        let f = frame(b).expect("frame").expect("whole");
        assert_eq!(
            (f.response.status, f.response.body.as_str()),
            (200, "hello")
        );
        assert_eq!(f.keep, whole != CLOSE, "{whole:?}");
    }
    // Trailers after the last chunk are read and dropped.
    let t = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\nA: b\r\n\r\n";
    let f = frame(t.as_bytes()).expect("frame").expect("whole");
    assert!(f.keep && f.response.body == "x");
    // Bytes beyond the response: it is framed, the connection not kept.
    let more = format!("{LEN}HTTP/1.1");
    assert!(!frame(more.as_bytes()).expect("frame").expect("whole").keep);
    // Framed by the end of the connection only.
    let eof = "HTTP/1.1 200 OK\r\n\r\nhello";
    assert!(frame(eof.as_bytes()).expect("frame").is_none());
    assert_eq!(frame_at_eof(eof.as_bytes()).expect("eof").body, "hello");
    assert!(matches!(
        frame_at_eof(&LEN.as_bytes()[..40]),
        Err(ProbeError::Closed)
    ));
    // Limits hold on a buffer that only grows.
    let long_head = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HEAD));
    assert!(frame(long_head.as_bytes()).is_err());
    let long_line = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{}",
        "1".repeat(MAX_LINE + 1)
    );
    assert!(frame(long_line.as_bytes()).is_err());
}
