//! One daemon per runtime directory. A second `nginx-ha run` on the same
//! directory would clean the first one's VIPs as "stale" and take over its
//! control socket, leaving the first a MASTER that no one can reach. An
//! flock on a file in the directory, taken before anything is touched,
//! makes the second one stop instead; the kernel releases it when the
//! holder exits, however it exits.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

pub const LOCK_FILE: &str = "nginx-ha.lock";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another nginx-ha{holder} is running with runtime directory {dir}: refusing to start (stop it first, or give this one its own --runtime-dir)"
    )]
    Held { dir: String, holder: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Holds the lock until dropped (i.e. for the daemon's lifetime).
#[derive(Debug)]
pub struct RuntimeLock {
    _file: File,
}

pub fn acquire(runtime_dir: &Path) -> Result<RuntimeLock, LockError> {
    let path = runtime_dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o644)
        // A symlink planted here must not make us write elsewhere.
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(io)?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        if e == rustix::io::Errno::WOULDBLOCK {
            // The holder wrote its PID; a few bytes are enough to say who.
            let mut buf = [0u8; 32];
            let n = file.read(&mut buf).unwrap_or(0);
            let pid = String::from_utf8_lossy(&buf[..n]).trim().to_string();
            let holder = if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
                format!(" (PID {pid})")
            } else {
                String::new()
            };
            return Err(LockError::Held {
                dir: runtime_dir.display().to_string(),
                holder,
            });
        }
        return Err(io(e.into()));
    }
    // Only the holder writes, so the PID is never a torn mix of two.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "{}", std::process::id()).map_err(io)?;
    Ok(RuntimeLock { _file: file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_until_the_first_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let first = acquire(d.path()).unwrap();
        let e = acquire(d.path()).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("another nginx-ha"), "{msg}");
        assert!(
            msg.contains(&format!("PID {}", std::process::id())),
            "{msg}"
        );
        drop(first);
        assert!(acquire(d.path()).is_ok());
    }
}
