//! Template rendering of structured nginx declarations
//! (nginx_ha_fuzz::nginx_gen), valid and nearly valid.
//!
//! `render` validates again before laying anything out. The properties:
//! it never panics; it refuses exactly what validation refuses; whatever it
//! accepts renders (a template error here is a bug in the templates or the
//! model) to a well-formed config, byte-identical on a second run, and the
//! declaration round-trips through its JSON form.
#![no_main]

use arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use nginx_ha::config::Problems;
use nginx_ha::config::nginx::{Nginx, validate};
use nginx_ha::render::{RenderError, RenderOptions, render};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(n) = nginx_ha_fuzz::nginx_gen::nginx(&mut u) else {
        return;
    };
    let opts = RenderOptions {
        nginx_version: nginx_ha_fuzz::nginx_gen::nginx_version(&mut u).unwrap_or(None),
        virtual_ips: nginx_ha_fuzz::nginx_gen::virtual_ips(&mut u).unwrap_or_default(),
    };
    let mut p = Problems::default();
    validate(&mut p, &n);
    let valid = p.is_empty();
    match render(&n, &opts) {
        Ok(out) => {
            assert!(valid, "rendered a declaration validation refuses");
            if let Err(e) = nginx_ha_fuzz::check_structure(&out) {
                panic!("rendered config is malformed: {e}\n{out}");
            }
            match render(&n, &opts) {
                Ok(second) => assert_eq!(out, second, "rendering is not deterministic"),
                Err(e) => panic!("second render failed: {e}"),
            }
            let back: Nginx = match serde_json::to_string(&n).map(|j| serde_json::from_str(&j)) {
                Ok(Ok(b)) => b,
                other => panic!("JSON round trip failed: {other:?}"),
            };
            assert_eq!(back, n, "JSON round trip changed the declaration");
        }
        Err(RenderError::Invalid(problems)) => {
            assert!(!valid, "validation passed but render refused: {problems:?}");
            assert!(problems.iter().all(|q| !q.path.is_empty()));
        }
        Err(e) => panic!("render failed on a valid declaration: {e}"),
    }
});
