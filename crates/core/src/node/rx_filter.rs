//! Which received adverts reach an instance. The packet decoder has
//! already checked the packet itself (`crate::vrrp::packet`); this decides
//! whether its sender may take part, before the state machine judges the
//! advert's contents.

use std::net::IpAddr;

/// What the filter knows of one instance.
#[derive(Clone, Copy, Debug)]
pub struct Listener<'a> {
    pub ifindex: u32,
    pub v4: bool,
    pub vrid: u8,
    /// Unicast peers (without this node); empty for multicast.
    pub peers: &'a [IpAddr],
    pub unicast: bool,
}

/// The index of the instance an advert is for, or why it is dropped
/// (the name of the drop counter).
pub fn route<'a>(
    listeners: impl IntoIterator<Item = Listener<'a>>,
    ifindex: u32,
    v4: bool,
    vrid: u8,
    src: IpAddr,
    on_link: &[(IpAddr, u8)],
) -> Result<usize, &'static str> {
    let Some((i, l)) = listeners
        .into_iter()
        .enumerate()
        .find(|(_, l)| l.ifindex == ifindex && l.v4 == v4 && l.vrid == vrid)
    else {
        return Err("unknown_vrid");
    };
    admit(&l, src, on_link).map(|()| i)
}

/// Whether the sender of an advert for listener `l` may take part.
pub fn admit(l: &Listener<'_>, src: IpAddr, on_link: &[(IpAddr, u8)]) -> Result<(), &'static str> {
    if l.unicast {
        // In unicast mode only the configured peers take part; anyone else
        // on the segment could otherwise steal the VIP.
        if !l.peers.contains(&src) {
            return Err("not_a_peer");
        }
    } else if !from_this_link(src, on_link) {
        return Err("foreign_source");
    }
    Ok(())
}

/// RFC 5798 §5.1.1.1/§5.1.2.1: a multicast advert comes from the sender's
/// primary address on this link: an IPv4 address inside one of our
/// prefixes, or an IPv6 link-local address. Anything else cannot be a
/// router on this segment, whatever priority it claims.
pub fn from_this_link(src: IpAddr, on_link: &[(IpAddr, u8)]) -> bool {
    match src {
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
        IpAddr::V4(v4) => on_link.iter().any(|(a, len)| match a {
            IpAddr::V4(a) if *len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
                u32::from(*a) & mask == u32::from(v4) & mask
            }
            _ => false,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn routes_by_interface_family_and_vrid() {
        let peers = [ip("192.0.2.12")];
        let ls = [
            Listener {
                ifindex: 2,
                v4: true,
                vrid: 51,
                peers: &[],
                unicast: false,
            },
            Listener {
                ifindex: 2,
                v4: true,
                vrid: 52,
                peers: &peers,
                unicast: true,
            },
        ];
        let on_link = [(ip("192.0.2.11"), 24)];
        assert_eq!(route(ls, 2, true, 51, ip("192.0.2.99"), &on_link), Ok(0));
        assert_eq!(route(ls, 2, true, 52, ip("192.0.2.12"), &on_link), Ok(1));
        assert_eq!(
            route(ls, 2, true, 53, ip("192.0.2.12"), &on_link),
            Err("unknown_vrid")
        );
        assert_eq!(
            route(ls, 3, true, 51, ip("192.0.2.12"), &on_link),
            Err("unknown_vrid")
        );
        assert_eq!(
            route(ls, 2, false, 51, ip("fe80::1"), &on_link),
            Err("unknown_vrid")
        );
        assert_eq!(
            route(ls, 2, true, 52, ip("192.0.2.13"), &on_link),
            Err("not_a_peer")
        );
        assert_eq!(
            route(ls, 2, true, 51, ip("198.51.100.1"), &on_link),
            Err("foreign_source")
        );
    }

    #[test]
    fn multicast_sources_must_be_on_link() {
        let on_link = [(ip("192.0.2.11"), 24), (ip("2001:db8::11"), 64)];
        assert!(from_this_link(ip("192.0.2.200"), &on_link));
        assert!(!from_this_link(ip("192.0.3.1"), &on_link));
        assert!(from_this_link(ip("fe80::1234"), &on_link));
        assert!(!from_this_link(ip("2001:db8::12"), &on_link));
        assert!(!from_this_link(ip("192.0.2.1"), &[]));
        assert!(from_this_link(ip("203.0.113.9"), &[(ip("192.0.2.1"), 0)]));
    }
}
