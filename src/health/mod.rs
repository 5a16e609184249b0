//! Health checks: the built-in nginx check and the extra http/tcp/exec
//! checks. Each check runs as its own task and reports verdict changes
//! (after rise/fall) to the daemon, which turns them into FAULT or a
//! priority change with keepalived's weight semantics.

pub mod keepalive;
pub mod lent_probe;
pub mod nginx;
pub mod probe;
pub mod stats;
pub use crate::config::url;
pub use nginx_ha_core::stub_status;

use crate::config::Checks;
use crate::config::check_spec::{ExtraSpec, NginxSpec, Probe, SpecError};
use nginx_ha_core::health::rise_fall::RiseFall;
use stats::Stats;
use std::collections::BTreeMap;
use std::time::Instant;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub check: String,
    pub healthy: bool,
    pub detail: String,
}

#[derive(Debug)]
pub enum Event {
    Verdict(Verdict),
    /// The process a check watches (nginx's master), for the event loop
    /// to watch too: its exit is acted on there at once, without waiting
    /// for the check's own thread to wake and pass the verdict on.
    Watch(ExitWatch),
    /// The check's routine probes, for the event loop to make while
    /// they pass (`lent_probe`).
    Lend(Box<lent_probe::LentProbe>),
}

/// A process's pidfd and the verdict its exit means.
#[derive(Debug)]
pub struct ExitWatch {
    pub check: String,
    pub pid: i32,
    pub fd: std::os::fd::OwnedFd,
}

impl ExitWatch {
    /// What the check itself says when the process exits: the node takes
    /// the second of two equal verdicts as no news.
    pub fn verdict(&self) -> Verdict {
        Verdict {
            check: self.check.clone(),
            healthy: false,
            detail: nginx::exit_detail(self.pid),
        }
    }
}

pub use nginx_ha_core::node::checks::Effect;

/// The running check tasks, by name. Dropping it stops them.
#[derive(Default)]
pub struct Running {
    tasks: BTreeMap<String, (String, JoinHandle<()>)>,
    stats: Stats,
}

impl Drop for Running {
    fn drop(&mut self) {
        for (_, (_, t)) in std::mem::take(&mut self.tasks) {
            t.abort();
        }
    }
}

/// A check's configuration as a comparable fingerprint, so a reload can
/// keep checks that did not change (and their verdicts).
fn fingerprint<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl Running {
    /// The probes' statistics, for the metrics endpoint.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Starts, keeps or stops check tasks to match `checks`. Returns the
    /// names of checks that were (re)started, whose verdicts start over.
    pub fn sync(&mut self, checks: &Checks, tx: &mpsc::UnboundedSender<Event>) -> Vec<String> {
        let mut want: BTreeMap<String, String> = BTreeMap::new();
        if checks.nginx.enable {
            want.insert(nginx::NAME.into(), fingerprint(&checks.nginx));
        }
        for (n, c) in &checks.extra {
            want.insert(n.clone(), fingerprint(c));
        }
        self.tasks.retain(|name, (fp, task)| {
            let keep = want.get(name) == Some(fp);
            if !keep {
                task.abort();
            }
            keep
        });
        self.stats
            .forget_except(|name| self.tasks.contains_key(name));
        let mut started = Vec::new();
        for (name, fp) in want {
            if self.tasks.contains_key(&name) {
                continue;
            }
            let task = if name == nginx::NAME {
                match NginxSpec::parse(&checks.nginx) {
                    Ok(spec) => tokio::spawn(nginx::run(spec, tx.clone(), self.stats.clone())),
                    Err(e) => refuse(&name, e, tx),
                }
            } else if let Some(c) = checks.extra.get(&name) {
                match ExtraSpec::parse(&name, c) {
                    Ok(spec) => tokio::spawn(run_extra(
                        name.clone(),
                        spec,
                        tx.clone(),
                        self.stats.clone(),
                    )),
                    Err(e) => refuse(&name, e, tx),
                }
            } else {
                continue;
            };
            started.push(name.clone());
            self.tasks.insert(name, (fp, task));
        }
        started
    }
}

/// A check that cannot run (its declaration was not validated) fails
/// loudly, once, instead of never deciding: instances tracking it would
/// otherwise wait for a first verdict for ever.
fn refuse(name: &str, e: SpecError, tx: &mpsc::UnboundedSender<Event>) -> JoinHandle<()> {
    log::error!("check {name}: {e}");
    let _ = tx.send(Event::Verdict(Verdict {
        check: name.to_string(),
        healthy: false,
        detail: e.to_string(),
    }));
    tokio::spawn(async {})
}

async fn run_extra(name: String, spec: ExtraSpec, tx: mpsc::UnboundedSender<Event>, stats: Stats) {
    let mut tracker = RiseFall::new(spec.timing.rise, spec.timing.fall);
    let mut tick = tokio::time::interval(spec.timing.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = spec.timing.timeout;
    loop {
        tick.tick().await;
        let began = Instant::now();
        let r = match &spec.probe {
            Probe::Http { url, expect } => match probe::http_get(url, limit).await {
                Ok((code, _)) if expect.accepts(code) => Ok(()),
                Ok((code, _)) => Err(format!("answered {code}")),
                Err(e) => Err(e),
            },
            Probe::Tcp { addr } => probe::tcp_connect(*addr, limit).await,
            Probe::Exec { argv } => probe::exec(argv, limit).await,
        };
        let ok = r.is_ok();
        stats.record(&name, ok, Some(began.elapsed()));
        if let Some(h) = tracker.record(ok) {
            let detail = match r {
                Ok(()) => "passing".to_string(),
                Err(e) => e,
            };
            let _ = tx.send(Event::Verdict(Verdict {
                check: name.clone(),
                healthy: h,
                detail,
            }));
        }
    }
}
