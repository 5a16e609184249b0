//! The bad-declarations corpus: every file in
//! tests/fixtures/bad-declarations/ goes through the real binary's
//! `check-config`, which must refuse it with exit code 1 (never a panic's
//! 101, never a crash by signal) and a message that names where the
//! problem is: the sidecar `<name>.expect` holds a substring (usually
//! `path: words`) that must appear in stderr.
//!
//! Inputs too big to commit (a 10 MB string, a megabyte of nesting) are
//! generated here.

use std::path::{Path, PathBuf};
use std::process::Command;

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/bad-declarations"
);

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check_config(file: &Path) -> Outcome {
    let out = Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
        .arg("check-config")
        .arg("--config")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run nginx-ha: {e}"));
    Outcome {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// What is wrong with one refusal, if anything.
fn judge(file: &Path, expect: &str) -> Option<String> {
    let o = check_config(file);
    let name = file.display();
    if o.stderr.contains("panicked") || o.code == Some(101) {
        return Some(format!("{name}: PANIC\n{}", o.stderr));
    }
    if o.code != Some(1) {
        return Some(format!(
            "{name}: exit {:?} (want 1; None means killed by a signal)\nstdout: {}\nstderr: {}",
            o.code, o.stdout, o.stderr
        ));
    }
    if !o.stdout.is_empty() {
        return Some(format!(
            "{name}: refused but printed to stdout: {}",
            o.stdout
        ));
    }
    if !o.stderr.contains(expect) {
        return Some(format!(
            "{name}: stderr lacks {expect:?}\nstderr: {}",
            o.stderr
        ));
    }
    None
}

fn corpus() -> Vec<(PathBuf, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let sidecar = f.with_extension("expect");
            let expect = std::fs::read_to_string(&sidecar).unwrap_or_else(|e| {
                panic!("{}: {e} (every corpus file needs one)", sidecar.display())
            });
            (f, expect.trim_end_matches('\n').to_string())
        })
        .collect()
}

#[test]
fn every_corpus_file_is_refused_with_its_field_named() {
    let cases = corpus();
    assert!(cases.len() >= 50, "corpus too small: {}", cases.len());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(f, expect)| {
            assert!(!expect.is_empty(), "{}: empty .expect", f.display());
            judge(f, expect)
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} corpus files:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn every_expect_file_has_its_input() {
    for e in std::fs::read_dir(CORPUS).unwrap_or_else(|e| panic!("{CORPUS}: {e}")) {
        let p = e.map(|e| e.path()).unwrap_or_else(|e| panic!("{e}"));
        if p.extension().is_some_and(|x| x == "expect") {
            assert!(
                p.with_extension("json").is_file(),
                "{} has no .json beside it",
                p.display()
            );
        }
    }
}

/// A base declaration with `value` as the node name.
fn with_value(value: &str) -> String {
    format!(
        r#"{{"node": {{"name": {value}, "priority": 150}}, "instances": {{"web": {{"interface": "eth0", "virtualRouterId": 51, "virtualIps": ["192.0.2.100/24"]}}}}}}"#
    )
}

#[test]
fn generated_giants_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let write = |name: &str, data: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    };
    let ten_mb = "A".repeat(10 << 20);
    let half_mb = "A".repeat(512 << 10);
    let cases = [
        // Over the 1 MiB cap: refused before parsing, so the file is named.
        (
            write(
                "10mb-string.json",
                with_value(&format!("\"{ten_mb}\"")).as_bytes(),
            ),
            "a declaration may be at most 1048576".to_string(),
        ),
        (
            write(
                "10mb-unknown-key.json",
                format!("{{\"{ten_mb}\": 1}}").as_bytes(),
            ),
            "a declaration may be at most 1048576".to_string(),
        ),
        // Under the cap: parsed, and the long value named by its field,
        // shortened in the message.
        (
            write(
                "half-mb-name.json",
                with_value(&format!("\"{half_mb}\"")).as_bytes(),
            ),
            format!("node.name: \"{}…\" must be", "A".repeat(40)),
        ),
        // A megabyte of nesting: serde_json's recursion limit (128) is
        // never reached, since the typed parse stops at the first level
        // that cannot be an array.
        (
            write(
                "deep-nesting-1mb.json",
                format!(
                    "{{\"node\": {}{}}}",
                    "[".repeat(500_000),
                    "]".repeat(500_000)
                )
                .as_bytes(),
            ),
            "node.0: invalid type: sequence".to_string(),
        ),
        (
            write("deep-nesting-top.json", "[".repeat(1_000_000).as_bytes()),
            "0.0: invalid type: sequence".to_string(),
        ),
        // Not a file at all.
        (dir.path().to_path_buf(), "cannot read".to_string()),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(f, expect)| judge(f, expect))
        .map(|m| m.chars().take(2000).collect())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Issue 13 point 4: a FIFO blocked `check-config` until a writer came,
/// and /dev/zero was read whole (hundreds of MB) before the size check.
/// Both are refused at once, naming the path and what it is.
#[test]
fn special_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let fifo = dir.path().join("fifo.json");
    let c =
        std::ffi::CString::new(fifo.to_str().unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    // SAFETY: a valid NUL-terminated path and a mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    for (file, what) in [
        (fifo.clone(), "a FIFO (named pipe)"),
        (PathBuf::from("/dev/zero"), "a character device"),
        (dir.path().to_path_buf(), "a directory"),
    ] {
        let start = std::time::Instant::now();
        let mut child = Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
            .arg("check-config")
            .arg("--config")
            .arg(&file)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nginx-ha: {e}"));
        let status = loop {
            if let Some(s) = child.try_wait().unwrap_or_else(|e| panic!("{e}")) {
                break Some(s);
            }
            if start.elapsed() > std::time::Duration::from_secs(5) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let took = start.elapsed();
        let status =
            status.unwrap_or_else(|| panic!("{}: still running after 5 s", file.display()));
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        assert_eq!(status.code(), Some(1), "{}: {err}", file.display());
        let want = format!(
            "cannot read {}: it is {what}, not a regular file",
            file.display()
        );
        assert!(err.contains(&want), "stderr lacks {want:?}: {err}");
        assert!(
            took < std::time::Duration::from_secs(1),
            "{}: {took:?}",
            file.display()
        );
    }
}
