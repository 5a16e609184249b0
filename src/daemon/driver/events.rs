//! What happens on the sockets, netlink and the health checks, and the
//! signals, as events for the node.

use super::*;
use std::os::fd::AsFd;

impl Daemon {
    /// Reads one batch from the socket `key` (a bounded amount of work:
    /// under a flood the loop's other work gets its turn between
    /// batches), counts the junk and hands the adverts to the node.
    pub async fn on_readable(&mut self, key: PacketKey) {
        let Some(sock) = self.sockets.get(&key).map(|r| r.sock.clone()) else {
            return;
        };
        let mut adverts = std::mem::take(&mut self.rx_adverts);
        // With a quiet socket beside it, the wire bytes of each advert are
        // kept, to recognise its repeats (`note_routine`).
        let mut heard = Vec::new();
        let quiet = self.quiet_wanted(key);
        let (drops, logs) = (&self.rx_dropped, &mut self.rx_logs);
        let now = self.start.elapsed();
        let r = sock.read_ready(&mut self.rx_buf, |got| {
            let msg = match (&got, quiet) {
                (Ok(d), true) => Some((d.ip, d.msg.to_vec())),
                _ => None,
            };
            let arrived = got.as_ref().ok().and_then(|d| d.arrived);
            let Some(a) = rx::admit(got, drops, logs, now) else {
                return;
            };
            if let (Some((ip, msg)), Inbound::Advert { advert, .. }) = (msg, &a) {
                heard.push((
                    adverts.len(),
                    quiet::Heard {
                        src: ip.src,
                        dst: ip.dst,
                        ttl: ip.ttl,
                        advert: advert.clone(),
                        msg,
                    },
                ));
            }
            adverts.push((a, arrived));
        });
        if let Err(e) = r
            && let Some(n) = self.rx_logs.allow(&format!("rx {}", key.0), now)
        {
            warn!(
                "VRRP socket on ifindex {}: {e}{}",
                key.0,
                crate::node::log_limit::more(n)
            );
        }
        let mut heard = heard.into_iter().peekable();
        let clocks = self.clocks();
        for (i, (pkt, arrived)) in adverts.drain(..).enumerate() {
            let at = clocks.arrival(arrived);
            let ev = self.packet_event(key, pkt);
            self.feed_at(ev, at).await;
            if let Some((_, h)) = heard.next_if(|(at, _)| *at == i) {
                self.note_routine(key, h);
            }
        }
        self.rx_adverts = adverts;
    }

    pub async fn on_packet(&mut self, key: PacketKey, pkt: Inbound) {
        let ev = self.packet_event(key, pkt);
        self.feed(ev).await;
    }

    /// The node's event for what came in on the socket `key`.
    pub(super) fn packet_event(&self, key: PacketKey, pkt: Inbound) -> Event {
        let (ifindex, v4) = key;
        match pkt {
            Inbound::Advert {
                ip,
                advert,
                checksum,
            } => Event::Advert {
                ifindex,
                v4,
                src: ip.src,
                advert,
                checksum,
            },
            Inbound::Ah(p, more) => Event::Ah {
                ifindex,
                v4,
                src: std::net::IpAddr::V4(p.src),
                vrid: p.vrid,
                more,
            },
        }
    }

    /// Netlink events in order, except that address changes only mark
    /// their interface for a read (`read_pending_addresses`): a read
    /// returns the addresses as they are now, so one answers every change
    /// before it, and VIPs moving by the hundred change them by the
    /// hundred.
    pub async fn on_net_events(&mut self, batch: Vec<NetEvent>) {
        for ev in batch {
            match ev {
                NetEvent::Link(l) => self.feed(Event::Link(l)).await,
                NetEvent::LinkGone { index, name } => {
                    self.feed(Event::LinkGone { index, name }).await
                }
                NetEvent::Addresses(index) => {
                    self.addr_pending.insert(index);
                }
                NetEvent::Resync => self.resync().await,
            }
        }
        self.read_pending_addresses().await;
    }

    /// When the marked interfaces' addresses are to be read (None: none
    /// marked). At once, unless a read happened less than
    /// `ADDR_READ_GAP` ago: during a storm of changes, reads are spaced,
    /// not one per change.
    pub fn addr_read_due(&self) -> Option<Instant> {
        if self.addr_pending.is_empty() {
            return None;
        }
        Some(
            self.addr_read_last
                .map_or_else(Instant::now, |t| t + ADDR_READ_GAP),
        )
    }

    pub async fn read_pending_addresses(&mut self) {
        if self.addr_read_due().is_none_or(|t| t > Instant::now()) {
            return;
        }
        self.addr_read_last = Some(Instant::now());
        for index in std::mem::take(&mut self.addr_pending) {
            self.read_addresses(index).await;
        }
    }

    async fn read_addresses(&mut self, index: u32) {
        if !self.node.interfaces().iter().any(|(_, i)| *i == index) {
            return;
        }
        match self.net.addresses(index).await {
            Ok(addrs) => self.feed(Event::Addresses { index, addrs }).await,
            Err(e) => warn!("reading the addresses of interface {index}: {e}"),
        }
    }

    /// After lost netlink events: read every interface in use again, and
    /// tell the node as if the events had arrived.
    async fn resync(&mut self) {
        warn!(
            "netlink events were lost (receive buffer overrun): reading links and addresses again"
        );
        let interfaces = self.node.interfaces();
        let names: std::collections::BTreeSet<String> =
            interfaces.iter().map(|(n, _)| n.clone()).collect();
        for name in names {
            match self.net.link(&name).await {
                Ok(l) => self.feed(Event::Link(l)).await,
                Err(NetError::NoSuchInterface(_)) => {
                    for (n, index) in &interfaces {
                        if *n == name {
                            let ev = Event::LinkGone {
                                index: *index,
                                name: name.clone(),
                            };
                            self.feed(ev).await;
                        }
                    }
                }
                Err(e) => warn!("reading interface {name}: {e}"),
            }
        }
        for (_, index) in self.node.interfaces() {
            self.read_addresses(index).await;
        }
    }

    pub async fn on_health(&mut self, ev: HealthEvent) {
        match ev {
            HealthEvent::Verdict(v) => self.on_verdict(v).await,
            HealthEvent::Watch(w) => {
                self.forget_exit_watch();
                if let Err(e) = self.poller.add(w.fd.as_fd(), EXIT_TOKEN) {
                    // The check's own verdict still comes, a wake-up later.
                    warn!("watching nginx process {} from the event loop: {e}", w.pid);
                    return;
                }
                self.exit_watch = Some(w);
            }
            HealthEvent::Lend(p) => {
                self.drop_probe();
                self.lent_probe = Some(p);
            }
        }
    }

    async fn on_verdict(&mut self, v: health::Verdict) {
        let ev = Event::Verdict {
            check: v.check,
            healthy: v.healthy,
            detail: v.detail,
        };
        self.feed(ev).await;
        self.report_status();
    }

    /// The watched process exited: its check's verdict, now. The check
    /// sends the same one when its thread sees the exit, and the node
    /// takes that as no news.
    pub async fn on_exit(&mut self) {
        let Some(w) = self.exit_watch.take() else {
            return;
        };
        // The resignation first: taking the pidfd out of the epoll,
        // closing it and the lent probe's connection (which also wakes
        // the check's thread) are system calls a takeover need not wait
        // for. The pidfd stays readable meanwhile, but no wait comes
        // before it is gone.
        self.on_verdict(w.verdict()).await;
        self.poller.remove(w.fd.as_fd());
        drop(w);
        // The check takes its probes back by itself when it sees the exit.
        self.drop_probe();
    }

    /// Stops watching (a newer process, or the check stopped).
    pub(super) fn forget_exit_watch(&mut self) {
        self.drop_probe();
        if let Some(w) = self.exit_watch.take() {
            self.poller.remove(w.fd.as_fd());
        }
    }

    /// SIGHUP: a new declaration. A bad one is refused whole and the
    /// running one kept; otherwise the node keeps the instances that did
    /// not change, with their state and VIPs.
    pub async fn reload(&mut self, loaded: Result<Loaded, Vec<String>>) {
        systemd::reloading();
        info!("reloading {}", self.opts.config.display());
        if let Err(lines) = self.try_reload(loaded).await {
            for l in &lines {
                error!("reload refused, keeping the running configuration: {l}");
            }
        }
        systemd::ready(&self.node.status_line());
    }

    async fn try_reload(&mut self, loaded: Result<Loaded, Vec<String>>) -> Result<(), Vec<String>> {
        let Loaded { decl, passwords } = loaded?;
        let plans = setup::plan(&decl, &passwords, &self.net)
            .await
            .map_err(|e| vec![e.to_string()])?;
        let mut on_link = BTreeMap::new();
        for p in &plans {
            let index = p.link.index;
            if let std::collections::btree_map::Entry::Vacant(slot) = on_link.entry(index) {
                let addrs = self
                    .net
                    .addresses(index)
                    .await
                    .map_err(|e| vec![e.to_string()])?;
                slot.insert(addrs);
            }
        }
        let weights = check_weights(&decl);
        if decl.metrics != self.decl.metrics {
            // The last step that can fail: nothing else is applied if the
            // new address cannot be bound.
            self.move_metrics(decl.metrics.as_ref().map(|m| m.listen))
                .await?;
        }
        let old_anycast = std::mem::replace(&mut self.decl, decl).anycast;
        let restarted = self.checks_running.sync(&self.decl.checks, &self.health_tx);
        // A restarted check watches afresh; a removed one no more.
        if restarted.iter().any(|c| c == health::nginx::NAME) || !self.decl.checks.nginx.enable {
            self.forget_exit_watch();
        }
        for p in &plans {
            if !self.node.has_instance(&p.name) {
                self.state_files.record(&p.name, State::Initialize);
            }
        }
        let ev = Event::Reload {
            plans,
            weights,
            restarted,
            on_link,
        };
        self.feed(ev).await;
        self.reload_anycast(old_anycast).await;
        Ok(())
    }

    /// Stops: VRRP instances resign, anycast withdraws and drains (cut
    /// short by `interrupt`, a second signal), stop hooks run.
    pub async fn shutdown(&mut self, interrupt: impl std::future::Future<Output = ()>) {
        info!("shutting down");
        self.feed(Event::Shutdown).await;
        // The stop states, before the process (and the writer) ends.
        if !self.state_files.flush(STATE_FLUSH_LIMIT).await {
            warn!("state files not all written after {STATE_FLUSH_LIMIT:?}; exiting without them");
        }
        self.drain_anycast(interrupt).await;
        // The stop hooks were queued above; the runtime ends when this
        // returns. Room for one hook already running plus the stop hooks.
        self.hooks
            .drain(self.decl.notify.timeout.as_duration().saturating_mul(2))
            .await;
    }
}
