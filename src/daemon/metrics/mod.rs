//! The Prometheus endpoint (`metrics.listen`): `GET /metrics` over plain
//! HTTP. The event loop publishes a status snapshot into a watch channel;
//! the HTTP task renders from the latest one and never waits for the loop.

mod anycast;
mod exposition;
mod process;
mod server;

pub use server::bind;
