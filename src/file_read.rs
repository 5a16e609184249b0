//! Every file the daemon reads goes through here: the declaration, nginx's
//! pidfile, the VRRPv2 password file, /proc.
//!
//! Only regular files are read. A FIFO would block the reader until a
//! writer comes (seconds of missed adverts on SIGHUP: two masters), and
//! /dev/zero never ends, so `fs::read` on it grows memory without limit
//! before any size check. The file is opened non-blocking (a FIFO's open
//! returns at once), checked with fstat, and read through a `take` of one
//! byte more than the limit, so an oversized file is known without
//! reading it whole. The async form does the read on tokio's blocking
//! pool with a deadline: a stalled filesystem costs its caller the
//! deadline, never the event loop.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: it is {kind}, not a regular file", .path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("cannot read {}: the file is larger than {limit} bytes", .path.display())]
    TooLarge { path: PathBuf, limit: usize },
    #[error("cannot read {}: no answer within {after:?} (a stalled filesystem?)", .path.display())]
    TimedOut { path: PathBuf, after: Duration },
    #[error("cannot read {}: an earlier read of it has not returned yet", .path.display())]
    Busy { path: PathBuf },
}

/// Whether the last path component may be a symlink. Files that other
/// tools deploy (the declaration under /etc, a secret from agenix or
/// sops-nix) are symlinks by design; a pidfile written by nginx is not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    Follow,
    Refuse,
}

/// What to do with a file larger than the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Excess {
    Refuse,
    Cut,
}

fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else {
        "a special file"
    }
}

fn open_regular(path: &Path, symlinks: Symlinks) -> Result<File, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY;
    if symlinks == Symlinks::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) && symlinks == Symlinks::Refuse {
                ReadError::NotRegular {
                    path: path.to_path_buf(),
                    kind: "a symlink",
                }
            } else {
                io(e)
            }
        })?;
    let ft = f.metadata().map_err(io)?.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(ft),
        });
    }
    Ok(f)
}

fn read(
    path: &Path,
    limit: usize,
    symlinks: Symlinks,
    excess: Excess,
) -> Result<Vec<u8>, ReadError> {
    let f = open_regular(path, symlinks)?;
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    f.take(cap)
        .read_to_end(&mut buf)
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if buf.len() > limit {
        match excess {
            Excess::Refuse => {
                return Err(ReadError::TooLarge {
                    path: path.to_path_buf(),
                    limit,
                });
            }
            Excess::Cut => buf.truncate(limit),
        }
    }
    Ok(buf)
}

/// Reads a whole regular file of at most `limit` bytes. Blocking: for
/// the CLI and for the blocking pool.
pub fn read_regular(path: &Path, limit: usize, symlinks: Symlinks) -> Result<Vec<u8>, ReadError> {
    read(path, limit, symlinks, Excess::Refuse)
}

/// The first `limit` bytes of a regular file (e.g. /proc/PID/cmdline,
/// where only the start matters).
pub fn read_regular_prefix(
    path: &Path,
    limit: usize,
    symlinks: Symlinks,
) -> Result<Vec<u8>, ReadError> {
    read(path, limit, symlinks, Excess::Cut)
}

/// Runs a blocking file operation on the blocking pool, bounded by
/// `deadline`. A read that never returns keeps one pool thread; the
/// caller has moved on.
pub async fn off_loop<T: Send + 'static>(
    path: &Path,
    deadline: Duration,
    work: impl FnOnce() -> Result<T, ReadError> + Send + 'static,
) -> Result<T, ReadError> {
    match tokio::time::timeout(deadline, tokio::task::spawn_blocking(work)).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => Err(ReadError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(join.to_string()),
        }),
        Err(_) => Err(ReadError::TimedOut {
            path: path.to_path_buf(),
            after: deadline,
        }),
    }
}

/// `read_regular` off the event loop, with a deadline.
pub async fn read_regular_within(
    path: &Path,
    limit: usize,
    symlinks: Symlinks,
    deadline: Duration,
) -> Result<Vec<u8>, ReadError> {
    let p = path.to_path_buf();
    off_loop(path, deadline, move || read_regular(&p, limit, symlinks)).await
}

/// One read at a time for a caller that reads the same file again and
/// again (the pidfile poll): while an earlier read is stuck in the
/// kernel, later ones fail at once instead of piling up pool threads.
#[derive(Clone, Default)]
pub struct OneAtATime {
    busy: Arc<AtomicBool>,
}

impl OneAtATime {
    pub async fn read(
        &self,
        path: &Path,
        limit: usize,
        symlinks: Symlinks,
        excess: Excess,
        deadline: Duration,
    ) -> Result<Vec<u8>, ReadError> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(ReadError::Busy {
                path: path.to_path_buf(),
            });
        }
        let busy = Arc::clone(&self.busy);
        let p = path.to_path_buf();
        off_loop(path, deadline, move || {
            let r = read(&p, limit, symlinks, excess);
            busy.store(false, Ordering::Release);
            r
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = read_regular(dir.path(), 10, Symlinks::Follow).unwrap_err();
        assert!(e.to_string().contains("is a directory"), "{e}");
        let e = read_regular(Path::new("/dev/zero"), 10, Symlinks::Follow).unwrap_err();
        assert!(
            e.to_string()
                .contains("/dev/zero: it is a character device"),
            "{e}"
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let e = read_regular(&fifo, 10, Symlinks::Follow).unwrap_err();
        assert!(e.to_string().contains("is a FIFO"), "{e}");
    }

    #[test]
    fn limits_are_exact_and_symlinks_follow_the_choice() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_regular(&f, 5, Symlinks::Refuse).unwrap(), b"12345");
        let e = read_regular(&f, 4, Symlinks::Refuse).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { limit: 4, .. }), "{e}");
        assert_eq!(read_regular_prefix(&f, 2, Symlinks::Refuse).unwrap(), b"12");
        let l = dir.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert_eq!(read_regular(&l, 5, Symlinks::Follow).unwrap(), b"12345");
        let e = read_regular(&l, 5, Symlinks::Refuse).unwrap_err();
        assert!(e.to_string().contains("is a symlink"), "{e}");
    }
}
