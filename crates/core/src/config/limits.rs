//! The numeric ranges of the declaration, in one place: validation checks
//! against them and the JSON schema (`nginx-ha schema`) publishes them, so
//! the NixOS option types generated from the schema accept exactly what
//! `check-config` accepts.

use std::ops::RangeInclusive;

pub const NODE_PRIORITY: RangeInclusive<u64> = 1..=254;
/// 255 belongs to the address owner (RFC 5798 §5.2.4).
pub const INSTANCE_PRIORITY: RangeInclusive<u64> = 1..=255;
pub const VRID: RangeInclusive<u64> = 1..=255;
pub const ANNOUNCE_COUNT: RangeInclusive<u64> = 0..=100;
pub const RISE_FALL: RangeInclusive<u64> = 1..=100;
pub const WEIGHT: RangeInclusive<i64> = -254..=254;
pub const EXPECT_STATUS: RangeInclusive<u64> = 100..=599;
pub const UPSTREAM_KEEPALIVE: RangeInclusive<u64> = 1..=10_000;
pub const SERVER_WEIGHT: RangeInclusive<u64> = 1..=1000;
pub const MAX_FAILS: RangeInclusive<u64> = 0..=1000;
pub const PORT: RangeInclusive<u64> = 1..=65535;

/// `"{v} is out of A..=B"` when `v` is outside `r`.
pub fn out_of<T: PartialOrd + std::fmt::Display>(r: &RangeInclusive<T>, v: T) -> Option<String> {
    (!r.contains(&v)).then(|| format!("{v} is out of {}..={}", r.start(), r.end()))
}

/// Most service addresses one node announces; each is a route in BIRD and
/// an address on `lo`.
pub const ANYCAST_PREFIXES: u32 = 256;
/// Longest anycast hold-down (`anycast.announceAfter`).
pub const ANNOUNCE_AFTER_MAX: std::time::Duration = std::time::Duration::from_secs(3600);
/// Longest anycast drain (`anycast.drain`): systemd's stop timeout has to
/// cover it.
pub const DRAIN_MAX: std::time::Duration = std::time::Duration::from_secs(600);
/// `sun_path` holds 108 bytes with the terminating NUL.
pub const UNIX_SOCKET_PATH_MAX: usize = 107;
/// BIRD symbols are short identifiers; 64 keeps log lines and metric
/// labels small.
pub const BIRD_SYMBOL_MAX: usize = 64;
