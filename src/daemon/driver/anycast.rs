//! The daemon's side of anycast: the BIRD task started and replaced with
//! the declaration, the service addresses on `lo`, the drain at shutdown,
//! and BIRD's view in `status`.

use super::*;
use crate::anycast::Handle;
use crate::node::status::{AnycastStatus, AnycastWish};

/// How long the drain waits for BIRD to confirm the withdrawal before it
/// starts counting `drain` anyway.
const WITHDRAW_CONFIRM: Duration = Duration::from_secs(2);

impl Daemon {
    /// Starts driving BIRD (when declared) and tells the node; nothing is
    /// announced before the checks' first good verdict. BIRD need not be
    /// running yet: the task keeps trying, with a warning.
    pub async fn start_anycast(&mut self) {
        let decl = self.decl.anycast.clone();
        if let Some(a) = &decl {
            self.anycast = Some(Handle::spawn(a));
            self.loopback(a).await;
        }
        self.feed(Event::Anycast(decl.map(Box::new))).await;
    }

    /// After a reload: a changed socket or protocol set gets a new BIRD
    /// task (the node re-sends its wish to it); the rest is the node's.
    pub(super) async fn reload_anycast(&mut self, old: Option<crate::config::Anycast>) {
        let new = self.decl.anycast.clone();
        let same_bird = |a: &crate::config::Anycast, b: &crate::config::Anycast| {
            a.bird == b.bird && a.prefixes == b.prefixes
        };
        let respawn = match (&old, &new) {
            (Some(o), Some(n)) => !same_bird(o, n),
            (None, Some(_)) => true,
            (_, None) => false,
        };
        if respawn && let Some(n) = &new {
            if let Some(mut prev) = self.anycast.take() {
                // Withdraw through the old protocols before leaving them.
                prev.set_wanted(false);
                prev.wait_applied(false, WITHDRAW_CONFIRM).await;
            }
            self.anycast = Some(Handle::spawn(n));
        }
        if let Some(n) = &new {
            // Idempotent: new prefixes, or `loopback` turned on.
            self.loopback(n).await;
        }
        // With anycast removed, the node withdraws through the old task.
        self.feed(Event::Anycast(new.map(Box::new))).await;
        match (&self.anycast, self.node.report(self.now()).anycast) {
            // A new task starts without a wish; the node keeps its own.
            (Some(h), Some(w)) if respawn => h.set_wanted(w.wanted),
            (Some(_), None) => {
                if let Some(mut h) = self.anycast.take() {
                    h.wait_applied(false, WITHDRAW_CONFIRM).await;
                }
            }
            _ => {}
        }
    }

    /// The service addresses on `lo`, so nginx answers on them. Left there
    /// at exit: in-flight connections finish during and after the drain.
    async fn loopback(&self, a: &crate::config::Anycast) {
        if !a.loopback {
            return;
        }
        let lo = match self.net.link("lo").await {
            Ok(l) => l,
            Err(e) => {
                error!("anycast: cannot find lo to put the service addresses on: {e}");
                return;
            }
        };
        for p in &a.prefixes {
            if let Err(e) = self.net.add_addr(lo.index, p.addr, p.len).await {
                error!("anycast: adding {p} to lo: {e}; nginx will not answer on it");
            }
        }
    }

    /// SIGTERM: the node has withdrawn (`Event::Shutdown`); wait until BIRD
    /// confirms, then `drain` for the routers to move new connections and
    /// in-flight ones to finish. `interrupt` (a second SIGTERM) ends it.
    pub async fn drain_anycast(&mut self, interrupt: impl std::future::Future<Output = ()>) {
        let Some(h) = &mut self.anycast else { return };
        let Some(drain) = self.decl.anycast.as_ref().map(|a| a.drain.as_duration()) else {
            return;
        };
        let work = async {
            if !h.wait_applied(false, WITHDRAW_CONFIRM).await {
                warn!("anycast: BIRD did not confirm the withdrawal within {WITHDRAW_CONFIRM:?}");
            }
            info!("anycast: withdrawn; draining for {drain:?}");
            tokio::time::sleep(drain).await;
        };
        tokio::select! {
            _ = work => info!("anycast: drain done"),
            _ = interrupt => warn!("anycast: second signal, leaving without the rest of the drain"),
        }
    }

    pub fn has_anycast(&self) -> bool {
        self.anycast.is_some()
    }

    pub(super) fn anycast_status(&self, wish: Option<AnycastWish>) -> Option<AnycastStatus> {
        let wish = wish?;
        let h = self.anycast.as_ref()?;
        let v = h.view();
        Some(AnycastStatus {
            wish,
            bird_socket: h.socket.display().to_string(),
            bird_connected: v.connected,
            bird_error: v.error,
            protocols: v.protocols,
        })
    }
}
