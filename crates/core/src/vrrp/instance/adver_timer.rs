//! A MASTER's Adver_Timer outside its state machine: lent to the node
//! between events (`Instance::lend_adver_timer`), and the one rule for
//! re-arming it either way.

use super::{Instance, State, Time, cs};
use std::time::Duration;

/// A MASTER's Adver_Timer lent out of its state machine
/// (`Instance::lend_adver_timer`). Until it comes back, all that firing it
/// does is what `Input::Timer` would do: send the advert of `priority`
/// again and re-arm (§6.4.3); the holder does that without the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LentAdverTimer {
    pub(super) due: Time,
    pub(super) interval: Duration,
    pub(super) priority: u8,
    pub(super) fired: u64,
}

impl LentAdverTimer {
    pub fn due(&self) -> Time {
        self.due
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Adverts sent through it since it was lent.
    pub fn fired(&self) -> u64 {
        self.fired
    }

    /// The timer at `now`: true when it fired, i.e. the advert is to be
    /// sent, and it is re-armed as `Input::Timer` re-arms it.
    pub fn fire(&mut self, now: Time) -> bool {
        if now < self.due {
            return false;
        }
        self.fired += 1;
        self.due = rearm(self.due, now, self.interval);
        true
    }
}

/// The Adver_Timer after firing at `now` when it was `due`: re-armed from
/// when it was due, so that the event loop's late wake-ups do not add up
/// (they made a master send ~1% fewer adverts than configured); never into
/// the past, so a stalled master sends no burst.
pub(super) fn rearm(due: Time, now: Time, interval: Duration) -> Time {
    let next = due + interval;
    if next > now { next } else { now + interval }
}

impl Instance {
    /// A MASTER's Adver_Timer, lent to the caller (see `LentAdverTimer`):
    /// a master at 10 ms adverts does nothing else a hundred times a
    /// second, and the node's I/O shell then fires it without the machine.
    /// While it is out, `deadline` leaves it out. None in any other state.
    /// It must be given back (`return_adver_timer`) before any input.
    pub fn lend_adver_timer(&mut self) -> Option<LentAdverTimer> {
        if self.state != State::Master || self.adver_lent {
            return None;
        }
        let due = self.adver_timer.take()?;
        self.adver_lent = true;
        Some(LentAdverTimer {
            due,
            interval: cs(self.cfg.advert_interval_cs),
            priority: self.priority,
            fired: 0,
        })
    }

    /// The lent Adver_Timer back, with the adverts it sent counted.
    pub fn return_adver_timer(&mut self, t: LentAdverTimer) {
        if !self.adver_lent {
            return;
        }
        self.adver_lent = false;
        self.counters.adverts_sent += t.fired;
        if self.state == State::Master {
            self.adver_timer = Some(t.due);
        }
    }
}
