//! Gratuitous ARP (IPv4) and unsolicited neighbour advertisements (IPv6)
//! for a VIP's new home, so that switches and neighbours stop sending to
//! the old master at once rather than when their caches expire.
//!
//! Frames are built with pnet_packet and sent on an AF_PACKET socket opened
//! with protocol 0: it can send but receives nothing, so the daemon does not
//! pay for a copy of every frame on the link.

use pnet_base::MacAddr;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
};
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::{MutablePacket, Packet};
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

const ETH_HDR: usize = 14;
const ARP_LEN: usize = 28;
const IPV6_HDR: usize = 40;
/// NA header (24) + one Target Link-Layer Address option (8).
const NA_LEN: usize = 32;
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

pub struct Announcer {
    fd: OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
}

/// A gratuitous ARP request: sender and target are both the VIP.
pub fn garp_frame(mac: [u8; 6], vip: Ipv4Addr) -> Vec<u8> {
    let mut buf = vec![0u8; ETH_HDR + ARP_LEN];
    let src = MacAddr::from(mac);
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(src);
        eth.set_ethertype(EtherTypes::Arp);
        if let Some(mut arp) = MutableArpPacket::new(eth.payload_mut()) {
            arp.set_hardware_type(ArpHardwareTypes::Ethernet);
            arp.set_protocol_type(EtherTypes::Ipv4);
            arp.set_hw_addr_len(6);
            arp.set_proto_addr_len(4);
            arp.set_operation(ArpOperations::Request);
            arp.set_sender_hw_addr(src);
            arp.set_sender_proto_addr(vip);
            arp.set_target_hw_addr(MacAddr::zero());
            arp.set_target_proto_addr(vip);
        }
    }
    buf
}

/// An unsolicited neighbour advertisement (RFC 4861 §7.2.6) for `vip`,
/// from `vip`, to all nodes, with the Override flag so caches update. The
/// Router flag stays clear: a VIP in front of nginx is a host address.
pub fn na_frame(mac: [u8; 6], vip: Ipv6Addr) -> Vec<u8> {
    let mut buf = vec![0u8; ETH_HDR + IPV6_HDR + NA_LEN];
    let src = MacAddr::from(mac);
    if let Some(mut eth) = MutableEthernetPacket::new(&mut buf) {
        eth.set_destination(MacAddr::new(0x33, 0x33, 0, 0, 0, 1));
        eth.set_source(src);
        eth.set_ethertype(EtherTypes::Ipv6);
        if let Some(mut ip) = MutableIpv6Packet::new(eth.payload_mut()) {
            ip.set_version(6);
            ip.set_payload_length(NA_LEN as u16);
            ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
            // RFC 4861 §7.1.2: receivers drop NAs with any other hop limit.
            ip.set_hop_limit(255);
            ip.set_source(vip);
            ip.set_destination(ALL_NODES);
            if let Some(mut na) = MutableNeighborAdvertPacket::new(ip.payload_mut()) {
                na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
                na.set_icmpv6_code(Icmpv6Code(0));
                na.set_flags(NeighborAdvertFlags::Override);
                na.set_target_addr(vip);
                na.set_options(&[NdpOption {
                    option_type: NdpOptionTypes::TargetLLAddr,
                    length: 1,
                    data: mac.to_vec(),
                }]);
                let ck = pnet_packet::icmpv6::Icmpv6Packet::new(na.packet())
                    .map(|v| pnet_packet::icmpv6::checksum(&v, &vip, &ALL_NODES));
                if let Some(ck) = ck {
                    na.set_checksum(ck);
                }
            }
        }
    }
    buf
}

impl Announcer {
    pub fn open(ifindex: u32, mac: [u8; 6]) -> io::Result<Announcer> {
        use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};
        // No protocol (None, i.e. 0): see the module comment.
        let fd = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        Ok(Announcer { fd, ifindex, mac })
    }

    #[allow(unsafe_code)] // sendto(2) to a sockaddr_ll: see below.
    pub fn announce(&self, vip: IpAddr) -> io::Result<()> {
        let frame = match vip {
            IpAddr::V4(a) => garp_frame(self.mac, a),
            IpAddr::V6(a) => na_frame(self.mac, a),
        };
        let mut sll = libc::sockaddr_ll {
            sll_family: libc::AF_PACKET as u16,
            sll_protocol: 0,
            sll_ifindex: self.ifindex as i32,
            sll_hatype: 0,
            sll_pkttype: 0,
            sll_halen: 6,
            sll_addr: [0; 8],
        };
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // No safe wrapper sends to a link-layer address: nix's LinkAddr and
        // socket2's SockAddr can only be made from raw sockaddr bytes, with
        // unsafe too. This call is the whole of it.
        // SAFETY: frame and sll are live for the call, lengths are exact.
        let r = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];

    #[test]
    fn garp_is_a_broadcast_request_for_the_vip() {
        let f = garp_frame(MAC, Ipv4Addr::new(192, 0, 2, 100));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &MAC);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        let arp = &f[14..];
        assert_eq!(&arp[6..8], &[0, 1], "request");
        assert_eq!(&arp[14..18], &[192, 0, 2, 100], "sender IP");
        assert_eq!(&arp[24..28], &[192, 0, 2, 100], "target IP");
    }

    #[test]
    fn na_has_override_tlla_hop_limit_and_valid_checksum() {
        let vip: Ipv6Addr = "2001:db8::100".parse().unwrap();
        let f = na_frame(MAC, vip);
        assert_eq!(&f[0..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let ip = &f[14..];
        assert_eq!(ip[7], 255, "hop limit");
        let icmp = &ip[40..];
        assert_eq!(icmp[0], 136);
        assert_eq!(icmp[4], 0x20, "override only");
        assert_eq!(&icmp[8..24], &vip.octets());
        assert_eq!(&icmp[24..26], &[2, 1]);
        assert_eq!(&icmp[26..32], &MAC);
        // The ICMPv6 checksum over the pseudo-header folds to zero.
        let mut sum: u32 = 0;
        let mut add = |b: &[u8]| {
            for c in b.chunks(2) {
                sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
        };
        add(&vip.octets());
        add(&ALL_NODES.octets());
        add(&(icmp.len() as u32).to_be_bytes());
        add(&[0, 0, 0, 58]);
        add(icmp);
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }
}
