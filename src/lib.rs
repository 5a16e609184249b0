//! nginx-ha: VRRP (v2/v3, IPv4/IPv6) with built-in nginx health checks.
//!
//! `vrrp` is the protocol core: packet codec and the RFC state machine,
//! with no I/O and no clock. Everything that touches the system lives
//! outside it.

// Unsafe code needs a visible decision: an `allow` on the one function
// that has it, where no safe wrapper (nix, rustix, socket2, tokio) exists.
#![deny(unsafe_code)]

pub mod alarm;
pub mod anycast;
pub mod child;
pub mod config;
pub mod daemon;
pub mod file_read;
pub mod health;
pub mod logging;
pub mod net;
pub mod privileges;
pub mod render;

// The pure core, under the names the rest of the daemon uses.
pub use nginx_ha_core::{node, vrrp};
