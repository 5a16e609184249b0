//! VRRPv2/v3 advert decoder, IPv4 and IPv6 (framing: nginx_ha_fuzz::frame).
//!
//! Besides "never panics", every accepted advert must be self-consistent
//! and survive a round trip through the encoder: what the daemon acts on is
//! exactly what the wire said.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_ha::vrrp::packet::{Advert, Auth, V3_MAX_INTERVAL_CS, Version};

fuzz_target!(|data: &[u8]| {
    let Some(f) = nginx_ha_fuzz::frame(data) else {
        return;
    };
    match Advert::decode(&f.msg, f.ip) {
        Err(e) => {
            // Every refusal has a counter name and a message for the log.
            assert!(!e.counter().is_empty());
            assert!(!e.to_string().is_empty());
        }
        Ok((adv, style)) => {
            let v4 = f.ip.src.is_ipv4();
            assert_eq!(f.ip.ttl, 255, "accepted TTL {}", f.ip.ttl);
            assert_eq!(v4, f.ip.dst.is_ipv4(), "accepted mixed families");
            assert_eq!(adv.vrid, f.msg[1]);
            assert_ne!(adv.vrid, 0);
            assert_eq!(adv.priority, f.msg[2]);
            assert_eq!(adv.addrs.len(), usize::from(f.msg[3]));
            assert!(!adv.addrs.is_empty());
            assert!(adv.addrs.iter().all(|a| a.is_ipv4() == v4));
            match adv.version {
                Version::V2 => {
                    assert!(v4, "accepted VRRPv2 over IPv6");
                    assert_eq!(adv.interval_cs % 100, 0);
                }
                Version::V3 => assert_eq!(adv.auth, Auth::None),
            }
            assert!((1..=V3_MAX_INTERVAL_CS.max(25_500)).contains(&adv.interval_cs));
            let _ = adv.to_string();

            let again = adv.encode(f.ip.src, f.ip.dst, style);
            match Advert::decode(&again, f.ip) {
                Ok((back, _)) => assert_eq!(back, adv, "round trip changed the advert"),
                Err(e) => panic!("re-encoded advert refused: {e}"),
            }
        }
    }
});
