//! Semantic checks on a parsed declaration. Each rule reports the JSON path
//! it concerns; all problems are collected so one run of `check-config`
//! shows everything that needs fixing.

use super::{Declaration, Instance, Problem, limits};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

/// Collects problems under a JSON path prefix.
#[derive(Default, Debug)]
pub struct Problems {
    list: Vec<Problem>,
}

impl Problems {
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.list.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    pub fn into_vec(self) -> Vec<Problem> {
        self.list
    }
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
    pub fn len(&self) -> usize {
        self.list.len()
    }
}

/// Names that end up in file names, log fields and nginx identifiers.
pub fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Linux interface names: at most 15 bytes, no '/', no whitespace, not
/// `.` or `..`.
pub fn is_valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// An absolute path without `..` components or control characters, so a
/// generated declaration cannot point the daemon somewhere unexpected.
pub fn check_abs_path(p: &mut Problems, path: &str, value: &Path) {
    let Some(s) = value.to_str() else {
        p.push(path, "is not valid UTF-8");
        return;
    };
    if !s.starts_with('/') {
        p.push(path, format!("\"{s}\" must be an absolute path"));
    } else if s.split('/').any(|c| c == "..") {
        p.push(path, format!("\"{s}\" must not contain \"..\""));
    } else if s.chars().any(|c| c.is_control()) {
        p.push(path, "must not contain control characters");
    } else if s.len() > 4096 {
        p.push(path, "is longer than 4096 bytes");
    }
}

pub fn validate(d: &Declaration) -> Vec<Problem> {
    let mut p = Problems::default();
    if !is_safe_name(&d.node.name) {
        p.push(
            "node.name",
            format!(
                "\"{}\" must be 1-64 characters of letters, digits, '-' and '_'",
                truncate(&d.node.name)
            ),
        );
    }
    if let Some(e) = limits::out_of(&limits::NODE_PRIORITY, d.node.priority) {
        p.push("node.priority", e);
    }
    if d.instances.is_empty() && d.anycast.is_none() {
        p.push(
            "instances",
            "at least one VRRP instance is needed (or an anycast section)",
        );
    }
    let check_names: Vec<String> = std::iter::once("nginx".to_string())
        .chain(d.checks.extra.keys().cloned())
        .collect();
    for (name, inst) in &d.instances {
        validate_instance(&mut p, d, name, inst, &check_names);
    }
    check_duplicate_vrids(&mut p, d);
    check_shared_vips(&mut p, d);
    super::validate_checks::validate_checks(&mut p, d);
    super::validate_checks::validate_notify(&mut p, d);
    super::validate_metrics::validate_metrics(&mut p, d);
    super::validate_anycast::validate_anycast(&mut p, d);
    if let Some(nginx) = &d.nginx {
        super::nginx::validate(&mut p, nginx);
        if d.checks.nginx.enable {
            super::nginx::check_status_url(&mut p, nginx, &d.checks.nginx.status_url);
        }
    }
    p.into_vec()
}

pub(super) fn truncate(s: &str) -> String {
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(40).collect::<String>())
    } else {
        s.to_string()
    }
}

fn family(a: &IpAddr) -> &'static str {
    if a.is_ipv4() { "IPv4" } else { "IPv6" }
}

fn validate_instance(
    p: &mut Problems,
    d: &Declaration,
    name: &str,
    inst: &Instance,
    check_names: &[String],
) {
    let at = format!("instances.{name}");
    if !is_safe_name(name) {
        p.push(
            &at,
            "instance names must be 1-64 characters of letters, digits, '-' and '_'",
        );
    }
    if !is_valid_ifname(&inst.interface) {
        p.push(
            format!("{at}.interface"),
            format!(
                "\"{}\" is not a valid interface name",
                truncate(&inst.interface)
            ),
        );
    }
    if let Some(e) = limits::out_of(&limits::VRID, inst.virtual_router_id) {
        p.push(format!("{at}.virtualRouterId"), e);
    }
    let version_ok = matches!(inst.version, 2 | 3);
    if !version_ok {
        p.push(
            format!("{at}.version"),
            format!("{} is not a VRRP version (2 or 3)", inst.version),
        );
    }

    let prio = inst.priority.unwrap_or(d.node.priority);
    let prio_path = if inst.priority.is_some() {
        format!("{at}.priority")
    } else {
        "node.priority".to_string()
    };
    if inst.address_owner {
        if prio != 255 && inst.priority.is_some() {
            p.push(
                &prio_path,
                format!(
                    "{prio}: an address owner always has priority 255 (RFC 5798 §5.2.4); drop the override"
                ),
            );
        }
    } else if prio == 255 {
        p.push(
            &prio_path,
            "255 is reserved for the address owner; set addressOwner: true or use 1..=254",
        );
    } else if inst.priority.is_some()
        && let Some(e) = limits::out_of(&limits::INSTANCE_PRIORITY, prio)
    {
        p.push(&prio_path, e);
    }

    // Virtual addresses: present, one family, no duplicates.
    if inst.virtual_ips.is_empty() {
        p.push(
            format!("{at}.virtualIps"),
            "at least one virtual IP is needed",
        );
    }
    let fam = inst.virtual_ips.first().map(|v| v.addr.is_ipv4());
    for (i, vip) in inst.virtual_ips.iter().enumerate() {
        let vp = format!("{at}.virtualIps.{i}");
        if Some(vip.addr.is_ipv4()) != fam {
            p.push(
                &vp,
                format!(
                    "{vip} is {} but the first virtual IP is {}; one instance carries one family (use a second instance)",
                    family(&vip.addr),
                    if fam == Some(true) { "IPv4" } else { "IPv6" }
                ),
            );
        }
        if vip.addr.is_unspecified() || vip.addr.is_multicast() || vip.addr.is_loopback() {
            p.push(&vp, format!("{vip} cannot be a virtual IP"));
        } else if let Some(why) = unusable_vip(vip) {
            p.push(&vp, format!("{vip} {why}"));
        }
        if inst.virtual_ips[..i].iter().any(|o| o.addr == vip.addr) {
            p.push(&vp, format!("{} is listed twice", vip.addr));
        }
    }
    let v4 = fam.unwrap_or(true);
    let max_vips = if v4 { MAX_VIPS_V4 } else { MAX_VIPS_V6 };
    if inst.virtual_ips.len() > max_vips {
        p.push(
            format!("{at}.virtualIps"),
            format!(
                "{} addresses are more than one advert carries: at most {max_vips} for {} ({}); use a second instance",
                inst.virtual_ips.len(),
                if v4 { "IPv4" } else { "IPv6" },
                if v4 {
                    "the count field is one byte"
                } else {
                    "so the advert fits the IPv6 minimum MTU of 1280 bytes unfragmented"
                }
            ),
        );
    }
    if inst.version == 2 && !v4 {
        p.push(
            format!("{at}.version"),
            "VRRPv2 (RFC 3768) is IPv4 only; use version 3 for IPv6",
        );
    }

    // Advertisement interval: the wire field differs per version.
    let ai = inst.advert_interval.as_duration();
    let ai_path = format!("{at}.advertInterval");
    match inst.version {
        2 if ai.subsec_nanos() != 0 || ai.is_zero() || ai > Duration::from_secs(255) => {
            p.push(
                &ai_path,
                format!(
                    "{}: VRRPv2 carries whole seconds 1..=255 (RFC 3768 §5.3.7); use version 3 for sub-second adverts",
                    inst.advert_interval
                ),
            );
        }
        3 if !ai.as_micros().is_multiple_of(10_000)
            || ai.is_zero()
            || ai > Duration::from_millis(40_950) =>
        {
            p.push(
                &ai_path,
                format!(
                    "{}: VRRPv3 carries centiseconds 1..=4095 (RFC 5798 §5.2.7): use a multiple of 10ms up to 40.95s",
                    inst.advert_interval
                ),
            );
        }
        _ => {}
    }
    if inst.preempt_delay.as_duration() > Duration::from_secs(3600) {
        p.push(format!("{at}.preemptDelay"), "is more than 1h");
    }

    // Unicast.
    if let Some(src) = &inst.unicast_source {
        if src.is_ipv4() != v4 {
            p.push(
                format!("{at}.unicastSource"),
                format!(
                    "{src} is {} but the virtual IPs are {}",
                    family(src),
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            );
        }
        if inst.unicast_peers.is_empty() {
            p.push(
                format!("{at}.unicastSource"),
                "is set but unicastPeers is empty; list the peers (or drop unicastSource for multicast)",
            );
        } else if inst.unicast_peers.iter().all(|peer| peer == src) {
            // The node's own address is skipped, so nothing would be sent
            // and every node would become master.
            p.push(
                format!("{at}.unicastPeers"),
                format!(
                    "lists only {src}, this node's own unicastSource, which is skipped: no peer would hear this node's adverts; list the other nodes"
                ),
            );
        }
        if inst.virtual_ips.iter().any(|v| v.addr == *src) {
            p.push(
                format!("{at}.unicastSource"),
                format!(
                    "{src} is a virtual IP, which only the master holds; use this node's own address"
                ),
            );
        }
    }
    for (i, peer) in inst.unicast_peers.iter().enumerate() {
        let pp = format!("{at}.unicastPeers.{i}");
        if peer.is_ipv4() != v4 {
            p.push(
                &pp,
                format!(
                    "{peer} is {} but the virtual IPs are {}",
                    family(peer),
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            );
        }
        if peer.is_unspecified() || peer.is_multicast() {
            p.push(&pp, format!("{peer} cannot be a unicast peer"));
        }
        if inst.unicast_peers[..i].contains(peer) {
            p.push(&pp, format!("{peer} is listed twice"));
        }
        if inst.virtual_ips.iter().any(|v| v.addr == *peer) {
            p.push(
                &pp,
                format!("{peer} is a virtual IP; peers are the nodes' own addresses"),
            );
        }
    }

    // Authentication (RFC 3768 §5.3.6; removed in RFC 5798).
    if let Some(pw) = &inst.auth_password_file {
        if inst.version == 3 {
            p.push(
                format!("{at}.authPasswordFile"),
                "VRRPv3 has no authentication (RFC 5798 §9); remove it or use version 2",
            );
        }
        check_abs_path(p, &format!("{at}.authPasswordFile"), pw);
        check_not_in_store(p, &format!("{at}.authPasswordFile"), pw);
    }
    if inst.v3_checksum != super::V3Checksum::Rfc && (inst.version != 3 || !v4) {
        p.push(
            format!("{at}.v3Checksum"),
            "a checksum variant only applies to VRRPv3 over IPv4",
        );
    }
    if inst.v3_checksum == super::V3Checksum::OldUnicast && inst.unicast_peers.is_empty() {
        p.push(
            format!("{at}.v3Checksum"),
            "oldUnicast only applies to unicast (set unicastPeers)",
        );
    }

    if let Some(e) = limits::out_of(&limits::ANNOUNCE_COUNT, inst.announce.count) {
        p.push(format!("{at}.announce.count"), e);
    }
    if inst.announce.delay.as_duration() > Duration::from_secs(10) {
        p.push(format!("{at}.announce.delay"), "is more than 10s");
    }

    if let Some(track) = &inst.track_checks {
        for (i, c) in track.iter().enumerate() {
            if !check_names.contains(c) {
                p.push(
                    format!("{at}.trackChecks.{i}"),
                    format!(
                        "\"{}\" is not a check (known: {})",
                        truncate(c),
                        check_names.join(", ")
                    ),
                );
            } else if c == "nginx" && !d.checks.nginx.enable {
                p.push(
                    format!("{at}.trackChecks.{i}"),
                    "tracks the nginx check, but checks.nginx.enable is false",
                );
            }
        }
    }
}

/// VRRP's count field is one byte (RFC 5798 §5.2.5, RFC 3768 §5.3.5).
const MAX_VIPS_V4: usize = 255;
/// 40 bytes of IPv6 header and 8 of VRRP header leave room for 77
/// addresses in the 1280 bytes every IPv6 link carries (RFC 8200 §5).
const MAX_VIPS_V6: usize = 77;

/// Addresses that parse but cannot work as a VIP: the whole address
/// space, IPv4 carried in IPv6, and an IPv4 subnet's network or
/// broadcast address (only meaningful for prefixes shorter than /31,
/// RFC 3021).
fn unusable_vip(vip: &super::IpPrefix) -> Option<&'static str> {
    if vip.len == 0 {
        return Some("has prefix length 0, which is the whole address space");
    }
    match vip.addr {
        IpAddr::V4(a) if vip.len < 31 => {
            let bits = u32::from(a);
            let host = u32::MAX >> vip.len;
            if bits & host == 0 {
                Some("is the network address of its subnet, not a host address")
            } else if bits & host == host {
                Some("is the broadcast address of its subnet, not a host address")
            } else {
                None
            }
        }
        IpAddr::V6(a) if a.to_ipv4_mapped().is_some() => Some(
            "is an IPv4-mapped IPv6 address (::ffff:0:0/96), which is never on the wire; write the IPv4 address",
        ),
        _ => None,
    }
}

/// Secrets in the Nix store are world-readable on every machine that has
/// the store path; the NixOS module refuses them, and so does this.
pub fn check_not_in_store(p: &mut Problems, path: &str, value: &Path) {
    if value.starts_with("/nix/store") {
        p.push(
            path,
            format!(
                "\"{}\" is in the Nix store, which is world-readable; give a path deployed at run time (agenix, sops-nix, a deployed file)",
                value.display()
            ),
        );
    }
}

/// Two instances that carry one VIP fight over it: each master adds it,
/// and the one that steps down removes it from under the other.
fn check_shared_vips(p: &mut Problems, d: &Declaration) {
    let mut owner: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for (name, inst) in &d.instances {
        for (i, vip) in inst.virtual_ips.iter().enumerate() {
            match owner.get(&vip.addr) {
                Some(other) if other != name => p.push(
                    format!("instances.{name}.virtualIps.{i}"),
                    format!(
                        "{} is also a virtual IP of instance \"{other}\"; a VIP belongs to one instance",
                        vip.addr
                    ),
                ),
                Some(_) => {}
                None => {
                    owner.insert(vip.addr, name);
                }
            }
        }
    }
}

/// RFC 5798 §7.3: a VRID identifies one virtual router per LAN and family;
/// two instances on one interface with the same VRID and family would each
/// take the other's adverts as their own.
fn check_duplicate_vrids(p: &mut Problems, d: &Declaration) {
    let mut seen: BTreeMap<(String, u64, bool), &str> = BTreeMap::new();
    for (name, inst) in &d.instances {
        let v4 = inst.virtual_ips.first().map(|v| v.addr.is_ipv4());
        let Some(v4) = v4 else { continue };
        let key = (inst.interface.clone(), inst.virtual_router_id, v4);
        if let Some(other) = seen.get(&key) {
            p.push(
                format!("instances.{name}.virtualRouterId"),
                format!(
                    "{} is already used by instance \"{other}\" on {} for {}",
                    inst.virtual_router_id,
                    inst.interface,
                    if v4 { "IPv4" } else { "IPv6" }
                ),
            );
        } else {
            seen.insert(key, name);
        }
    }
}
