//! VRRPv2/v3 advert decoder, IPv4 and IPv6, framed by `props::frame`.
//! The properties are in fuzz/src/props.rs (shared with
//! tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nginx_ha_fuzz::props::vrrp_decode(data));
