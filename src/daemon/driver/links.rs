//! Links and addresses from netlink: interfaces followed by name (a
//! re-created one gets its sockets again), the source address found or
//! lost, VIPs deleted by hand put back, and a full re-read after lost
//! events.

use super::*;

impl Daemon {
    pub async fn on_net_event(&mut self, ev: NetEvent) {
        match ev {
            NetEvent::Link(l) => self.on_link(l).await,
            NetEvent::LinkGone { index, name } => self.on_link_gone(index, &name).await,
            NetEvent::Addresses(index) => self.on_addresses(index).await,
            NetEvent::Resync => self.resync().await,
        }
    }

    pub(super) async fn on_link(&mut self, l: LinkInfo) {
        // Instances are bound to an interface by name: one that was
        // deleted and created again (a veth, VLAN or bond rebuilt) has a
        // new index, and everything opened on the old one is dead.
        for i in 0..self.insts.len() {
            let p = &self.insts[i].plan.link;
            if p.name != l.name {
                continue;
            }
            if p.index != l.index {
                self.rebind(i, l.clone()).await;
            } else if p.mac != l.mac {
                // Announcements must carry the interface's current MAC.
                self.insts[i].plan.link.mac = l.mac;
                self.announcers.remove(&l.index);
                let plan = self.insts[i].plan.clone();
                if let Err(e) = self.ensure_io(&plan) {
                    error!(instance = plan.name.as_str(); "instance {}: {e}", plan.name);
                }
            }
        }
        for i in 0..self.insts.len() {
            let r = &self.insts[i];
            if r.plan.link.index != l.index || !r.plan.decl.track_interface {
                continue;
            }
            let why = (!l.up).then(|| format!("{} is down", l.name));
            self.set_fault(i, FaultSource::Link, why).await;
        }
    }

    pub(super) async fn on_link_gone(&mut self, index: u32, name: &str) {
        let mut any = false;
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            any = true;
            // Whatever track_interface says: nothing can be served on an
            // interface that does not exist.
            let why = format!("{name} was deleted; waiting for it to come back");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
        }
        if any {
            warn!("interface {name} (index {index}) was deleted");
            // Its sockets see nothing any more; a re-created interface
            // gets new ones (rebind).
            self.sockets.retain(|(idx, _), _| *idx != index);
            self.announcers.remove(&index);
        }
    }

    /// Moves instance `i` onto the interface now called by its name.
    pub(super) async fn rebind(&mut self, i: usize, l: LinkInfo) {
        let old = self.insts[i].plan.link.index;
        let name = l.name.clone();
        info!(
            instance = self.insts[i].plan.name.as_str();
            "instance {}: interface {name} is back (index {old} -> {}): re-opening its sockets",
            self.insts[i].plan.name, l.index
        );
        if !self.insts[i].faults.contains(&FaultSource::Link) {
            // The deletion was not seen (events lost): resign first, so
            // nothing is held on the old index.
            let why = format!("{name} was deleted; waiting for it to come back");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
        }
        self.insts[i].plan.link = l.clone();
        self.sockets.retain(|(idx, _), _| *idx != old);
        self.announcers.remove(&old);
        let plan = self.insts[i].plan.clone();
        if let Err(e) = self.ensure_io(&plan) {
            error!(instance = plan.name.as_str(); "instance {}: {e}", plan.name);
            let why = format!("{name}: {e}");
            self.set_fault(i, FaultSource::Link, Some(why)).await;
            return;
        }
        self.drop_unused_io();
        self.refresh_primary(i).await;
        let why = (!l.up && plan.decl.track_interface).then(|| format!("{name} is down"));
        self.set_fault(i, FaultSource::Link, why).await;
    }

    pub(super) async fn on_addresses(&mut self, index: u32) {
        if !self.insts.iter().any(|r| r.plan.link.index == index) {
            return;
        }
        let on_link = match self.net.addresses(index).await {
            Ok(a) => a,
            Err(e) => {
                warn!("reading the addresses of interface {index}: {e}");
                return;
            }
        };
        self.if_addrs.insert(index, on_link.clone());
        for i in 0..self.insts.len() {
            if self.insts[i].plan.link.index != index {
                continue;
            }
            if self.insts[i].primary.is_none() {
                self.refresh_primary(i).await;
            } else {
                self.restore_vips(i, &on_link).await;
            }
        }
    }

    /// A MASTER holds its VIPs: one deleted by hand (or by another tool)
    /// would leave the clients without service while every node reports
    /// all is well, so it is added back and reported.
    pub(super) async fn restore_vips(&mut self, i: usize, on_link: &[(IpAddr, u8)]) {
        let r = &self.insts[i];
        if r.core.state() != State::Master || r.faults.contains(&FaultSource::Vip) {
            return;
        }
        let missing: Vec<IpPrefix> = r
            .plan
            .vips
            .iter()
            .filter(|v| !on_link.iter().any(|(a, _)| *a == v.addr))
            .cloned()
            .collect();
        if missing.is_empty() {
            return;
        }
        let (idx, name, ifname) = (
            r.plan.link.index,
            r.plan.name.clone(),
            r.plan.link.name.clone(),
        );
        let now = self.now();
        for v in &missing {
            let key = format!("vip-restore {name} {v}");
            if let Some(n) = self.log_limit.allow(&key, now) {
                warn!(
                    instance = name.as_str();
                    "instance {name}: VIP {v} was removed from {ifname} while MASTER: adding it back{}",
                    log_limit::more(n)
                );
            }
            match self.net.add_addr(idx, v.addr, v.len).await {
                Ok(()) => self.insts[i].vips_restored += 1,
                Err(e) => {
                    error!(instance = name.as_str(); "instance {name}: adding VIP {v} back: {e}")
                }
            }
        }
        // Clients may have learnt in the meantime that nobody answers.
        self.exec(i, vec![Action::Announce]).await;
    }

    /// Looks for the instance's source address again; once found (or
    /// changed, on a re-created interface) the core is rebuilt with it.
    /// Only called while the instance is in FAULT or has no address, so
    /// it holds nothing that a new core would forget.
    pub(super) async fn refresh_primary(&mut self, i: usize) {
        let index = self.insts[i].plan.link.index;
        let on_link = match self.net.addresses(index).await {
            Ok(a) => a,
            Err(e) => {
                warn!("reading the addresses of interface {index}: {e}");
                return;
            }
        };
        self.if_addrs.insert(index, on_link.clone());
        let p = self.insts[i].plan.pick_primary(&on_link);
        let now = self.now();
        let r = &mut self.insts[i];
        if p != r.primary {
            r.primary = p;
            r.peers = r.plan.peers(p);
            if let Some(p) = p {
                let mut core = Instance::new(r.plan.core_config(Some(p)));
                if let Some(why) = r.faults.first().cloned() {
                    core.handle(now, Input::Fault(why));
                }
                core.handle(now, Input::Startup);
                r.core = core;
                info!("instance {}: source address {p} found", r.plan.name);
                self.apply_checks(i);
            }
        }
        match p {
            Some(p) => {
                // Unicast peers that are all this node itself: nobody
                // would hear the adverts, so every node would be master.
                let why = self.insts[i].plan.no_peer_reason(Some(p));
                self.set_fault(i, FaultSource::Address, why).await
            }
            None => {
                let why = no_address_reason(&self.insts[i].plan);
                self.set_fault(i, FaultSource::Address, Some(why)).await
            }
        }
    }

    /// After lost netlink events: read every interface we use again, and
    /// act on what changed as if the events had arrived.
    pub(super) async fn resync(&mut self) {
        warn!(
            "netlink events were lost (receive buffer overrun): reading links and addresses again"
        );
        let names: std::collections::BTreeSet<String> = self
            .insts
            .iter()
            .map(|r| r.plan.link.name.clone())
            .collect();
        for name in names {
            match self.net.link(&name).await {
                Ok(l) => self.on_link(l).await,
                Err(NetError::NoSuchInterface(_)) => {
                    let idx: Vec<u32> = self
                        .insts
                        .iter()
                        .filter(|r| r.plan.link.name == name)
                        .map(|r| r.plan.link.index)
                        .collect();
                    for index in idx {
                        self.on_link_gone(index, &name).await;
                    }
                }
                Err(e) => warn!("reading interface {name}: {e}"),
            }
        }
        let indexes: std::collections::BTreeSet<u32> =
            self.insts.iter().map(|r| r.plan.link.index).collect();
        for index in indexes {
            self.on_addresses(index).await;
        }
    }
}
