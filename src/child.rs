//! Child processes: exec checks and notify hooks.
//!
//! Each runs in a process group of its own, so a timeout kills what the
//! command started too (a shell's `sleep`, a script's pipeline), not only
//! the direct child; the group is killed while its leader is still
//! unreaped, so its ID cannot have been reused. A check's leftovers are
//! killed the same way when it exits in time. The child is reaped before
//! `run` returns, and killed with its group if `run` is cancelled.
//!
//! Children start with a clean, minimal environment (the daemon's may hold
//! NOTIFY_SOCKET, WATCHDOG_USEC, credentials paths and whatever the
//! service manager set) and with no ambient or inheritable capabilities,
//! whichever way the daemon was started.

use std::os::fd::OwnedFd;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::unix::AsyncFd;

/// The whole environment a child gets, besides what its caller adds.
/// Commands are absolute paths; PATH serves the scripts they run.
pub const PATH: &str = "/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin";

/// Kills the child's process group unless it was reaped.
struct Group(tokio::process::Child);

impl Group {
    fn kill(&mut self) {
        // `id` is None once the child was reaped: its PID may be reused.
        if let Some(pid) = self.0.id().and_then(|p| i32::try_from(p).ok()) {
            // The group this module created; its leader is unreaped, so
            // the group ID is still ours.
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Between fork and exec: only async-signal-safe calls, no allocation
/// (rustix makes the system calls directly).
fn drop_inheritable_caps() {
    // Ambient first: the kernel drops ambient capabilities that are not
    // also inheritable, but clearing them costs one prctl and needs no
    // privilege.
    let _ = rustix::thread::clear_ambient_capability_set();
    // Either call may fail (a seccomp filter that forbids capset): the
    // ambient set is clear anyway, and no_new_privs keeps file
    // capabilities from adding to what the daemon holds.
    if let Ok(sets) = rustix::thread::capabilities(None)
        && !sets.inheritable.is_empty()
    {
        let _ = rustix::thread::set_capabilities(
            None,
            rustix::thread::CapabilitySets {
                inheritable: rustix::thread::CapabilitySet::empty(),
                ..sets
            },
        );
    }
}

/// What happens to processes a command leaves in its group when it
/// exits in time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leftovers {
    /// Killed: a check runs every interval, and `cmd &` in it would start
    /// one more process each time.
    Kill,
    /// Left alone: a hook may start something on purpose.
    Keep,
}

fn pidfd_open(pid: u32) -> std::io::Result<OwnedFd> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Waits until the child has exited without reaping it: while it is an
/// unreaped zombie its PID, and so its group's ID, cannot be reused, and
/// the group can be killed safely. Falls back to the plain wait (which
/// reaps) where pidfds are unavailable.
#[allow(unsafe_code)] // AsyncFd::register: see the SAFETY comment.
async fn exited(child: &mut Group) -> std::io::Result<()> {
    let pidfd = child
        .0
        .id()
        .ok_or_else(|| std::io::Error::other("already reaped"))
        .and_then(pidfd_open)
        // SAFETY: the OwnedFd stays owned by the AsyncFd until it is
        // dropped.
        .and_then(|fd| unsafe { AsyncFd::register(fd) }.map_err(std::io::Error::from));
    match pidfd {
        Ok(fd) => fd.readable().await.map(|_| ()),
        Err(_) => child.0.wait().await.map(|_| ()),
    }
}

/// Runs `argv` with `env` added to the minimal environment; Ok on exit
/// status 0. Overrunning `limit` kills the whole process group.
#[allow(unsafe_code)] // Command::pre_exec: see the SAFETY comment.
pub async fn run(
    argv: &[String],
    env: &[(&str, &str)],
    limit: Duration,
    leftovers: Leftovers,
) -> Result<(), String> {
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .env_clear()
        .env("PATH", PATH)
        .envs(env.iter().copied())
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(|| {
            drop_inheritable_caps();
            Ok(())
        });
    }
    let mut child = Group(cmd.spawn().map_err(|e| format!("{prog}: {e}"))?);
    match tokio::time::timeout(limit, exited(&mut child)).await {
        Ok(done) => {
            if leftovers == Leftovers::Kill {
                child.kill();
            }
            match done.and(child.0.wait().await) {
                Ok(st) if st.success() => Ok(()),
                Ok(st) => Err(format!("{prog} exited with {st}")),
                Err(e) => Err(format!("{prog}: {e}")),
            }
        }
        Err(_) => {
            child.kill();
            // SIGKILL cannot be caught; the wait is short, but bounded
            // anyway.
            let _ = tokio::time::timeout(Duration::from_secs(5), child.0.wait()).await;
            Err(format!(
                "{prog} overran its {limit:?} timeout and was killed with its process group"
            ))
        }
    }
}
