//! The loop's probe against a scripted local server (the lab tests run it
//! against real nginx).

use super::*;
use std::io::Read;
use std::net::TcpListener;
use std::sync::mpsc;

const BODY: &str = "Active connections: 1 \nserver accepts handled requests\n 7 7 9 \nReading: 0 Writing: 1 Waiting: 0 \n";

fn ok() -> String {
    format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{BODY}",
        BODY.len()
    )
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn timing() -> Timing {
    Timing {
        interval: ms(1000),
        timeout: ms(200),
        rise: 2,
        fall: 2,
    }
}

/// What the scripted server does with each request on its one connection.
enum Reply {
    Send(String),
    Close,
    Silent,
}

/// A connection to a server that answers each request with the next
/// reply; `done` says when a reply is written (on loopback it is then in
/// our socket's queue).
fn server(replies: Vec<Reply>) -> (TcpStream, mpsc::Receiver<()>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (done, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        for r in replies {
            let mut req = Vec::new();
            let mut b = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                match s.read(&mut b) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => req.extend_from_slice(&b[..n]),
                }
            }
            match r {
                Reply::Send(text) => {
                    let _ = s.write_all(text.as_bytes());
                }
                Reply::Close => {
                    let _ = done.send(());
                    return;
                }
                Reply::Silent => {}
            }
            let _ = done.send(());
        }
        // Kept open until the client goes.
        let _ = s.read(&mut [0u8; 1]);
    });
    (TcpStream::connect(addr).expect("connect"), rx)
}

fn lend(conn: TcpStream, due: Instant) -> (LentProbe, oneshot::Receiver<Back>, Stats) {
    let (tx, rx) = oneshot::channel();
    let stats = Stats::default();
    let p = LentProbe::new(
        conn,
        b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        "http://127.0.0.1/s".into(),
        &timing(),
        due,
        stats.clone(),
        tx,
    )
    .expect("lend");
    (p, rx, stats)
}

fn written(rx: &mpsc::Receiver<()>) {
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the server never answered");
}

/// The server wrote its answer and it reached the probe's socket (over
/// loopback TCP that may take a moment after the write returned).
fn answered(rx: &mpsc::Receiver<()>, p: &LentProbe) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    written(rx);
    let mut fds = [PollFd::new(p.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(5000u16)).expect("poll");
    assert_eq!(n, 1, "the answer never reached the probe's socket");
}

#[test]
fn passing_probes_stay_on_the_loop_and_keep_the_grid() {
    let (conn, done) = server(vec![Reply::Send(ok()), Reply::Send(ok())]);
    let t0 = Instant::now() + ms(100);
    let (mut p, _back, stats) = lend(conn, t0);
    let (lag, early) = (lag(&timing()), early(&timing()));
    assert_eq!((lag, early), (ms(50), ms(125)));
    // Not yet within `early` of being due: nothing goes out.
    assert_eq!(p.on_wake(t0 - early - ms(1), None), None);
    assert_eq!(p.wake_at(), t0);
    // A wake-up within `early` before it sends it; the loop wakes again
    // within `lag`, which reads the answer.
    let sent = t0 - early;
    assert_eq!(p.on_wake(sent, Some(sent + lag)), None);
    assert!(!p.wants_watch());
    assert_eq!(p.wake_at(), sent + lag, "the answer is read within lag");
    answered(&done, &p);
    assert_eq!(p.on_wake(t0, Some(t0)), None);
    let runs = stats.runs()["nginx"];
    assert_eq!((runs.passes, runs.failures), (1, 0));
    assert_eq!(stats.stub().map(|s| s.requests), Some(9));
    // The next one an interval from when this one went out: early, on a
    // wake-up of the loop's own, it moved the probes into step with them.
    let t1 = sent + ms(1000);
    assert_eq!(p.wake_at(), t1);
    assert_eq!(p.on_wake(t1, Some(t1)), None);
    answered(&done, &p);
    // Read late, after the deadline (the loop was busy): the answer is
    // all there, which no timeout read before said otherwise.
    assert_eq!(p.on_wake(t1 + ms(500), Some(t1 + ms(500))), None);
    assert_eq!(stats.runs()["nginx"].passes, 2);
}

#[test]
fn a_bad_answer_goes_back_as_the_failure_of_the_probe_due() {
    let bad = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n".to_string();
    let garbage = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nxyz".to_string();
    for reply in [bad, garbage] {
        let (conn, done) = server(vec![Reply::Send(reply)]);
        let t0 = Instant::now();
        let (mut p, _back, stats) = lend(conn, t0);
        assert_eq!(p.on_wake(t0, Some(t0)), None);
        answered(&done, &p);
        match p.on_wake(t0 + ms(1), Some(t0 + ms(1))) {
            Some(Back::Failed { due, at, detail }) => {
                assert_eq!((due, at), (t0, t0 + ms(1)));
                assert!(!detail.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(stats.runs()["nginx"].failures, 1);
    }
}

#[test]
fn no_answer_by_the_deadline_is_a_timeout_read_then() {
    let (conn, done) = server(vec![Reply::Silent]);
    let t0 = Instant::now();
    let (mut p, _back, _) = lend(conn, t0);
    assert_eq!(p.on_wake(t0, Some(t0)), None);
    written(&done);
    // Nothing yet after lag: looked at again at the deadline.
    assert_eq!(p.on_wake(t0 + ms(50), Some(t0 + ms(50))), None);
    assert_eq!(p.wake_at(), t0 + ms(200));
    match p.on_wake(t0 + ms(200), Some(t0 + ms(200))) {
        Some(Back::Failed { detail, .. }) => assert!(detail.contains("no answer within")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_connection_nginx_closed_goes_back_to_be_probed_afresh() {
    let (conn, done) = server(vec![Reply::Close]);
    let t0 = Instant::now();
    let (mut p, _back, stats) = lend(conn, t0);
    assert_eq!(p.on_wake(t0, Some(t0)), None);
    written(&done);
    // The close reaches our socket with the server's FIN; bounded wait.
    let mut back = None;
    for _ in 0..500 {
        back = p.on_wake(t0 + ms(1), Some(t0 + ms(1)));
        if back.is_some() {
            break;
        }
        std::thread::sleep(ms(1));
    }
    assert_eq!(back, Some(Back::Resume { due: t0 }));
    assert!(stats.runs().is_empty(), "counted as a probe");
}

#[test]
fn the_check_letting_go_orphans_the_probe() {
    let (conn, _done) = server(vec![]);
    let (p, back, _) = lend(conn, Instant::now());
    assert!(!p.orphaned());
    drop(back);
    assert!(p.orphaned());
}

#[test]
fn without_a_wake_up_soon_the_answer_wakes_the_loop() {
    let (conn, done) = server(vec![Reply::Send(ok()), Reply::Silent]);
    let t0 = Instant::now();
    let (mut p, _back, stats) = lend(conn, t0);
    // The loop's next wake-up of its own is far: the socket is watched.
    assert_eq!(p.on_wake(t0, Some(t0 + ms(900))), None);
    assert!(p.wants_watch());
    assert_eq!(p.wake_at(), t0 + ms(200), "the deadline, as a backstop");
    answered(&done, &p);
    assert_eq!(p.on_wake(t0 + ms(1), None), None);
    assert!(!p.wants_watch(), "answered: nothing to watch");
    assert_eq!(stats.runs()["nginx"].passes, 1);
    // No answer at all: still a timeout at the deadline.
    let t1 = t0 + ms(1000);
    assert_eq!(p.on_wake(t1, None), None);
    written(&done);
    assert_eq!(p.on_wake(t1 + ms(100), None), None);
    assert!(p.wants_watch());
    assert!(matches!(
        p.on_wake(t1 + ms(200), None),
        Some(Back::Failed { .. })
    ));
}
