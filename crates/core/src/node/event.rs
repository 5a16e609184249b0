//! What goes into the node and what comes out: every input the daemon
//! turns an OS event into, and every effect the node asks the daemon to
//! carry out. Both are serde types, so whole-node behaviour can be
//! recorded and replayed from fixtures (tests/conformance).

use super::plan::{LinkInfo, Plan};
use crate::config::IpPrefix;
use crate::vrrp::instance::{Reason, State};
use crate::vrrp::packet::{Advert, ChecksumStyle};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Event {
    /// A new instance, with the addresses now on its interface (to clean
    /// VIPs a crash left behind and to find its source address). It starts
    /// with `Start`, or as soon as its checks have a first verdict.
    Add {
        plan: Box<Plan>,
        on_link: Vec<(IpAddr, u8)>,
    },
    Start,
    /// A decoded, validated advert from `src` on interface `ifindex`.
    Advert {
        ifindex: u32,
        v4: bool,
        src: IpAddr,
        advert: Advert,
        checksum: ChecksumStyle,
    },
    /// VRRP inside IPsec AH (keepalived's `auth_type AH`) for `vrid`;
    /// `more` were seen but not reported since the last one.
    Ah {
        ifindex: u32,
        v4: bool,
        src: IpAddr,
        vrid: u8,
        more: u64,
    },
    /// The time `poll_timeout` named has come.
    Timer,
    Link(LinkInfo),
    LinkGone {
        index: u32,
        name: String,
    },
    /// The addresses now on an interface (after a change, or when asked).
    Addresses {
        index: u32,
        addrs: Vec<(IpAddr, u8)>,
    },
    /// Opening the sockets of an interface failed.
    IoFailed {
        index: u32,
        error: String,
    },
    /// Adding a VIP failed: the instance must not stay master without it.
    VipAddFailed {
        instance: String,
        error: String,
    },
    Verdict {
        check: String,
        healthy: bool,
        detail: String,
    },
    /// Maintenance mode, already persisted by the daemon.
    Maintenance(bool),
    /// A new declaration: its instances' plans, its checks' weights, the
    /// checks that were restarted (changed), and the addresses of every
    /// interface a new instance uses.
    Reload {
        plans: Vec<Plan>,
        weights: BTreeMap<String, i64>,
        restarted: Vec<String>,
        on_link: BTreeMap<u32, Vec<(IpAddr, u8)>>,
    },
    /// The anycast section of the declaration (at start and after every
    /// reload; `None`: no anycast).
    Anycast(Option<Box<crate::config::Anycast>>),
    Shutdown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Command {
    /// Open the VRRP socket (and its readers) and the announcer of an
    /// interface, unless open already. A failure comes back as `IoFailed`.
    OpenIo {
        index: u32,
        name: String,
        v4: bool,
        mac: Option<[u8; 6]>,
    },
    /// Close what is open on an interface no instance uses any more.
    CloseIo { index: u32 },
    /// Report the interface's addresses as an `Addresses` event.
    ReadAddresses { index: u32 },
    /// A finished advert (IP payload, checksummed) to send.
    Send {
        /// Shared, as are the bytes, with the advert the member keeps
        /// (`Member::built`): sending it again allocates nothing.
        instance: Arc<str>,
        index: u32,
        v4: bool,
        src: IpAddr,
        dst: IpAddr,
        #[serde(with = "hex")]
        bytes: Arc<[u8]>,
    },
    /// Add the VIPs; a failure comes back as `VipAddFailed`, and the rest
    /// of this instance's commands in the same batch (but transitions) are
    /// then void. `restore`: putting back VIPs deleted by someone else,
    /// where a failure is only logged.
    AddVips {
        instance: String,
        index: u32,
        vips: Vec<IpPrefix>,
        restore: bool,
    },
    RemoveVips {
        instance: String,
        index: u32,
        vips: Vec<IpPrefix>,
    },
    /// Gratuitous ARP / unsolicited NA for these addresses.
    Announce {
        instance: String,
        index: u32,
        addrs: Vec<IpAddr>,
    },
    /// A state change: logged with its fields, written to the state file,
    /// the notify hooks queued, systemd's status updated.
    Transition {
        instance: String,
        from: State,
        to: State,
        reason: Reason,
        priority: u8,
    },
    Log {
        level: Level,
        instance: Option<String>,
        message: String,
    },
    /// Announce (enable the BIRD static protocols) or withdraw (disable
    /// them) the anycast prefixes. Kept as the wanted state, re-applied
    /// when BIRD comes back.
    Anycast { announce: bool, reason: String },
}

impl Command {
    /// The instance a command belongs to, if any.
    pub fn instance(&self) -> Option<&str> {
        match self {
            Command::Send { instance, .. } => Some(instance),
            Command::AddVips { instance, .. }
            | Command::RemoveVips { instance, .. }
            | Command::Announce { instance, .. }
            | Command::Transition { instance, .. } => Some(instance),
            Command::Log { instance, .. } => instance.as_deref(),
            _ => None,
        }
    }
}

/// Advert bytes as a hex string in fixtures, readable next to a capture.
mod hex {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        let text = String::deserialize(d)?;
        if !text.len().is_multiple_of(2) {
            return Err(serde::de::Error::custom("odd number of hex digits"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("not hex"))
            })
            .collect::<Result<Vec<u8>, _>>()
            .map(Arc::from)
    }
}
