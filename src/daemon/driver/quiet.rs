//! A BACKUP's routine adverts off the loop's path (`net::quiet`): which
//! repeats the node calls routine, the filters that keep them from waking
//! the loop, and reading them, with their arrival times, before the
//! node's timers are handled.

use super::*;
use crate::net::quiet::{self as filter, Pattern, Side};
use crate::vrrp::packet::Advert;
use std::net::IpAddr;

/// Datagrams read from the quiet sockets in one turn at most. What is
/// left waits for the next turn, which comes at once, and the node's
/// timers wait with it: one of those adverts may restart a timer.
const DRAIN_MAX: usize = 4096;
/// Instances on a node up to which their routine adverts are read late.
/// Beyond, every advert wakes the loop as before: with many instances
/// the loop wakes for their timers anyway (masters' adverts are
/// coalesced, backups' deadlines are many), and reading a quiet socket
/// on each of those turns would cost more than it saves; nor does every
/// advert on the link then pay for a second socket's copy.
const QUIET_MAX_INSTANCES: usize = 16;

pub(super) struct Quiet {
    ifname: String,
    ifindex: u32,
    /// Opened with the first pattern (see `QUIET_MAX_INSTANCES`).
    sock: Option<Arc<VrrpSocket>>,
    /// By VRID: the repeat as it is on the wire, and the advert and
    /// sender the node named routine.
    patterns: BTreeMap<u8, (Arc<Pattern>, IpAddr, Advert)>,
    /// Datagrams may wait in the socket: a pattern was installed since
    /// the last read that found it empty.
    pending: bool,
}

impl Quiet {
    pub(super) fn new(ifname: &str, ifindex: u32) -> Quiet {
        Quiet {
            ifname: ifname.to_string(),
            ifindex,
            sock: None,
            patterns: BTreeMap::new(),
            pending: false,
        }
    }
}

/// A datagram read from a quiet socket, before it goes to the node.
pub(super) enum Drained {
    /// The routine advert of `vrid` again, as `pattern` has it.
    Repeat {
        vrid: u8,
        arrived: Option<std::time::SystemTime>,
        pattern: Arc<Pattern>,
    },
    /// Anything else (taken before the filters changed).
    Other(rx::Inbound, Option<std::time::SystemTime>),
}

/// What `on_readable` keeps of an advert for `note_routine`.
pub(super) struct Heard {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    pub advert: Advert,
    pub msg: Vec<u8>,
}

impl Daemon {
    /// Whether adverts read from the socket `key` are to be kept for
    /// `note_routine`.
    pub(super) fn quiet_wanted(&self, key: PacketKey) -> bool {
        self.node.instance_count() <= QUIET_MAX_INSTANCES
            && self.sockets.get(&key).is_some_and(|r| r.quiet.is_some())
    }

    /// After the node took an advert from the loop's socket `key` (kept
    /// only where `quiet_wanted`): if it now calls that advert routine,
    /// its repeats go to the quiet socket.
    pub(super) fn note_routine(&mut self, key: PacketKey, heard: Heard) {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (heard.src, heard.dst) else {
            return;
        };
        let vrid = heard.advert.vrid;
        let routine = self
            .node
            .routine(key.0, key.1, vrid)
            .is_some_and(|(s, a)| s == heard.src && *a == heard.advert);
        if !routine {
            return;
        }
        let Some(q) = self.sockets.get_mut(&key).and_then(|rx| rx.quiet.as_mut()) else {
            return;
        };
        let pattern = Pattern {
            src,
            dst,
            ttl: heard.ttl,
            msg: heard.msg,
        };
        // One no filter can hold (a long VIP list) stays with the loop.
        if !pattern.encodable() || q.patterns.get(&vrid).is_some_and(|(p, ..)| **p == pattern) {
            return;
        }
        q.patterns
            .insert(vrid, (Arc::new(pattern), heard.src, heard.advert));
        self.install(key);
    }

    /// After any event: patterns the node no longer calls routine (a
    /// transition, a new priority, another master) are taken out, so that
    /// their repeats wake the loop again.
    pub(super) fn forget_stale_routine(&mut self) {
        let mut changed = Vec::new();
        for (key, rx) in &mut self.sockets {
            let Some(q) = rx.quiet.as_mut() else { continue };
            let before = q.patterns.len();
            let node = &self.node;
            q.patterns.retain(|vrid, (_, src, adv)| {
                node.routine(key.0, key.1, *vrid)
                    .is_some_and(|(s, a)| s == *src && a == adv)
            });
            if q.patterns.len() != before {
                changed.push(*key);
            }
        }
        for key in changed {
            self.install(key);
        }
    }

    /// Puts the socket's patterns into the filters: first the loop's
    /// socket stops taking them, then the quiet one starts; a repeat that
    /// arrives in between is lost, as one on the wire may be, never read
    /// twice. What does not fit in a filter stays with the loop.
    fn install(&mut self, key: PacketKey) {
        let Some(rx) = self.sockets.get_mut(&key) else {
            return;
        };
        let Some(q) = rx.quiet.as_mut() else { return };
        if q.sock.is_none() && !q.patterns.is_empty() {
            match VrrpSocket::open_quiet(&q.ifname, q.ifindex) {
                Ok(s) => q.sock = Some(Arc::new(s)),
                Err(e) => {
                    warn!(
                        "quiet VRRP socket on {}: {e}; every advert wakes the loop",
                        q.ifname
                    );
                    // Not tried again for this interface.
                    rx.quiet = None;
                    self.count_patterns();
                    return;
                }
            }
        }
        let Some(qsock) = q.sock.clone() else { return };
        let patterns: Vec<Pattern> = q.patterns.values().map(|(p, ..)| (**p).clone()).collect();
        let (to_loop, covered) = filter::compile(&patterns, Side::Loop);
        let (to_quiet, _) = filter::compile(&patterns[..covered], Side::Quiet);
        let r = rx
            .sock
            .set_filter(&to_loop)
            .and_then(|()| qsock.set_filter(&to_quiet));
        match r {
            Ok(()) => {
                let keep: Vec<u8> = q.patterns.keys().copied().take(covered).collect();
                q.patterns.retain(|v, _| keep.contains(v));
            }
            Err(e) => {
                warn!(
                    "VRRP socket on ifindex {}: cannot filter routine adverts ({e}); every advert wakes the loop",
                    key.0
                );
                q.patterns.clear();
                let (all, _) = filter::compile(&[], Side::Loop);
                let _ = rx.sock.set_filter(&all);
                let _ = qsock.set_filter(&filter::drop_all());
            }
        }
        // Set either way: what the quiet socket took before is read still.
        q.pending = true;
        self.count_patterns();
    }

    fn count_patterns(&mut self) {
        self.quiet_patterns = self
            .sockets
            .values()
            .filter_map(|rx| rx.quiet.as_ref())
            .map(|q| q.patterns.len())
            .sum();
    }

    /// Whether a quiet socket may hold adverts to read before the node's
    /// timers are handled.
    pub fn quiet_pending(&self) -> bool {
        self.sockets
            .values()
            .any(|rx| rx.quiet.as_ref().is_some_and(|q| q.pending))
    }

    /// Reads the quiet sockets and hands each advert to the node at its
    /// arrival time: a repeat of the routine advert, byte for byte, as a
    /// repeat (`Node::repeat`: no decoding, no commands), anything else in
    /// full. False if some were left (`DRAIN_MAX`).
    pub async fn drain_quiet(&mut self) -> bool {
        let mut read = 0;
        let mut items = std::mem::take(&mut self.quiet_items);
        let mut after: Option<PacketKey> = None;
        while let Some(key) = self.next_pending(after) {
            after = Some(key);
            while let Some(q) = self.sockets.get(&key).and_then(|rx| rx.quiet.as_ref()) {
                let Some(sock) = q.sock.clone() else { break };
                let (drops, logs) = (&self.rx_dropped, &mut self.rx_logs);
                let now = self.start.elapsed();
                let r = sock.read_ready(&mut self.rx_buf, |d| {
                    let arrived = d.as_ref().ok().and_then(|d| d.arrived);
                    if let Ok(d) = &d
                        && let Some((p, ..)) = d.msg.get(1).and_then(|vrid| q.patterns.get(vrid))
                        && p.matches(d.ip, d.msg)
                    {
                        items.push(Drained::Repeat {
                            vrid: d.msg[1],
                            arrived,
                            pattern: p.clone(),
                        });
                    } else if let Some(a) = rx::admit(d, drops, logs, now) {
                        items.push(Drained::Other(a, arrived));
                    }
                });
                let n = match r {
                    Ok(n) => n,
                    Err(e) => {
                        warn!("quiet VRRP socket on ifindex {}: {e}", key.0);
                        0
                    }
                };
                let clocks = self.clocks();
                read += n;
                for item in items.drain(..) {
                    match item {
                        Drained::Repeat {
                            vrid,
                            arrived,
                            pattern,
                        } => {
                            let at = clocks.arrival(arrived).max(self.last_now);
                            self.last_now = at;
                            if !self.node.repeat(at, key.0, key.1, vrid) {
                                // No longer routine (an advert before it in
                                // this read changed that): in full.
                                let d = pattern.received();
                                if let Some(a) =
                                    rx::admit(Ok(d), &self.rx_dropped, &mut self.rx_logs, now)
                                {
                                    let ev = self.packet_event(key, a);
                                    self.feed_at(ev, at).await;
                                }
                            }
                        }
                        Drained::Other(a, arrived) => {
                            let at = clocks.arrival(arrived);
                            let ev = self.packet_event(key, a);
                            self.feed_at(ev, at).await;
                        }
                    }
                }
                if n < crate::net::vrrp_socket::BATCH {
                    if let Some(q) = self.sockets.get_mut(&key).and_then(|rx| rx.quiet.as_mut()) {
                        q.pending = !q.patterns.is_empty();
                    }
                    break;
                }
                if read >= DRAIN_MAX {
                    self.quiet_items = items;
                    return false;
                }
            }
        }
        self.quiet_items = items;
        true
    }

    /// The first socket after `after` whose quiet socket may hold adverts.
    fn next_pending(&self, after: Option<PacketKey>) -> Option<PacketKey> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.sockets
            .range((from, Unbounded))
            .find(|(_, rx)| rx.quiet.as_ref().is_some_and(|q| q.pending))
            .map(|(k, _)| *k)
    }

    /// Both clocks read once for a batch of datagrams (`Clocks::arrival`).
    pub(super) fn clocks(&self) -> Clocks {
        Clocks {
            node: self.now(),
            wall: std::time::SystemTime::now(),
        }
    }
}

/// Node time and wall-clock time read together: a batch's datagrams are
/// placed on the node's clock from one reading of each, not two clock
/// reads per datagram.
#[derive(Clone, Copy)]
pub(super) struct Clocks {
    node: Duration,
    wall: std::time::SystemTime,
}

impl Clocks {
    /// Node time of a datagram the kernel stamped with the wall clock:
    /// how long before the reading it came. Unstamped, or stamped after
    /// the reading (the wall clock stepped back): the reading.
    pub(super) fn arrival(&self, arrived: Option<std::time::SystemTime>) -> Duration {
        let ago = arrived
            .and_then(|t| self.wall.duration_since(t).ok())
            .unwrap_or_default();
        self.node.saturating_sub(ago)
    }
}
