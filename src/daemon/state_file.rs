//! The classic per-instance state file (`STATE=MASTER`), for scripts and
//! monitoring written for the keepalived recipe.
//!
//! Written by a thread of its own, never by the event loop: the loop only
//! records the latest state per instance (a map, so a burst of a thousand
//! transitions costs a thousand map inserts and writes each file once),
//! and a slow or stuck disk delays the files, not the adverts. One writer
//! takes the whole map at a time, so a file never ends up older than the
//! state recorded last.

use crate::vrrp::instance::State;
use log::warn;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

#[derive(Default)]
struct Pending {
    /// The latest state per instance not yet taken by the writer.
    latest: BTreeMap<String, State>,
    /// How many records there have been; the writer reports how many of
    /// them are on disk.
    recorded: u64,
    /// The `StateFiles` is gone: the writer ends once the map is empty.
    closed: bool,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves plain data behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct StateFiles {
    dir: PathBuf,
    shared: Arc<Shared>,
    /// How many records are on disk; None when no writer thread could be
    /// started, and the files are written inline instead.
    written: Option<watch::Receiver<u64>>,
}

impl StateFiles {
    pub fn start(dir: PathBuf) -> StateFiles {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            wake: Condvar::new(),
        });
        let (tx, rx) = watch::channel(0);
        let (s, d) = (shared.clone(), dir.clone());
        let spawned = std::thread::Builder::new()
            .name("state-files".into())
            .spawn(move || writer(&d, &s, &tx));
        let written = match spawned {
            Ok(_) => Some(rx),
            Err(e) => {
                warn!("cannot start the state file writer ({e}): writing state files inline");
                None
            }
        };
        StateFiles {
            dir,
            shared,
            written,
        }
    }

    /// `instance` is now in `state`; its file says so soon.
    pub fn record(&self, instance: &str, state: State) {
        if self.written.is_none() {
            write(&self.dir, instance, state);
            return;
        }
        let mut p = self.shared.lock();
        p.latest.insert(instance.to_string(), state);
        p.recorded += 1;
        drop(p);
        self.shared.wake.notify_one();
    }

    /// Waits until everything recorded so far is on disk, at most `limit`;
    /// false when the limit passed first.
    pub async fn flush(&self, limit: Duration) -> bool {
        self.fence().wait(limit).await
    }

    /// What is recorded so far, to wait for later (a notify hook waits
    /// for its transition's file, so that it never reads the state before).
    pub fn fence(&self) -> Fence {
        Fence {
            written: self.written.clone(),
            upto: self.shared.lock().recorded,
        }
    }
}

/// The records made before it was taken; see `StateFiles::fence`.
pub struct Fence {
    written: Option<watch::Receiver<u64>>,
    upto: u64,
}

impl Fence {
    /// Waits until those records are on disk, at most `limit`; false when
    /// the limit passed first.
    pub async fn wait(&self, limit: Duration) -> bool {
        let Some(written) = &self.written else {
            return true;
        };
        let mut rx = written.clone();
        let upto = self.upto;
        let done = tokio::time::timeout(limit, rx.wait_for(|&n| n >= upto)).await;
        // A closed channel: the writer is gone (it panicked), nothing more
        // will be written.
        matches!(done, Ok(Ok(_)))
    }
}

impl Drop for StateFiles {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

fn writer(dir: &Path, shared: &Shared, written: &watch::Sender<u64>) {
    loop {
        let (batch, upto) = {
            let mut p = shared.lock();
            while p.latest.is_empty() && !p.closed {
                p = shared.wake.wait(p).unwrap_or_else(|e| e.into_inner());
            }
            if p.latest.is_empty() {
                return;
            }
            (std::mem::take(&mut p.latest), p.recorded)
        };
        for (instance, state) in batch {
            write(dir, &instance, state);
        }
        written.send_replace(upto);
    }
}

fn write(dir: &Path, instance: &str, state: State) {
    let path = dir.join(format!("{instance}.state"));
    let tmp = dir.join(format!(".{instance}.state.tmp"));
    let body = format!("STATE={}\n", state.as_str());
    // Written aside and renamed, so a reader never sees half a file.
    let r = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        warn!("state file {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(dir: &Path, instance: &str) -> String {
        std::fs::read_to_string(dir.join(format!("{instance}.state"))).unwrap_or_default()
    }

    #[tokio::test]
    async fn a_burst_ends_with_each_instances_latest_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = StateFiles::start(dir.path().to_path_buf());
        let states = [
            State::Backup,
            State::Master,
            State::Fault,
            State::Initialize,
        ];
        for round in 0..50 {
            for i in 0..200 {
                files.record(&format!("i{i}"), states[(round + i) % 4]);
            }
        }
        assert!(
            files.flush(Duration::from_secs(10)).await,
            "flush timed out"
        );
        for i in 0..200 {
            let want = format!("STATE={}\n", states[(49 + i) % 4].as_str());
            assert_eq!(read(dir.path(), &format!("i{i}")), want, "instance i{i}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[tokio::test]
    async fn a_fence_waits_for_its_own_records_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = StateFiles::start(dir.path().to_path_buf());
        files.record("a", State::Master);
        let fence = files.fence();
        assert!(fence.wait(Duration::from_secs(5)).await, "timed out");
        assert_eq!(read(dir.path(), "a"), "STATE=MASTER\n");
        // A fence taken before any record is passed at once.
        let empty = tempfile::tempdir().expect("tempdir");
        let none = StateFiles::start(empty.path().to_path_buf());
        assert!(none.fence().wait(Duration::ZERO).await);
    }

    #[tokio::test]
    async fn flush_is_bounded_when_the_disk_hangs() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Opening a FIFO for writing blocks until someone reads it: a
        // stand-in for a hung filesystem.
        let fifo = dir.path().join(".stuck.state.tmp");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        let files = StateFiles::start(dir.path().to_path_buf());
        let t = std::time::Instant::now();
        files.record("stuck", State::Master);
        assert!(t.elapsed() < Duration::from_millis(100), "record waited");
        assert!(!files.flush(Duration::from_millis(200)).await);
        // Unblock the writer so that the test leaves no thread behind.
        let _ = std::fs::File::open(&fifo);
    }
}
