//! What `nginx-ha status --json` reports: the node's view of each
//! instance and check, as the control socket sends it.

use crate::stub_status::StubStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    pub address_mismatch: u64,
    /// Lower-priority adverts answered while master (another node thought
    /// it was master).
    #[serde(default)]
    pub lower_priority_answered: u64,
    /// VIPs found deleted while master and added back.
    #[serde(default)]
    pub vips_restored: u64,
    /// State changes of the instance since the daemon started.
    #[serde(default)]
    pub transitions: u64,
    pub dropped: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    pub seconds_ago: f64,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct InstanceStatus {
    pub name: String,
    pub state: String,
    pub priority: u8,
    pub effective_priority: u8,
    pub interface: String,
    pub virtual_router_id: u8,
    pub version: u8,
    pub virtual_ips: Vec<String>,
    pub master_address: Option<String>,
    pub last_transition: Option<Transition>,
    pub faults: Vec<String>,
    pub counters: Counters,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CheckStatus {
    pub name: String,
    /// None while the check has not yet decided (it counts as failing).
    pub healthy: Option<bool>,
    pub detail: String,
    pub weight: i64,
    pub seconds_since_change: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub node: String,
    pub maintenance: bool,
    pub instances: Vec<InstanceStatus>,
    pub checks: Vec<CheckStatus>,
    pub nginx: Option<StubStatus>,
    /// Packets dropped before reaching an instance, by reason.
    pub dropped: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anycast: Option<AnycastStatus>,
}

/// What the node wants of its anycast prefixes, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnycastWish {
    pub prefixes: Vec<String>,
    pub wanted: bool,
    pub reason: String,
    pub seconds_since_change: f64,
}

/// What BIRD has of one static protocol, as the daemon last saw it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BirdProtocolStatus {
    pub name: String,
    pub prefixes: Vec<String>,
    /// BIRD's state of the protocol (`up`, `down`, ...); None while BIRD
    /// has not been asked.
    pub bird_state: Option<String>,
    /// Whether the protocol is enabled in BIRD, i.e. the routes announced.
    pub announced: Option<bool>,
    pub last_error: Option<String>,
}

/// The anycast part of `status`: the wish, and what BIRD has.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnycastStatus {
    #[serde(flatten)]
    pub wish: AnycastWish,
    pub bird_socket: String,
    pub bird_connected: bool,
    pub bird_error: Option<String>,
    pub protocols: Vec<BirdProtocolStatus>,
}

/// The answer to `maintenance on|off`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceAnswer {
    pub ok: bool,
    pub maintenance: bool,
}
