//! The layout promises of the README's tour, held by a test: no source
//! file grows past 600 lines (split it by what it does instead), and the
//! core crate depends on nothing that does I/O or reads the clock.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir)
        .expect("readable source dir")
        .flatten()
    {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_source_file_is_over_600_lines() {
    let mut files = Vec::new();
    for dir in ["src", "crates/core/src", "crates/lab/src"] {
        rust_files(Path::new(dir), &mut files);
    }
    assert!(files.len() > 30);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let n = std::fs::read_to_string(f).ok()?.lines().count();
            (n > 600).then(|| format!("{}: {n} lines", f.display()))
        })
        .collect();
    assert!(long.is_empty(), "split these by what they do: {long:?}");
}

#[test]
fn the_core_crate_depends_on_no_io() {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "nginx-ha-core",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output()
        .expect("cargo tree");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(crates.contains(&"serde"), "{tree}");
    for io in [
        "tokio",
        "socket2",
        "mio",
        "libc",
        "nix",
        "rustix",
        "rtnetlink",
        "netlink-sys",
        "pnet_packet",
        "caps",
        "sd-notify",
    ] {
        assert!(
            !crates.contains(&io),
            "nginx-ha-core depends on {io}:\n{tree}"
        );
    }
}
