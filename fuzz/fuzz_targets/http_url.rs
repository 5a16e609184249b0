//! `HttpUrl::parse`, the health checks' URL subset, on arbitrary text.
//!
//! An accepted URL must be one the probe can use as is: a non-zero port, a
//! path starting with '/', no whitespace or control characters to smuggle
//! into the request line or Host header, and a stable meaning when written
//! back out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_ha::health::url::HttpUrl;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(u) = HttpUrl::parse(text) {
        assert_ne!(u.addr.port(), 0);
        assert!(u.path.starts_with('/'), "path {:?}", u.path);
        for part in [&u.host, &u.path] {
            assert!(
                !part.chars().any(|c| c.is_control() || c.is_whitespace()),
                "{part:?} would reach the request as is"
            );
        }
        assert!(!u.host.contains('/'), "host {:?}", u.host);
        let again = format!("http://{}{}", u.host, u.path);
        assert_eq!(HttpUrl::parse(&again), Ok(u));
    }
});
