//! Every input the fuzzers ever failed on, replayed through the same
//! properties the fuzz targets check (fuzz/src/props.rs, included as is),
//! so `cargo test` on stable keeps each fixed bug fixed without libFuzzer.
//!
//! Layout: tests/fixtures/fuzz-regressions/<target>/<name>, one raw fuzz
//! input per file, except render_nginx, whose inputs are the generated
//! nginx section as JSON (the fuzz target prints it with FUZZ_PRINT_JSON=1),
//! since the generator's byte format is not stable across its changes.

#[path = "../fuzz/src/props.rs"]
mod props;

use nginx_ha::config::nginx::Nginx;
use nginx_ha::render::RenderOptions;
use std::path::{Path, PathBuf};

fn inputs(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fuzz-regressions")
        .join(target);
    // git keeps no empty directory: a target nothing was found for yet has
    // none.
    if !dir.exists() {
        return Vec::new();
    }
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    files.retain(|p| p.is_file());
    files.sort();
    files
}

/// Runs `check` on every input of `target`, naming the file that fails.
fn replay(target: &str, check: impl Fn(&[u8])) -> usize {
    let files = inputs(target);
    for f in &files {
        let data = std::fs::read(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(outcome.is_ok(), "{} fails again", f.display());
    }
    files.len()
}

#[test]
fn vrrp_decode() {
    replay("vrrp_decode", props::vrrp_decode);
}

#[test]
fn config_parse() {
    assert!(replay("config_parse", props::config_parse) > 0);
}

#[test]
fn stub_status() {
    replay("stub_status", props::stub_status);
}

#[test]
fn bird_reply() {
    // The seeds too: captured BIRD replies must satisfy the property.
    let seeds = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/bird_reply");
    let mut n = 0;
    for e in std::fs::read_dir(&seeds).unwrap_or_else(|e| panic!("{}: {e}", seeds.display())) {
        let p = e.expect("seed").path();
        props::bird_reply(&std::fs::read(&p).expect("seed"));
        n += 1;
    }
    assert!(n >= 5);
    replay("bird_reply", props::bird_reply);
}

#[test]
fn http_url() {
    replay("http_url", props::http_url);
}

#[test]
fn render_nginx() {
    replay("render_nginx", |data| {
        let n: Nginx = match serde_json::from_slice(data) {
            Ok(n) => n,
            Err(e) => panic!("not an nginx section: {e}"),
        };
        props::render_nginx(&n, &RenderOptions::default());
    });
}

/// The framing helpers of props.rs, checked here because the regressions
/// depend on them: a keepalived capture in fuzz framing decodes as is.
#[test]
fn seed_framing_decodes() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/vrrp_decode/v3_ipv4_1s_1.bin");
    let data = std::fs::read(&seed).unwrap_or_else(|e| panic!("{}: {e}", seed.display()));
    let f = props::frame(&data).unwrap_or_else(|| panic!("{} does not frame", seed.display()));
    assert!(nginx_ha::vrrp::packet::Advert::decode(&f.msg, f.ip).is_ok());
    // Repairing with the RFC checksum keeps a correct message correct.
    let mut fixed = f.msg.clone();
    props::fix_checksum(&mut fixed, f.ip.src, f.ip.dst, props::Repair::Rfc);
    assert_eq!(fixed, f.msg);
    assert!(props::check_structure("server {\n}\n").is_ok());
    assert!(props::check_structure("server {\n").is_err());
    assert_eq!(props::internet_checksum(&[&[0xff, 0xff]]), 0);
}
