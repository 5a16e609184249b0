//! One running instance inside the node: its plan, its state machine and
//! the policy state around it, and how the state machine's actions become
//! commands.

use super::announce::{Announcements, Schedule};
use super::event::{Command, Level};
use super::faults::{FaultSource, Faults};
use super::log_limit::{self, LogLimit};
use super::plan::Plan;
use crate::vrrp::instance::{Action, Input, Instance, State};
use crate::vrrp::packet::{Advert, Auth, MCAST_V4, MCAST_V6, Version};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long after a failed VIP add the instance tries again.
pub const VIP_RETRY: Duration = Duration::from_secs(5);

pub struct Member {
    pub plan: Plan,
    pub core: Instance,
    pub primary: Option<IpAddr>,
    pub peers: Vec<IpAddr>,
    pub faults: Faults,
    pub announce: Announcements,
    pub vip_retry: Option<Duration>,
    /// VIPs found deleted while master and put back.
    pub vips_restored: u64,
    /// Moved to a re-created interface whose addresses are not known yet.
    pub rebinding: bool,
    /// The adverts last built, sent again as they are while the priority
    /// and source address stay the same: at 10 ms adverts, building and
    /// checksumming each one anew (and copying the VIP list for it) was
    /// work done 100 times a second for the same bytes. Whatever else goes
    /// into them (peers, addresses, the state machine's config) changes
    /// only where `links` replaces them, which clears this.
    pub built: Option<BuiltAdverts>,
    /// The state machine's actions for one input, kept for its capacity.
    actions: Vec<Action>,
}

pub struct BuiltAdverts {
    pub(super) priority: u8,
    pub(super) src: IpAddr,
    /// Shared with every `Send` (as are the bytes): a command per advert
    /// then costs no allocation.
    pub(super) name: Arc<str>,
    /// Destination and wire bytes, one per peer (or the multicast group).
    pub(super) frames: Vec<(IpAddr, Arc<[u8]>)>,
}

impl Member {
    pub fn new(plan: Plan, primary: Option<IpAddr>, faults: Faults) -> Member {
        let core = Instance::new(plan.core_config(primary));
        Member {
            peers: plan.peers(primary),
            plan,
            core,
            primary,
            faults,
            announce: Announcements::default(),
            vip_retry: None,
            vips_restored: 0,
            rebinding: false,
            built: None,
            actions: Vec::new(),
        }
    }

    pub fn schedule(&self) -> Schedule {
        let a = &self.plan.decl.announce;
        Schedule {
            count: a.count,
            delay: a.delay.as_duration(),
            refresh: a.refresh.as_duration(),
        }
    }

    /// The next time this instance needs the node's attention.
    /// Whether the member's deadline `t` is a master's advert timer: an
    /// advert may go out a little late (Master_Down_Interval allows three
    /// intervals), unlike a backup's Master_Down or Skew timer, on which a
    /// takeover waits.
    pub fn lenient_at(&self, t: Duration) -> bool {
        self.core.state() == State::Master && self.core.deadline() == Some(t)
    }

    pub fn deadline(&self) -> Option<Duration> {
        [
            self.core.deadline(),
            self.announce.deadline(),
            self.vip_retry,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Feeds the state machine and turns what it asks into commands.
    pub fn input(
        &mut self,
        now: Duration,
        input: Input,
        out: &mut Vec<Command>,
        logs: &mut LogLimit,
    ) {
        // Taken and put back, so that its capacity stays.
        let mut actions = std::mem::take(&mut self.actions);
        self.core.handle_into(now, input, &mut actions);
        self.act(now, actions.drain(..), out, logs);
        self.actions = actions;
    }

    /// Sets or clears one fault reason, telling the state machine when
    /// the instance enters or leaves FAULT.
    pub fn set_fault(
        &mut self,
        now: Duration,
        src: FaultSource,
        why: Option<String>,
        out: &mut Vec<Command>,
        logs: &mut LogLimit,
    ) {
        if let Some(input) = self.faults.set(src, why) {
            self.input(now, input, out, logs);
        }
    }

    pub fn act(
        &mut self,
        now: Duration,
        actions: impl IntoIterator<Item = Action>,
        out: &mut Vec<Command>,
        logs: &mut LogLimit,
    ) {
        for a in actions {
            match a {
                Action::SendAdvert { priority } => self.send_advert(priority, out),
                Action::AddVips => out.push(Command::AddVips {
                    instance: self.plan.name.clone(),
                    index: self.plan.link.index,
                    vips: self.plan.vips.clone(),
                    restore: false,
                }),
                Action::RemoveVips => out.push(Command::RemoveVips {
                    instance: self.plan.name.clone(),
                    index: self.plan.link.index,
                    vips: self.plan.vips.clone(),
                }),
                Action::Announce => {
                    self.announce.burst(self.schedule(), now);
                    self.announce_due(now, out);
                }
                Action::Reassert { src, priority } => {
                    let key = format!("reassert {} {src}", self.plan.name);
                    if let Some(n) = logs.allow(&key, now) {
                        out.push(self.log(
                            Level::Warn,
                            format!(
                                "{src} advertises priority {priority} although this node is MASTER with priority {} (a healed split brain, or a backup that timed out): answered at once and re-announcing the VIPs{}",
                                self.core.priority(),
                                log_limit::more(n)
                            ),
                        ));
                    }
                }
                Action::Transition { from, to, reason } => out.push(Command::Transition {
                    instance: self.plan.name.clone(),
                    from,
                    to,
                    reason,
                    priority: self.core.priority(),
                }),
            }
        }
    }

    /// Announces the VIPs if the schedule says so.
    pub fn announce_due(&mut self, now: Duration, out: &mut Vec<Command>) {
        let master = self.core.state() == State::Master;
        if self.announce.due(self.schedule(), now, master) {
            out.push(Command::Announce {
                instance: self.plan.name.clone(),
                index: self.plan.link.index,
                addrs: self.plan.vips.iter().map(|v| v.addr).collect(),
            });
        }
    }

    fn send_advert(&mut self, priority: u8, out: &mut Vec<Command>) {
        let Some(src) = self.primary else { return };
        if !self.built_for(priority, src) {
            self.built = Some(self.build_adverts(priority, src));
        }
        let Some(built) = &self.built else { return };
        for (dst, bytes) in &built.frames {
            out.push(Command::Send {
                instance: built.name.clone(),
                index: self.plan.link.index,
                v4: self.plan.v4,
                src,
                dst: *dst,
                bytes: bytes.clone(),
            });
        }
    }

    /// Whether the adverts last built are the ones to send at this
    /// priority from this source.
    pub(super) fn built_for(&self, priority: u8, src: IpAddr) -> bool {
        self.built
            .as_ref()
            .is_some_and(|b| b.priority == priority && b.src == src && *b.name == self.plan.name)
    }

    fn build_adverts(&self, priority: u8, src: IpAddr) -> BuiltAdverts {
        let cfg = self.core.config();
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
        let dsts: Vec<IpAddr> = if self.plan.unicast() {
            self.peers.clone()
        } else if self.plan.v4 {
            vec![IpAddr::V4(MCAST_V4)]
        } else {
            vec![IpAddr::V6(MCAST_V6)]
        };
        BuiltAdverts {
            priority,
            src,
            name: Arc::from(self.plan.name.as_str()),
            frames: dsts
                .into_iter()
                .map(|dst| (dst, Arc::from(adv.encode(src, dst, cfg.checksum))))
                .collect(),
        }
    }

    pub fn log(&self, level: Level, message: String) -> Command {
        Command::Log {
            level,
            instance: Some(self.plan.name.clone()),
            message: format!("instance {}: {message}", self.plan.name),
        }
    }
}
