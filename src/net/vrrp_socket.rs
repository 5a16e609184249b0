//! Raw IP-protocol-112 sockets, one per (interface, family), shared by the
//! instances on that interface. The source address of each advert is set
//! per packet with IP_PKTINFO / IPV6_PKTINFO rather than by bind(): a raw
//! socket bound to an address would only receive packets sent to it, and
//! would miss the multicast group.

use crate::vrrp::packet::{IP_PROTO_VRRP, IpMeta, MCAST_V4, MCAST_V6, VRRP_TTL};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::unix::AsyncFd;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    v4: bool,
    /// Datagrams the kernel dropped because this socket's buffer was full
    /// (SO_RXQ_OVFL, as of the last datagram read).
    overruns: AtomicU32,
}

/// Room for a burst of adverts (and of junk) while the loop is busy: at
/// ~800 bytes of kernel overhead per small datagram the default 208 KiB
/// held only a few hundred.
const RCVBUF: i32 = 4 << 20;

/// One received datagram: the VRRP message and the IP facts around it.
pub struct Received {
    pub ip: IpMeta,
    pub msg: Vec<u8>,
}

fn setsockopt_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: a valid fd and a pointer to an int that lives for the call.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl VrrpSocket {
    /// Opens the socket on `ifname` (`ifindex`), joined to the VRRP group
    /// so that multicast adverts arrive; unicast ones arrive regardless.
    pub fn open(ifname: &str, ifindex: u32, v4: bool) -> io::Result<VrrpSocket> {
        let domain = if v4 { Domain::IPV4 } else { Domain::IPV6 };
        let s = Socket::new(
            domain,
            Type::RAW,
            Some(Protocol::from(i32::from(IP_PROTO_VRRP))),
        )?;
        s.set_nonblocking(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        let fd = s.as_raw_fd();
        if v4 {
            s.set_multicast_ttl_v4(u32::from(VRRP_TTL))?;
            s.set_ttl_v4(u32::from(VRRP_TTL))?;
            s.set_multicast_loop_v4(false)?;
            s.join_multicast_v4_n(&MCAST_V4, &socket2::InterfaceIndexOrAddress::Index(ifindex))?;
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            // VRRP is network control traffic (RFC 5798 §5.1.1.1 leaves it
            // open; keepalived uses TOS 0xc0 too).
            setsockopt_int(fd, libc::IPPROTO_IP, libc::IP_TOS, 0xc0)?;
        } else {
            s.set_multicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_unicast_hops_v6(u32::from(VRRP_TTL))?;
            s.set_multicast_loop_v6(false)?;
            s.set_multicast_if_v6(ifindex)?;
            s.join_multicast_v6(&MCAST_V6, ifindex)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
            setsockopt_int(fd, libc::IPPROTO_IPV6, libc::IPV6_TCLASS, 0xc0)?;
        }
        // CAP_NET_ADMIN may exceed net.core.rmem_max; without it, the
        // plain option is capped there, which is still better than the
        // default.
        if setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RCVBUF).is_err() {
            let _ = setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RCVBUF);
        }
        // Overruns are counted, not silent (status: dropped.socket_overrun).
        setsockopt_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)?;
        // SAFETY: the Socket owns its fd, and AsyncFd keeps it (and so the
        // fd) alive and unchanged until it deregisters on drop.
        let fd = unsafe { AsyncFd::register(s)? };
        Ok(VrrpSocket {
            fd,
            ifindex,
            v4,
            overruns: AtomicU32::new(0),
        })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Datagrams the kernel dropped on this socket for lack of buffer.
    pub fn overruns(&self) -> u64 {
        u64::from(self.overruns.load(Ordering::Relaxed))
    }

    /// Waits for and returns the next datagram. A datagram that cannot be
    /// a VRRP message at all (too large, IP facts unreadable) is the inner
    /// error: the counter name to drop it under.
    pub async fn recv(&self) -> io::Result<Result<Received, &'static str>> {
        loop {
            let mut guard = self.fd.readable().await?;
            let r = guard
                .try_io(|inner| recv_one(inner.get_ref().as_raw_fd(), self.v4, &self.overruns));
            match r {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }

    /// Sends one VRRP message from `src` to `dst` out of this interface.
    pub fn send(&self, msg: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
        let fd = self.fd.get_ref().as_raw_fd();
        send_one(fd, self.ifindex, msg, src, dst)
    }
}

/// The largest VRRP datagram: an IPv4 header with options (60), or none
/// for IPv6 (the kernel strips it), plus a v3 IPv6 advert with 255
/// addresses (8 + 255 * 16). Anything longer is not VRRP.
const MAX_DATAGRAM: usize = 60 + 8 + 255 * 16 + 8;

fn recv_one(
    fd: RawFd,
    v4: bool,
    overruns: &AtomicU32,
) -> io::Result<Result<Received, &'static str>> {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // SAFETY: zeroed C structs are valid initial values.
    let mut name: libc::sockaddr_storage = unsafe { zeroed() };
    let mut cbuf = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    let mut mh: libc::msghdr = unsafe { zeroed() };
    mh.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
    mh.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    mh.msg_controllen = size_of::<[u64; 16]>();
    // SAFETY: every pointer in `mh` points at a live buffer of the stated
    // length.
    let n = unsafe { libc::recvmsg(fd, &mut mh, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: walking the control messages the kernel wrote into cbuf,
    // bounded by msg_controllen, with the libc CMSG helpers.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&mh);
        while !c.is_null() {
            let h = &*c;
            if h.cmsg_level == libc::SOL_SOCKET && h.cmsg_type == libc::SO_RXQ_OVFL {
                let n = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<u32>());
                overruns.store(n, Ordering::Relaxed);
            }
            c = libc::CMSG_NXTHDR(&mh, c);
        }
    }
    if mh.msg_flags & libc::MSG_TRUNC != 0 {
        // Cut to the buffer, it could even decode; it is not what was sent.
        return Ok(Err("oversized"));
    }
    let n = n as usize;
    buf.truncate(n);
    if v4 {
        Ok(parse_ipv4(&buf).map_err(|_| "bad_ip_header"))
    } else {
        if name.ss_family as i32 != libc::AF_INET6 {
            return Ok(Err("bad_ip_header"));
        }
        // SAFETY: the family says this is a sockaddr_in6.
        let sin6: libc::sockaddr_in6 =
            unsafe { *(&name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        let src = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
        let mut dst = None;
        let mut hops = None;
        // SAFETY: walking the control messages the kernel wrote into cbuf,
        // bounded by msg_controllen, with the libc CMSG helpers.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&mh);
            while !c.is_null() {
                let h = &*c;
                if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_PKTINFO {
                    let pi =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                    dst = Some(Ipv6Addr::from(pi.ipi6_addr.s6_addr));
                } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT {
                    hops = Some(std::ptr::read_unaligned(
                        libc::CMSG_DATA(c).cast::<libc::c_int>(),
                    ));
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        let (Some(dst), Some(hops)) = (dst, hops) else {
            return Ok(Err("bad_ip_header"));
        };
        Ok(Ok(Received {
            ip: IpMeta {
                src: src.into(),
                dst: dst.into(),
                ttl: u8::try_from(hops).unwrap_or(0),
            },
            msg: buf,
        }))
    }
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
    pub fn open(ifname: &str) -> io::Result<AhSocket> {
        let s = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::from(IP_PROTO_AH)))?;
        s.set_nonblocking(true)?;
        s.bind_device(Some(ifname.as_bytes()))?;
        // SAFETY: as for VrrpSocket::open.
        let fd = unsafe { AsyncFd::register(s)? };
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
                // SAFETY: buf is a live buffer of the stated length.
                let n = unsafe {
                    libc::recv(
                        inner.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        libc::MSG_DONTWAIT,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(parse_ah_vrrp(&buf[..n as usize]))
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
pub fn parse_ipv4(buf: &[u8]) -> Result<Received, &'static str> {
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
        msg: buf[ihl..].to_vec(),
    })
}

fn send_one(fd: RawFd, ifindex: u32, msg: &[u8], src: IpAddr, dst: IpAddr) -> io::Result<()> {
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr() as *mut libc::c_void,
        iov_len: msg.len(),
    };
    let mut cbuf = [0u64; 8];
    // SAFETY: zeroed C structs are valid initial values; all pointers set
    // below point at locals that outlive the sendmsg call.
    let mut mh: libc::msghdr = unsafe { zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf.as_mut_ptr().cast();
    let dst_sa: SocketAddr = SocketAddr::new(dst, 0);
    let dst_sa = socket2::SockAddr::from(dst_sa);
    mh.msg_name = dst_sa.as_ptr() as *mut libc::c_void;
    mh.msg_namelen = dst_sa.len();
    unsafe {
        match src {
            IpAddr::V4(s) => {
                mh.msg_controllen = libc::CMSG_SPACE(size_of::<libc::in_pktinfo>() as u32) as usize;
                let c = libc::CMSG_FIRSTHDR(&mh);
                (*c).cmsg_level = libc::IPPROTO_IP;
                (*c).cmsg_type = libc::IP_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in_pktinfo>() as u32) as usize;
                let pi = libc::in_pktinfo {
                    ipi_ifindex: ifindex as i32,
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in_pktinfo>(), pi);
            }
            IpAddr::V6(s) => {
                mh.msg_controllen =
                    libc::CMSG_SPACE(size_of::<libc::in6_pktinfo>() as u32) as usize;
                let c = libc::CMSG_FIRSTHDR(&mh);
                (*c).cmsg_level = libc::IPPROTO_IPV6;
                (*c).cmsg_type = libc::IPV6_PKTINFO;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::in6_pktinfo>() as u32) as usize;
                let pi = libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: ifindex,
                };
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>(), pi);
            }
        }
    }
    // SAFETY: see above.
    let r = unsafe { libc::sendmsg(fd, &mh, 0) };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
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
