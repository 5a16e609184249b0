//! Sending adverts: one sendmsg each, nothing allocated.
//!
//! IPv4 adverts go out with the IP header written here (IP_HDRINCL, as
//! keepalived sends them): the kernel then only fills in the length and
//! the checksum, where with a header of its own it would build the
//! datagram through its corking path, check the source address of an
//! IP_PKTINFO message and pick an identification, for every advert.
//! IPv6 has no such option (the kernel's IPV6_HDRINCL needs the whole
//! header and offers no saving): the source goes in IPV6_PKTINFO.

use crate::vrrp::packet::{IP_PROTO_VRRP, VRRP_TTL};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::RawFd;

/// The IPv4 header of an advert: no options; TOS 0xc0, network control
/// (RFC 5798 §5.1.1.1 leaves it open; keepalived uses it too); Don't
/// Fragment, as the kernel sets it for a raw socket by default; TTL 255
/// (§5.1.1.3). The kernel writes the total length and the checksum.
fn ipv4_header(len: usize, id: u16, src: Ipv4Addr, dst: Ipv4Addr) -> io::Result<[u8; 20]> {
    let total = u16::try_from(20 + len).map_err(|_| io::Error::other("advert too long"))?;
    let [l0, l1] = total.to_be_bytes();
    let [i0, i1] = id.to_be_bytes();
    let [s0, s1, s2, s3] = src.octets();
    let [d0, d1, d2, d3] = dst.octets();
    Ok([
        0x45,
        0xc0,
        l0,
        l1,
        i0,
        i1,
        0x40,
        0,
        VRRP_TTL,
        IP_PROTO_VRRP,
        0,
        0,
        s0,
        s1,
        s2,
        s3,
        d0,
        d1,
        d2,
        d3,
    ])
}

/// One IPv4 advert with our header. `id` 0 would have the kernel pick
/// one (and pay for it): it is skipped.
pub(super) fn send_v4(
    fd: RawFd,
    msg: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    id: u16,
) -> io::Result<()> {
    let header = ipv4_header(msg.len(), id.max(1), src, dst)?;
    let to = socket2::SockAddr::from(SocketAddr::new(IpAddr::V4(dst), 0));
    let mut iov = [
        libc::iovec {
            iov_base: header.as_ptr().cast_mut().cast(),
            iov_len: header.len(),
        },
        libc::iovec {
            iov_base: msg.as_ptr().cast_mut().cast(),
            iov_len: msg.len(),
        },
    ];
    #[allow(unsafe_code)]
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = to.as_ptr().cast_mut().cast();
    hdr.msg_namelen = to.len();
    hdr.msg_iov = iov.as_mut_ptr();
    hdr.msg_iovlen = iov.len() as _;
    #[allow(unsafe_code)]
    // SAFETY: every pointer in `hdr` is valid for the call: `iov`,
    // `header`, `msg` and `to` outlive it; the kernel only reads them.
    let r = unsafe { libc::sendmsg(fd, &hdr, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// IPv6 (and IPv4 to a v6 peer, which the node never asks for): the
/// source address and the interface in an IPV6_PKTINFO (IP_PKTINFO)
/// control message.
#[allow(unsafe_code)] // sendmsg(2) by hand: see the SAFETY comments.
pub(super) fn send_pktinfo(
    fd: RawFd,
    ifindex: u32,
    msg: &[u8],
    src: IpAddr,
    dst: IpAddr,
) -> io::Result<()> {
    // Not nix's sendmsg: it allocates the control buffer on every call,
    // and a master at 10 ms adverts sends a hundred a second. Room for
    // either pktinfo, aligned as a cmsghdr must be.
    #[repr(C, align(8))]
    struct Control([u8; 64]);
    let mut control = Control([0; 64]);
    let dst = socket2::SockAddr::from(SocketAddr::new(dst, 0));
    let (level, kind, data_len) = match src {
        IpAddr::V4(_) => (
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            std::mem::size_of::<libc::in_pktinfo>(),
        ),
        IpAddr::V6(_) => (
            libc::IPPROTO_IPV6,
            libc::IPV6_PKTINFO,
            std::mem::size_of::<libc::in6_pktinfo>(),
        ),
    };
    let data_len = u32::try_from(data_len).map_err(io::Error::other)?;
    let mut iov = libc::iovec {
        iov_base: msg.as_ptr().cast_mut().cast(),
        iov_len: msg.len(),
    };
    // SAFETY: all-zero is a valid msghdr (null pointers, zero lengths).
    let mut hdr: libc::msghdr = unsafe { std::mem::zeroed() };
    hdr.msg_name = dst.as_ptr().cast_mut().cast();
    hdr.msg_namelen = dst.len();
    hdr.msg_iov = &mut iov;
    hdr.msg_iovlen = 1;
    hdr.msg_control = control.0.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a length.
    hdr.msg_controllen = unsafe { libc::CMSG_SPACE(data_len) } as _;
    if hdr.msg_controllen as usize > control.0.len() {
        return Err(io::Error::other("control message buffer too small"));
    }
    // SAFETY: msg_control points to `control`, aligned for a cmsghdr and
    // at least CMSG_SPACE(data_len) long (checked above), so the first
    // header and its data lie within it; the data is written unaligned.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&hdr);
        if c.is_null() {
            return Err(io::Error::other("no room for the control message"));
        }
        (*c).cmsg_level = level;
        (*c).cmsg_type = kind;
        (*c).cmsg_len = libc::CMSG_LEN(data_len) as _;
        let data = libc::CMSG_DATA(c);
        match src {
            IpAddr::V4(s) => std::ptr::write_unaligned(
                data.cast::<libc::in_pktinfo>(),
                libc::in_pktinfo {
                    ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
                    ipi_spec_dst: libc::in_addr {
                        s_addr: u32::from(s).to_be(),
                    },
                    ipi_addr: libc::in_addr { s_addr: 0 },
                },
            ),
            IpAddr::V6(s) => std::ptr::write_unaligned(
                data.cast::<libc::in6_pktinfo>(),
                libc::in6_pktinfo {
                    ipi6_addr: libc::in6_addr {
                        s6_addr: s.octets(),
                    },
                    ipi6_ifindex: ifindex,
                },
            ),
        }
    }
    // SAFETY: every pointer in `hdr` is valid for the call: `iov` and
    // `msg`, `dst` and `control` outlive it.
    let r = unsafe { libc::sendmsg(fd, &hdr, 0) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::vrrp_socket::parse_ipv4;

    #[test]
    fn our_ipv4_header_reads_back_as_sent() {
        let msg = [0x31, 51, 100, 1, 0, 100, 0, 0];
        let src: Ipv4Addr = "192.0.2.1".parse().unwrap();
        let h = ipv4_header(msg.len(), 7, src, Ipv4Addr::new(224, 0, 0, 18)).unwrap();
        let mut pkt = h.to_vec();
        pkt.extend_from_slice(&msg);
        let r = parse_ipv4(&pkt).unwrap();
        assert_eq!(r.ip.src, IpAddr::V4(src));
        assert_eq!(r.ip.dst, "224.0.0.18".parse::<IpAddr>().unwrap());
        assert_eq!(r.ip.ttl, 255);
        assert_eq!(r.msg, &msg);
        assert_eq!((h[1], h[6], h[9]), (0xc0, 0x40, 112));
        assert_eq!(u16::from_be_bytes([h[2], h[3]]), 28);
        assert!(ipv4_header(70_000, 1, src, src).is_err());
    }
}
