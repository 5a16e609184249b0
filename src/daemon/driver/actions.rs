//! Carrying out what the state machine asks: adverts on the wire, VIPs
//! added and removed (a failed add is a FAULT, not a master without its
//! VIP), announcements, transitions logged, state files and hooks.

use super::*;

impl Daemon {
    pub(super) async fn exec(&mut self, i: usize, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::SendAdvert { priority } => self.send_advert(i, priority),
                Action::AddVips => {
                    let r = &self.insts[i];
                    let mut failed = None;
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.add_addr(r.plan.link.index, v.addr, v.len).await {
                            error!(instance = r.plan.name.as_str(); "instance {}: adding VIP {v}: {e}", r.plan.name);
                            failed = Some(format!("cannot add VIP {v}: {e}"));
                        }
                    }
                    if let Some(why) = failed {
                        // Claiming MASTER without the VIP would keep the
                        // peer from serving it: resign instead. The rest of
                        // this batch (adverts, announcements) is dropped;
                        // its transition records stay.
                        queue.retain(|a| matches!(a, Action::Transition { .. }));
                        let now = self.now();
                        let r = &mut self.insts[i];
                        r.vip_retry = Some(now + VIP_RETRY);
                        if let Some(input) = r.faults.set(FaultSource::Vip, Some(why)) {
                            queue.extend(r.core.handle(now, input));
                        }
                    }
                }
                Action::RemoveVips => {
                    let r = &self.insts[i];
                    for v in &r.plan.vips {
                        if let Err(e) = self.net.del_addr(r.plan.link.index, v.addr).await {
                            error!(instance = r.plan.name.as_str(); "instance {}: removing VIP {v}: {e}", r.plan.name);
                        }
                    }
                }
                Action::Reassert { src, priority } => {
                    let now = self.now();
                    let r = &self.insts[i];
                    let key = format!("reassert {} {src}", r.plan.name);
                    if let Some(n) = self.log_limit.allow(&key, now) {
                        warn!(
                            instance = r.plan.name.as_str();
                            "instance {}: {src} advertises priority {priority} although this node is MASTER with priority {} (a healed split brain, or a backup that timed out): answered at once and re-announcing the VIPs{}",
                            r.plan.name,
                            r.core.priority(),
                            log_limit::more(n)
                        );
                    }
                }
                Action::Announce => {
                    let now = self.now();
                    let r = &mut self.insts[i];
                    r.announce.burst(schedule(&r.plan), now);
                    self.announce_due(i, now);
                }
                Action::Transition { from, to, reason } => {
                    let r = &self.insts[i];
                    let prio = r.core.priority();
                    info!(
                        instance = r.plan.name.as_str(),
                        state = to.as_str(),
                        previous_state = from.as_str(),
                        // journald's PRIORITY is the syslog level.
                        vrrp_priority = prio,
                        reason = reason.to_string();
                        "instance {}: {from} -> {to} (priority {prio}): {reason}",
                        r.plan.name
                    );
                    state_file::write(&self.opts.runtime_dir, &r.plan.name, to);
                    let n = &self.decl.notify;
                    let commands = match to {
                        State::Master => n.master.clone(),
                        State::Backup => n.backup.clone(),
                        State::Fault => n.fault.clone(),
                        State::Initialize => n.stop.clone(),
                    };
                    self.hooks.queue(Job {
                        commands,
                        instance: r.plan.name.clone(),
                        state: to.as_str(),
                        priority: prio,
                        timeout: n.timeout.as_duration(),
                    });
                    self.report_status();
                }
            }
        }
    }

    pub(super) fn send_advert(&mut self, i: usize, priority: u8) {
        let r = &self.insts[i];
        let Some(src) = r.primary else { return };
        let cfg = r.core.config();
        let adv = Advert {
            version: cfg.version,
            vrid: cfg.vrid,
            priority,
            interval_cs: cfg.advert_interval_cs,
            addrs: cfg.vips.clone(),
            auth: if cfg.version == Version::V2 {
                cfg.auth
            } else {
                Auth::None
            },
        };
        let dsts: Vec<IpAddr> = if r.plan.unicast() {
            r.peers.clone()
        } else if r.plan.v4 {
            vec![IpAddr::V4(MCAST_V4)]
        } else {
            vec![IpAddr::V6(MCAST_V6)]
        };
        let Some(Rx { sock, .. }) = self.sockets.get(&(r.plan.link.index, r.plan.v4)) else {
            return;
        };
        for dst in dsts {
            let bytes = adv.encode(src, dst, cfg.checksum);
            if let Err(e) = sock.send(&bytes, src, dst) {
                warn!("instance {}: sending advert to {dst}: {e}", r.plan.name);
            }
        }
    }

    pub(super) fn announce_due(&mut self, i: usize, now: Duration) {
        let r = &mut self.insts[i];
        let master = r.core.state() == State::Master;
        if !r.announce.due(schedule(&r.plan), now, master) {
            return;
        }
        if let Some(a) = self.announcers.get(&r.plan.link.index) {
            for v in &r.plan.vips {
                if let Err(e) = a.announce(v.addr) {
                    warn!("instance {}: announcing {}: {e}", r.plan.name, v.addr);
                }
            }
        }
    }
}
