//! Carrying the node's anycast wish (`Command::Anycast`) out through BIRD:
//! a task of its own holds the control connection, so the event loop never
//! waits for BIRD. It enables the static protocols to announce and disables
//! them to withdraw, re-applies the wish every `POLL` and whenever it
//! (re)connects (BIRD starts with the protocols `disabled;`), and reconnects
//! with backoff when BIRD goes away. What BIRD says comes back as a
//! `BirdView` for `status`, the metrics and the drain at shutdown.

pub mod bird;
pub mod reply;

use crate::config::Anycast;
use crate::node::status::BirdProtocolStatus;
use bird::{Bird, BirdError};
use log::{error, info, warn};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::watch;

/// Deadline of one command (BIRD answers these in microseconds).
const CALL: Duration = Duration::from_secs(1);
/// How often the wish is applied again and BIRD's state read.
const POLL: Duration = Duration::from_secs(1);
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// What the daemon last learnt from BIRD.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BirdView {
    pub connected: bool,
    pub version: Option<String>,
    /// Why the connection is down, or the last failed command.
    pub error: Option<String>,
    pub protocols: Vec<BirdProtocolStatus>,
    /// The wish BIRD has carried out for every protocol; `None` while it
    /// has not (not connected, or a command failed).
    pub applied: Option<bool>,
}

/// The daemon's end of the BIRD task.
pub struct Handle {
    want: watch::Sender<Option<bool>>,
    view: watch::Receiver<BirdView>,
    task: tokio::task::JoinHandle<()>,
    pub socket: PathBuf,
}

impl Handle {
    pub fn spawn(decl: &Anycast) -> Handle {
        let (want, want_rx) = watch::channel(None);
        let protocols: Vec<(String, Vec<String>)> = decl
            .protocols()
            .into_iter()
            .map(|(n, p)| (n.to_string(), p.iter().map(|x| x.to_string()).collect()))
            .collect();
        let initial = BirdView {
            protocols: protocols
                .iter()
                .map(|(name, prefixes)| BirdProtocolStatus {
                    name: name.clone(),
                    prefixes: prefixes.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        };
        let (view_tx, view) = watch::channel(initial.clone());
        let socket = decl.bird.socket.clone();
        let task = tokio::spawn(run(socket.clone(), initial, want_rx, view_tx));
        Handle {
            want,
            view,
            task,
            socket,
        }
    }

    pub fn set_wanted(&self, announce: bool) {
        self.want.send_replace(Some(announce));
    }

    pub fn view(&self) -> BirdView {
        self.view.borrow().clone()
    }

    /// Waits (at most `limit`) until BIRD has carried out `announce`, or
    /// is unreachable (then nothing is announced through it either).
    pub async fn wait_applied(&mut self, announce: bool, limit: Duration) -> bool {
        let done = |v: &BirdView| v.applied == Some(announce) || !v.connected;
        tokio::time::timeout(limit, self.view.wait_for(done))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(
    socket: PathBuf,
    mut view: BirdView,
    mut want: watch::Receiver<Option<bool>>,
    out: watch::Sender<BirdView>,
) {
    let mut backoff = BACKOFF_MIN;
    let mut first = true;
    loop {
        let err = match Bird::connect(&socket, CALL).await {
            Ok(bird) => {
                info!(
                    "anycast: connected to {} at {}",
                    bird.version,
                    socket.display()
                );
                view.connected = true;
                view.version = Some(bird.version.clone());
                view.error = None;
                backoff = BACKOFF_MIN;
                session(bird, &mut view, &mut want, &out).await
            }
            Err(e) => Some(e),
        };
        let Some(err) = err else {
            return; // the daemon dropped its end
        };
        let text = err.to_string();
        if view.connected || view.error.as_deref() != Some(text.as_str()) {
            if first {
                // BIRD may well start after nginx-ha; nothing is announced
                // until it does.
                warn!("anycast: {text}; retrying until BIRD is reachable");
            } else {
                error!("anycast: {text}; reconnecting");
            }
        }
        first = false;
        view.connected = false;
        view.applied = None;
        view.error = Some(text);
        for p in &mut view.protocols {
            p.bird_state = None;
            p.announced = None;
        }
        out.send_replace(view.clone());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            r = want.changed() => if r.is_err() { return },
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection: apply, read back, wait for a change, BIRD going away or
/// the next poll. `None` when the daemon has gone.
async fn session(
    mut bird: Bird,
    view: &mut BirdView,
    want: &mut watch::Receiver<Option<bool>>,
    out: &watch::Sender<BirdView>,
) -> Option<BirdError> {
    loop {
        let wish = *want.borrow_and_update();
        if let Err(e) = apply(&mut bird, view, wish).await {
            return Some(e);
        }
        out.send_replace(view.clone());
        tokio::select! {
            r = want.changed() => if r.is_err() { return None },
            _ = tokio::time::sleep(POLL) => {}
            e = bird.closed() => return Some(e),
        }
    }
}

/// Enables or disables every protocol as wished and reads their state.
/// A refusal (unknown protocol) is recorded and the connection kept; an
/// I/O error ends the session.
async fn apply(bird: &mut Bird, view: &mut BirdView, wish: Option<bool>) -> Result<(), BirdError> {
    let mut all_ok = wish.is_some();
    let mut errors = Vec::new();
    for p in &mut view.protocols {
        let mut failed: Option<String> = None;
        if let Some(enable) = wish
            && let Err(e) = bird.set_enabled(&p.name, enable, CALL).await
        {
            if !e.keeps_connection() {
                return Err(e);
            }
            failed = Some(e.to_string());
        }
        match bird.protocol_state(&p.name, CALL).await {
            Ok((state, _info)) => {
                let announced = state == "up";
                if p.announced != Some(announced) {
                    info!(
                        "anycast: BIRD protocol {} is {state}: {} {}",
                        p.name,
                        p.prefixes.join(", "),
                        if announced { "announced" } else { "withdrawn" }
                    );
                }
                p.bird_state = Some(state);
                p.announced = Some(announced);
            }
            Err(e) if e.keeps_connection() => {
                failed.get_or_insert(e.to_string());
                p.bird_state = None;
                p.announced = None;
            }
            Err(e) => return Err(e),
        }
        if p.last_error != failed
            && let Some(f) = &failed
        {
            error!("anycast: {f}");
        }
        if failed.is_some() || p.announced != wish {
            all_ok = false;
        }
        if let Some(f) = &failed {
            errors.push(f.clone());
        }
        p.last_error = failed;
    }
    view.applied = if all_ok { wish } else { None };
    view.error = (!errors.is_empty()).then(|| errors.join("; "));
    Ok(())
}

/// The anycast lines of the human-readable `status`.
pub fn render_status(a: &crate::node::status::AnycastStatus) -> String {
    let mut out = format!(
        "  anycast {}: {} ({}, {:.1}s)\n",
        a.wish.prefixes.join(","),
        if a.wish.wanted {
            "ANNOUNCE"
        } else {
            "WITHDRAW"
        },
        a.wish.reason,
        a.wish.seconds_since_change
    );
    out.push_str(&format!(
        "    BIRD {}: {}\n",
        a.bird_socket,
        if a.bird_connected {
            "connected"
        } else {
            "NOT CONNECTED"
        }
    ));
    for p in &a.protocols {
        out.push_str(&format!(
            "    protocol {:<12} {:<6} {}  {}\n",
            p.name,
            p.bird_state.as_deref().unwrap_or("?"),
            match p.announced {
                Some(true) => "announced",
                Some(false) => "withdrawn",
                None => "unknown",
            },
            p.prefixes.join(",")
        ));
    }
    if let Some(e) = &a.bird_error {
        out.push_str(&format!("    error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::status::{AnycastStatus, AnycastWish};

    #[test]
    fn status_text_says_what_is_wanted_and_what_bird_has() {
        let a = AnycastStatus {
            wish: AnycastWish {
                prefixes: vec!["203.0.113.80/32".into()],
                wanted: false,
                reason: "check nginx fails".into(),
                seconds_since_change: 2.0,
            },
            bird_socket: "/run/bird/bird.ctl".into(),
            bird_connected: false,
            bird_error: Some(
                "BIRD's control socket /run/bird/bird.ctl does not exist (is BIRD running?)".into(),
            ),
            protocols: vec![BirdProtocolStatus {
                name: "nginx_ha4".into(),
                prefixes: vec!["203.0.113.80/32".into()],
                ..Default::default()
            }],
        };
        let text = render_status(&a);
        for want in [
            "anycast 203.0.113.80/32: WITHDRAW (check nginx fails, 2.0s)",
            "BIRD /run/bird/bird.ctl: NOT CONNECTED",
            "protocol nginx_ha4",
            "unknown",
            "error: BIRD's control socket /run/bird/bird.ctl does not exist (is BIRD running?)",
        ] {
            assert!(text.contains(want), "{want:?} missing:\n{text}");
        }
    }
}
