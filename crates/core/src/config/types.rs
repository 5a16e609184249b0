//! The declaration: one JSON document that describes the node, its VRRP
//! instances, the health checks, the notify hooks and the nginx sites. The
//! NixOS module generates it; the daemon and `render-nginx` read it.
//!
//! Keys are camelCase and unknown keys are refused, so a typo is an error
//! rather than a silently ignored setting. Numbers that have a range are read
//! wide (`u64`/`i64`) and range-checked in `validate`, so the error names the
//! rule ("out of 1..=255") rather than a Rust type.
//!
//! These types are also the declaration's schema (`nginx-ha schema`): the
//! doc comments below become the descriptions of the NixOS options, the
//! `example`s their examples, and `super::limits` their ranges. Write them
//! for the operator who reads the option documentation.

use super::duration::HumanDuration;
use super::limits;
use super::nginx::Nginx;
use super::schema::{ABSOLUTE_PATH, INTERFACE_NAME, NAME, SOCKET_ADDRESS};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Declaration {
    pub node: Node,
    /// The VRRP instances (virtual routers), by name (letters, digits, `-`,
    /// `_`). At least one is needed, unless `anycast` is set.
    #[serde(default)]
    pub instances: BTreeMap<String, Instance>,
    #[serde(default)]
    pub checks: Checks,
    #[serde(default)]
    pub notify: Notify,
    /// Upstreams, sites and the status page that `nginx-ha render-nginx`
    /// turns into an http-level nginx config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<Nginx>,
    /// The Prometheus endpoint (`GET /metrics`). Absent: no endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Health-gated BGP anycast through BIRD. Absent: no anycast.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast: Option<super::anycast::Anycast>,
}

/// The Prometheus endpoint: the daemon serves `GET /metrics` over plain
/// HTTP on `listen`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Metrics {
    /// The socket to listen on, `IP:PORT` (`[IPv6]:PORT`). There is no
    /// default: the metrics carry the node's state and are not
    /// authenticated, so the address is always written down. Use a loopback
    /// address unless the Prometheus server scrapes from another host; a
    /// non-loopback address is served to anyone who can reach it.
    #[schemars(example = &"127.0.0.1:9586", extend("format" = SOCKET_ADDRESS))]
    pub listen: SocketAddr,
}

/// What differs between the nodes of one cluster.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Name of this node in logs and status (letters, digits, `-`, `_`; at
    /// most 64). Node-specific.
    #[schemars(example = &"lb1", extend("format" = NAME))]
    pub name: String,
    /// VRRP priority of this node for every instance that does not override
    /// it; the highest healthy node is master. Node-specific: this and
    /// `node.name` are what differ between the nodes that share one cluster
    /// declaration.
    #[schemars(example = 150, range(min = *limits::NODE_PRIORITY.start(), max = *limits::NODE_PRIORITY.end()))]
    pub priority: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum FastTakeover {
    Auto,
    On,
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum V3Checksum {
    Rfc,
    AsV2,
    OldUnicast,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Instance {
    /// Network interface that carries the adverts and the virtual IPs.
    #[schemars(example = &"eth0", extend("format" = INTERFACE_NAME))]
    pub interface: String,
    /// VRID. The same on every node of the cluster, and unique per
    /// interface and address family on the LAN (other VRRP routers
    /// included).
    #[schemars(example = 51, range(min = *limits::VRID.start(), max = *limits::VRID.end()))]
    pub virtual_router_id: u64,
    /// VRRP version: 3 (RFC 5798: IPv4 and IPv6, centisecond adverts) or 2
    /// (RFC 3768: IPv4 only, whole seconds, optional password).
    #[serde(default = "default_version")]
    #[schemars(example = 2, extend("enum" = [2, 3]))]
    pub version: u64,
    /// The virtual addresses with their prefix length. One family per
    /// instance: use a second instance for the other family.
    #[schemars(example = ["192.0.2.100/24"], length(min = 1))]
    pub virtual_ips: Vec<IpPrefix>,
    /// Advertisement interval: a multiple of 10ms up to 40.95s for VRRPv3,
    /// whole seconds 1s..255s for VRRPv2.
    #[serde(default = "default_advert_interval")]
    #[schemars(example = &"100ms")]
    pub advert_interval: HumanDuration,
    /// Overrides `node.priority` for this instance. 255 is only for an
    /// address owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 120, range(min = *limits::INSTANCE_PRIORITY.start(), max = *limits::INSTANCE_PRIORITY.end()))]
    pub priority: Option<u64>,
    /// Whether a higher-priority node takes the virtual IPs back from a
    /// lower-priority master.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub preempt: bool,
    /// How long a higher-priority node waits after it becomes eligible
    /// (start-up, or its checks pass again) before it takes the virtual IPs
    /// back; at most 1h. Without it, a node that hears a master it
    /// outranks takes over after its Skew_Time.
    #[serde(default)]
    #[schemars(example = &"5s")]
    pub preempt_delay: HumanDuration,
    /// RFC 5798 Accept_Mode: the master accepts traffic to the virtual IPs.
    /// nginx has to answer on them, so leave it on (keepalived's default
    /// non-strict mode is the same).
    #[serde(default = "yes")]
    #[schemars(example = true)]
    pub accept_mode: bool,
    /// This node owns the virtual addresses (RFC 5798 §3: priority 255). Do
    /// not override `priority` then.
    #[serde(default)]
    #[schemars(example = true)]
    pub address_owner: bool,
    /// Send adverts by unicast to these addresses instead of multicast.
    /// List every node of the cluster: a node skips its own address, so the
    /// same list serves all nodes. The NixOS module's `openFirewall` then
    /// accepts VRRP only from these addresses.
    #[serde(default)]
    #[schemars(example = ["192.0.2.11", "192.0.2.12"])]
    pub unicast_peers: Vec<IpAddr>,
    /// Source address of unicast adverts. Unset: the interface's primary
    /// address. Node-specific.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"192.0.2.11")]
    pub unicast_source: Option<IpAddr>,
    /// VRRPv2 only: the file holding the simple-text password (at most 8
    /// bytes), read at start-up. A run-time path, never in the Nix store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"/run/secrets/vrrp-password", extend("format" = ABSOLUTE_PATH))]
    pub auth_password_file: Option<PathBuf>,
    /// VRRPv3-over-IPv4 checksum to send and to accept besides the RFC's:
    /// `rfc`; `asV2`, without the pseudo-header (keepalived's
    /// `v3_checksum_as_v2`); or `oldUnicast`, keepalived's
    /// `old_unicast_checksum` (unicast adverts checksummed with 224.0.0.18
    /// in the pseudo-header).
    #[serde(default = "default_v3_checksum")]
    #[schemars(example = &"oldUnicast")]
    pub v3_checksum: V3Checksum,
    /// Gratuitous ARP / unsolicited neighbour advertisements sent on
    /// becoming master.
    #[serde(default)]
    pub announce: Announce,
    /// A master that loses nginx leaves at once with a priority-0 advert, so
    /// the backup takes over after Skew_Time instead of
    /// Master_Down_Interval. `auto` turns it on only where it is provably
    /// safe: unicast with exactly one peer.
    #[serde(default = "default_fast_takeover")]
    #[schemars(example = &"on")]
    pub fast_takeover: FastTakeover,
    /// Names of the checks that affect this instance (`nginx` or names
    /// under `checks.extra`). Unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = ["nginx"])]
    pub track_checks: Option<Vec<String>>,
    /// Enter FAULT when the interface loses its link.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub track_interface: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Announce {
    /// How many announcements to send.
    #[serde(default = "default_announce_count")]
    #[schemars(example = 3, range(min = *limits::ANNOUNCE_COUNT.start(), max = *limits::ANNOUNCE_COUNT.end()))]
    pub count: u64,
    /// Pause between two announcements; at most 10s.
    #[serde(default = "default_announce_delay")]
    #[schemars(example = &"100ms")]
    pub delay: HumanDuration,
    /// Repeat the announcements this often while master (`0s`: never).
    #[serde(default)]
    #[schemars(example = &"60s")]
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

/// Health checks: the built-in nginx check and any extra ones. A check's
/// `weight` says what its failure does to the instances that track it.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Checks {
    /// The built-in nginx check.
    #[serde(default)]
    pub nginx: NginxCheck,
    /// Further health checks by name (not `nginx`), tracked by the instances
    /// that list them in `trackChecks` (all instances when unset).
    #[serde(default)]
    pub extra: BTreeMap<String, ExtraCheck>,
}

/// Timing and effect are shared by every check, with keepalived's
/// semantics: weight 0 puts the tracking instances in FAULT after `fall`
/// failures; a negative weight is subtracted from the priority while
/// failing; a positive one is added while healthy.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NginxCheck {
    /// Watch nginx: its master process (through its pidfile) and its
    /// stub_status page.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub enable: bool,
    /// nginx's pidfile: the master process is watched as an event (pidfd),
    /// not polled. NixOS' and Debian's nginx write the default.
    #[serde(default = "default_pid_file")]
    #[schemars(example = &"/run/nginx/nginx.pid", extend("format" = ABSOLUTE_PATH))]
    pub pid_file: PathBuf,
    /// stub_status URL probed every `interval`: plain http, on loopback.
    #[serde(default = "default_status_url")]
    #[schemars(example = &"http://127.0.0.1:8081/nginx_status")]
    pub status_url: String,
    /// How often the check runs (10ms to 1h).
    #[serde(default = "default_check_interval")]
    #[schemars(example = &"500ms")]
    pub interval: HumanDuration,
    /// How long one run may take; more than 0 and at most `interval`.
    #[serde(default = "default_check_timeout")]
    #[schemars(example = &"300ms")]
    pub timeout: HumanDuration,
    /// Consecutive successes before a failing check counts as healthy again.
    #[serde(default = "default_rise")]
    #[schemars(example = 3, range(min = *limits::RISE_FALL.start(), max = *limits::RISE_FALL.end()))]
    pub rise: u64,
    /// Consecutive failures before a healthy check counts as failing.
    #[serde(default = "default_fall")]
    #[schemars(example = 3, range(min = *limits::RISE_FALL.start(), max = *limits::RISE_FALL.end()))]
    pub fall: u64,
    /// Effect on the priority, as in keepalived: `0` puts the instances that
    /// track this check into FAULT while it fails; a negative weight is
    /// subtracted from the priority while it fails; a positive one is added
    /// while it is healthy.
    #[serde(default)]
    #[schemars(example = -60, range(min = *limits::WEIGHT.start(), max = *limits::WEIGHT.end()))]
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ExtraCheckType {
    Http,
    Tcp,
    Exec,
}

/// An extra check. Which fields apply depends on `type`; the others are
/// refused by validation so a misplaced `url` on a tcp check is caught.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraCheck {
    /// Kind of check; decides which of `url`, `expectStatus`, `address` and
    /// `command` apply.
    #[serde(rename = "type")]
    #[schemars(example = &"http")]
    pub kind: ExtraCheckType,
    /// http: the URL to GET, `http://IP-or-localhost[:PORT]/PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"http://127.0.0.1:8080/healthz")]
    pub url: Option<String>,
    /// http: the status code that means healthy. Unset: any 2xx.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 200, range(min = *limits::EXPECT_STATUS.start(), max = *limits::EXPECT_STATUS.end()))]
    pub expect_status: Option<u64>,
    /// tcp: `ADDRESS:PORT` to connect to (IPv6 as `[::1]:443`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"127.0.0.1:5432")]
    pub address: Option<String>,
    /// exec: argv, first element an absolute path; exit status 0 means
    /// healthy. Runs without capabilities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = ["/run/current-system/sw/bin/true"], length(min = 1))]
    pub command: Option<Vec<String>>,
    /// How often the check runs (10ms to 1h).
    #[serde(default = "default_check_interval")]
    #[schemars(example = &"2s")]
    pub interval: HumanDuration,
    /// How long one run may take; more than 0 and at most `interval`.
    #[serde(default = "default_check_timeout")]
    #[schemars(example = &"1s")]
    pub timeout: HumanDuration,
    /// Consecutive successes before a failing check counts as healthy again.
    #[serde(default = "default_rise")]
    #[schemars(example = 3, range(min = *limits::RISE_FALL.start(), max = *limits::RISE_FALL.end()))]
    pub rise: u64,
    /// Consecutive failures before a healthy check counts as failing.
    #[serde(default = "default_fall")]
    #[schemars(example = 3, range(min = *limits::RISE_FALL.start(), max = *limits::RISE_FALL.end()))]
    pub fall: u64,
    /// Effect on the priority: `0` puts the tracking instances into FAULT
    /// while it fails; negative: subtracted while failing; positive: added
    /// while healthy.
    #[serde(default)]
    #[schemars(example = -60, range(min = *limits::WEIGHT.start(), max = *limits::WEIGHT.end()))]
    pub weight: i64,
}

/// Commands run on transitions, in order, one at a time. Each is an argv
/// (absolute program path first); the instance name, the new state and the
/// priority are appended. They run without capabilities.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Notify {
    /// Commands run on entering MASTER.
    #[serde(default)]
    #[schemars(example = [["/run/current-system/sw/bin/logger", "-t", "nginx-ha", "MASTER"]])]
    pub master: Vec<Vec<String>>,
    /// Commands run on entering BACKUP.
    #[serde(default)]
    #[schemars(example = [["/run/current-system/sw/bin/logger", "-t", "nginx-ha", "BACKUP"]])]
    pub backup: Vec<Vec<String>>,
    /// Commands run on entering FAULT.
    #[serde(default)]
    #[schemars(example = [["/run/current-system/sw/bin/logger", "-t", "nginx-ha", "FAULT"]])]
    pub fault: Vec<Vec<String>>,
    /// Commands run when the daemon stops.
    #[serde(default)]
    #[schemars(example = [["/run/current-system/sw/bin/logger", "-t", "nginx-ha", "stop"]])]
    pub stop: Vec<Vec<String>>,
    /// How long one notify command may run (more than 0, at most 10m).
    #[serde(default = "default_notify_timeout")]
    #[schemars(example = &"5s")]
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

impl JsonSchema for IpPrefix {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "IpPrefix".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "format": super::schema::IP_PREFIX,
            "description": "An IP address with its prefix length, e.g. \"192.0.2.100/24\"."
        })
    }
}
