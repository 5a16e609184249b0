//! Received adverts: which instance they are for (`crate::node::rx_filter`),
//! what the state machine makes of them, and the log lines for peers whose
//! adverts are ignored (a silent cause of two masters).

use super::*;

impl Daemon {
    pub(super) fn count_drop(&mut self, why: &'static str) {
        self.rx_dropped.count(why);
    }

    pub async fn on_packet(&mut self, key: PacketKey, pkt: Inbound) {
        let (ip, adv, style) = match pkt {
            Inbound::Advert {
                ip,
                advert,
                checksum,
            } => (ip, advert, checksum),
            Inbound::Ah(p, more) => return self.on_ah(key, p, more),
        };
        let listeners = self.insts.iter().map(|r| Listener {
            ifindex: r.plan.link.index,
            v4: r.plan.v4,
            vrid: r.core.config().vrid,
            peers: &r.peers,
            unicast: r.plan.unicast(),
        });
        let on_link = self.if_addrs.get(&key.0).map_or(&[][..], Vec::as_slice);
        let i = match rx_filter::route(listeners, key.0, key.1, adv.vrid, ip.src, on_link) {
            Ok(i) => i,
            Err(why) => return self.count_drop(why),
        };
        let now = self.now();
        let before = self.insts[i].core.counters().dropped.clone();
        let (version, interval_cs) = (adv.version, adv.interval_cs);
        let a = self.insts[i].core.handle(
            now,
            Input::Advert {
                src: ip.src,
                advert: adv,
                checksum: style,
            },
        );
        let after = &self.insts[i].core.counters().dropped;
        let why = after
            .iter()
            .find(|(k, v)| before.get(*k) != Some(*v))
            .map(|(k, _)| *k);
        if let Some(why) = why {
            self.report_ignored_peer(i, ip.src, why, version, interval_cs, now);
        }
        self.exec(i, a).await;
    }

    /// A peer whose adverts for our VRID are dropped for a mismatch does
    /// not see ours as valid either: both may be MASTER, and a counter in
    /// `status` is easy to miss. Say why, once in a while per peer.
    pub(super) fn report_ignored_peer(
        &mut self,
        i: usize,
        src: IpAddr,
        why: &'static str,
        version: Version,
        interval_cs: u16,
        now: Duration,
    ) {
        let r = &self.insts[i];
        let cfg = r.core.config();
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
        let key = format!("ignored {} {src} {why}", r.plan.name);
        if let Some(n) = self.log_limit.allow(&key, now) {
            warn!(
                instance = r.plan.name.as_str();
                "instance {}: ignoring adverts from {src} for VRID {}: {detail}; it may be MASTER too{}",
                r.plan.name,
                cfg.vrid,
                log_limit::more(n)
            );
        }
    }

    /// keepalived's `auth_type AH` next to nginx-ha: neither side accepts
    /// the other's adverts, so both are MASTER. Nothing else would tell.
    pub(super) fn on_ah(&mut self, key: PacketKey, p: AhVrrp, more: u64) {
        let Some(r) = self
            .insts
            .iter()
            .find(|r| (r.plan.link.index, r.plan.v4) == key && r.core.config().vrid == p.vrid)
        else {
            return;
        };
        warn!(
            instance = r.plan.name.as_str();
            "instance {}: {} sends VRRP for VRID {} wrapped in IPsec AH (IP protocol 51, keepalived's auth_type AH), which nginx-ha does not speak: neither node accepts the other's adverts and both may be MASTER; use auth_type PASS (VRRPv2 authPasswordFile) or none on both{}",
            r.plan.name,
            p.src,
            p.vrid,
            log_limit::more(more)
        );
    }
}
