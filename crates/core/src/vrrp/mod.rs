//! The VRRP protocol core. No sockets, no clock, no tokio: inputs come in
//! with the current time, actions come out.

mod counters;
pub mod instance;
pub mod packet;
