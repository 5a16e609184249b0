//! Carrying out the node's commands: adverts on the wire, VIPs added and
//! removed (a failed add goes back to the node, which resigns: never a
//! master without its VIP), announcements, transitions logged with their
//! journald fields, state files and hooks.

use super::*;
use crate::node::event::Level;
use std::collections::VecDeque;

impl Daemon {
    /// Runs `cmds` in order; what the node answers to a failure runs after
    /// it. With `fatal_io`, a socket that cannot be opened is returned as
    /// an error (start-up) instead of reported to the node.
    pub(super) async fn execute(
        &mut self,
        cmds: Vec<Command>,
        fatal_io: bool,
    ) -> Result<(), DaemonError> {
        let mut queue: VecDeque<Command> = cmds.into();
        while let Some(c) = queue.pop_front() {
            match c {
                Command::OpenIo {
                    index,
                    name,
                    v4,
                    mac,
                } => {
                    if let Err(e) = self.ensure_io(index, &name, v4, mac) {
                        if fatal_io {
                            return Err(e);
                        }
                        error!("{e}");
                        let ev = Event::IoFailed {
                            index,
                            error: e.to_string(),
                        };
                        queue.extend(self.node.handle(self.now(), ev));
                    }
                }
                // The node logged why; the BIRD task logs what BIRD did.
                Command::Anycast { announce, .. } => {
                    if let Some(a) = &self.anycast {
                        a.set_wanted(announce);
                    }
                }
                Command::CloseIo { index } => {
                    self.sockets.retain(|(i, _), _| *i != index);
                    self.announcers.remove(&index);
                }
                Command::ReadAddresses { index } => match self.net.addresses(index).await {
                    Ok(addrs) => {
                        let ev = Event::Addresses { index, addrs };
                        queue.extend(self.node.handle(self.now(), ev));
                    }
                    Err(e) => warn!("reading the addresses of interface {index}: {e}"),
                },
                Command::Send {
                    instance,
                    index,
                    v4,
                    src,
                    dst,
                    bytes,
                } => {
                    if let Some(Rx { sock, .. }) = self.sockets.get(&(index, v4))
                        && let Err(e) = sock.send(&bytes, src, dst)
                    {
                        warn!("instance {instance}: sending advert to {dst}: {e}");
                    }
                }
                Command::AddVips {
                    instance,
                    index,
                    vips,
                    restore,
                } => {
                    let mut failed = None;
                    for v in &vips {
                        if let Err(e) = self.net.add_addr(index, v.addr, v.len).await {
                            error!(instance = instance.as_str(); "instance {instance}: adding VIP {v}: {e}");
                            failed = Some(format!("cannot add VIP {v}: {e}"));
                        }
                    }
                    if let (Some(error), false) = (failed, restore) {
                        // The rest of this instance's batch (adverts,
                        // announcements) assumed the VIP; its transition
                        // records stay.
                        queue.retain(|c| {
                            c.instance() != Some(instance.as_str())
                                || matches!(c, Command::Transition { .. })
                        });
                        let ev = Event::VipAddFailed { instance, error };
                        queue.extend(self.node.handle(self.now(), ev));
                    }
                }
                Command::RemoveVips {
                    instance,
                    index,
                    vips,
                } => {
                    for v in &vips {
                        if let Err(e) = self.net.del_addr(index, v.addr).await {
                            error!(instance = instance.as_str(); "instance {instance}: removing VIP {v}: {e}");
                        }
                    }
                }
                Command::Announce {
                    instance,
                    index,
                    addrs,
                } => {
                    if let Some((a, _)) = self.announcers.get(&index) {
                        for addr in addrs {
                            if let Err(e) = a.announce(addr) {
                                warn!("instance {instance}: announcing {addr}: {e}");
                            }
                        }
                    }
                }
                Command::Transition {
                    instance,
                    from,
                    to,
                    reason,
                    priority,
                } => self.transition(&instance, from, to, &reason.to_string(), priority),
                Command::Log {
                    level,
                    instance,
                    message,
                } => match (level, instance) {
                    (Level::Info, Some(i)) => info!(instance = i.as_str(); "{message}"),
                    (Level::Info, None) => info!("{message}"),
                    (Level::Warn, Some(i)) => warn!(instance = i.as_str(); "{message}"),
                    (Level::Warn, None) => warn!("{message}"),
                    (Level::Error, Some(i)) => error!(instance = i.as_str(); "{message}"),
                    (Level::Error, None) => error!("{message}"),
                },
            }
        }
        Ok(())
    }

    fn transition(&mut self, instance: &str, from: State, to: State, reason: &str, prio: u8) {
        info!(
            instance = instance,
            state = to.as_str(),
            previous_state = from.as_str(),
            // journald's PRIORITY is the syslog level.
            vrrp_priority = prio,
            reason = reason;
            "instance {instance}: {from} -> {to} (priority {prio}): {reason}"
        );
        self.state_files.record(instance, to);
        let n = &self.decl.notify;
        let commands = match to {
            State::Master => n.master.clone(),
            State::Backup => n.backup.clone(),
            State::Fault => n.fault.clone(),
            State::Initialize => n.stop.clone(),
        };
        self.hooks.queue(Job {
            commands,
            instance: instance.to_string(),
            state: to.as_str(),
            priority: prio,
            timeout: n.timeout.as_duration(),
        });
        self.status_due = true;
    }
}
