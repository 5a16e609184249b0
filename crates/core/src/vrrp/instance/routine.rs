//! A BACKUP's routine advert: the one whose unchanged repeats only
//! restart the Master_Down_Timer, which the I/O shell may therefore read
//! late and hand over in a few stores.

use super::{Heard, Instance, State, Time, same_addresses};
use crate::vrrp::packet::Advert;
use std::net::IpAddr;

impl Instance {
    /// The advert (and its sender) whose unchanged repeats would only
    /// restart this BACKUP's Master_Down_Timer: each one changes nothing
    /// else, so that handled at its arrival time, even late, it has the
    /// effect it would have had at once. None in any other state.
    pub fn routine(&self) -> Option<(IpAddr, &Advert)> {
        match &self.routine {
            Some((src, adv)) if self.state == State::Backup => Some((*src, adv)),
            _ => None,
        }
    }

    /// The routine advert (`routine`) came again at `now`: what
    /// receiving it would do (restart the Master_Down_Timer, count it),
    /// without it being decoded and compared again. False, and nothing
    /// done, when there is no routine advert: the caller hands the
    /// advert over in full.
    pub fn repeat(&mut self, now: Time) -> bool {
        let Some((src, adv)) = &self.routine else {
            return false;
        };
        if self.state != State::Backup {
            return false;
        }
        // As `receive` and `backup_receive` do for this advert; the rest
        // of what they do leaves a routine advert's state as it is.
        self.heard = Some(Heard {
            at: now,
            src: *src,
            priority: adv.priority,
            interval_cs: adv.interval_cs,
        });
        self.counters.adverts_received += 1;
        if !same_addresses(&adv.addrs, &self.cfg.vips) {
            self.counters.address_mismatch += 1;
        }
        self.master_down_timer = Some(now + self.master_down_interval());
        true
    }
}
