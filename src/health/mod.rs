//! Health checks: the built-in nginx check and the extra http/tcp/exec
//! checks. Each check runs as its own task and reports verdict changes
//! (after rise/fall) to the daemon, which turns them into FAULT or a
//! priority change with keepalived's weight semantics.

pub mod nginx;
pub mod probe;
pub use nginx_ha_core::stub_status;
pub mod tracker;
pub use crate::config::url;

use crate::config::{Checks, ExtraCheck, ExtraCheckType};
use std::collections::BTreeMap;
use stub_status::StubStatus;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracker::Tracker;
use url::HttpUrl;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub check: String,
    pub healthy: bool,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Verdict(Verdict),
    /// The latest stub_status reading, for `status`.
    Stub(StubStatus),
}

pub use nginx_ha_core::node::checks::Effect;

/// The running check tasks, by name. Dropping it stops them.
#[derive(Default)]
pub struct Running {
    tasks: BTreeMap<String, (String, JoinHandle<()>)>,
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
        let mut started = Vec::new();
        for (name, fp) in want {
            if self.tasks.contains_key(&name) {
                continue;
            }
            let task = if name == nginx::NAME {
                tokio::spawn(nginx::run(checks.nginx.clone(), tx.clone()))
            } else if let Some(c) = checks.extra.get(&name) {
                tokio::spawn(run_extra(name.clone(), c.clone(), tx.clone()))
            } else {
                continue;
            };
            started.push(name.clone());
            self.tasks.insert(name, (fp, task));
        }
        started
    }
}

/// An http check passes on its `expectStatus`, or on any 2xx when none is
/// given (as documented; a health endpoint may answer 204).
fn status_ok(code: u16, expect: Option<u64>) -> bool {
    match expect {
        Some(e) => u64::from(code) == e,
        None => (200..300).contains(&code),
    }
}

async fn run_extra(name: String, c: ExtraCheck, tx: mpsc::UnboundedSender<Event>) {
    let mut tracker = Tracker::new(c.rise as u32, c.fall as u32);
    let mut tick = tokio::time::interval(c.interval.as_duration());
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = c.timeout.as_duration();
    let url = c.url.as_deref().and_then(|u| HttpUrl::parse(u).ok());
    let addr = c.address.as_deref().and_then(|a| a.parse().ok());
    loop {
        tick.tick().await;
        let r = match c.kind {
            ExtraCheckType::Http => match &url {
                Some(u) => match probe::http_get(u, limit).await {
                    Ok((code, _)) if status_ok(code, c.expect_status) => Ok(()),
                    Ok((code, _)) => Err(format!("answered {code}")),
                    Err(e) => Err(e),
                },
                None => Err("no valid url".into()),
            },
            ExtraCheckType::Tcp => match addr {
                Some(a) => probe::tcp_connect(a, limit).await,
                None => Err("no valid address".into()),
            },
            ExtraCheckType::Exec => probe::exec(c.command.as_deref().unwrap_or(&[]), limit).await,
        };
        let ok = r.is_ok();
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

#[cfg(test)]
mod tests {
    use super::status_ok;

    #[test]
    fn expect_status_or_any_2xx() {
        assert!(status_ok(204, None));
        assert!(status_ok(200, None));
        assert!(!status_ok(301, None));
        assert!(!status_ok(503, None));
        assert!(status_ok(503, Some(503)));
        assert!(!status_ok(200, Some(204)));
    }
}
