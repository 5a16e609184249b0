//! The loop's own epoll: the VRRP sockets, the node's next deadline as
//! the wait's timeout, and one eventfd that every other source (netlink,
//! health verdicts, the control socket, signals, reloads, the watchdog,
//! metrics) raises through its waker.
//!
//! Why not the tokio select it replaces: at 10 ms adverts the loop wakes
//! a hundred times a second for one advert, and every wake-up polled a
//! dozen sources (each a queue pop and a waker registration, twice per
//! wake-up), parked through the runtime's driver and re-armed a timerfd:
//! three times keepalived's instructions per advert, and more CPU than it
//! where it matters most. Here a wake-up is one `epoll_pwait2` whose
//! timeout is the deadline to the nanosecond (no timerfd to re-arm), the
//! sockets it names are read, and the other sources are looked at only
//! when their waker says one of them has something.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Wake, Waker};
use std::time::Duration;

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::eventfd::{EfdFlags, EventFd};

/// The token of the eventfd; socket tokens are below it.
const COLD: u64 = u64::MAX;
/// Readiness reported per wait: more than the sockets a node has only on
/// very many interfaces, and then the rest are reported by the next wait
/// (level-triggered: nothing is lost).
const EVENTS: usize = 32;

/// Cheap to clone: the sockets' owners keep a handle to deregister.
#[derive(Clone)]
pub struct Poller(Arc<Inner>);

struct Inner {
    epoll: Epoll,
    cold: Arc<ColdWaker>,
    /// epoll_pwait2 is Linux ≥ 5.11; before it, epoll_wait's whole
    /// milliseconds, rounded up so that a deadline is never early.
    pwait2: AtomicBool,
}

/// Raises the eventfd once per batch of wake-ups from the other sources:
/// a wake while one is already pending costs an atomic, not a syscall.
struct ColdWaker {
    pending: AtomicBool,
    fd: EventFd,
}

impl Wake for ColdWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            // Only EAGAIN (the counter at its maximum) can fail, and then
            // the fd is readable anyway.
            let _ = self.fd.write(1);
        }
    }
}

/// What one wait found.
pub struct Ready {
    /// The tokens of the sockets with datagrams queued.
    pub sockets: Vec<u64>,
    /// One of the other sources woke.
    pub cold: bool,
    /// The kernel's list, kept: zeroing a fresh one for each wait showed
    /// in the profile of a master at 10 ms adverts.
    events: [EpollEvent; EVENTS],
}

impl Default for Ready {
    fn default() -> Ready {
        Ready {
            sockets: Vec::new(),
            cold: false,
            events: [EpollEvent::empty(); EVENTS],
        }
    }
}

impl Poller {
    pub fn new() -> io::Result<Poller> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        let fd = EventFd::from_value_and_flags(0, EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        epoll.add(&fd, EpollEvent::new(EpollFlags::EPOLLIN, COLD))?;
        // Pending at first: the first turn polls every source, which
        // registers this waker with each.
        fd.write(1)?;
        let cold = Arc::new(ColdWaker {
            pending: AtomicBool::new(true),
            fd,
        });
        Ok(Poller(Arc::new(Inner {
            epoll,
            cold,
            pwait2: AtomicBool::new(true),
        })))
    }

    /// Watches `fd` for datagrams, level-triggered: a socket still holding
    /// some after a batch is named again by the next wait.
    pub fn add(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        debug_assert!(token != COLD);
        self.0
            .epoll
            .add(fd, EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        Ok(())
    }

    pub fn remove(&self, fd: BorrowedFd<'_>) {
        // A closed fd leaves the set by itself; this is for the order of
        // things, and a failure has nothing to undo.
        let _ = self.0.epoll.delete(fd);
    }

    /// The waker for every source but the sockets.
    pub fn waker(&self) -> Waker {
        Waker::from(self.0.cold.clone())
    }

    /// Whether the other sources are to be looked at, and clears that:
    /// a wake from now on raises the eventfd again.
    pub fn take_cold(&self) -> bool {
        let c = &self.0.cold;
        if !c.pending.load(Ordering::Acquire) {
            return false;
        }
        // Drained before the flag is cleared: a wake in between raises it
        // again rather than being lost.
        let _ = c.fd.read();
        c.pending.swap(false, Ordering::AcqRel)
    }

    /// Waits at most `timeout` (None: until something happens) and says
    /// what is ready. Interrupted by a signal, it returns with nothing.
    pub fn wait(&self, timeout: Option<Duration>, ready: &mut Ready) -> io::Result<()> {
        ready.sockets.clear();
        ready.cold = false;
        let n = match self.wait_raw(timeout, &mut ready.events) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
            Err(e) => return Err(e),
        };
        for ev in &ready.events[..n.min(EVENTS)] {
            match ev.data() {
                COLD => ready.cold = true,
                token => ready.sockets.push(token),
            }
        }
        Ok(())
    }

    #[allow(unsafe_code)] // epoll_pwait2 has no wrapper: see the SAFETY comment.
    fn wait_raw(&self, timeout: Option<Duration>, events: &mut [EpollEvent]) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        if self.0.pwait2.load(Ordering::Relaxed) {
            let ts = timeout.map(|t| libc::timespec {
                tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
                // Below 10^9: fits a 32-bit c_long too.
                tv_nsec: t.subsec_nanos() as libc::c_long,
            });
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |t| t as *const libc::timespec);
            // SAFETY: `events` is writable for `max` entries (EpollEvent
            // is a transparent epoll_event), the timespec outlives the
            // call, and a null sigmask leaves the mask alone.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_epoll_pwait2,
                    self.0.epoll.0.as_raw_fd(),
                    events.as_mut_ptr(),
                    max,
                    ts_ptr,
                    std::ptr::null::<libc::sigset_t>(),
                    0usize,
                )
            };
            if r >= 0 {
                return Ok(usize::try_from(r).unwrap_or(0));
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOSYS) {
                return Err(e);
            }
            self.0.pwait2.store(false, Ordering::Relaxed);
        }
        let ms = timeout.map_or(-1, |t| {
            let ms = t.as_nanos().div_ceil(1_000_000);
            i32::try_from(ms).unwrap_or(i32::MAX)
        });
        // SAFETY: as above, with epoll_wait's millisecond timeout.
        let r = unsafe {
            libc::epoll_wait(
                self.0.epoll.0.as_raw_fd(),
                events.as_mut_ptr().cast(),
                max,
                ms,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(usize::try_from(r).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;
    use std::time::Instant;

    #[test]
    fn names_the_readable_socket_and_times_out_at_the_deadline() {
        let p = Poller::new().expect("epoll");
        let mut ready = Ready::default();
        // The first turn looks at every other source.
        p.wait(Some(Duration::ZERO), &mut ready).expect("wait");
        assert!(ready.cold);
        assert!(p.take_cold());
        let a = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").expect("bind");
        p.add(a.as_fd(), 7).expect("add");
        let t0 = Instant::now();
        p.wait(Some(Duration::from_millis(20)), &mut ready)
            .expect("wait");
        assert!(t0.elapsed() >= Duration::from_millis(20), "early");
        assert!(ready.sockets.is_empty() && !ready.cold);
        b.send_to(b"x", a.local_addr().expect("addr"))
            .expect("send");
        p.wait(Some(Duration::from_secs(5)), &mut ready)
            .expect("wait");
        assert_eq!(ready.sockets, vec![7]);
        // Level-triggered: still queued, still named.
        p.wait(Some(Duration::ZERO), &mut ready).expect("wait");
        assert_eq!(ready.sockets, vec![7]);
        p.remove(a.as_fd());
        p.wait(Some(Duration::ZERO), &mut ready).expect("wait");
        assert!(ready.sockets.is_empty());
    }

    #[test]
    fn a_wake_from_another_thread_ends_the_wait_once() {
        let p = Poller::new().expect("epoll");
        let mut ready = Ready::default();
        assert!(p.take_cold());
        let w = p.waker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            w.wake_by_ref();
            w.wake();
        });
        p.wait(Some(Duration::from_secs(5)), &mut ready)
            .expect("wait");
        assert!(ready.cold);
        t.join().expect("thread");
        assert!(p.take_cold());
        // Taken: nothing more until the next wake.
        assert!(!p.take_cold());
        p.wait(Some(Duration::ZERO), &mut ready).expect("wait");
        assert!(!ready.cold);
    }
}
