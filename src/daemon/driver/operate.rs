//! What operators see and do: `status`, systemd's StatusText and
//! maintenance mode (persisted before it takes effect).

use super::*;

impl Daemon {
    /// One line per instance for systemd's StatusText.
    pub fn status_line(&self) -> String {
        let mut parts: Vec<String> = self
            .insts
            .iter()
            .map(|r| {
                format!(
                    "{}: {} prio {}",
                    r.plan.name,
                    r.core.state(),
                    r.core.priority()
                )
            })
            .collect();
        if self.maintenance {
            parts.insert(0, "MAINTENANCE".into());
        }
        parts.join("; ")
    }

    pub(super) fn report_status(&self) {
        systemd::status(&self.status_line());
    }

    pub async fn on_control(&mut self, req: Request) {
        let answer = match req.cmd {
            Command::Status => serde_json::to_string(&self.status()).unwrap_or_default(),
            Command::Maintenance(on) => self.set_maintenance(on).await,
        };
        let _ = req.reply.send(answer);
    }

    pub(super) async fn set_maintenance(&mut self, on: bool) -> String {
        let path = self.opts.state_dir.join(MAINTENANCE_FILE);
        // Persist first: a crash right after must not forget the operator.
        let r = if on {
            std::fs::write(
                &path,
                b"maintenance mode: set by `nginx-ha maintenance on`\n",
            )
        } else {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        };
        if let Err(e) = r {
            return serde_json::json!({ "error": format!("{}: {e}", path.display()) }).to_string();
        }
        self.maintenance = on;
        info!("maintenance mode {}", if on { "on" } else { "off" });
        for i in 0..self.insts.len() {
            let why = on.then(|| "maintenance mode".to_string());
            self.set_fault(i, FaultSource::Maintenance, why).await;
        }
        self.report_status();
        serde_json::json!({ "ok": true, "maintenance": on }).to_string()
    }

    pub fn status(&self) -> Status {
        let now = self.now();
        let instances =
            self.insts
                .iter()
                .map(|r| {
                    let c = r.core.counters();
                    InstanceStatus {
                        name: r.plan.name.clone(),
                        state: r.core.state().to_string(),
                        priority: r.plan.priority,
                        effective_priority: r.core.priority(),
                        interface: r.plan.link.name.clone(),
                        virtual_router_id: r.core.config().vrid,
                        version: r.core.config().version.number(),
                        virtual_ips: r.plan.vips.iter().map(|v| v.to_string()).collect(),
                        master_address: r.core.master_addr().map(|a| a.to_string()),
                        last_transition: r.core.last_transition().map(|(t, why)| {
                            control::Transition {
                                seconds_ago: now.saturating_sub(*t).as_secs_f64(),
                                reason: why.to_string(),
                            }
                        }),
                        faults: r.faults.reasons(),
                        counters: Counters {
                            adverts_sent: c.adverts_sent,
                            adverts_received: c.adverts_received,
                            priority_zero_sent: c.priority_zero_sent,
                            priority_zero_received: c.priority_zero_received,
                            address_mismatch: c.address_mismatch,
                            lower_priority_answered: c.lower_priority_answered,
                            vips_restored: r.vips_restored,
                            dropped: c.dropped.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                        },
                    }
                })
                .collect();
        let checks = self
            .checks
            .iter()
            .map(|(n, c)| CheckStatus {
                name: n.clone(),
                healthy: c.healthy,
                detail: c.detail.clone(),
                weight: c.weight,
                seconds_since_change: now.saturating_sub(c.since).as_secs_f64(),
            })
            .collect();
        let mut dropped: BTreeMap<String, u64> = self
            .rx_dropped
            .snapshot()
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let overruns: u64 = self.sockets.values().map(|rx| rx.sock.overruns()).sum();
        if overruns > 0 {
            dropped.insert("socket_overrun".into(), overruns);
        }
        let overflow = self.overflow.load(Ordering::Relaxed);
        if overflow > 0 {
            dropped.insert("queue_full".into(), overflow);
        }
        Status {
            node: self.decl.node.name.clone(),
            maintenance: self.maintenance,
            instances,
            checks,
            nginx: self.stub,
            dropped,
        }
    }
}
