//! Helpers shared by the fuzz targets: the framing that turns fuzzer bytes
//! into a VRRP message plus its IP-layer facts, a checksum fixer so the
//! fuzzer gets past the checksum into the rest of the decoder, the
//! structural check every rendered nginx config must pass, and a generator
//! of structured nginx declarations.

pub mod nginx_gen;

use nginx_ha::vrrp::packet::IpMeta;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How the checksum of a framed message is treated before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Keep the bytes as they are (seeds from real captures are correct).
    Keep,
    /// Recompute it the RFC 5798 way (pseudo-header with the real dst).
    Rfc,
    /// Recompute it without pseudo-header (VRRPv2, and v3 "asV2").
    AsV2,
    /// keepalived's old unicast checksum: pseudo-header naming 224.0.0.18.
    OldUnicast,
}

/// A fuzz input split into the VRRP message and what the IP layer knows.
#[derive(Debug)]
pub struct Framed {
    pub ip: IpMeta,
    pub msg: Vec<u8>,
    pub repair: Repair,
}

/// Framing (documented in fuzz/README.md, built by fuzz/seeds/make-vrrp-seeds):
///
/// ```text
/// byte 0   flags: bit 0 = IPv6; bit 1 = destination of the other family;
///          bits 2-3 = checksum repair (0 keep, 1 rfc, 2 asV2, 3 oldUnicast)
/// byte 1   TTL / hop limit
/// then     source address (4 or 16 bytes), destination address (4 or 16)
/// rest     the VRRP message (the IP payload)
/// ```
///
/// Deriving every IP fact from the input lets the fuzzer explore the TTL,
/// family and pseudo-header checks as freely as the message itself.
pub fn frame(data: &[u8]) -> Option<Framed> {
    let (&flags, rest) = data.split_first()?;
    let (&ttl, mut rest) = rest.split_first()?;
    let v6 = flags & 1 != 0;
    let mismatch = flags & 2 != 0;
    let repair = match (flags >> 2) & 3 {
        0 => Repair::Keep,
        1 => Repair::Rfc,
        2 => Repair::AsV2,
        _ => Repair::OldUnicast,
    };
    let mut take = |is_v6: bool| -> Option<IpAddr> {
        if is_v6 {
            let (a, r) = rest.split_first_chunk::<16>()?;
            rest = r;
            Some(IpAddr::V6(Ipv6Addr::from(*a)))
        } else {
            let (a, r) = rest.split_first_chunk::<4>()?;
            rest = r;
            Some(IpAddr::V4(Ipv4Addr::from(*a)))
        }
    };
    let src = take(v6)?;
    let dst = take(v6 != mismatch)?;
    let mut msg = rest.to_vec();
    fix_checksum(&mut msg, src, dst, repair);
    Some(Framed {
        ip: IpMeta { src, dst, ttl },
        msg,
        repair,
    })
}

/// The Internet checksum (RFC 1071) over concatenated parts. Written here
/// again rather than exported from the library: the harness should not
/// trust the code it checks to compute its own expected values.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut bytes = parts.iter().flat_map(|p| p.iter().copied());
    let mut sum: u32 = 0;
    loop {
        match (bytes.next(), bytes.next()) {
            (Some(hi), Some(lo)) => sum += u32::from(u16::from_be_bytes([hi, lo])),
            (Some(hi), None) => sum += u32::from(hi) << 8,
            _ => break,
        }
        // Fold as we go so a megabyte of 0xff cannot overflow u32.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// RFC 5798 §5.2.8 pseudo-header (RFC 768 for IPv4, RFC 8200 §8.1 for IPv6).
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
    let mut ph = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ph.extend_from_slice(&s.octets());
            ph.extend_from_slice(&d.octets());
            ph.extend_from_slice(&[0, 112]);
            ph.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            ph.extend_from_slice(&v6_octets(s));
            ph.extend_from_slice(&v6_octets(d));
            ph.extend_from_slice(&(len as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, 112]);
        }
    }
    ph
}

/// Rewrites bytes 6..8 so that the message passes the chosen checksum.
/// VRRPv2 messages always get the plain checksum, as RFC 3768 has no other.
pub fn fix_checksum(msg: &mut [u8], src: IpAddr, dst: IpAddr, repair: Repair) {
    if repair == Repair::Keep || msg.len() < 8 {
        return;
    }
    msg[6] = 0;
    msg[7] = 0;
    let v2 = msg[0] >> 4 == 2;
    let ck = match repair {
        _ if v2 => internet_checksum(&[msg]),
        Repair::AsV2 => internet_checksum(&[msg]),
        Repair::OldUnicast => {
            let mcast = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
            internet_checksum(&[&pseudo_header(src, mcast, msg.len()), msg])
        }
        _ => internet_checksum(&[&pseudo_header(src, dst, msg.len()), msg]),
    };
    msg[6..8].copy_from_slice(&ck.to_be_bytes());
}

/// The line-level shape every rendered config must have (the same rules as
/// tests/render.rs `assert_structure`): each statement ends in `;`, `{` or
/// `}`, braces balance and never go negative, nesting stays within
/// http > server > location (3, counting `map` and `upstream` as blocks at
/// the http level), and single quotes appear only inside `map` bodies, which
/// the templates write themselves; a config with any statement ends with a
/// closed block. Returns the first violation.
pub fn check_structure(out: &str) -> Result<(), String> {
    let mut depth: i64 = 0;
    let mut in_map = false;
    let mut statements = 0usize;
    for (i, line) in out.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !(t.ends_with(';') || t.ends_with('{') || t == "}") {
            return Err(format!("line {n}: {line:?} is not a complete statement"));
        }
        statements += 1;
        if t.starts_with("map ") {
            in_map = true;
        }
        if !in_map && t.contains('\'') {
            return Err(format!("line {n}: {line:?} has a quote outside a map"));
        }
        for c in t.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err(format!("line {n}: unbalanced '}}'"));
            }
        }
        if depth == 0 {
            in_map = false;
        }
        if depth > 3 {
            return Err(format!("line {n}: nested deeper than 3 blocks"));
        }
    }
    if depth != 0 {
        return Err(format!("{depth} block(s) left open"));
    }
    // An nginx part with no site and no status page renders to comments
    // only, which is a valid (empty) include.
    if statements > 0 && !out.ends_with("}\n") {
        return Err("does not end with a closed block".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc_1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (one's complement 220d).
        assert_eq!(
            internet_checksum(&[&[0x00, 0x01, 0xf2, 0x03], &[0xf4, 0xf5, 0xf6, 0xf7]]),
            !0xddf2
        );
    }
}
