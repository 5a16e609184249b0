//! Declaration parser + validator (`config::parse`) on arbitrary bytes.
//! The properties are in fuzz/src/props.rs (shared with
//! tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nginx_ha_fuzz::props::config_parse(data));
