//! The codec against adverts captured from Debian's keepalived 2.2.7
//! (tests/fixtures/keepalived, recaptured by its capture.sh). Each packet
//! must decode to what keepalived was configured to send, and re-encoding
//! the decoded advert must give keepalived's bytes back.

use nginx_ha::vrrp::packet::{Advert, Auth, ChecksumStyle, DecodeError, IpMeta, VRRP_TTL, Version};
use std::net::IpAddr;
use std::path::PathBuf;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keepalived");
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("fixture dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "hex") {
            let hex = std::fs::read_to_string(&p).expect("read");
            let bytes = (0..hex.trim().len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex.trim()[i..i + 2], 16).expect("hex"))
                .collect();
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, bytes));
        }
    }
    out.sort();
    out
}

/// Splits a full IP packet into the IP facts and the VRRP message.
fn split_ip(pkt: &[u8]) -> (IpMeta, &[u8]) {
    match pkt[0] >> 4 {
        4 => {
            let ihl = usize::from(pkt[0] & 0x0f) * 4;
            assert_eq!(pkt[9], 112, "protocol");
            let src = IpAddr::from(<[u8; 4]>::try_from(&pkt[12..16]).unwrap());
            let dst = IpAddr::from(<[u8; 4]>::try_from(&pkt[16..20]).unwrap());
            (
                IpMeta {
                    src,
                    dst,
                    ttl: pkt[8],
                },
                &pkt[ihl..],
            )
        }
        6 => {
            assert_eq!(pkt[6], 112, "next header");
            let src = IpAddr::from(<[u8; 16]>::try_from(&pkt[8..24]).unwrap());
            let dst = IpAddr::from(<[u8; 16]>::try_from(&pkt[24..40]).unwrap());
            (
                IpMeta {
                    src,
                    dst,
                    ttl: pkt[7],
                },
                &pkt[40..],
            )
        }
        v => panic!("IP version {v}"),
    }
}

fn expected_vrid(name: &str) -> u8 {
    match name {
        n if n.starts_with("v2_pass_ipv4") => 51,
        n if n.starts_with("v3_ipv4_") => 52,
        n if n.starts_with("v3_ipv6") => 53,
        n if n.starts_with("v3_unicast_ipv4_oldcksum") => 56,
        n if n.starts_with("v3_unicast_ipv4_2peers") => 57,
        n if n.starts_with("v3_unicast_ipv4") => 54,
        n if n.starts_with("v2_unicast_ipv4") => 55,
        n if n.starts_with("v3_unicast_ipv6_ttl255") => 59,
        n if n.starts_with("v3_unicast_ipv6") => 58,
        n => panic!("unknown fixture {n}"),
    }
}

#[test]
fn every_keepalived_advert_decodes_and_reencodes_byte_for_byte() {
    let all = fixtures();
    assert!(all.len() >= 30, "fixtures missing: {}", all.len());
    let mut decoded = 0;
    for (name, pkt) in &all {
        let (ip, msg) = split_ip(pkt);
        // keepalived sends IPv6 unicast with hop limit 64 unless told
        // `unicast_ttl 255`; RFC 5798 §7.1 makes a receiver drop those.
        if ip.ttl != VRRP_TTL {
            assert!(
                name.starts_with("v3_unicast_ipv6_") && !name.contains("ttl255"),
                "{name}"
            );
            assert_eq!(
                Advert::decode(msg, ip),
                Err(DecodeError::BadTtl(ip.ttl)),
                "{name}"
            );
            continue;
        }
        let (adv, style) = Advert::decode(msg, ip).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(adv.vrid, expected_vrid(name), "{name}");
        assert_eq!(
            adv.priority,
            if name.contains("prio0") { 0 } else { 150 },
            "{name}"
        );
        let want_version = if name.starts_with("v2") {
            Version::V2
        } else {
            Version::V3
        };
        assert_eq!(adv.version, want_version, "{name}");
        let want_interval = if name.contains("100ms") { 10 } else { 100 };
        assert_eq!(adv.interval_cs, want_interval, "{name}");
        let want_style = if name.contains("oldcksum") {
            ChecksumStyle::OldUnicast
        } else {
            ChecksumStyle::Rfc
        };
        assert_eq!(style, want_style, "{name}");
        if name.starts_with("v2_pass") {
            assert_eq!(adv.auth, Auth::pass(b"s3cret").unwrap(), "{name}");
        } else {
            assert_eq!(adv.auth, Auth::None, "{name}");
        }
        if name.starts_with("v3_ipv4_") {
            let want: Vec<IpAddr> = vec![
                "192.0.2.101".parse().unwrap(),
                "192.0.2.102".parse().unwrap(),
            ];
            assert_eq!(adv.addrs, want, "{name}");
        }
        // Our encoder produces keepalived's exact bytes.
        assert_eq!(
            adv.encode(ip.src, ip.dst, style),
            msg,
            "{name}: re-encoding differs"
        );
        decoded += 1;
    }
    assert!(decoded >= 27, "{decoded}");
}

#[test]
fn a_flipped_bit_anywhere_is_caught() {
    for (name, pkt) in fixtures() {
        let (ip, msg) = split_ip(&pkt);
        if ip.ttl != VRRP_TTL {
            continue;
        }
        for i in 0..msg.len() {
            let mut m = msg.to_vec();
            m[i] ^= 0x01;
            let r = Advert::decode(&m, ip);
            // A flip in the v2 auth type may turn PASS into "none" with the
            // checksum still failing; whatever the reason, it must not pass
            // as the original advert.
            if let Ok((a, _)) = &r {
                let (orig, _) = Advert::decode(msg, ip).unwrap();
                assert_ne!(a, &orig, "{name} byte {i}");
                panic!("{name}: flipped byte {i} still decodes: {a}");
            }
        }
    }
}
