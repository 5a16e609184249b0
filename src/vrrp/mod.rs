//! The VRRP protocol core. No sockets, no clock, no tokio: inputs come in
//! with the current time, actions come out.

pub mod instance;
pub mod packet;
