//! Turning a validated declaration into running instances: interface
//! look-ups, source addresses, peers, passwords and the core's Config.

use crate::config::{Declaration, FastTakeover, Instance as Decl, IpPrefix, V3Checksum};
use crate::file_read::{ReadError, Symlinks, read_regular_within};
use crate::net::netlink::{LinkInfo, Net, NetError};
use crate::vrrp::instance::{Config, OWNER_PRIORITY};
use crate::vrrp::packet::{Auth, ChecksumStyle, Version};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

/// How long a read of the declaration or a secret may take before it is
/// given up. Reads run off the event loop, so this bounds how long a
/// reload can be pending, not a pause in adverts.
pub const READ_DEADLINE: Duration = Duration::from_secs(5);

/// A PASS password is at most 8 bytes; room for a line ending and some
/// slack, so a 9-byte password is told "1 to 8 bytes" rather than "too
/// large".
const MAX_PASSWORD_FILE: usize = 64;

/// Each instance's VRRPv2 password, by instance name.
pub type Passwords = BTreeMap<String, Auth>;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("instances.{instance}.interface: {source}")]
    Interface { instance: String, source: NetError },
    #[error("instances.{instance}.authPasswordFile: {source}")]
    Password { instance: String, source: ReadError },
    #[error(
        "instances.{instance}.authPasswordFile: the password must be 1 to 8 bytes (VRRPv2 PASS)"
    )]
    PasswordLength { instance: String },
}

/// The per-instance facts that do not change while it runs.
#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub decl: Decl,
    pub link: LinkInfo,
    pub v4: bool,
    pub vips: Vec<IpPrefix>,
    pub auth: Auth,
    pub checksum: ChecksumStyle,
    pub priority: u8,
}

pub fn base_priority(d: &Declaration, i: &Decl) -> u8 {
    if i.address_owner {
        OWNER_PRIORITY
    } else {
        // Ranges were validated; the fallback cannot be reached.
        u8::try_from(i.priority.unwrap_or(d.node.priority)).unwrap_or(1)
    }
}

async fn read_password(name: &str, path: &Path) -> Result<Auth, SetupError> {
    // agenix and sops-nix deploy secrets as symlinks.
    let raw = read_regular_within(path, MAX_PASSWORD_FILE, Symlinks::Follow, READ_DEADLINE)
        .await
        .map_err(|source| SetupError::Password {
            instance: name.into(),
            source,
        })?;
    // A trailing newline is an editor's, not part of the password.
    let pw = raw.strip_suffix(b"\n").unwrap_or(&raw);
    let pw = pw.strip_suffix(b"\r").unwrap_or(pw);
    Auth::pass(pw).ok_or_else(|| SetupError::PasswordLength {
        instance: name.into(),
    })
}

/// Reads every instance's password file, off the event loop.
pub async fn read_passwords(d: &Declaration) -> Result<Passwords, SetupError> {
    let mut out = Passwords::new();
    for (name, i) in &d.instances {
        if let Some(p) = &i.auth_password_file {
            out.insert(name.clone(), read_password(name, p).await?);
        }
    }
    Ok(out)
}

pub async fn plan(
    d: &Declaration,
    passwords: &Passwords,
    net: &Net,
) -> Result<Vec<Plan>, SetupError> {
    let mut out = Vec::new();
    for (name, i) in &d.instances {
        let link = net
            .link(&i.interface)
            .await
            .map_err(|source| SetupError::Interface {
                instance: name.clone(),
                source,
            })?;
        let v4 = i.virtual_ips.first().is_none_or(|v| v.addr.is_ipv4());
        let auth = passwords.get(name).cloned().unwrap_or(Auth::None);
        let checksum = match i.v3_checksum {
            V3Checksum::Rfc => ChecksumStyle::Rfc,
            V3Checksum::AsV2 => ChecksumStyle::AsV2,
            V3Checksum::OldUnicast => ChecksumStyle::OldUnicast,
        };
        out.push(Plan {
            name: name.clone(),
            decl: i.clone(),
            link,
            v4,
            vips: i.virtual_ips.clone(),
            auth,
            checksum,
            priority: base_priority(d, i),
        });
    }
    Ok(out)
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
        let version = if self.decl.version == 2 {
            Version::V2
        } else {
            Version::V3
        };
        let interval = self.decl.advert_interval.as_duration();
        Config {
            version,
            vrid: u8::try_from(self.decl.virtual_router_id).unwrap_or(1),
            priority: self.priority,
            advert_interval_cs: u16::try_from(interval.as_millis() / 10).unwrap_or(100),
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

/// A declaration and the secrets it names, read for a reload.
pub struct Loaded {
    pub decl: Declaration,
    pub passwords: Passwords,
}

/// Everything a reload reads from files, each read bounded in size and
/// time and done off the event loop. Errors are log lines.
pub async fn read_for_reload(path: std::path::PathBuf) -> Result<Loaded, Vec<String>> {
    let decl = crate::config::load_within(&path, READ_DEADLINE)
        .await
        .map_err(|e| e.lines())?;
    let passwords = read_passwords(&decl)
        .await
        .map_err(|e| vec![e.to_string()])?;
    Ok(Loaded { decl, passwords })
}
