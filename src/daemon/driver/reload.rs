//! SIGHUP and SIGTERM: a new declaration applied without touching the
//! instances that did not change, and a clean stop.

use super::*;

impl Daemon {
    /// SIGHUP: re-read the declaration. A bad one is refused whole and the
    /// running one kept. Instances whose VRRP parameters did not change keep
    /// their state and VIPs; changed ones are restarted cleanly.
    pub async fn reload(&mut self, loaded: Result<Loaded, Vec<String>>) {
        systemd::reloading();
        info!("reloading {}", self.opts.config.display());
        match self.try_reload(loaded).await {
            Ok(summary) => info!("reload done: {summary}"),
            Err(lines) => {
                for l in &lines {
                    error!("reload refused, keeping the running configuration: {l}");
                }
            }
        }
        systemd::ready(&self.status_line());
    }

    pub(super) async fn try_reload(
        &mut self,
        loaded: Result<Loaded, Vec<String>>,
    ) -> Result<String, Vec<String>> {
        let Loaded { decl, passwords } = loaded?;
        let plans = setup::plan(&decl, &passwords, &self.net)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let unchanged = |r: &Running, p: &Plan| {
            r.plan.name == p.name
                && r.plan.decl == p.decl
                && r.plan.priority == p.priority
                && r.plan.auth == p.auth
        };
        // Stop what changed or went away.
        let mut kept = Vec::new();
        let now = self.now();
        for mut r in std::mem::take(&mut self.insts) {
            if plans.iter().any(|p| unchanged(&r, p)) {
                kept.push(r);
            } else {
                info!("instance {}: changed or removed, stopping it", r.plan.name);
                let a = r.core.handle(now, Input::Shutdown);
                self.insts.push(r);
                let i = self.insts.len() - 1;
                self.exec(i, a).await;
                self.insts.pop();
            }
        }
        let (nkept, ntotal) = (kept.len(), plans.len());
        self.insts = kept;
        // Checks: keep the verdicts of unchanged checks.
        let weights = check_weights(&decl);
        self.decl = decl;
        let restarted = self.checks_running.sync(&self.decl.checks, &self.health_tx);
        let now = self.now();
        self.checks.reconfigure(weights, &restarted, now);
        let mut errors = Vec::new();
        for p in plans {
            if self.insts.iter().any(|r| r.plan.name == p.name) {
                continue;
            }
            if let Err(e) = self.add_instance(p).await {
                errors.push(e.to_string());
            }
        }
        for i in 0..self.insts.len() {
            self.follow_checks(i).await;
        }
        self.start_all().await;
        if errors.is_empty() {
            Ok(format!("{nkept} of {ntotal} instance(s) unchanged"))
        } else {
            Err(errors)
        }
    }

    pub async fn shutdown(&mut self) {
        info!("shutting down");
        let now = self.now();
        for i in 0..self.insts.len() {
            let a = self.insts[i].core.handle(now, Input::Shutdown);
            self.exec(i, a).await;
        }
        // The stop hooks were queued above; the runtime ends when this
        // returns. Room for one hook already running plus the stop hooks.
        self.hooks
            .drain(self.decl.notify.timeout.as_duration().saturating_mul(2))
            .await;
    }
}
