//! The lab harness of nginx-ha's root tests, the demo and the benchmark:
//! network namespaces with real nginx and the real daemon (`Lab`), and the
//! systemd-nspawn twins of the NixOS VM tests built on it (`nspawn`).
//!
//! A dev-dependency only: the daemon's own crate never links it.
//!
//! Conventions (DESIGN.md): a unique prefix per lab; the bridge lives in a
//! namespace of its own, never the root one; only documentation-range
//! addresses (192.0.2.0/24, 2001:db8::/64); every wait is bounded; on drop
//! everything is torn down and only the PIDs this lab started are killed.

pub mod anycast;
mod keepalived;
mod lab;
mod net;
pub mod nspawn;

pub use anycast::AnycastLab;
pub use lab::{Lab, Node, instance};
pub use net::{CLIENT_V4, CLIENT_V6, VIP, children_of, http_get, in_netns, node_v4, node_v6, vip};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

/// Milliseconds: the unit of the timing literals in the tests and the
/// benchmark.
pub fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// Skew_Time of priority `p` at 100 ms adverts (RFC 5798 §6.1).
pub fn skew_100ms(p: u64) -> Duration {
    Duration::from_micros((256 - p) * 100_000 / 256)
}

/// Master_Down_Interval of priority `p` at 100 ms adverts.
pub fn mdi_100ms(p: u64) -> Duration {
    ms(300) + skew_100ms(p)
}

/// Runs a command and fails the test on a non-zero exit.
pub fn sh(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The daemon built next to an example binary (the demo, the benchmark):
/// target/<profile>/examples/NAME -> target/<profile>/nginx-ha.
pub fn daemon_next_to_examples() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("nginx-ha"))
        .filter(|p| p.exists())
        .expect("nginx-ha binary next to the examples (cargo build --release --bins --examples)")
}

/// Polls `f` every 5 ms until it returns Some or `limit` passes.
pub fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let end = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Skips (loudly) when the lab cannot run here; fails instead under CI,
/// where a skipped lab test would hide a broken install.
pub fn require_root_and_tools() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Path::new("/usr/sbin/nginx").exists()
        && Command::new("ip").arg("-V").output().is_ok();
    if !ok {
        if std::env::var_os("CI").is_some() {
            panic!("lab tests need root, iproute2 and nginx (CI installs them)");
        }
        eprintln!("SKIPPED: lab test needs root, iproute2 and /usr/sbin/nginx");
    }
    ok
}
