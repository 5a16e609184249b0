//! The declaration: one JSON document that describes the node, its VRRP
//! instances, the health checks, the notify hooks and the nginx sites. The
//! NixOS module generates it; the daemon and `render-nginx` read it.
//!
//! Keys are camelCase and unknown keys are refused, so a typo is an error
//! rather than a silently ignored setting. Numbers that have a range are read
//! wide (`u64`/`i64`) and range-checked in `validate`, so the error names the
//! rule ("out of 1..=255") rather than a Rust type.

use super::duration::HumanDuration;
use super::nginx::Nginx;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Declaration {
    pub node: Node,
    #[serde(default)]
    pub instances: BTreeMap<String, Instance>,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub notify: Notify,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<Nginx>,
}

/// What differs between the nodes of one cluster.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// VRRP priority of this node for every instance that does not override
    /// it. 1..=254; the highest healthy node is master.
    pub priority: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FastTakeover {
    /// On only where it is provably safe: unicast with exactly one peer.
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum V3Checksum {
    Rfc,
    AsV2,
    OldUnicast,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Instance {
    pub interface: String,
    pub virtual_router_id: u64,
    #[serde(default = "default_version")]
    pub version: u64,
    pub virtual_ips: Vec<IpPrefix>,
    #[serde(default = "default_advert_interval")]
    pub advert_interval: HumanDuration,
    /// Overrides `node.priority` for this instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u64>,
    #[serde(default = "yes")]
    pub preempt: bool,
    /// How long a higher-priority node waits, after it becomes eligible
    /// (start-up, or its checks pass again), before it takes the VIP back.
    #[serde(default)]
    pub preempt_delay: HumanDuration,
    /// RFC 5798 Accept_Mode. nginx must answer on the VIP, so this defaults
    /// to true; keepalived's equivalent is the default non-strict mode.
    #[serde(default = "yes")]
    pub accept_mode: bool,
    /// This node owns the virtual addresses (RFC 5798 §3: priority 255).
    #[serde(default)]
    pub address_owner: bool,
    /// Unicast instead of multicast. May list every node of the cluster: the
    /// node's own `unicastSource` is skipped, so one list serves all nodes.
    #[serde(default)]
    pub unicast_peers: Vec<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unicast_source: Option<IpAddr>,
    /// VRRPv2 simple-text password (at most 8 bytes), read at start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_password_file: Option<PathBuf>,
    /// VRRPv3-over-IPv4 checksum variant to send and to accept besides the
    /// RFC's: `rfc` (default), `asV2` (no pseudo-header), or `oldUnicast`
    /// (keepalived's `old_unicast_checksum`: pseudo-header with 224.0.0.18).
    #[serde(default = "default_v3_checksum")]
    pub v3_checksum: V3Checksum,
    #[serde(default)]
    pub announce: Announce,
    #[serde(default = "default_fast_takeover")]
    pub fast_takeover: FastTakeover,
    /// Names of the checks that affect this instance (`nginx` or the names
    /// under `checks.extra`). Default: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track_checks: Option<Vec<String>>,
    /// Enter FAULT when the interface loses its link.
    #[serde(default = "yes")]
    pub track_interface: bool,
}

/// Gratuitous ARP / unsolicited neighbour advertisements.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Announce {
    #[serde(default = "default_announce_count")]
    pub count: u64,
    #[serde(default = "default_announce_delay")]
    pub delay: HumanDuration,
    /// Repeat the announcements this often while master (0s = never).
    #[serde(default)]
    pub refresh: HumanDuration,
}

impl Default for Announce {
    fn default() -> Self {
        Announce {
            count: default_announce_count(),
            delay: default_announce_delay(),
            refresh: HumanDuration::default(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    #[serde(default)]
    pub nginx: NginxCheck,
    #[serde(default)]
    pub extra: BTreeMap<String, ExtraCheck>,
}

/// Timing and effect shared by every check, with keepalived's semantics:
/// weight 0 puts the tracking instances in FAULT after `fall` failures; a
/// negative weight is subtracted from the priority while failing; a positive
/// one is added while healthy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxCheck {
    #[serde(default = "yes")]
    pub enable: bool,
    /// nginx's pidfile: the master process is watched as an event (pidfd).
    #[serde(default = "default_pid_file")]
    pub pid_file: PathBuf,
    /// stub_status URL probed every `interval` (http only, loopback).
    #[serde(default = "default_status_url")]
    pub status_url: String,
    #[serde(default = "default_check_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_check_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_rise")]
    pub rise: u64,
    #[serde(default = "default_fall")]
    pub fall: u64,
    #[serde(default)]
    pub weight: i64,
}

impl Default for NginxCheck {
    fn default() -> Self {
        NginxCheck {
            enable: true,
            pid_file: default_pid_file(),
            status_url: default_status_url(),
            interval: default_check_interval(),
            timeout: default_check_timeout(),
            rise: default_rise(),
            fall: default_fall(),
            weight: 0,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ExtraCheckType {
    Http,
    Tcp,
    Exec,
}

/// An extra check. Which fields apply depends on `type`; the others are
/// refused by validation so a misplaced `url` on a tcp check is caught.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraCheck {
    #[serde(rename = "type")]
    pub kind: ExtraCheckType,
    /// http: the URL to GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// http: the status code that means healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect_status: Option<u64>,
    /// tcp: `host:port` to connect to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// exec: argv; exit status 0 means healthy. Runs with no capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default = "default_check_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_check_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_rise")]
    pub rise: u64,
    #[serde(default = "default_fall")]
    pub fall: u64,
    #[serde(default)]
    pub weight: i64,
}

/// Commands run on transitions, in order, one at a time. Each is an argv;
/// the instance name, the new state and the priority are appended.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notify {
    #[serde(default)]
    pub master: Vec<Vec<String>>,
    #[serde(default)]
    pub backup: Vec<Vec<String>>,
    #[serde(default)]
    pub fault: Vec<Vec<String>>,
    #[serde(default)]
    pub stop: Vec<Vec<String>>,
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
}

impl Default for Notify {
    fn default() -> Self {
        Notify {
            master: Vec::new(),
            backup: Vec::new(),
            fault: Vec::new(),
            stop: Vec::new(),
            timeout: default_notify_timeout(),
        }
    }
}

/// An address with its prefix length, written `"192.0.2.10/24"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpPrefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for IpPrefix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, l) = s.split_once('/').ok_or_else(|| {
            format!("\"{s}\" has no prefix length (write e.g. \"192.0.2.10/24\")")
        })?;
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("\"{a}\" is not an IP address"))?;
        let len: u8 = l
            .parse()
            .map_err(|_| format!("\"{l}\" is not a prefix length"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("prefix length {len} is more than {max}"));
        }
        Ok(IpPrefix { addr, len })
    }
}

impl Serialize for IpPrefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for IpPrefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn yes() -> bool {
    true
}
fn default_version() -> u64 {
    3
}
fn default_advert_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_v3_checksum() -> V3Checksum {
    V3Checksum::Rfc
}
fn default_fast_takeover() -> FastTakeover {
    FastTakeover::Auto
}
fn default_announce_count() -> u64 {
    5
}
fn default_announce_delay() -> HumanDuration {
    HumanDuration::from_millis(200)
}
fn default_pid_file() -> PathBuf {
    PathBuf::from("/run/nginx/nginx.pid")
}
pub(crate) fn default_status_url() -> String {
    "http://127.0.0.1:8081/nginx_status".into()
}
fn default_check_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_check_timeout() -> HumanDuration {
    HumanDuration::from_millis(500)
}
fn default_rise() -> u64 {
    2
}
fn default_fall() -> u64 {
    2
}
fn default_notify_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
