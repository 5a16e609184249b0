//! Health-check policy, pure (no clock: time comes in as `now`): rise and
//! fall (`rise_fall`), when the nginx check probes next and what its
//! verdict is (`nginx_plan`), and the crash-loop hold-down that keeps an
//! nginx dying right after each start from flapping the VIP (`hold_down`).
//! The probes themselves (sockets, pidfd, timers) live in the daemon.

pub mod hold_down;
pub mod nginx_plan;
pub mod rise_fall;
