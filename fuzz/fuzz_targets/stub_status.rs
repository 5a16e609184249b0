//! nginx stub_status page parser on arbitrary text.
//!
//! An accepted page must mean what it says: printing the numbers back in
//! nginx's own layout parses to the same numbers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_ha::health::stub_status::parse;

fuzz_target!(|data: &[u8]| {
    // The probe hands the parser text; lossy conversion is what a probe
    // reading a hostile body would see at worst.
    let body = String::from_utf8_lossy(data);
    if let Ok(s) = parse(&body) {
        let again = format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            s.active, s.accepts, s.handled, s.requests, s.reading, s.writing, s.waiting
        );
        assert_eq!(parse(&again), Ok(s));
    }
});
