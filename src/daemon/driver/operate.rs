//! What operators see and do: `status` and maintenance mode (persisted
//! before it takes effect, so a crash right after does not forget it).

use super::*;

impl Daemon {
    pub async fn on_control(&mut self, req: Request) {
        let answer = match req.cmd {
            control::Command::Status => serde_json::to_string(&self.status()).unwrap_or_default(),
            control::Command::Maintenance(on) => self.set_maintenance(on).await,
        };
        let _ = req.reply.send(answer);
    }

    async fn set_maintenance(&mut self, on: bool) -> String {
        let path = self.opts.state_dir.join(MAINTENANCE_FILE);
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
        self.feed(Event::Maintenance(on)).await;
        self.report_status();
        let answer = control::MaintenanceAnswer {
            ok: true,
            maintenance: on,
        };
        serde_json::to_string(&answer).unwrap_or_default()
    }

    pub fn status(&self) -> Status {
        let report = self.node.report(self.now());
        let mut dropped = report.dropped;
        for (k, v) in self.rx_dropped.snapshot() {
            *dropped.entry(k.to_string()).or_default() += v;
        }
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
            maintenance: report.maintenance,
            instances: report.instances,
            checks: report.checks,
            nginx: self.checks_running.stats().stub(),
            dropped,
            anycast: self.anycast_status(report.anycast),
        }
    }
}
