//! The `anycast` part of the declaration: service addresses this node
//! announces to its routers through BIRD while its checks are healthy.
//! nginx-ha never writes BIRD's config; it enables and disables static
//! protocols that the BIRD config declares (see docs/anycast.md).

use super::duration::HumanDuration;
use super::limits;
use super::schema::ABSOLUTE_PATH;
use super::types::IpPrefix;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Health-gated BGP anycast: while the tracked checks are healthy (and the
/// node is not in maintenance or stopping), BIRD announces `prefixes`;
/// otherwise they are withdrawn. With `anycast`, `instances` may be empty.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Anycast {
    /// The service addresses: IPv4 `/32` or IPv6 `/128`, the same on every
    /// node that serves them. Each must be a route of the BIRD static
    /// protocol of its family (`bird.protocol4` / `bird.protocol6`).
    #[schemars(example = ["203.0.113.80/32", "2001:db8:80::1/128"], length(min = 1, max = limits::ANYCAST_PREFIXES))]
    pub prefixes: Vec<IpPrefix>,
    /// How to reach BIRD and which of its protocols carry the prefixes.
    #[serde(default)]
    pub bird: Bird,
    /// Names of the checks that gate the announcement (`nginx` or names
    /// under `checks.extra`). Unset: all of them. Weights do not apply:
    /// any failing tracked check withdraws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = ["nginx"])]
    pub track_checks: Option<Vec<String>>,
    /// Hold-down: the tracked checks must have stayed healthy this long
    /// before the prefixes are (re)announced, so a flapping nginx stays
    /// withdrawn. Withdrawal is immediate. At most 1h.
    #[serde(default = "default_announce_after")]
    #[schemars(example = &"1s")]
    pub announce_after: HumanDuration,
    /// On SIGTERM: withdraw, wait this long so the routers move new
    /// connections elsewhere and in-flight ones finish, then exit. A second
    /// SIGTERM exits at once. At most 10m (keep systemd's stop timeout
    /// above it).
    #[serde(default = "default_drain")]
    #[schemars(example = &"5s")]
    pub drain: HumanDuration,
    /// Put the prefixes' addresses on `lo` at start, so this node's nginx
    /// answers on them (idempotent; left there on exit so in-flight
    /// connections finish). Turn off when the system configures them.
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub loopback: bool,
}

/// BIRD's control socket and the static protocols nginx-ha enables to
/// announce and disables to withdraw. BIRD's config declares them
/// `disabled;`, holding exactly the prefixes of their family as routes.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bird {
    /// BIRD's control socket (Debian's bird2 and NixOS' services.bird use
    /// the default).
    #[serde(default = "default_socket")]
    #[schemars(example = &"/run/bird/bird.ctl", extend("format" = ABSOLUTE_PATH))]
    pub socket: PathBuf,
    /// Name of the BIRD static protocol that holds the IPv4 prefixes (a
    /// BIRD symbol: letters, digits, `_`, not starting with a digit). Used
    /// only when there are IPv4 prefixes.
    #[serde(default = "default_protocol4")]
    #[schemars(example = &"nginx_ha4")]
    pub protocol4: String,
    /// Name of the BIRD static protocol that holds the IPv6 prefixes. Used
    /// only when there are IPv6 prefixes.
    #[serde(default = "default_protocol6")]
    #[schemars(example = &"nginx_ha6")]
    pub protocol6: String,
}

impl Default for Bird {
    fn default() -> Self {
        Bird {
            socket: default_socket(),
            protocol4: default_protocol4(),
            protocol6: default_protocol6(),
        }
    }
}

impl Anycast {
    /// The BIRD protocols in use: one per family that has prefixes, IPv4
    /// first.
    pub fn protocols(&self) -> Vec<(&str, Vec<IpPrefix>)> {
        let mut out = Vec::new();
        for (v4, name) in [(true, &self.bird.protocol4), (false, &self.bird.protocol6)] {
            let of: Vec<IpPrefix> = self
                .prefixes
                .iter()
                .filter(|p| p.addr.is_ipv4() == v4)
                .copied()
                .collect();
            if !of.is_empty() {
                out.push((name.as_str(), of));
            }
        }
        out
    }
}

fn yes() -> bool {
    true
}
fn default_announce_after() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_drain() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_socket() -> PathBuf {
    PathBuf::from("/run/bird/bird.ctl")
}
fn default_protocol4() -> String {
    "nginx_ha4".into()
}
fn default_protocol6() -> String {
    "nginx_ha6".into()
}
