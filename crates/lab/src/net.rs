//! Addresses, the segment's plumbing (bridges and veth ports in the
//! bridge namespace) and the client side: a socket inside a namespace and
//! a minimal HTTP GET.

use crate::{Lab, sh};
use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::Duration;

pub fn node_v4(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 11 + i as u8)
}
pub fn node_v6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11 + i as u16)
}

/// The virtual IP of the labs' instances (the IPv6 one, where a test has
/// one, is its own).
pub const VIP: &str = "192.0.2.100";

pub fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, 100))
}

pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 200);
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x200);

/// The direct children of a process (nginx's workers).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(c) = fs::read_to_string(t.path().join("children")) {
                out.extend(c.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// Runs `f` on a thread that has entered the named network namespace, so
/// sockets it opens live there; the caller's namespace is untouched.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on a namespace fd; affects only this thread.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("netns thread")
    })
}

/// A minimal HTTP/1.0 GET of `/`; the body on a 200, else None.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n").ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

impl Lab {
    /// A bridge `br` in the bridge namespace, acting as a plain hub.
    pub fn add_bridge(&self, br: &str) {
        let b = self.bridge_ns.as_str();
        sh(&["ip", "-n", b, "link", "add", br, "type", "bridge"]);
        // No STP delay, no multicast snooping surprises: a plain hub.
        sh(&[
            "ip",
            "-n",
            b,
            "link",
            "set",
            br,
            "type",
            "bridge",
            "forward_delay",
            "0",
            "mcast_snooping",
            "0",
        ]);
        sh(&["ip", "-n", b, "link", "set", br, "up"]);
    }

    /// A veth pair from bridge `br` (port `port`) to device `dev` in the
    /// namespace `ns`, up, with `addrs` (no DAD).
    pub fn add_port(&self, ns: &str, port: &str, dev: &str, br: &str, addrs: &[String]) {
        let b = self.bridge_ns.as_str();
        sh(&[
            "ip", "-n", b, "link", "add", port, "type", "veth", "peer", "name", dev, "netns", ns,
        ]);
        sh(&["ip", "-n", b, "link", "set", port, "master", br, "up"]);
        sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        for a in addrs {
            sh(&["ip", "-n", ns, "addr", "add", a, "dev", dev, "nodad"]);
        }
    }
}
