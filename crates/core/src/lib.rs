//! nginx-ha's core, with no I/O and no clock: the declaration (parsing,
//! validation, schema), the VRRP protocol (packets and the RFC 5798 state
//! machine) and the node's policy around it. Being its own crate lets
//! Cargo, not only review, keep it free of sockets, tokio and the system
//! clock: CI fails when its dependency tree gains one of them.

pub mod config;
pub mod health;
pub mod node;
pub mod stub_status;
pub mod vrrp;
