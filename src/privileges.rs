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
use std::ffi::CString;

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

fn sys(what: &'static str, r: libc::c_int) -> Result<(), PrivError> {
    if r == 0 {
        Ok(())
    } else {
        Err(PrivError::Sys {
            what,
            source: std::io::Error::last_os_error(),
        })
    }
}

/// uid and gid of a user, from the password database.
pub fn lookup_user(name: &str) -> Result<(u32, u32), PrivError> {
    let c = CString::new(name).map_err(|_| PrivError::NoUser(name.into()))?;
    // SAFETY: getpwnam returns a pointer into static storage or NULL; it is
    // read at once, before any other call could overwrite it.
    let pw = unsafe { libc::getpwnam(c.as_ptr()) };
    if pw.is_null() {
        return Err(PrivError::NoUser(name.into()));
    }
    // SAFETY: non-NULL, points at a valid passwd struct (see above).
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Ok((uid, gid))
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
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        // Root gets every capability back at execve unless told not to:
        // lock that away so health commands and hooks start with none.
        // SAFETY: prctl with integer arguments only.
        let bits = unsafe { libc::prctl(libc::PR_GET_SECUREBITS) };
        let want = bits | (1 << 0) | (1 << 1); // SECBIT_NOROOT | _LOCKED
        if bits >= 0 && bits != want {
            // SAFETY: as above.
            sys("setting SECBIT_NOROOT", unsafe {
                libc::prctl(libc::PR_SET_SECUREBITS, want as libc::c_ulong)
            })?;
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
            // below.
            // SAFETY: prctl/setgroups/setresgid/setresuid with plain
            // integers; a NULL list with size 0 for setgroups.
            unsafe {
                sys("PR_SET_KEEPCAPS", libc::prctl(libc::PR_SET_KEEPCAPS, 1))?;
                sys("setgroups", libc::setgroups(0, std::ptr::null()))?;
                sys("setresgid", libc::setresgid(gid, gid, gid))?;
                sys("setresuid", libc::setresuid(uid, uid, uid))?;
            }
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
    // SAFETY: prctl with integer arguments only.
    sys("PR_SET_NO_NEW_PRIVS", unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    })?;
    Ok(())
}
