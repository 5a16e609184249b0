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
use tokio::io::unix::AsyncFd;

pub struct VrrpSocket {
    fd: AsyncFd<Socket>,
    ifindex: u32,
    v4: bool,
}

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
        // SAFETY: the Socket owns its fd, and AsyncFd keeps it (and so the
        // fd) alive and unchanged until it deregisters on drop.
        let fd = unsafe { AsyncFd::register(s)? };
        Ok(VrrpSocket { fd, ifindex, v4 })
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Waits for and returns the next datagram. Datagrams whose IP facts
    /// cannot be read are returned as errors of kind InvalidData, so the
    /// caller can count them and carry on.
    pub async fn recv(&self) -> io::Result<Received> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|inner| recv_one(inner.get_ref().as_raw_fd(), self.v4)) {
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

fn recv_one(fd: RawFd, v4: bool) -> io::Result<Received> {
    let mut buf = vec![0u8; 2048];
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
    let n = n as usize;
    buf.truncate(n);
    let bad = |what: &'static str| io::Error::new(io::ErrorKind::InvalidData, what);
    if v4 {
        parse_ipv4(&buf).map_err(bad)
    } else {
        if name.ss_family as i32 != libc::AF_INET6 {
            return Err(bad("no IPv6 source address"));
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
                    let pi = *(libc::CMSG_DATA(c).cast::<libc::in6_pktinfo>());
                    dst = Some(Ipv6Addr::from(pi.ipi6_addr.s6_addr));
                } else if h.cmsg_level == libc::IPPROTO_IPV6 && h.cmsg_type == libc::IPV6_HOPLIMIT {
                    hops = Some(*(libc::CMSG_DATA(c).cast::<libc::c_int>()));
                }
                c = libc::CMSG_NXTHDR(&mh, c);
            }
        }
        let (Some(dst), Some(hops)) = (dst, hops) else {
            return Err(bad("missing IPv6 packet info"));
        };
        Ok(Received {
            ip: IpMeta {
                src: src.into(),
                dst: dst.into(),
                ttl: u8::try_from(hops).unwrap_or(0),
            },
            msg: buf,
        })
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
        }
    }
}
