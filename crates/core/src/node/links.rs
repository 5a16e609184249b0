//! Links and addresses: interfaces followed by name (one deleted and
//! created again, a veth, VLAN or bond rebuilt, gets a new index and its
//! sockets are opened again), the source address found or lost, and VIPs
//! deleted by hand put back.

use super::Node;
use super::event::{Command, Level};
use super::faults::FaultSource;
use super::log_limit;
use super::plan::{LinkInfo, Plan};
use crate::config::IpPrefix;
use crate::vrrp::instance::{Action, Input, Instance, State};
use std::net::IpAddr;
use std::time::Duration;

impl Node {
    pub(super) fn on_link(&mut self, now: Duration, l: LinkInfo) {
        for i in 0..self.insts.len() {
            let p = &self.insts[i].plan.link;
            if p.name != l.name {
                continue;
            }
            if p.index != l.index {
                self.rebind(now, i, l.clone());
            } else if p.mac != l.mac {
                // Announcements must carry the interface's current MAC.
                self.insts[i].plan.link.mac = l.mac;
                self.out.push(Command::OpenIo {
                    index: l.index,
                    name: l.name.clone(),
                    v4: self.insts[i].plan.v4,
                    mac: l.mac,
                });
            }
        }
        for i in 0..self.insts.len() {
            let m = &self.insts[i];
            if m.plan.link.index != l.index || !m.plan.decl.track_interface || m.rebinding {
                continue;
            }
            let why = (!l.up).then(|| format!("{} is down", l.name));
            self.set_fault(now, i, FaultSource::Link, why);
        }
    }

    pub(super) fn on_link_gone(&mut self, now: Duration, index: u32, name: &str) {
        let mut any = false;
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            any = true;
            // Whatever trackInterface says: nothing can be served on an
            // interface that does not exist.
            let why = format!("{name} was deleted; waiting for it to come back");
            self.set_fault(now, i, FaultSource::Link, Some(why));
        }
        if any {
            self.log(
                Level::Warn,
                None,
                format!("interface {name} (index {index}) was deleted"),
            );
            // Its sockets see nothing any more; a re-created interface gets
            // new ones.
            self.if_addrs.remove(&index);
            self.out.push(Command::CloseIo { index });
        }
    }

    /// Moves instance `i` onto the interface now called by its name. It
    /// stays in FAULT until the new interface's addresses are known.
    fn rebind(&mut self, now: Duration, i: usize, l: LinkInfo) {
        let old = self.insts[i].plan.link.index;
        let name = self.insts[i].plan.name.clone();
        self.log(
            Level::Info,
            Some(&name),
            format!(
                "instance {name}: interface {} is back (index {old} -> {}): re-opening its sockets",
                l.name, l.index
            ),
        );
        // Resign first (the deletion may not have been seen: events lost),
        // so nothing is held on the old index.
        let why = format!("{} was deleted; waiting for it to come back", l.name);
        self.set_fault(now, i, FaultSource::Link, Some(why));
        let m = &mut self.insts[i];
        m.plan.link = l.clone();
        m.rebinding = true;
        self.out.push(Command::OpenIo {
            index: l.index,
            name: l.name.clone(),
            v4: m.plan.v4,
            mac: l.mac,
        });
        self.out.push(Command::ReadAddresses { index: l.index });
        if !self.insts.iter().any(|m| m.plan.link.index == old) {
            self.if_addrs.remove(&old);
            self.out.push(Command::CloseIo { index: old });
        }
    }

    pub(super) fn on_io_failed(&mut self, now: Duration, index: u32, error: &str) {
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index == index {
                let why = format!("{}: {error}", self.insts[i].plan.link.name);
                self.insts[i].rebinding = false;
                self.set_fault(now, i, FaultSource::Link, Some(why));
            }
        }
    }

    pub(super) fn on_addresses(&mut self, now: Duration, index: u32, addrs: Vec<(IpAddr, u8)>) {
        if !self.insts.iter().any(|m| m.plan.link.index == index) {
            return;
        }
        self.if_addrs.insert(index, addrs.clone());
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            if self.insts[i].rebinding {
                self.insts[i].rebinding = false;
                self.refresh_primary(now, i);
                let m = &self.insts[i];
                let l = &m.plan.link;
                let why =
                    (!l.up && m.plan.decl.track_interface).then(|| format!("{} is down", l.name));
                self.set_fault(now, i, FaultSource::Link, why);
            } else if self.insts[i].primary.is_none() {
                self.refresh_primary(now, i);
            } else {
                self.restore_vips(now, i, &addrs);
            }
        }
    }

    /// A MASTER holds its VIPs: one deleted by hand (or by another tool)
    /// would leave the clients without service while every node reports
    /// all is well, so it is added back and reported.
    fn restore_vips(&mut self, now: Duration, i: usize, on_link: &[(IpAddr, u8)]) {
        let m = &self.insts[i];
        if m.core.state() != State::Master || m.faults.contains(&FaultSource::Vip) {
            return;
        }
        let missing: Vec<IpPrefix> = m
            .plan
            .vips
            .iter()
            .filter(|v| !on_link.iter().any(|(a, _)| *a == v.addr))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let (name, ifname, index) = (
            m.plan.name.clone(),
            m.plan.link.name.clone(),
            m.plan.link.index,
        );
        for v in &missing {
            let key = format!("vip-restore {name} {v}");
            if let Some(n) = self.logs.allow(&key, now) {
                self.log(
                    Level::Warn,
                    Some(&name),
                    format!(
                        "instance {name}: VIP {v} was removed from {ifname} while MASTER: adding it back{}",
                        log_limit::more(n)
                    ),
                );
            }
        }
        self.insts[i].vips_restored += missing.len() as u64;
        self.out.push(Command::AddVips {
            instance: name,
            index,
            vips: missing,
            restore: true,
        });
        // Clients may have learnt in the meantime that nobody answers.
        self.insts[i].act(now, vec![Action::Announce], &mut self.out, &mut self.logs);
    }

    /// Looks for the instance's source address again; once found (or
    /// changed, on a re-created interface) the state machine is rebuilt
    /// with it. Only reached while the instance is in FAULT or has no
    /// address, so it holds nothing that a new state machine would forget.
    fn refresh_primary(&mut self, now: Duration, i: usize) {
        let index = self.insts[i].plan.link.index;
        let on_link = self.if_addrs.get(&index).cloned().unwrap_or_default();
        let p = self.insts[i].plan.pick_primary(&on_link);
        if p != self.insts[i].primary {
            let m = &mut self.insts[i];
            m.primary = p;
            m.peers = m.plan.peers(p);
            m.built = None;
            if let Some(p) = p {
                let mut core = Instance::new(m.plan.core_config(Some(p)));
                if let Some(why) = m.faults.first().cloned() {
                    core.handle(now, Input::Fault(why));
                }
                core.handle(now, Input::Startup);
                m.core = core;
                let name = m.plan.name.clone();
                self.log(
                    Level::Info,
                    Some(&name),
                    format!("instance {name}: source address {p} found"),
                );
                self.apply_checks(now, i);
            }
        }
        let why = match p {
            // Unicast peers that are all this node itself: nobody would
            // hear the adverts, so every node would be master.
            Some(p) => self.insts[i].plan.no_peer_reason(Some(p)),
            None => Some(no_address_reason(&self.insts[i].plan)),
        };
        self.set_fault(now, i, FaultSource::Address, why);
    }
}

pub(super) fn no_address_reason(plan: &Plan) -> String {
    match plan.decl.unicast_source {
        Some(s) => format!("unicastSource {s} is not on {}", plan.link.name),
        None if plan.v4 => format!("no IPv4 address on {}", plan.link.name),
        None => format!("no IPv6 link-local address on {}", plan.link.name),
    }
}
