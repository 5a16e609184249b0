//! What an instance is made of once its interface is known: the facts
//! that do not change while it runs, and what follows from them (peers,
//! the source address, the state machine's configuration).

use crate::config::{Declaration, FastTakeover, Instance as Decl, IpPrefix, V3Checksum};
use crate::vrrp::instance::{Config, OWNER_PRIORITY};
use crate::vrrp::packet::{Auth, ChecksumStyle, Version};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// Each instance's VRRPv2 password, by instance name.
pub type Passwords = BTreeMap<String, Auth>;

/// A network interface as netlink reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// Administratively up and with carrier.
    pub up: bool,
    pub mac: Option<[u8; 6]>,
}

/// The per-instance facts that do not change while it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub name: String,
    pub decl: Decl,
    pub link: LinkInfo,
    pub v4: bool,
    pub vips: Vec<IpPrefix>,
    pub auth: Auth,
    pub checksum: ChecksumStyle,
    pub priority: u8,
    /// The declaration's numbers in the types the wire carries, narrowed
    /// once here (validation guarantees they fit; a declaration that was
    /// not validated is refused by name rather than quietly defaulted).
    pub version: Version,
    pub vrid: u8,
    pub advert_interval_cs: u16,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("instances.{instance}.{field}: {value} does not fit (the declaration was not validated?)")]
pub struct PlanError {
    pub instance: String,
    pub field: &'static str,
    pub value: String,
}

fn narrow<T: TryFrom<u64>>(instance: &str, field: &'static str, v: u64) -> Result<T, PlanError> {
    T::try_from(v).map_err(|_| PlanError {
        instance: instance.into(),
        field,
        value: v.to_string(),
    })
}

/// The plans of a declaration's instances, `links` in the order of
/// `d.instances` (the interfaces looked up by name).
pub fn plans(
    d: &Declaration,
    passwords: &Passwords,
    links: &[LinkInfo],
) -> Result<Vec<Plan>, PlanError> {
    d.instances
        .iter()
        .zip(links)
        .map(|((name, i), link)| plan(d, name, i, passwords, link))
        .collect()
}

fn plan(
    d: &Declaration,
    name: &str,
    i: &Decl,
    passwords: &Passwords,
    link: &LinkInfo,
) -> Result<Plan, PlanError> {
    let v4 = i.virtual_ips.first().is_none_or(|v| v.addr.is_ipv4());
    let checksum = match i.v3_checksum {
        V3Checksum::Rfc => ChecksumStyle::Rfc,
        V3Checksum::AsV2 => ChecksumStyle::AsV2,
        V3Checksum::OldUnicast => ChecksumStyle::OldUnicast,
    };
    let priority = if i.address_owner {
        OWNER_PRIORITY
    } else {
        let (field, v) = match i.priority {
            Some(p) => ("priority", p),
            None => ("node.priority", d.node.priority),
        };
        narrow(name, field, v)?
    };
    let version = match i.version {
        2 => Version::V2,
        3 => Version::V3,
        v => {
            return Err(PlanError {
                instance: name.into(),
                field: "version",
                value: v.to_string(),
            });
        }
    };
    let interval_cs = i.advert_interval.as_duration().as_millis() / 10;
    Ok(Plan {
        name: name.to_string(),
        decl: i.clone(),
        link: link.clone(),
        v4,
        vips: i.virtual_ips.clone(),
        auth: passwords.get(name).cloned().unwrap_or(Auth::None),
        checksum,
        priority,
        version,
        vrid: narrow(name, "virtualRouterId", i.virtual_router_id)?,
        advert_interval_cs: narrow(
            name,
            "advertInterval",
            u64::try_from(interval_cs).unwrap_or(u64::MAX),
        )?,
    })
}

impl Plan {
    /// The unicast peers minus this node's own source address, so one
    /// peer list can be shared by the whole cluster.
    pub fn peers(&self, primary: Option<IpAddr>) -> Vec<IpAddr> {
        self.decl
            .unicast_peers
            .iter()
            .copied()
            .filter(|p| Some(*p) != primary && Some(*p) != self.decl.unicast_source)
            .collect()
    }

    /// Why a unicast instance cannot work from `primary`: every listed
    /// peer is this node itself, so nobody would hear its adverts and
    /// every node would become master. check-config catches this when
    /// `unicastSource` is given; without it the address is only known here.
    pub fn no_peer_reason(&self, primary: Option<IpAddr>) -> Option<String> {
        let p = primary?;
        (self.unicast() && self.peers(primary).is_empty()).then(|| {
            format!(
                "unicastPeers lists only this node's own address {p}: no peer would hear its adverts"
            )
        })
    }

    pub fn unicast(&self) -> bool {
        !self.decl.unicast_peers.is_empty()
    }

    /// The address adverts are sent from (and compared by, RFC 5798
    /// §6.4.3): `unicastSource` if given and present; otherwise the first
    /// IPv4 address of the interface that is not a VIP, or for IPv6 its
    /// link-local address (RFC 5798 §5.1.2.1).
    pub fn pick_primary(&self, on_link: &[(IpAddr, u8)]) -> Option<IpAddr> {
        if let Some(src) = self.decl.unicast_source {
            return on_link.iter().any(|(a, _)| *a == src).then_some(src);
        }
        on_link
            .iter()
            .map(|(a, _)| *a)
            .filter(|a| !self.vips.iter().any(|v| v.addr == *a))
            .find(|a| match a {
                IpAddr::V4(_) => self.v4,
                IpAddr::V6(v6) => !self.v4 && (v6.segments()[0] & 0xffc0) == 0xfe80,
            })
    }

    /// Whether a priority-0 advert is answered by taking over at once.
    pub fn fast_takeover(&self, primary: Option<IpAddr>) -> bool {
        match self.decl.fast_takeover {
            FastTakeover::On => true,
            FastTakeover::Off => false,
            // Safe only when no third node can be competing for the VIP:
            // a unicast pair, where this node is the only possible
            // successor.
            FastTakeover::Auto => self.unicast() && self.peers(primary).len() == 1,
        }
    }

    pub fn core_config(&self, primary: Option<IpAddr>) -> Config {
        Config {
            version: self.version,
            vrid: self.vrid,
            priority: self.priority,
            advert_interval_cs: self.advert_interval_cs,
            preempt: self.decl.preempt,
            preempt_delay: self.decl.preempt_delay.as_duration(),
            primary_addr: primary.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            vips: self.vips.iter().map(|v| v.addr).collect(),
            auth: self.auth,
            checksum: self.checksum,
            fast_takeover: self.fast_takeover(primary),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> LinkInfo {
        LinkInfo {
            index: 2,
            name: "eth1".into(),
            up: true,
            mac: None,
        }
    }

    fn decl(instance: serde_json::Value) -> Declaration {
        // Deserialized without validation, as a caller that skipped it would.
        serde_json::from_value(serde_json::json!({
            "node": { "name": "lb1", "priority": 150 },
            "instances": { "web": instance }
        }))
        .expect("shape")
    }

    #[test]
    fn numbers_are_narrowed_once_and_never_defaulted() {
        let ok = decl(serde_json::json!({
            "interface": "eth1", "virtualRouterId": 51, "virtualIps": ["192.0.2.100/24"],
            "advertInterval": "250ms", "version": 3
        }));
        let p = &plans(&ok, &Passwords::new(), &[link()]).expect("valid")[0];
        assert_eq!(
            (p.vrid, p.advert_interval_cs, p.priority, p.version),
            (51, 25, 150, Version::V3)
        );
        let bad = decl(serde_json::json!({
            "interface": "eth1", "virtualRouterId": 300, "virtualIps": ["192.0.2.100/24"]
        }));
        let e = plans(&bad, &Passwords::new(), &[link()]).expect_err("300 is no VRID");
        assert_eq!(
            e.to_string(),
            "instances.web.virtualRouterId: 300 does not fit (the declaration was not validated?)"
        );
    }
}
