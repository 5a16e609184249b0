//! Raw IP-protocol-112 sockets, one per (interface, family), shared by the
//! instances on that interface. The source address of each advert is set
//! per packet (in the IPv4 header we write, in IPV6_PKTINFO: `vrrp_send`)
//! rather than by bind(): a raw socket bound to an address would only
//! receive packets sent to it, and would miss the multicast group.

use crate::vrrp::packet::{IP_PROTO_VRRP, IpMeta, MCAST_V4, MCAST_V6, VRRP_TTL};
use nix::sys::socket::{MsgFlags, setsockopt, sockopt};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

pub struct VrrpSocket {
    fd: Socket,
    ifindex: u32,
    v4: bool,
    /// The IPv4 identification of the next advert (`vrrp_send`).
    ident: std::sync::atomic::AtomicU16,
}

/// Room for a burst of adverts (and of junk) while the loop is busy: at
/// ~800 bytes of kernel overhead per small datagram the default 208 KiB
/// held only a few hundred.
const RCVBUF: usize = 4 << 20;

/// One received datagram: the VRRP message and the IP facts around it.
pub struct Received<'a> {
    pub ip: IpMeta,
    pub msg: &'a [u8],
    /// When the kernel received it (SO_TIMESTAMPNS).
    pub arrived: Option<std::time::SystemTime>,
}

impl VrrpSocket {
    /// Opens the socket on `ifname` (`ifindex`), joined to the VRRP group
    /// so that multicast adverts arrive; unicast ones arrive regardless.
    pub fn open(ifname: &str, ifindex: u32, v4: bool) -> io::Result<VrrpSocket> {
        Self::open_with(ifname, ifindex, v4, |_| Ok(()))
    }

    /// An IPv4 socket beside the loop's for the adverts a BACKUP may read
    /// late (`net::quiet`): it receives nothing until given a filter and
    /// is never watched.
    pub fn open_quiet(ifname: &str, ifindex: u32) -> io::Result<VrrpSocket> {
        Self::open_with(ifname, ifindex, true, |s| {
            // Before the socket can receive anything: whatever it held
            // would also have gone to the loop's socket.
            super::quiet::set_filter(s, &super::quiet::drop_all())
        })
    }

    fn open_with(
        ifname: &str,
        ifindex: u32,
        v4: bool,
        first: impl FnOnce(&Socket) -> io::Result<()>,
    ) -> io::Result<VrrpSocket> {
        let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
        let s = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IP_PROTO_VRRP))),
        )?;
        first(&s)?;
        // Each datagram stamped with its arrival: a quiet socket's are
        // read late, and the loop's starts a timer (Skew_Time after a
        // priority 0) from when the advert came, not from when the loop
        // got to it.
        setsockopt(&s, sockopt::ReceiveTimestampns, &true)?;
        s.set_nonblocking(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        if v4 {
            s.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
            s.set_ttl_v4(u32::from(VRRP_TTL))?;
            s.set_multicast_loop_v4(false)?;
            // Adverts go out with the header we write (`vrrp_send`).
            s.set_header_included_v4(true)?;
            s.join_multicast_v4_n(&MCAST_V4, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
            // No IP_PKTINFO on receive: an IPv4 raw socket hands over the
            // IP header, which has both addresses; a control message per
            // datagram would only cost the kernel a copy. (Sending with an
            // IP_PKTINFO control message needs no option.)
            // VRRP is network control traffic (RFC 5798 §5.1.1.1 leaves it
            // open; keepalived uses TOS 0xc0 too).
            setsockopt(&s, sockopt::Ipv4Tos, &0xc0)?;
        } else {
            s.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_if_v6(ifindex)?;
            s.join_multicast_v6(&MCAST_V6, ifindex)?;
            setsockopt(&s, sockopt::Ipv6RecvPacketInfo, &true)?;
            setsockopt(&s, sockopt::Ipv6RecvHopLimit, &true)?;
            setsockopt(&s, sockopt::Ipv6TClass, &0xc0)?;
        }
        // CAP_NET_ADMIN may exceed net.core.rmem_max; without it, the
        // plain option is capped there, which is still better than the
        // default.
        if setsockopt(&s, sockopt::RcvBufForce, &RCVBUF).is_err() {
            let _ = setsockopt(&s, sockopt::RcvBuf, &RCVBUF);
        }
        // Overruns are counted, not silent (status: dropped.socket_overrun):
        // read from the socket when asked (`overruns`), not through an
        // SO_RXQ_OVFL control message on every datagram.
        // Not registered with tokio: the event loop's own epoll watches
        // it (`daemon::poller`), for datagrams only: sends go straight to
        // sendmsg.
        Ok(VrrpSocket {
            fd: s,
            ifindex,
            v4,
            ident: std::sync::atomic::AtomicU16::new(1),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Datagrams the kernel dropped on this socket for lack of buffer
    /// (its `sk_drops`, as SO_RXQ_OVFL would report it); 0 if the kernel
    /// will not say.
    #[allow(unsafe_code)] // getsockopt: see the SAFETY comment.
    pub fn overruns(&self) -> u64 {
        // SO_MEMINFO's array (linux/sock_diag.h): SK_MEMINFO_DROPS is the
        // last of its 9 counters.
        const SK_MEMINFO_VARS: usize = 9;
        const SK_MEMINFO_DROPS: usize = 8;
        let mut info = [0u32; SK_MEMINFO_VARS];
        let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
        // SAFETY: the kernel writes at most `len` bytes into `info`, which
        // is that large, and stores the length it wrote in `len`.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_MEMINFO,
                info.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let whole = len as usize >= (SK_MEMINFO_DROPS + 1) * std::mem::size_of::<u32>();
        if r == 0 && whole {
            u64::from(info[SK_MEMINFO_DROPS])
        } else {
            0
        }
    }

    /// For the event loop's epoll.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Replaces the socket's filter (`net::quiet`).
    pub fn set_filter(&self, prog: &[libc::sock_filter]) -> io::Result<()> {
        super::quiet::set_filter(&self.fd, prog)
    }

    /// Reads what is queued, up to `BATCH` datagrams with one `recvmmsg`,
    /// without waiting, and hands each to `each`: a datagram that cannot
    /// be a VRRP message at all (too large, IP facts unreadable) as the
    /// counter name to drop it under. Nothing queued is no error.
    ///
    /// The loop's epoll is level-triggered: a socket with datagrams left
    /// after a batch is read again on the next turn, after the loop's
    /// other work, so a flood here cannot starve it.
    pub fn read_ready(
        &self,
        rb: &mut RecvBatch,
        mut each: impl FnMut(Result<Received<'_>, &'static str>),
    ) -> io::Result<usize> {
        let n = match recv_many(self.fd.as_raw_fd(), rb) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(e) => return Err(e),
        };
        for (i, meta) in rb.meta[..n].iter().enumerate() {
            each(meta.received(self.v4, &rb.bufs[i]));
        }
        Ok(n)
    }

    /// Sends one VRRP message from `src` to `dst` out of this interface.
    pub fn send(&self, msg: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let id = self
                    .ident
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                super::vrrp_send::send_v4(fd, msg, s, d, id)
            }
            _ => super::vrrp_send::send_pktinfo(fd, self.ifindex, msg, src, dst),
        }
    }
}

/// The largest VRRP datagram: an IPv4 header with options (60), or none
/// for IPv6 (the kernel strips it), plus a v3 IPv6 advert with 255
/// addresses (8 + 255 * 16). Anything longer is not VRRP.
const MAX_DATAGRAM: usize = 60 + 8 + 255 * 16 + 8;

/// Datagrams read per `recvmmsg`: a pair's adverts come one at a time;
/// a burst (many instances, a flood) is read a few per syscall.
pub const BATCH: usize = 8;

/// What the kernel said about one datagram of a batch.
#[derive(Clone, Copy, Default)]
struct Meta {
    len: usize,
    truncated: bool,
    src: Option<Ipv6Addr>,
    dst: Option<Ipv6Addr>,
    hops: Option<i32>,
    /// SCM_TIMESTAMPNS: seconds and nanoseconds of CLOCK_REALTIME.
    stamp: Option<(i64, i64)>,
}

impl Meta {
    fn received(self, v4: bool, buf: &[u8]) -> Result<Received<'_>, &'static str> {
        if self.truncated {
            // Cut to the buffer, it could even decode; it is not what was sent.
            return Err("oversized");
        }
        let buf = &buf[..self.len.min(buf.len())];
        let arrived = self.stamp.and_then(|(sec, nsec)| {
            let d = Duration::new(u64::try_from(sec).ok()?, u32::try_from(nsec).ok()?);
            std::time::UNIX_EPOCH.checked_add(d)
        });
        if v4 {
            return parse_ipv4(buf)
                .map(|r| Received { arrived, ..r })
                .map_err(|_| "bad_ip_header");
        }
        let (Some(src), Some(dst), Some(hops)) = (self.src, self.dst, self.hops) else {
            return Err("bad_ip_header");
        };
        Ok(Received {
            ip: IpMeta {
                src: src.into(),
                dst: dst.into(),
                ttl: u8::try_from(hops).unwrap_or(0),
            },
            msg: buf,
            arrived,
        })
    }
}

/// The loop's receive buffers, allocated once: the datagrams', and the
/// names and control messages the kernel writes beside them (zeroed once,
/// not for every call: a backup at 10 ms adverts reads 30 times a second,
/// and clearing 1.8 KB each time showed in its profile).
pub struct RecvBatch {
    bufs: [Box<[u8]>; BATCH],
    meta: [Meta; BATCH],
    names: Box<[libc::sockaddr_in6; BATCH]>,
    controls: Box<[Control; BATCH]>,
}

impl Default for RecvBatch {
    #[allow(unsafe_code)] // zeroed: see the SAFETY comment.
    fn default() -> Self {
        RecvBatch {
            bufs: std::array::from_fn(|_| vec![0u8; MAX_DATAGRAM].into_boxed_slice()),
            meta: [Meta::default(); BATCH],
            // SAFETY: all-zero is a valid sockaddr_in6.
            names: Box::new(unsafe { std::mem::zeroed() }),
            controls: Box::new([Control([0; CONTROL]); BATCH]),
        }
    }
}

/// Room for every control message the sockets ask for (IPv6: pktinfo
/// and hop limit; CMSG_SPACE of 20 and of 4 bytes is 64 on 64-bit Linux).
const CONTROL: usize = 128;

/// A control buffer, aligned as a cmsghdr must be.
#[repr(C, align(8))]
#[derive(Clone, Copy)]
struct Control([u8; CONTROL]);

/// Reads what is queued, up to `BATCH` datagrams, into `rb`; returns how
/// many.
#[allow(unsafe_code)] // recvmmsg(2) by hand: see the SAFETY comments.
fn recv_many(fd: RawFd, rb: &mut RecvBatch) -> io::Result<usize> {
    // Not nix's recvmmsg: its headers are allocated on every call, and a
    // backup at 10 ms adverts reads a hundred times a second. Headers
    // made for each call, never reused: the kernel shrinks a header's
    // control length to what the last datagram in that slot used, so
    // after an IPv4 datagram (no control messages) an IPv6 one would find
    // no room for its hop limit and destination. The names and control
    // buffers they point to are `rb`'s: the kernel writes them before it
    // says how much it wrote, so what an earlier call left is never read.
    // SAFETY: all-zero is a valid mmsghdr.
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let names = &mut *rb.names;
    let controls = &mut *rb.controls;
    let mut iovs: [libc::iovec; BATCH] = std::array::from_fn(|_| libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    });
    for (i, m) in msgs.iter_mut().enumerate() {
        iovs[i] = libc::iovec {
            iov_base: rb.bufs[i].as_mut_ptr().cast(),
            iov_len: rb.bufs[i].len(),
        };
        let h = &mut m.msg_hdr;
        h.msg_name = (&raw mut names[i]).cast();
        h.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t;
        h.msg_iov = &raw mut iovs[i];
        h.msg_iovlen = 1;
        h.msg_control = controls[i].0.as_mut_ptr().cast();
        h.msg_controllen = CONTROL as _;
    }
    // SAFETY: every header points to buffers (name, iovec and its
    // datagram buffer, control) that live until the call returns, with
    // their true lengths; no timeout.
    let got = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            BATCH as libc::c_uint,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if got < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = usize::try_from(got).unwrap_or(0).min(BATCH);
    for i in 0..n {
        let h = &msgs[i].msg_hdr;
        let name = &names[i];
        let meta = &mut rb.meta[i];
        *meta = Meta {
            len: msgs[i].msg_len as usize,
            truncated: h.msg_flags & libc::MSG_TRUNC != 0,
            // Only what this call's kernel wrote.
            src: (h.msg_namelen as usize >= std::mem::size_of::<libc::sockaddr_in6>()
                && i32::from(name.sin6_family) == libc::AF_INET6)
                .then(|| Ipv6Addr::from(name.sin6_addr.s6_addr)),
            dst: None,
            hops: None,
            stamp: None,
        };
        // A control buffer the kernel had to cut is not read: the IPv6
        // facts are then missing and the datagram is dropped.
        if h.msg_flags & libc::MSG_CTRUNC != 0 {
            continue;
        }
        // SAFETY: the kernel filled the control buffer up to
        // msg_controllen with well-formed cmsghdrs; CMSG_FIRSTHDR and
        // CMSG_NXTHDR stay within it, and each message's data is read
        // unaligned, only when it is as long as the type read.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(h);
            while !c.is_null() {
                let len = (*c).cmsg_len as usize;
                let data = libc::CMSG_DATA(c);
                let has = |size: usize| {
                    len >= libc::CMSG_LEN(u32::try_from(size).unwrap_or(u32::MAX)) as usize
                };
                match ((*c).cmsg_level, (*c).cmsg_type) {
                    (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO)
                        if has(std::mem::size_of::<libc::in6_pktinfo>()) =>
                    {
                        let pi = std::ptr::read_unaligned(data.cast::<libc::in6_pktinfo>());
                        meta.dst = Some(Ipv6Addr::from(pi.ipi6_addr.s6_addr));
                    }
                    (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT)
                        if has(std::mem::size_of::<libc::c_int>()) =>
                    {
                        meta.hops = Some(std::ptr::read_unaligned(data.cast::<libc::c_int>()));
                    }
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS)
                        if has(std::mem::size_of::<libc::timespec>()) =>
                    {
                        let t = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                        // i32 on 32-bit targets.
                        #[allow(clippy::useless_conversion)]
                        let stamp = (i64::from(t.tv_sec), i64::from(t.tv_nsec));
                        meta.stamp = Some(stamp);
                    }
                    _ => {}
                }
                c = libc::CMSG_NXTHDR(h, c);
            }
        }
    }
    Ok(n)
}

/// IP protocol 51: IPsec Authentication Header (RFC 4302).
const IP_PROTO_AH: i32 = 51;

/// A raw socket for AH packets on one interface. keepalived's `auth_type
/// AH` (VRRPv2 over IPv4) wraps adverts in AH; nginx-ha does not speak
/// it, and without this socket such a peer is invisible: two masters and
/// no trace. It only reports who sends them, for one log line.
pub struct AhSocket {
    fd: AsyncFd<Socket>,
}

/// An AH-wrapped VRRP message seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AhVrrp {
    pub src: Ipv4Addr,
    pub vrid: u8,
}

impl AhSocket {
    /// Opens it on `ifname`; the VRRP socket on the interface has joined
    /// the multicast group already.
    #[allow(unsafe_code)] // AsyncFd::register: see the SAFETY comment.
    pub fn open(ifname: &str) -> io::Result<AhSocket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IP_PROTO_AH)))?;
        s.set_nonblocking(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        // SAFETY: as for VrrpSocket::open.
        let fd = unsafe { AsyncFd::register_with_interest(s, Interest::READABLE)? };
        Ok(AhSocket { fd })
    }

    /// The next AH packet that carries VRRP; other AH traffic is skipped.
    pub async fn recv(&self) -> io::Result<AhVrrp> {
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard.try_io(|inner| {
                let mut buf = [0u8; 128];
                // Only the headers matter: a longer datagram is cut, which
                // is fine here.
                let n = nix::sys::socket::recv(
                    inner.get_ref().as_raw_fd(),
                    &mut buf,
                    MsgFlags::MSG_DONTWAIT,
                )?;
                Ok(parse_ah_vrrp(&buf[..n]))
            });
            match r {
                Ok(Ok(Some(p))) => return Ok(p),
                Ok(Ok(None)) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

/// IPv4 header, AH header (RFC 4302 §2: next header, payload length in
/// 32-bit words minus 2, ...), then a VRRP header: its VRID.
pub fn parse_ah_vrrp(buf: &[u8]) -> Option<AhVrrp> {
    let r = parse_ipv4(buf).ok()?;
    let ah = &r.msg;
    if ah.len() < 12 || ah[0] != IP_PROTO_VRRP {
        return None;
    }
    let ah_len = (usize::from(ah[1]) + 2) * 4;
    let vrrp = ah.get(ah_len..)?;
    if vrrp.len() < 2 || vrrp[0] >> 4 != 2 {
        return None;
    }
    match r.ip.src {
        IpAddr::V4(src) => Some(AhVrrp { src, vrid: vrrp[1] }),
        IpAddr::V6(_) => None,
    }
}

/// Splits what an IPv4 raw socket delivers (header and payload) into the IP
/// facts and the VRRP message.
pub fn parse_ipv4(buf: &[u8]) -> Result<Received<'_>, &'static str> {
    if buf.len() < 20 || buf[0] >> 4 != 4 {
        return Err("short or non-IPv4 datagram");
    }
    let ihl = usize::from(buf[0] & 0x0f) * 4;
    if ihl < 20 || buf.len() < ihl {
        return Err("bad IPv4 header length");
    }
    let src = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
    let dst = Ipv4Addr::new(buf[16], buf[17], buf[18], buf[19]);
    Ok(Received {
        ip: IpMeta {
            src: src.into(),
            dst: dst.into(),
            ttl: buf[8],
        },
        msg: &buf[ihl..],
        arrived: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_header_split() {
        let mut pkt = vec![
            0x45, 0xc0, 0, 28, 0, 1, 0, 0, 255, 112, 0, 0, 192, 0, 2, 1, 224, 0, 0, 18,
        ];
        pkt.extend_from_slice(&[0x31, 51, 100, 1, 0, 100, 0, 0]);
        let r = parse_ipv4(&pkt).unwrap();
        assert_eq!(r.ip.ttl, 255);
        assert_eq!(r.ip.src, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(r.ip.dst, "224.0.0.18".parse::<IpAddr>().unwrap());
        assert_eq!(r.msg.len(), 8);
        // Options make the header longer; a header length past the end or
        // under 20 bytes is refused, never sliced.
        pkt[0] = 0x4f;
        assert!(parse_ipv4(&pkt).is_err());
        pkt[0] = 0x44;
        assert!(parse_ipv4(&pkt).is_err());
        assert!(parse_ipv4(&pkt[..19]).is_err());
        for n in 0..64 {
            let junk: Vec<u8> = (0..n).map(|i| (i * 37 + n) as u8).collect();
            let _ = parse_ipv4(&junk);
            let _ = parse_ah_vrrp(&junk);
        }
    }

    #[test]
    fn ah_wrapped_vrrp_names_its_vrid() {
        // IPv4 (proto 51) | AH: next 112, len 4 (24 bytes: 12 + 12-byte
        // HMAC-96 ICV) | VRRPv2 advert for VRID 51.
        let mut pkt = vec![
            0x45, 0xc0, 0, 64, 0, 1, 0, 0, 255, 51, 0, 0, 192, 0, 2, 13, 224, 0, 0, 18,
        ];
        pkt.extend_from_slice(&[112, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1]);
        pkt.extend_from_slice(&[0xaa; 12]);
        pkt.extend_from_slice(&[0x21, 51, 100, 1, 2, 1, 0, 0, 192, 0, 2, 100]);
        let p = parse_ah_vrrp(&pkt).unwrap();
        assert_eq!(p.vrid, 51);
        assert_eq!(p.src, Ipv4Addr::new(192, 0, 2, 13));
        // AH around something else, or cut short: not ours.
        let mut other = pkt.clone();
        other[20] = 6;
        assert_eq!(parse_ah_vrrp(&other), None);
        assert_eq!(parse_ah_vrrp(&pkt[..45]), None);
    }
}
