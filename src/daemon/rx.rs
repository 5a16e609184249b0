//! What comes in on the raw sockets. The event loop reads the VRRP
//! sockets itself, a batch per turn (`admit` validates each datagram in
//! full and counts junk); a task reads the AH socket and reports to the
//! loop through a bounded queue, rate-limited so that a flood of AH
//! cannot fill it.

use crate::net::vrrp_socket::{AhSocket, AhVrrp, Received};
use crate::node::log_limit::{self, LogLimit};
use crate::vrrp::packet::{Advert, ChecksumStyle, DecodeError, IpMeta, VRRP_TTL};
use log::warn;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// (interface index, IPv4?)
pub type PacketKey = (u32, bool);

/// What the readers hand to the event loop.
pub enum Inbound {
    /// A well-formed advert (checksum, TTL, lengths checked).
    Advert {
        ip: IpMeta,
        advert: Advert,
        checksum: ChecksumStyle,
    },
    /// An AH-wrapped VRRP packet (keepalived's `auth_type AH`), and how
    /// many more from the same sender were not reported since the last.
    Ah(AhVrrp, u64),
}

/// Drop counters shared by the readers and the loop (status `dropped`).
#[derive(Clone, Default)]
pub struct Drops(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Drops {
    pub fn count(&self, why: &'static str) {
        // A poisoned lock only means a panic elsewhere; the counts stay
        // usable.
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry(why).or_insert(0) += 1;
    }

    pub fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The shared pieces every reader needs.
#[derive(Clone)]
pub struct Sink {
    pub tx: mpsc::Sender<(PacketKey, Inbound)>,
    /// Valid adverts dropped because the loop was behind.
    pub overflow: Arc<AtomicU64>,
    pub drops: Drops,
}

impl Sink {
    /// Queues without waiting; false when the loop is gone.
    fn offer(&self, key: PacketKey, what: Inbound) -> bool {
        match self.tx.try_send((key, what)) {
            Ok(()) => true,
            // The queue is bounded; the excess is counted, not queued.
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflow.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// One datagram the loop read: the advert in it if it is a well-formed
/// one, else None, counted (a real advert with a wrong TTL also logged).
pub fn admit(
    got: Result<Received<'_>, &'static str>,
    drops: &Drops,
    limit: &mut LogLimit,
    now: Duration,
) -> Option<Inbound> {
    let pkt = match got {
        Ok(pkt) => pkt,
        Err(why) => {
            drops.count(why);
            return None;
        }
    };
    match Advert::decode(pkt.msg, pkt.ip) {
        Ok((advert, checksum)) => Some(Inbound::Advert {
            ip: pkt.ip,
            advert,
            checksum,
        }),
        Err(e) => {
            drops.count(e.counter());
            if let DecodeError::BadTtl(ttl) = e {
                report_ttl(pkt.msg, pkt.ip, ttl, limit, now);
            }
            None
        }
    }
}

/// A real advert with the wrong TTL / hop limit is a silent dual-master
/// cause (RFC 5798 §7.1 requires 255; keepalived's IPv6 unicast without
/// `unicast_ttl 255`, or adverts routed across a hop): say so, once in a
/// while per sender. Junk with a wrong TTL is only counted.
fn report_ttl(msg: &[u8], ip: IpMeta, ttl: u8, limit: &mut LogLimit, now: Duration) {
    let as_sent = IpMeta {
        ttl: VRRP_TTL,
        ..ip
    };
    let Ok((adv, _)) = Advert::decode(msg, as_sent) else {
        return;
    };
    if let Some(n) = limit.allow(&format!("ttl {}", ip.src), now) {
        warn!(
            "dropped a VRRP advert from {} (VRID {}, priority {}): its TTL/hop limit is {ttl}, VRRP requires 255 (RFC 5798 §7.1). Its sender is ignored and may be MASTER too: make it send with TTL 255 (keepalived: unicast_ttl 255) and on the same link{}",
            ip.src,
            adv.vrid,
            adv.priority,
            log_limit::more(n)
        );
    }
}

/// Reports AH-wrapped VRRP packets to the loop, rate-limited here so that
/// a flood of them cannot take the queue from real adverts.
pub fn spawn_ah(key: PacketKey, sock: AhSocket, sink: Sink) -> JoinHandle<()> {
    tokio::spawn(async move {
        let start = Instant::now();
        let mut limit = LogLimit::default();
        loop {
            match sock.recv().await {
                Ok(p) => {
                    sink.drops.count("ah");
                    let k = format!("{} {}", p.src, p.vrid);
                    if let Some(n) = limit.allow(&k, start.elapsed())
                        && !sink.offer(key, Inbound::Ah(p, n))
                    {
                        break;
                    }
                }
                Err(e) => {
                    warn!("AH socket on ifindex {}: {e}", key.0);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}
