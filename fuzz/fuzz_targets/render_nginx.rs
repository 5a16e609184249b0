//! Template rendering of structured nginx declarations, valid and nearly
//! valid (fuzz/src/nginx_gen.rs). The properties are in fuzz/src/props.rs
//! (shared with tests/fuzz_regressions.rs, which replays a failing case from
//! its JSON form).
#![no_main]

use arbitrary::Unstructured;
use nginx_ha::render::RenderOptions;
use nginx_ha_fuzz::nginx_gen;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(n) = nginx_gen::nginx(&mut u) else {
        return;
    };
    let opts = RenderOptions {
        nginx_version: nginx_gen::nginx_version(&mut u).unwrap_or(None),
        virtual_ips: nginx_gen::virtual_ips(&mut u).unwrap_or_default(),
    };
    // A failing case is printed as JSON, ready for
    // tests/fixtures/fuzz-regressions/render_nginx/.
    if std::env::var_os("FUZZ_PRINT_JSON").is_some()
        && let Ok(j) = serde_json::to_string_pretty(&n)
    {
        eprintln!("{j}");
    }
    nginx_ha_fuzz::props::render_nginx(&n, &opts);
});
