//! `HttpUrl::parse`, the health checks' URL subset, on arbitrary text.
//! The properties are in fuzz/src/props.rs (shared with
//! tests/fuzz_regressions.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nginx_ha_fuzz::props::http_url(data));
