//! Received adverts: which instance they are for (`rx_filter`), what the
//! state machine makes of them, and a log line for peers whose adverts are
//! ignored for a mismatch (both may be master, and a counter is easy to
//! miss).

use super::Node;
use super::event::Level;
use super::log_limit;
use super::rx_filter::{self, Listener};
use crate::vrrp::instance::Input;
use crate::vrrp::packet::{Advert, ChecksumStyle, Version};
use std::net::IpAddr;
use std::time::Duration;

impl Node {
    pub(super) fn on_advert(
        &mut self,
        now: Duration,
        ifindex: u32,
        v4: bool,
        src: IpAddr,
        advert: Advert,
        checksum: ChecksumStyle,
    ) {
        let on_link = self.if_addrs.get(&ifindex).map_or(&[][..], Vec::as_slice);
        let found = self
            .insts
            .route((ifindex, v4, advert.vrid))
            .ok_or("unknown_vrid");
        let admitted = found.and_then(|i| {
            let m = &self.insts[i];
            let l = Listener {
                ifindex,
                v4,
                vrid: advert.vrid,
                peers: &m.peers,
                unicast: m.plan.unicast(),
            };
            rx_filter::admit(&l, src, on_link).map(|()| i)
        });
        let i = match admitted {
            Ok(i) => i,
            Err(why) => {
                *self.dropped.entry(why).or_default() += 1;
                return;
            }
        };
        let (version, interval_cs) = (advert.version, advert.interval_cs);
        self.insts[i].core.take_last_drop();
        self.input(
            now,
            i,
            Input::Advert {
                src,
                advert,
                checksum,
            },
        );
        if let Some(why) = self.insts[i].core.take_last_drop() {
            self.report_ignored_peer(now, i, src, why, version, interval_cs);
        }
    }

    /// A peer whose adverts for our VRID are dropped for a mismatch does
    /// not see ours as valid either: both may be MASTER, and a counter in
    /// `status` is easy to miss. Say why, once in a while per peer.
    fn report_ignored_peer(
        &mut self,
        now: Duration,
        i: usize,
        src: IpAddr,
        why: &'static str,
        version: Version,
        interval_cs: u16,
    ) {
        let m = &self.insts[i];
        let cfg = m.core.config();
        let detail = match why {
            "auth_mismatch" => {
                "its authentication (type or password) differs from this instance's".to_string()
            }
            "version_mismatch" => format!(
                "it sends VRRPv{}, this instance VRRPv{}",
                version.number(),
                cfg.version.number()
            ),
            "interval_mismatch" => format!(
                "VRRPv2 needs the same advert interval on every router (RFC 3768 §7.1): it sends {} s, this instance {} s",
                interval_cs / 100,
                cfg.advert_interval_cs / 100
            ),
            "checksum_style" => {
                "its VRRPv3 checksum is computed another way (see v3Checksum)".to_string()
            }
            _ => return,
        };
        let key = format!("ignored {} {src} {why}", m.plan.name);
        if let Some(n) = self.logs.allow(&key, now) {
            let msg = format!(
                "instance {}: ignoring adverts from {src} for VRID {}: {detail}; it may be MASTER too{}",
                m.plan.name,
                cfg.vrid,
                log_limit::more(n)
            );
            let name = m.plan.name.clone();
            self.log(Level::Warn, Some(&name), msg);
        }
    }

    /// keepalived's `auth_type AH` next to nginx-ha: neither side accepts
    /// the other's adverts, so both are MASTER. Nothing else would tell.
    pub(super) fn on_ah(&mut self, ifindex: u32, v4: bool, src: IpAddr, vrid: u8, more: u64) {
        let Some(i) = self.insts.route((ifindex, v4, vrid)) else {
            return;
        };
        let m = &self.insts[i];
        let name = m.plan.name.clone();
        let msg = format!(
            "instance {name}: {src} sends VRRP for VRID {vrid} wrapped in IPsec AH (IP protocol 51, keepalived's auth_type AH), which nginx-ha does not speak: neither node accepts the other's adverts and both may be MASTER; use auth_type PASS (VRRPv2 authPasswordFile) or none on both{}",
            log_limit::more(more)
        );
        self.log(Level::Warn, Some(&name), msg);
    }
}
