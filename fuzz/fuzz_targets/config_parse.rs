//! Declaration parser + validator (`config::parse`) on arbitrary bytes.
//!
//! A refusal must name where the problem is; an accepted declaration must
//! survive its own JSON form unchanged (the NixOS module and `check-config`
//! rely on one meaning per document), and, if it has an nginx part, render
//! to a well-formed config.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nginx_ha::config::{self, LoadError};
use nginx_ha::render::{RenderError, RenderOptions, render_declaration};

fuzz_target!(|data: &[u8]| {
    match config::parse(data) {
        Err(LoadError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in &problems {
                assert!(!p.path.is_empty(), "problem without a path: {p:?}");
                assert!(!p.message.is_empty(), "problem without a message: {p:?}");
            }
        }
        Err(e) => assert!(!e.lines().is_empty()),
        Ok(d) => {
            let _ = config::summary(&d);
            let json = match serde_json::to_vec(&d) {
                Ok(j) => j,
                Err(e) => panic!("a valid declaration does not serialise: {e}"),
            };
            match config::parse(&json) {
                Ok(back) => assert_eq!(back, d, "JSON round trip changed the declaration"),
                Err(e) => panic!("its own JSON form is refused: {:?}", e.lines()),
            }
            match render_declaration(&d, &RenderOptions::default()) {
                Ok(out) => {
                    if let Err(e) = nginx_ha_fuzz::check_structure(&out) {
                        panic!("rendered config is malformed: {e}\n{out}");
                    }
                }
                Err(RenderError::NoNginx) => assert!(d.nginx.is_none()),
                Err(e) => panic!("a valid declaration does not render: {e}"),
            }
        }
    }
});
