//! BIRD control-socket reply parser on arbitrary bytes.
//! The properties are in fuzz/src/props.rs (shared with
//! tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nginx_ha_fuzz::props::bird_reply(data));
