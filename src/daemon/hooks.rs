//! Notify hooks: commands run on transitions, strictly one at a time and in
//! the order of the transitions, each bounded by the notify timeout. A slow
//! hook delays the next hook, never the VRRP loop.

use crate::health::probe;
use log::{info, warn};
use std::time::Duration;
use tokio::sync::mpsc;

pub struct Job {
    pub commands: Vec<Vec<String>>,
    pub instance: String,
    pub state: &'static str,
    pub priority: u8,
    pub timeout: Duration,
}

#[derive(Clone)]
pub struct Hooks {
    tx: mpsc::UnboundedSender<Job>,
}

impl Hooks {
    pub fn start() -> Hooks {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        tokio::spawn(async move {
            while let Some(job) = rx.recv().await {
                for cmd in &job.commands {
                    let mut argv = cmd.clone();
                    argv.push(job.instance.clone());
                    argv.push(job.state.to_string());
                    argv.push(job.priority.to_string());
                    match probe::exec(&argv, job.timeout).await {
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
        });
        Hooks { tx }
    }

    pub fn queue(&self, job: Job) {
        if !job.commands.is_empty() {
            let _ = self.tx.send(job);
        }
    }
}
