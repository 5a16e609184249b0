//! The shipped alert rules (contrib/prometheus/): `promtool check rules`
//! accepts them and `promtool test rules` shows them firing for two
//! masters, no master, FAULT and dropped adverts, and silent for a healthy
//! pair. promtool comes with Debian's `prometheus` (scripts/setup-debian).

use std::path::Path;
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/prometheus");

/// promtool's output, or None (skipped) when it is not installed outside CI.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(DIR)
        .output()
    {
        Ok(out) => Some(out),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool: {e} (scripts/setup-debian installs prometheus)"
            );
            eprintln!("SKIPPED: promtool not installed ({e})");
            None
        }
    }
}

fn assert_ok(args: &[&str]) {
    if let Some(out) = promtool(args) {
        assert!(
            out.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_rules_are_valid() {
    assert!(Path::new(DIR).join("alerts.yml").is_file());
    assert_ok(&["check", "rules", "alerts.yml"]);
}

#[test]
fn the_rules_fire_for_split_brain_and_no_master_and_not_for_a_healthy_pair() {
    assert_ok(&["test", "rules", "alerts.test.yml"]);
}
