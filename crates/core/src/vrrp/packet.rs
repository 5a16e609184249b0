//! VRRP advertisement codec: VRRPv2 (RFC 3768 §5) and VRRPv3 (RFC 5798 §5),
//! IPv4 and IPv6.
//!
//! The codec works on the VRRP message (the IP payload) plus the facts the
//! IP layer knows: source, destination and TTL/hop limit. It checks
//! everything that can be checked without an instance's configuration;
//! authentication and the checksum variant are judged by the receiver,
//! which knows what it expects.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// IP protocol number of VRRP (RFC 5798 §5.1.1.4).
pub const IP_PROTO_VRRP: u8 = 112;
/// Adverts are sent with TTL/hop limit 255 and received only with 255, so
/// an advert cannot come from beyond the local link (RFC 5798 §5.1.1.3).
pub const VRRP_TTL: u8 = 255;
pub const MCAST_V4: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 18);
pub const MCAST_V6: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 0x12);
/// The only packet type VRRP defines (RFC 5798 §5.2.2).
const TYPE_ADVERT: u8 = 1;
const HEADER_LEN: usize = 8;
const V2_AUTH_LEN: usize = 8;
/// The v3 interval field is 12 bits of centiseconds (RFC 5798 §5.2.7).
pub const V3_MAX_INTERVAL_CS: u16 = 0x0fff;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    pub fn number(self) -> u8 {
        match self {
            Version::V2 => 2,
            Version::V3 => 3,
        }
    }
}

/// VRRPv2 authentication (RFC 3768 §5.3.6). Type 2 (IP AH) was removed
/// from the protocol and is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Auth {
    None,
    /// Up to 8 bytes, zero padded on the wire.
    Pass([u8; 8]),
}

impl Auth {
    /// Builds PASS data from a password of at most 8 bytes.
    pub fn pass(password: &[u8]) -> Option<Auth> {
        if password.is_empty() || password.len() > 8 {
            return None;
        }
        let mut data = [0u8; 8];
        data[..password.len()].copy_from_slice(password);
        Some(Auth::Pass(data))
    }
}

/// Which checksum a VRRPv3 advert over IPv4 carries. Besides the RFC's,
/// two variants exist in the field: the v2 way (no pseudo-header), and
/// keepalived's `old_unicast_checksum`, whose pseudo-header names
/// 224.0.0.18 as the destination even for unicast (seen in captures of
/// keepalived 2.2.7, tests/fixtures/keepalived). A receiver accepts a
/// variant only when configured to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumStyle {
    Rfc,
    AsV2,
    OldUnicast,
}

/// A decoded (or to-be-encoded) advertisement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Advert {
    pub version: Version,
    pub vrid: u8,
    pub priority: u8,
    /// Max_Adver_Int in centiseconds. VRRPv2 carries whole seconds; they are
    /// converted so that the state machine has one unit.
    pub interval_cs: u16,
    pub addrs: Vec<IpAddr>,
    /// Always `Auth::None` for v3.
    pub auth: Auth,
}

/// The IP-layer facts of a received advert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpMeta {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
}

/// Why an advert was dropped. Each variant has a stable counter name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("TTL/hop limit {0} is not 255")]
    BadTtl(u8),
    #[error("{0} bytes is shorter than a VRRP header")]
    TooShort(usize),
    #[error("version {0} is not VRRPv2 or VRRPv3")]
    BadVersion(u8),
    #[error("type {0} is not an advertisement")]
    BadType(u8),
    #[error("VRID 0 is not valid")]
    ZeroVrid,
    #[error("count of addresses is 0")]
    NoAddresses,
    #[error("{count} addresses need {need} bytes but the message has {len}")]
    Truncated { count: u8, need: usize, len: usize },
    #[error("checksum {got:#06x} is wrong")]
    BadChecksum { got: u16 },
    #[error("VRRPv2 is defined for IPv4 only")]
    V2OverIpv6,
    #[error("source and destination are of different families")]
    FamilyMismatch,
    #[error("advertisement interval 0")]
    ZeroInterval,
    #[error("authentication type {0} is not supported")]
    BadAuthType(u8),
}

impl DecodeError {
    /// Name of the drop counter, stable for `status --json`.
    pub fn counter(&self) -> &'static str {
        match self {
            DecodeError::BadTtl(_) => "bad_ttl",
            DecodeError::TooShort(_) | DecodeError::Truncated { .. } => "truncated",
            DecodeError::BadVersion(_) | DecodeError::V2OverIpv6 => "bad_version",
            DecodeError::BadType(_) => "bad_type",
            DecodeError::ZeroVrid => "bad_vrid",
            DecodeError::NoAddresses => "bad_count",
            DecodeError::BadChecksum { .. } => "bad_checksum",
            DecodeError::FamilyMismatch => "bad_family",
            DecodeError::ZeroInterval => "bad_interval",
            DecodeError::BadAuthType(_) => "bad_auth",
        }
    }
}

/// The Internet checksum (RFC 1071) over a sequence of byte slices, as if
/// they were concatenated. Slices of odd length are only allowed last.
fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The pseudo-header of RFC 5798 §5.2.8: RFC 768's for IPv4 (12 bytes),
/// RFC 8200 §8.1's for IPv6 (40), on the stack: every advert received is
/// checked against one.
struct PseudoHeader {
    bytes: [u8; 40],
    len: usize,
}

impl PseudoHeader {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> PseudoHeader {
    let mut b = [0u8; 40];
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            b[0..4].copy_from_slice(&s.octets());
            b[4..8].copy_from_slice(&d.octets());
            b[9] = IP_PROTO_VRRP;
            b[10..12].copy_from_slice(&(len as u16).to_be_bytes());
            PseudoHeader { bytes: b, len: 12 }
        }
        (s, d) => {
            b[0..16].copy_from_slice(&v6_octets(s));
            b[16..32].copy_from_slice(&v6_octets(d));
            b[32..36].copy_from_slice(&(len as u32).to_be_bytes());
            b[39] = IP_PROTO_VRRP;
            PseudoHeader { bytes: b, len: 40 }
        }
    }
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

fn checksum_for(
    version: Version,
    msg: &[u8],
    src: IpAddr,
    dst: IpAddr,
    style: ChecksumStyle,
) -> u16 {
    let v4 = src.is_ipv4();
    match style {
        _ if version == Version::V2 => internet_checksum(&[msg]),
        ChecksumStyle::AsV2 if v4 => internet_checksum(&[msg]),
        ChecksumStyle::OldUnicast if v4 => internet_checksum(&[
            pseudo_header(src, IpAddr::V4(MCAST_V4), msg.len()).as_slice(),
            msg,
        ]),
        _ => internet_checksum(&[pseudo_header(src, dst, msg.len()).as_slice(), msg]),
    }
}

impl Advert {
    /// Encodes the VRRP message with its checksum for the given IP source
    /// and destination (the v3 checksum covers them).
    pub fn encode(&self, src: IpAddr, dst: IpAddr, style: ChecksumStyle) -> Vec<u8> {
        let alen = if self.addrs.first().is_some_and(|a| a.is_ipv6()) {
            16
        } else {
            4
        };
        let mut msg = Vec::with_capacity(HEADER_LEN + alen * self.addrs.len() + V2_AUTH_LEN);
        msg.push((self.version.number() << 4) | TYPE_ADVERT);
        msg.push(self.vrid);
        msg.push(self.priority);
        msg.push(self.addrs.len().min(255) as u8);
        match self.version {
            Version::V2 => {
                let (atype, _) = auth_fields(&self.auth);
                msg.push(atype);
                msg.push((self.interval_cs / 100).min(255) as u8);
            }
            Version::V3 => {
                let f = self.interval_cs.min(V3_MAX_INTERVAL_CS);
                msg.extend_from_slice(&f.to_be_bytes());
            }
        }
        msg.extend_from_slice(&[0, 0]);
        for a in self.addrs.iter().take(255) {
            match a {
                IpAddr::V4(a) => msg.extend_from_slice(&a.octets()),
                IpAddr::V6(a) => msg.extend_from_slice(&a.octets()),
            }
        }
        if self.version == Version::V2 {
            msg.extend_from_slice(&auth_fields(&self.auth).1);
        }
        let ck = checksum_for(self.version, &msg, src, dst, style);
        msg[6..8].copy_from_slice(&ck.to_be_bytes());
        msg
    }

    /// Decodes and validates an advert per RFC 5798 §7.1 / RFC 3768 §7.1,
    /// except the checks that need the receiving instance (VRID configured,
    /// authentication, interval agreement), which the receiver makes.
    pub fn decode(msg: &[u8], ip: IpMeta) -> Result<(Advert, ChecksumStyle), DecodeError> {
        if ip.ttl != VRRP_TTL {
            return Err(DecodeError::BadTtl(ip.ttl));
        }
        if ip.src.is_ipv4() != ip.dst.is_ipv4() {
            return Err(DecodeError::FamilyMismatch);
        }
        if msg.len() < HEADER_LEN {
            return Err(DecodeError::TooShort(msg.len()));
        }
        let version = match msg[0] >> 4 {
            2 => Version::V2,
            3 => Version::V3,
            v => return Err(DecodeError::BadVersion(v)),
        };
        if msg[0] & 0x0f != TYPE_ADVERT {
            return Err(DecodeError::BadType(msg[0] & 0x0f));
        }
        if version == Version::V2 && ip.src.is_ipv6() {
            return Err(DecodeError::V2OverIpv6);
        }
        let vrid = msg[1];
        if vrid == 0 {
            return Err(DecodeError::ZeroVrid);
        }
        let priority = msg[2];
        let count = msg[3];
        if count == 0 {
            return Err(DecodeError::NoAddresses);
        }
        let alen = if ip.src.is_ipv4() { 4 } else { 16 };
        let tail = if version == Version::V2 {
            V2_AUTH_LEN
        } else {
            0
        };
        let need = HEADER_LEN + alen * usize::from(count) + tail;
        if msg.len() < need {
            return Err(DecodeError::Truncated {
                count,
                need,
                len: msg.len(),
            });
        }
        let got = u16::from_be_bytes([msg[6], msg[7]]);
        let v3v4 = version == Version::V3 && ip.src.is_ipv4();
        let style = [
            ChecksumStyle::Rfc,
            ChecksumStyle::AsV2,
            ChecksumStyle::OldUnicast,
        ]
        .into_iter()
        .filter(|s| *s == ChecksumStyle::Rfc || v3v4)
        .find(|s| checksum_for(version, msg, ip.src, ip.dst, *s) == 0)
        .ok_or(DecodeError::BadChecksum { got })?;
        let (interval_cs, auth) = match version {
            Version::V2 => {
                let auth_off = HEADER_LEN + alen * usize::from(count);
                let mut data = [0u8; 8];
                data.copy_from_slice(&msg[auth_off..auth_off + 8]);
                let auth = match msg[4] {
                    0 => Auth::None,
                    1 => Auth::Pass(data),
                    t => return Err(DecodeError::BadAuthType(t)),
                };
                (u16::from(msg[5]) * 100, auth)
            }
            Version::V3 => (
                u16::from_be_bytes([msg[4], msg[5]]) & V3_MAX_INTERVAL_CS,
                Auth::None,
            ),
        };
        if interval_cs == 0 {
            return Err(DecodeError::ZeroInterval);
        }
        let addrs = msg[HEADER_LEN..HEADER_LEN + alen * usize::from(count)]
            .chunks_exact(alen)
            .map(|c| match <[u8; 4]>::try_from(c) {
                Ok(a4) => IpAddr::from(a4),
                Err(_) => {
                    let mut a16 = [0u8; 16];
                    a16.copy_from_slice(c);
                    IpAddr::from(a16)
                }
            })
            .collect();
        Ok((
            Advert {
                version,
                vrid,
                priority,
                interval_cs,
                addrs,
                auth,
            },
            style,
        ))
    }
}

fn auth_fields(a: &Auth) -> (u8, [u8; 8]) {
    match a {
        Auth::None => (0, [0; 8]),
        Auth::Pass(d) => (1, *d),
    }
}

impl fmt::Display for Advert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VRRPv{} vrid {} prio {} int {}cs addrs {:?}",
            self.version.number(),
            self.vrid,
            self.priority,
            self.interval_cs,
            self.addrs
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(src: &str, dst: &str) -> IpMeta {
        IpMeta {
            src: src.parse().unwrap(),
            dst: dst.parse().unwrap(),
            ttl: 255,
        }
    }

    fn v3_v4() -> Advert {
        Advert {
            version: Version::V3,
            vrid: 51,
            priority: 100,
            interval_cs: 100,
            addrs: vec!["192.0.2.100".parse().unwrap()],
            auth: Auth::None,
        }
    }

    /// RFC 5798 §5.2: byte layout of a v3 IPv4 advert, built by hand.
    #[test]
    fn v3_ipv4_layout_matches_rfc_5798_5_2() {
        let m = meta("192.0.2.1", "224.0.0.18");
        let bytes = v3_v4().encode(m.src, m.dst, ChecksumStyle::Rfc);
        assert_eq!(&bytes[..6], &[0x31, 51, 100, 1, 0x00, 100]);
        assert_eq!(&bytes[8..], &[192, 0, 2, 100]);
        // §5.2.8: the checksum covers the pseudo-header, so the sum over
        // pseudo-header + message folds to zero.
        assert_eq!(
            internet_checksum(&[pseudo_header(m.src, m.dst, bytes.len()).as_slice(), &bytes]),
            0
        );
        let (back, style) = Advert::decode(&bytes, m).unwrap();
        assert_eq!(back, v3_v4());
        assert_eq!(style, ChecksumStyle::Rfc);
    }

    /// RFC 3768 §5.3: v2 carries the interval in seconds and 8 bytes of
    /// authentication data after the addresses.
    #[test]
    fn v2_pass_round_trip_rfc_3768_5_3() {
        let a = Advert {
            version: Version::V2,
            vrid: 7,
            priority: 200,
            interval_cs: 300,
            addrs: vec!["192.0.2.5".parse().unwrap(), "192.0.2.6".parse().unwrap()],
            auth: Auth::pass(b"s3cret").unwrap(),
        };
        let m = meta("192.0.2.1", "224.0.0.18");
        let bytes = a.encode(m.src, m.dst, ChecksumStyle::Rfc);
        assert_eq!(bytes.len(), 8 + 8 + 8);
        assert_eq!(&bytes[..6], &[0x21, 7, 200, 2, 1, 3]);
        assert_eq!(&bytes[16..], b"s3cret\0\0");
        assert_eq!(internet_checksum(&[&bytes]), 0);
        assert_eq!(Advert::decode(&bytes, m).unwrap().0, a);
    }

    #[test]
    fn v3_ipv6_round_trip() {
        let a = Advert {
            version: Version::V3,
            vrid: 9,
            priority: 254,
            interval_cs: 4095,
            addrs: vec!["fe80::9".parse().unwrap(), "2001:db8::100".parse().unwrap()],
            auth: Auth::None,
        };
        let m = meta("fe80::1", "ff02::12");
        let bytes = a.encode(m.src, m.dst, ChecksumStyle::Rfc);
        assert_eq!(bytes.len(), 8 + 32);
        assert_eq!(Advert::decode(&bytes, m).unwrap().0, a);
        // The pseudo-header binds the advert to its addresses: the same bytes
        // from another source fail.
        assert!(matches!(
            Advert::decode(&bytes, meta("fe80::2", "ff02::12")),
            Err(DecodeError::BadChecksum { .. })
        ));
    }

    #[test]
    fn v3_checksum_as_v2_is_recognised_not_mistaken() {
        let m = meta("192.0.2.1", "224.0.0.18");
        let bytes = v3_v4().encode(m.src, m.dst, ChecksumStyle::AsV2);
        let (_, style) = Advert::decode(&bytes, m).unwrap();
        assert_eq!(style, ChecksumStyle::AsV2);
    }

    /// RFC 5798 §7.1: TTL must be 255, else drop.
    #[test]
    fn drops_ttl_below_255_rfc_5798_7_1() {
        let m = meta("192.0.2.1", "224.0.0.18");
        let bytes = v3_v4().encode(m.src, m.dst, ChecksumStyle::Rfc);
        let mut low = m;
        low.ttl = 254;
        assert_eq!(Advert::decode(&bytes, low), Err(DecodeError::BadTtl(254)));
    }

    /// RFC 5798 §7.1: version, checksum, and a length that holds the
    /// addresses `count` announces.
    #[test]
    fn drops_malformed() {
        let m = meta("192.0.2.1", "224.0.0.18");
        let good = v3_v4().encode(m.src, m.dst, ChecksumStyle::Rfc);

        let mut v = good.clone();
        v[0] = 0x41;
        assert_eq!(Advert::decode(&v, m), Err(DecodeError::BadVersion(4)));
        let mut t = good.clone();
        t[0] = 0x32;
        assert_eq!(Advert::decode(&t, m), Err(DecodeError::BadType(2)));
        let mut c = good.clone();
        c[8] ^= 1;
        assert!(matches!(
            Advert::decode(&c, m),
            Err(DecodeError::BadChecksum { .. })
        ));
        let mut n = good.clone();
        n[3] = 5;
        assert!(matches!(
            Advert::decode(&n, m),
            Err(DecodeError::Truncated { count: 5, .. })
        ));
        assert_eq!(Advert::decode(&good[..7], m), Err(DecodeError::TooShort(7)));
        let mut z = v3_v4();
        z.addrs.clear();
        assert_eq!(
            Advert::decode(&z.encode(m.src, m.dst, ChecksumStyle::Rfc), m),
            Err(DecodeError::NoAddresses)
        );
        let mut zi = v3_v4();
        zi.interval_cs = 0;
        assert_eq!(
            Advert::decode(&zi.encode(m.src, m.dst, ChecksumStyle::Rfc), m),
            Err(DecodeError::ZeroInterval)
        );
    }

    /// The v3 interval field is 12 bits (RFC 5798 §5.2.7): the 4 reserved
    /// bits are ignored on receipt.
    #[test]
    fn v3_reserved_bits_ignored() {
        let m = meta("192.0.2.1", "224.0.0.18");
        let mut b = v3_v4().encode(m.src, m.dst, ChecksumStyle::Rfc);
        b[4] |= 0xf0;
        b[6] = 0;
        b[7] = 0;
        let ck = internet_checksum(&[pseudo_header(m.src, m.dst, b.len()).as_slice(), &b]);
        b[6..8].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(Advert::decode(&b, m).unwrap().0.interval_cs, 100);
    }

    #[test]
    fn v2_over_ipv6_and_ah_refused() {
        let mut a = v3_v4();
        a.version = Version::V2;
        let m = meta("192.0.2.1", "224.0.0.18");
        let mut b = a.encode(m.src, m.dst, ChecksumStyle::Rfc);
        b[4] = 2;
        b[6] = 0;
        b[7] = 0;
        let ck = internet_checksum(&[&b]);
        b[6..8].copy_from_slice(&ck.to_be_bytes());
        assert_eq!(Advert::decode(&b, m), Err(DecodeError::BadAuthType(2)));
        assert_eq!(
            Advert::decode(&b, meta("fe80::1", "ff02::12")),
            Err(DecodeError::V2OverIpv6)
        );
    }
}
