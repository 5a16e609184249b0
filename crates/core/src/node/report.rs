//! What the node tells about itself: systemd's StatusText line and the
//! `status` report.

use super::status::{CheckStatus, Counters, InstanceStatus, Transition, TransitionCount};
use super::{Node, Report};
use std::time::Duration;

impl Node {
    /// One line per instance for systemd's StatusText.
    pub fn status_line(&self) -> String {
        let mut parts: Vec<String> = self
            .insts
            .iter()
            .map(|m| {
                format!(
                    "{}: {} prio {}",
                    m.plan.name,
                    m.core.state(),
                    m.core.priority()
                )
            })
            .collect();
        if let Some(a) = &self.anycast {
            let wish = if a.wanted() { "announced" } else { "withdrawn" };
            parts.push(format!("anycast {wish}"));
        }
        if self.maintenance {
            parts.insert(0, "MAINTENANCE".into());
        }
        parts.join("; ")
    }

    pub fn report(&self, now: Duration) -> Report {
        let instances = self
            .insts
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let c = m.core.counters();
                InstanceStatus {
                    name: m.plan.name.clone(),
                    state: m.core.state().to_string(),
                    priority: m.plan.priority,
                    effective_priority: m.core.priority(),
                    interface: m.plan.link.name.clone(),
                    virtual_router_id: m.core.config().vrid,
                    version: m.core.config().version.number(),
                    virtual_ips: m.plan.vips.iter().map(|v| v.to_string()).collect(),
                    virtual_ips_on_link: self.vips_on_link(m),
                    master_address: m.core.master_addr().map(|a| a.to_string()),
                    last_transition: m.core.last_transition().map(|(t, why)| Transition {
                        seconds_ago: now.saturating_sub(*t).as_secs_f64(),
                        reason: why.to_string(),
                    }),
                    faults: m.faults.reasons(),
                    counters: Counters {
                        // Those sent through a lent timer are counted
                        // when it comes back.
                        adverts_sent: c.adverts_sent + self.lent_fired(i),
                        adverts_received: c.adverts_received,
                        priority_zero_sent: c.priority_zero_sent,
                        priority_zero_received: c.priority_zero_received,
                        address_mismatch: c.address_mismatch,
                        lower_priority_answered: c.lower_priority_answered,
                        vips_restored: m.vips_restored,
                        transitions: c.transitions,
                        transitions_by: c
                            .transitions_by
                            .iter()
                            .map(|((from, to, reason), n)| TransitionCount {
                                from: (*from).to_string(),
                                to: (*to).to_string(),
                                reason: (*reason).to_string(),
                                count: *n,
                            })
                            .collect(),
                        master_changes: c.master_changes,
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
                changes: c.changes,
            })
            .collect();
        Report {
            maintenance: self.maintenance,
            instances,
            checks,
            dropped: self
                .dropped
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            anycast: self.anycast_wish(now),
        }
    }
}

impl Node {
    /// The declared VIPs the kernel last reported on the instance's link.
    fn vips_on_link(&self, m: &super::member::Member) -> Vec<String> {
        let on_link = self.if_addrs.get(&m.plan.link.index);
        m.plan
            .vips
            .iter()
            .filter(|v| on_link.is_some_and(|a| a.iter().any(|(addr, _)| *addr == v.addr)))
            .map(|v| v.to_string())
            .collect()
    }
}
