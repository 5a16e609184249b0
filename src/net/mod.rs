//! The I/O edges of VRRP: raw sockets, rtnetlink, GARP/NA.

pub mod addr_requests;
pub mod announce;
pub mod netlink;
pub mod quiet;
pub mod vrrp_send;
pub mod vrrp_socket;
