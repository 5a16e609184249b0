//! Carrying out the node's commands: adverts on the wire, VIPs added and
//! removed (a failed add goes back to the node, which resigns: never a
//! master without its VIP), announcements, transitions logged with their
//! journald fields, state files and hooks.

use super::vips::{self, VipOp};
use super::*;
use crate::config::IpPrefix;
use crate::node::Frame;
use crate::node::event::Level;
use std::collections::{BTreeSet, VecDeque};

/// Whether `c` waits for every VIP change collected before it: the
/// commands that are no instance's (sockets, address reads, anycast) may
/// depend on any of them; a log line does not.
fn waits_for_all(c: &Command) -> bool {
    c.instance().is_none() && !matches!(c, Command::Log { .. })
}

impl Daemon {
    /// Runs `cmds` in order; what the node answers to a failure runs after
    /// it. With `fatal_io`, a socket that cannot be opened is returned as
    /// an error (start-up) instead of reported to the node.
    ///
    /// In phases, so that the VIP changes of many instances wait for
    /// netlink together: a phase runs the commands in order but collects
    /// each instance's first VIP change and holds back the rest of that
    /// instance's commands; then the collected changes run concurrently;
    /// the held-back commands start the next phase. Each instance's
    /// commands keep their order (an advert only after its VIPs are on),
    /// and commands that are no instance's wait for every VIP change
    /// before them.
    ///
    /// Log lines and transitions' records (state files, hooks) wait until
    /// the rest is done: a takeover's GARP or a resigning master's
    /// priority-0 advert does not queue behind a write to the journal.
    /// Among themselves they keep their order.
    pub(super) async fn execute(
        &mut self,
        cmds: Vec<Command>,
        fatal_io: bool,
    ) -> Result<(), DaemonError> {
        let r = self.execute_wire(cmds, fatal_io).await;
        let mut reports = std::mem::take(&mut self.reports);
        for c in reports.drain(..) {
            self.report(c);
        }
        self.reports = reports;
        r
    }

    async fn execute_wire(
        &mut self,
        cmds: Vec<Command>,
        fatal_io: bool,
    ) -> Result<(), DaemonError> {
        let mut queue: VecDeque<Command> = cmds.into();
        while !queue.is_empty() {
            let ops = self.run_phase(&mut queue, fatal_io).await?;
            if !ops.is_empty() {
                let failed = vips::apply(&self.net, &ops).await;
                self.settle(ops, failed, &mut queue);
            }
        }
        self.node.recycle(queue.into());
        Ok(())
    }

    /// Runs `queue` up to the VIP changes (see `execute`); leaves in it
    /// what is held back and returns the changes.
    async fn run_phase(
        &mut self,
        queue: &mut VecDeque<Command>,
        fatal_io: bool,
    ) -> Result<Vec<VipOp>, DaemonError> {
        let mut ops: Vec<VipOp> = Vec::new();
        let mut waiting: BTreeSet<String> = BTreeSet::new();
        let mut held = VecDeque::new();
        while let Some(c) = queue.pop_front() {
            if c.instance().is_some_and(|i| waiting.contains(i)) {
                held.push_back(c);
                continue;
            }
            if !ops.is_empty() && waits_for_all(&c) {
                held.push_back(c);
                held.append(queue);
                break;
            }
            if let Some(op) = self.run_one(c, queue, fatal_io).await? {
                waiting.insert(op.instance().to_string());
                ops.push(op);
            }
        }
        // Empty held back: `queue` is empty too, and keeps its capacity
        // for `Node::recycle`.
        if !held.is_empty() {
            *queue = held;
        }
        Ok(ops)
    }

    /// The outcome of a phase's VIP changes: every failure logged; a
    /// failed add (but a restore) voids the rest of its instance's
    /// commands, transitions aside, and goes back to the node.
    fn settle(
        &mut self,
        ops: Vec<VipOp>,
        failed: Vec<Vec<(IpPrefix, String)>>,
        queue: &mut VecDeque<Command>,
    ) {
        for (op, failed) in ops.into_iter().zip(failed) {
            let instance = op.instance();
            let what = match op {
                VipOp::Add { .. } => "adding",
                VipOp::Remove { .. } => "removing",
            };
            for (v, e) in &failed {
                error!(instance = instance; "instance {instance}: {what} VIP {v}: {e}");
            }
            if let (VipOp::Add { restore: false, .. }, Some((v, e))) = (&op, failed.last()) {
                // The rest of this instance's batch (adverts,
                // announcements) assumed the VIP; its transition records
                // stay.
                queue.retain(|c| {
                    c.instance() != Some(instance) || matches!(c, Command::Transition { .. })
                });
                let ev = Event::VipAddFailed {
                    instance: instance.to_string(),
                    error: format!("cannot add VIP {v}: {e}"),
                };
                let now = self.clock();
                queue.extend(self.node.handle(now, ev));
            }
        }
    }

    /// Runs one command, or returns it as a VIP change to collect. What
    /// the node answers to a failure goes to the end of `queue`.
    async fn run_one(
        &mut self,
        c: Command,
        queue: &mut VecDeque<Command>,
        fatal_io: bool,
    ) -> Result<Option<VipOp>, DaemonError> {
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
                    let now = self.clock();
                    queue.extend(self.node.handle(now, ev));
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
                    let now = self.clock();
                    queue.extend(self.node.handle(now, ev));
                }
                Err(e) => warn!("reading the addresses of interface {index}: {e}"),
            },
            c @ Command::Send { .. } => self.send_advert(&c),
            Command::AddVips {
                instance,
                index,
                vips,
                restore,
            } => {
                return Ok(Some(VipOp::Add {
                    instance,
                    index,
                    vips,
                    restore,
                }));
            }
            Command::RemoveVips {
                instance,
                index,
                vips,
            } => {
                return Ok(Some(VipOp::Remove {
                    instance,
                    index,
                    vips,
                }));
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
            c @ (Command::Transition { .. } | Command::Log { .. }) => self.reports.push(c),
        }
        Ok(None)
    }

    /// A `Command::Send`: the advert out of its interface's socket.
    pub(super) fn send_advert(&self, c: &Command) {
        if let Command::Send {
            instance,
            index,
            v4,
            src,
            dst,
            bytes,
        } = c
        {
            send_frame(
                &self.sockets,
                &Frame {
                    instance,
                    index: *index,
                    v4: *v4,
                    src: *src,
                    dst: *dst,
                    bytes,
                },
            );
        }
    }

    /// A log line or a transition's record (see `execute`).
    fn report(&mut self, c: Command) {
        match c {
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
            _ => {}
        }
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
            state_file: self.state_files.fence(),
            commands,
            instance: instance.to_string(),
            state: to.as_str(),
            priority: prio,
            timeout: n.timeout.as_duration(),
        });
        self.status_due = true;
    }
}

/// One advert out of its interface's socket.
pub(super) fn send_frame(sockets: &BTreeMap<PacketKey, Rx>, f: &Frame<'_>) {
    if let Some(Rx { sock, .. }) = sockets.get(&(f.index, f.v4))
        && let Err(e) = sock.send(f.bytes, f.src, f.dst)
    {
        warn!("instance {}: sending advert to {}: {e}", f.instance, f.dst);
    }
}
