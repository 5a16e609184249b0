//! Received adverts: RFC 5798 §7.1 checks that need the instance, then
//! what a Backup (§6.4.2) and a Master (§6.4.3) do with them, with the
//! documented departures (preempting a known lower master after
//! Skew_Time; a master answering a lower priority).

use super::*;

impl Instance {
    /// Master_Down_Interval for a master advertising every `interval_cs`.
    pub(super) fn down_interval_of(&self, interval_cs: u16) -> Duration {
        3 * cs(interval_cs) + self.skew_time()
    }

    /// A Backup that outranks the master it hears takes over after its
    /// Skew_Time (at once with fast_takeover), and not before the preempt
    /// delay. Skew_Time keeps the RFC's order among several preempting
    /// backups: the highest priority moves first.
    pub(super) fn consider_preempt(&mut self, now: Time, src: IpAddr, priority: u8) {
        let outranks = priority < self.priority
            || (priority == self.priority && addr_greater(self.cfg.primary_addr, src));
        if !self.cfg.preempt || !outranks {
            return;
        }
        let mut at = if self.cfg.fast_takeover {
            now
        } else {
            now + self.skew_time()
        };
        if let Some(h) = self.holdoff_until {
            at = at.max(h);
        }
        // The master was just heard, so its Master_Down_Interval is not
        // what this node waits for any more; an earlier preemption already
        // scheduled stands.
        let earlier = self.preempting.is_some() && self.master_down_timer.is_some_and(|t| t <= at);
        if !earlier {
            self.master_down_timer = Some(at);
            self.preempting = Some(priority);
        }
    }

    /// RFC 5798 §7.1 checks that need this instance, then §6.4.2/§6.4.3.
    pub(super) fn receive(
        &mut self,
        now: Time,
        src: IpAddr,
        adv: Advert,
        checksum: ChecksumStyle,
        out: &mut Vec<Action>,
    ) {
        if src == self.cfg.primary_addr {
            return self.count_drop(DropReason::OwnAdvert);
        }
        if adv.version != self.cfg.version {
            return self.count_drop(DropReason::VersionMismatch);
        }
        if adv.version == Version::V3
            && checksum != ChecksumStyle::Rfc
            && checksum != self.cfg.checksum
        {
            return self.count_drop(DropReason::ChecksumStyle);
        }
        if adv.version == Version::V2 {
            // RFC 3768 §7.1: auth type and data must match ours.
            if adv.auth != self.cfg.auth {
                return self.count_drop(DropReason::AuthMismatch);
            }
            // RFC 3768 §7.1: the interval must be the configured one.
            if adv.interval_cs != self.cfg.advert_interval_cs {
                return self.count_drop(DropReason::IntervalMismatch);
            }
        }
        if self.cfg.priority == OWNER_PRIORITY {
            // The owner drops every advert (RFC 5798 §7.1) but, like any
            // master, answers a node that believes it is master instead.
            if self.state == State::Master && adv.priority != 0 && adv.priority < OWNER_PRIORITY {
                self.reassert(now, src, adv.priority, out);
            }
            return self.count_drop(DropReason::WeAreOwner);
        }
        self.heard = (adv.priority != 0).then_some(Heard {
            at: now,
            src,
            priority: adv.priority,
            interval_cs: adv.interval_cs,
        });
        if !matches!(self.state, State::Backup | State::Master) {
            return self.count_drop(DropReason::NotRunning);
        }
        self.counters.adverts_received += 1;
        if adv.priority == 0 {
            self.counters.priority_zero_received += 1;
        }
        if !same_addresses(&adv.addrs, &self.cfg.vips) {
            self.counters.address_mismatch += 1;
        }
        match self.state {
            State::Backup => self.backup_receive(now, src, &adv, out),
            State::Master => self.master_receive(now, src, &adv, out),
            State::Initialize | State::Fault => {}
        }
    }

    /// RFC 5798 §6.4.2 "If an ADVERTISEMENT is received".
    fn backup_receive(&mut self, now: Time, src: IpAddr, adv: &Advert, out: &mut Vec<Action>) {
        // Set again below only where this advert just restarts the timer.
        let was = self.routine.take();
        if adv.priority == 0 {
            if self.cfg.fast_takeover {
                self.become_master(now, Reason::FastTakeover, out);
            } else {
                // "Set the Master_Down_Timer to Skew_Time".
                self.resigned_master_seen = true;
                self.master_down_timer = Some(now + self.skew_time());
            }
            return;
        }
        if !self.cfg.preempt || adv.priority >= self.priority {
            // "Set Master_Adver_Interval to Adver Interval contained in the
            // ADVERTISEMENT, Recompute the Skew_Time, Recompute the
            // Master_Down_Interval, Reset the Master_Down_Timer".
            if self.cfg.version == Version::V3 {
                self.master_adver_interval_cs = adv.interval_cs;
            }
            self.resigned_master_seen = false;
            self.preempting = None;
            self.master_down_timer = Some(now + self.master_down_interval());
            self.learn_master(src);
            // The same advert again changes nothing but the timer: kept
            // as it is rather than cloned for every repeat.
            self.routine = match was {
                Some((s, a)) if s == src && a == *adv => Some((s, a)),
                _ => Some((src, adv.clone())),
            };
        } else {
            // "Discard the ADVERTISEMENT", and (departure from RFC 5798
            // §6.4.2) preempt after Skew_Time, or when the preempt delay
            // ends, rather than when the Master_Down_Timer runs out: the
            // master is known to be lower.
            self.consider_preempt(now, src, adv.priority);
        }
    }

    /// RFC 5798 §6.4.3 "If an ADVERTISEMENT is received".
    fn master_receive(&mut self, now: Time, src: IpAddr, adv: &Advert, out: &mut Vec<Action>) {
        self.routine = None;
        if adv.priority == 0 {
            // "Send an ADVERTISEMENT, Reset the Adver_Timer".
            let p = self.priority;
            self.send(p, out);
            self.adver_timer = Some(now + cs(self.cfg.advert_interval_cs));
            return;
        }
        let higher = adv.priority > self.priority
            || (adv.priority == self.priority && addr_greater(src, self.cfg.primary_addr));
        if higher {
            // Departure from RFC 5798 §6.4.3: one last advert before
            // yielding. When a split brain heals, each master may hear the
            // other first; if this one yielded silently, the winner would
            // never hear a lower priority and never re-announce, and the
            // clients that followed this node would stay lost.
            let p = self.priority;
            self.send(p, out);
            self.adver_timer = None;
            if self.cfg.version == Version::V3 {
                self.master_adver_interval_cs = adv.interval_cs;
            }
            self.master_down_timer = Some(now + self.master_down_interval());
            self.learn_master(src);
            out.push(Action::RemoveVips);
            self.transition(
                now,
                State::Backup,
                Reason::HigherPriority {
                    src,
                    priority: adv.priority,
                },
                out,
            );
        } else {
            // Departure from RFC 5798 §6.4.3 ("discard"), as keepalived
            // does: a lower-priority advert means another node believes it
            // is master (a healed split brain, or a backup with a shorter
            // interval that timed out before our next advert). Silence
            // would leave it master until our Adver_Timer, and leave the
            // clients whose ARP/ND caches followed it pointing at a node
            // that is about to drop the VIP. Answer at once so it yields,
            // and re-announce so the clients come back.
            self.reassert(now, src, adv.priority, out);
        }
    }

    fn reassert(&mut self, now: Time, src: IpAddr, priority: u8, out: &mut Vec<Action>) {
        self.counters.lower_priority_answered += 1;
        let p = self.priority;
        self.send(p, out);
        self.adver_timer = Some(now + cs(self.cfg.advert_interval_cs));
        out.push(Action::Announce);
        out.push(Action::Reassert { src, priority });
    }
}
