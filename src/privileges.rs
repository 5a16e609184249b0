//! Keep only CAP_NET_RAW (raw VRRP sockets, packet sockets for GARP/NA) and
//! CAP_NET_ADMIN (adding and removing VIPs), and nothing a child process
//! could inherit.
//!
//! Two ways in:
//! - started as root (a plain init script, the lab): lock root's implicit
//!   capabilities away from children (SECBIT_NOROOT), trim the bounding
//!   set, switch to `--user` if given, and keep the two capabilities;
//! - started by systemd as an unprivileged user with
//!   AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN: the unit's seccomp
//!   filter forbids capset/setuid (@privileged), so only check what we
//!   hold, and clear the ambient set so children do not inherit it.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid, User};
use rustix::thread::CapabilitiesSecureBits;

const NEEDED: [Capability; 2] = [Capability::CAP_NET_RAW, Capability::CAP_NET_ADMIN];

#[derive(Debug, thiserror::Error)]
pub enum PrivError {
    #[error(
        "{0} is missing: run nginx-ha as root, or give the service AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN"
    )]
    Missing(&'static str),
    #[error(
        "refusing to run as root without --user: give --user NAME (the daemon then keeps only CAP_NET_RAW and CAP_NET_ADMIN under that user), or --allow-root to keep uid 0 on purpose"
    )]
    RootWithoutUser,
    #[error("user {0} does not exist")]
    NoUser(String),
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Caps {
        what: &'static str,
        source: caps::errors::CapsError,
    },
}

fn needed() -> CapsHashSet {
    NEEDED.into_iter().collect()
}

fn caps_err(what: &'static str) -> impl FnOnce(caps::errors::CapsError) -> PrivError {
    move |source| PrivError::Caps { what, source }
}

fn sys<E: Into<std::io::Error>>(what: &'static str) -> impl FnOnce(E) -> PrivError {
    move |e| PrivError::Sys {
        what,
        source: e.into(),
    }
}

/// uid and gid of a user, from the password database.
pub fn lookup_user(name: &str) -> Result<(u32, u32), PrivError> {
    // A failed lookup says as little as getpwnam's NULL did: no such user.
    match User::from_name(name) {
        Ok(Some(u)) => Ok((u.uid.as_raw(), u.gid.as_raw())),
        Ok(None) | Err(_) => Err(PrivError::NoUser(name.into())),
    }
}

/// Drops everything but the two capabilities; `user` (a uid/gid pair from
/// `lookup_user`) is switched to when running as root.
pub fn restrict(user: Option<(u32, u32)>) -> Result<(), PrivError> {
    let permitted =
        caps::read(None, CapSet::Permitted).map_err(caps_err("reading capabilities"))?;
    for (cap, name) in NEEDED.iter().zip(["CAP_NET_RAW", "CAP_NET_ADMIN"]) {
        if !permitted.contains(cap) {
            return Err(PrivError::Missing(name));
        }
    }
    if nix::unistd::geteuid().is_root() {
        // Root gets every capability back at execve unless told not to:
        // lock that away so health commands and hooks start with none.
        if let Ok(bits) = rustix::thread::capabilities_secure_bits() {
            let want =
                bits | CapabilitiesSecureBits::NO_ROOT | CapabilitiesSecureBits::NO_ROOT_LOCKED;
            if bits != want {
                rustix::thread::set_capabilities_secure_bits(want)
                    .map_err(sys("setting SECBIT_NOROOT"))?;
            }
        }
        for cap in caps::all() {
            if !NEEDED.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false)
            {
                caps::drop(None, CapSet::Bounding, cap)
                    .map_err(caps_err("trimming the bounding set"))?;
            }
        }
        if let Some((uid, gid)) = user {
            // Keep the permitted set across setuid; effective is restored
            // below. nix goes through libc, which applies the IDs to every
            // thread of the process, not only this one.
            let (uid, gid) = (Uid::from_raw(uid), Gid::from_raw(gid));
            nix::sys::prctl::set_keepcaps(true).map_err(sys("PR_SET_KEEPCAPS"))?;
            nix::unistd::setgroups(&[]).map_err(sys("setgroups"))?;
            nix::unistd::setresgid(gid, gid, gid).map_err(sys("setresgid"))?;
            nix::unistd::setresuid(uid, uid, uid).map_err(sys("setresuid"))?;
        }
        caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
            .map_err(caps_err("clearing the inheritable set"))?;
        // Effective first: the kernel refuses a permitted set smaller than
        // the effective one.
        caps::set(None, CapSet::Effective, &needed())
            .map_err(caps_err("setting the effective set"))?;
        caps::set(None, CapSet::Permitted, &needed())
            .map_err(caps_err("trimming the permitted set"))?;
    } else {
        // Under systemd's seccomp filter capset is refused: call it only
        // if there is something to drop.
        let eff = caps::read(None, CapSet::Effective).map_err(caps_err("reading capabilities"))?;
        if eff != needed() {
            caps::set(None, CapSet::Effective, &needed())
                .map_err(caps_err("setting the effective set"))?;
        }
        if permitted != needed() {
            caps::set(None, CapSet::Permitted, &needed())
                .map_err(caps_err("trimming the permitted set"))?;
        }
        // systemd puts AmbientCapabilities into the inheritable set too; a
        // child exec'ing a binary with inheritable file capabilities would
        // get them back. Children clear it again before exec (child.rs).
        let inheritable =
            caps::read(None, CapSet::Inheritable).map_err(caps_err("reading capabilities"))?;
        if !inheritable.is_empty()
            && let Err(e) = caps::set(None, CapSet::Inheritable, &CapsHashSet::new())
        {
            log::warn!(
                "cannot clear the inheritable capability set ({e}; a seccomp filter?): a health command or hook that runs a binary with inheritable file capabilities could get CAP_NET_RAW/CAP_NET_ADMIN"
            );
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clearing the ambient set"))?;
    nix::sys::prctl::set_no_new_privs().map_err(sys("PR_SET_NO_NEW_PRIVS"))?;
    Ok(())
}
