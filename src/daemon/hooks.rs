//! Notify hooks: commands run on transitions, one at a time, each bounded
//! by the notify timeout. A slow hook delays the next hook, never the VRRP
//! loop.
//!
//! Which job runs next is `crate::node::hook_queue`'s pure policy: one
//! waiting job per instance, the latest. On SIGTERM the daemon waits
//! (bounded) for the queue to empty, so the `stop` hooks run before it
//! exits.

use super::state_file::Fence;
use crate::child::{self, Leftovers};
use crate::node::hook_queue::HookQueue;
use log::{info, warn};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;

pub struct Job {
    /// The transition's state file: a hook that reads it must see its
    /// own state, not the one before.
    pub state_file: Fence,
    pub commands: Vec<Vec<String>>,
    pub instance: String,
    pub state: &'static str,
    pub priority: u8,
    pub timeout: Duration,
}

#[derive(Default)]
struct Queue {
    waiting: HookQueue<Job>,
    /// A job has been taken and has not finished.
    running: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the worker when a job is queued.
    work: Notify,
    /// Wakes `drain` when the worker has nothing left.
    idle: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves plain data behind.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Clone)]
pub struct Hooks {
    shared: Arc<Shared>,
}

/// The longest a hook waits for its state file (a hung disk delays the
/// hooks by this much, not for ever).
const STATE_FILE_WAIT: Duration = Duration::from_secs(1);

async fn run_job(job: &Job) {
    if !job.state_file.wait(STATE_FILE_WAIT).await {
        warn!(
            "state file of {} not written after {STATE_FILE_WAIT:?}; running its hooks anyway",
            job.instance
        );
    }
    for cmd in &job.commands {
        let mut argv = cmd.clone();
        argv.push(job.instance.clone());
        argv.push(job.state.to_string());
        argv.push(job.priority.to_string());
        match child::run(&argv, &[], job.timeout, Leftovers::Keep).await {
            Ok(()) => info!(
                "notify hook {:?} ran for {} {}",
                cmd, job.instance, job.state
            ),
            Err(e) => warn!(
                "notify hook {:?} for {} {}: {e}",
                cmd, job.instance, job.state
            ),
        }
    }
}

impl Hooks {
    pub fn start() -> Hooks {
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let job = {
                    let mut q = s.lock();
                    let job = q.waiting.pop();
                    q.running = job.is_some();
                    job
                };
                match job {
                    Some(job) => {
                        run_job(&job).await;
                        s.lock().running = false;
                    }
                    None => {
                        s.idle.notify_waiters();
                        s.work.notified().await;
                    }
                }
            }
        });
        Hooks { shared }
    }

    pub fn queue(&self, job: Job) {
        if job.commands.is_empty() {
            return;
        }
        let mut q = self.shared.lock();
        let name = job.instance.clone();
        if let Some(old) = q.waiting.push(&name, job) {
            info!(
                "notify hooks for {name} {} skipped: the instance has moved on",
                old.state
            );
        }
        drop(q);
        // Stores a permit when the worker is busy, so no wake-up is lost.
        self.shared.work.notify_one();
    }

    fn busy(&self) -> bool {
        let q = self.shared.lock();
        q.running || !q.waiting.is_empty()
    }

    /// Waits until every queued hook has run, at most `limit`.
    pub async fn drain(&self, limit: Duration) {
        let wait = async {
            loop {
                let idle = self.shared.idle.notified();
                tokio::pin!(idle);
                // Registered before looking, so a wake-up between the look
                // and the wait is not lost.
                idle.as_mut().enable();
                if !self.busy() {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(limit, wait).await.is_err() {
            warn!("notify hooks still running after {limit:?}; exiting without them");
        }
    }
}
