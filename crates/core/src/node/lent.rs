//! Masters' advert timers between events. A master at 10 ms adverts does
//! nothing else a hundred times a second, and taking each of those through
//! `handle` (the due index, the state machine, a command with two shared
//! pointers, the index again) was most of the user-space work of a wake-up
//! that keepalived does in a few lines. So after each event the node lends
//! every master's Adver_Timer out of its state machine, with the adverts
//! it sends (`Instance::lend_adver_timer`); `fire_adverts` fires them, and
//! the next event takes them back first, the adverts counted. What goes
//! out is what `handle(now, Event::Timer)` would have sent, at the same
//! times; a caller that never calls `fire_adverts` sees no difference at
//! all (the lent deadlines are in `poll_timeout`, and `handle` takes them
//! back before it fires them).

use super::Node;
use super::member::Member;
use crate::vrrp::instance::{LentAdverTimer, State};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// Nodes with more instances keep every timer in the due index: their
/// wake-ups serve many instances at once (adverts are coalesced), and
/// scanning the lent timers on each would cost more than it saves.
pub const LEND_MAX_INSTANCES: usize = 16;

pub(super) struct Lent {
    member: usize,
    timer: LentAdverTimer,
    instance: Arc<str>,
    index: u32,
    v4: bool,
    src: IpAddr,
    /// Destination and wire bytes, shared with the member's built adverts.
    frames: Vec<(IpAddr, Arc<[u8]>)>,
}

/// One advert to send, as `Command::Send` would carry it.
pub struct Frame<'a> {
    pub instance: &'a Arc<str>,
    pub index: u32,
    pub v4: bool,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub bytes: &'a [u8],
}

impl Member {
    /// This master's Adver_Timer and the adverts it sends, if they are
    /// built for its priority and source (a master that has not sent at
    /// its current priority yet keeps its timer until it has).
    fn lend(&mut self, member: usize) -> Option<Lent> {
        let src = self.primary?;
        if self.core.state() != State::Master || !self.built_for(self.core.priority(), src) {
            return None;
        }
        let built = self.built.as_ref()?;
        let frames = built.frames.clone();
        let instance = built.name.clone();
        let timer = self.core.lend_adver_timer()?;
        Some(Lent {
            member,
            timer,
            instance,
            index: self.plan.link.index,
            v4: self.plan.v4,
            src,
            frames,
        })
    }
}

impl Node {
    /// Sends the adverts of the lent timers due at `now` through `send`,
    /// and re-arms those timers; nothing else of the node is touched.
    pub fn fire_adverts(&mut self, now: Duration, mut send: impl FnMut(Frame<'_>)) {
        for l in &mut self.lent {
            if l.timer.fire(now) {
                for (dst, bytes) in &l.frames {
                    send(Frame {
                        instance: &l.instance,
                        index: l.index,
                        v4: l.v4,
                        src: l.src,
                        dst: *dst,
                        bytes,
                    });
                }
            }
        }
    }

    /// Whether anything but a lent advert timer is due at `now`: then
    /// `handle(now, Event::Timer)` has work.
    pub fn timer_due(&self, now: Duration) -> bool {
        self.own_deadline().is_some_and(|t| t <= now)
    }

    /// The earliest lent deadline.
    pub(super) fn lent_deadline(&self) -> Option<Duration> {
        self.lent.iter().map(|l| l.timer.due()).min()
    }

    /// Adverts member `i` sent through its lent timer, not yet in its
    /// counters.
    pub(super) fn lent_fired(&self, i: usize) -> u64 {
        self.lent
            .iter()
            .find(|l| l.member == i)
            .map_or(0, |l| l.timer.fired())
    }

    /// Every lent timer back into its state machine (before an event).
    pub(super) fn take_back(&mut self) {
        // Taken and put back, so that its capacity stays.
        let mut lent = std::mem::take(&mut self.lent);
        for l in lent.drain(..) {
            if l.member < self.insts.len() {
                self.insts[l.member].core.return_adver_timer(l.timer);
            }
        }
        self.lent = lent;
    }

    /// Lends the masters' timers (after an event).
    pub(super) fn lend(&mut self) {
        if self.insts.len() > LEND_MAX_INSTANCES {
            return;
        }
        for i in 0..self.insts.len() {
            // Looked at before the mutable access, which files the member
            // for a fresh look at its deadlines.
            if self.insts[i].core.state() != State::Master {
                continue;
            }
            if let Some(l) = self.insts[i].lend(i) {
                self.lent.push(l);
            }
        }
    }
}
