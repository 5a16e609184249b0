//! Turning a validated declaration into running instances: interface
//! look-ups, source addresses, peers, passwords and the core's Config.

use crate::config::Declaration;
use crate::file_read::{ReadError, Symlinks, read_regular_within};
use crate::net::netlink::{Net, NetError};
pub use crate::node::plan::{Passwords, Plan, plans};
use crate::vrrp::packet::Auth;
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
    #[error("{0}")]
    Plan(#[from] crate::node::plan::PlanError),
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

/// Looks up each instance's interface, then builds its plan.
pub async fn plan(
    d: &Declaration,
    passwords: &Passwords,
    net: &Net,
) -> Result<Vec<Plan>, SetupError> {
    let mut links = Vec::new();
    for (name, i) in &d.instances {
        let link = net
            .link(&i.interface)
            .await
            .map_err(|source| SetupError::Interface {
                instance: name.clone(),
                source,
            })?;
        links.push(link);
    }
    Ok(plans(d, passwords, &links)?)
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
