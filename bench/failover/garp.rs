//! Kill-to-GARP: the time from the kill(2) of the master's nginx to the
//! backup's first gratuitous ARP for the VIP on the wire. A raw packet
//! socket in the client's namespace sees every ARP frame on the segment,
//! each stamped by the kernel on arrival (SO_TIMESTAMPNS, CLOCK_REALTIME),
//! so reading them late costs no accuracy.

use crate::lab::in_netns;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ETH_P_ARP: u16 = 0x0806;

pub struct ArpCapture {
    fd: OwnedFd,
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

impl ArpCapture {
    /// Opens the capture on `dev` in namespace `ns`; frames that arrive
    /// from now on are queued until read.
    pub fn open(ns: &str, dev: &str) -> io::Result<ArpCapture> {
        let dev = std::ffi::CString::new(dev).map_err(io::Error::other)?;
        in_netns(ns, move || {
            // SAFETY: plain socket calls on a descriptor this function owns.
            unsafe {
                let fd = cvt(libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                    i32::from(ETH_P_ARP.to_be()),
                ))?;
                let fd = OwnedFd::from_raw_fd(fd);
                let on: libc::c_int = 1;
                cvt(libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_TIMESTAMPNS,
                    (&on as *const libc::c_int).cast(),
                    size_of::<libc::c_int>() as libc::socklen_t,
                ))?;
                let idx = libc::if_nametoindex(dev.as_ptr());
                if idx == 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut sa: libc::sockaddr_ll = zeroed();
                sa.sll_family = libc::AF_PACKET as u16;
                sa.sll_protocol = ETH_P_ARP.to_be();
                sa.sll_ifindex = idx as i32;
                cvt(libc::bind(
                    fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_ll).cast(),
                    size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                ))?;
                Ok(ArpCapture { fd })
            }
        })
    }

    /// One queued frame and its kernel timestamp, waiting up to `wait`.
    fn recv(&self, wait: Duration) -> Option<(Vec<u8>, SystemTime)> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll on one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, wait.as_millis().min(60_000) as libc::c_int) };
        if n <= 0 {
            return None;
        }
        let mut buf = vec![0u8; 256];
        let mut ctl = [0u64; 16];
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        // SAFETY: msghdr points at live buffers of the given sizes.
        let (len, ts) = unsafe {
            let mut mh: libc::msghdr = zeroed();
            mh.msg_iov = &mut iov;
            mh.msg_iovlen = 1;
            mh.msg_control = ctl.as_mut_ptr().cast();
            mh.msg_controllen = size_of::<[u64; 16]>();
            let len = libc::recvmsg(self.fd.as_raw_fd(), &mut mh, libc::MSG_DONTWAIT);
            if len < 0 {
                return None;
            }
            let mut ts = None;
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let t: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts = Some(UNIX_EPOCH + Duration::new(t.tv_sec as u64, t.tv_nsec as u32));
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
            (len as usize, ts)
        };
        buf.truncate(len);
        Some((buf, ts.unwrap_or_else(SystemTime::now)))
    }

    /// The kernel time of the first gratuitous ARP for `vip` (sender and
    /// target address both the VIP) from `mac` stamped after `after`;
    /// None if none comes within `limit`.
    pub fn first_garp(
        &self,
        mac: [u8; 6],
        vip: Ipv4Addr,
        after: SystemTime,
        limit: Duration,
    ) -> Option<SystemTime> {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            let Some((f, ts)) = self.recv(left) else {
                continue;
            };
            // Ethernet (14) + ARP for IPv4 over Ethernet (28).
            if f.len() < 42 || f[6..12] != mac || ts < after {
                continue;
            }
            let spa = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
            let tpa = Ipv4Addr::new(f[38], f[39], f[40], f[41]);
            if spa == vip && tpa == vip {
                return Some(ts);
            }
        }
        None
    }
}

/// The MAC address of `dev` in namespace `ns`.
pub fn mac_of(ns: &str, dev: &str) -> Option<[u8; 6]> {
    let out = crate::cmd_out("ip", &["-n", ns, "-o", "link", "show", "dev", dev]);
    let hex = out
        .split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)?;
    let v: Vec<u8> = hex
        .split(':')
        .filter_map(|b| u8::from_str_radix(b, 16).ok())
        .collect();
    v.try_into().ok()
}
