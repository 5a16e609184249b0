//! Every source of events but the VRRP sockets and the node's timers:
//! the AH reports, netlink, health verdicts, control requests, signals,
//! reloads, the watchdog and the metrics tick. They wake the loop through
//! one waker (`Poller::waker`) and are looked at only then, so that the
//! hundred wake-ups a second of 10 ms adverts never touch them.

use super::driver::{Daemon, PacketKey};
use super::rx::Inbound;
use super::{DaemonError, complete, io_err, setup, systemd};
use crate::health::Event as HealthEvent;
use crate::net::netlink::NetEvent;
use std::path::PathBuf;
use std::task::{Context, Poll};
use tokio::runtime::Runtime;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Interval;

use super::control::Request;

/// Netlink events handled in one go (their address reads coalesced).
const NET_BATCH: usize = 256;
/// Rounds over the sources per turn: a source that keeps having events
/// (a flood of control requests) yields to the sockets and timers after
/// this many, and is looked at again on the next turn without a wait.
const ROUNDS: usize = 16;

pub struct Cold {
    pub config: PathBuf,
    pub pkt_rx: mpsc::Receiver<(PacketKey, Inbound)>,
    pub net_events: mpsc::UnboundedReceiver<NetEvent>,
    pub health_rx: mpsc::UnboundedReceiver<HealthEvent>,
    pub ctl_rx: mpsc::Receiver<Request>,
    pub signals: Signals,
    pub watchdog: Option<Interval>,
    pub metrics_tick: Interval,
    /// A reload's files are read in a task of their own; the loop keeps
    /// sending adverts meanwhile and applies the result when it arrives.
    pub reading: Option<JoinHandle<Result<setup::Loaded, Vec<String>>>>,
    /// SIGHUPs during a read are coalesced into one more read after it,
    /// so the last signal always sees the file as it was when it was sent.
    pub read_again: bool,
}

pub enum Drained {
    /// Every source is waiting.
    All,
    /// Some may have more: look again on the next turn.
    Some,
    /// SIGTERM or SIGINT.
    Stop,
}

impl Cold {
    /// Handles what the sources have, each looked at once per round, in
    /// rounds until none has anything (or `ROUNDS`). Each looked-at
    /// source that has nothing keeps `cx`'s waker, which is how the loop
    /// learns of its next event.
    pub fn drain(&mut self, rt: &Runtime, d: &mut Daemon, cx: &mut Context<'_>) -> Drained {
        for _ in 0..ROUNDS {
            let mut any = false;
            if let Poll::Ready(Some((key, pkt))) = self.pkt_rx.poll_recv(cx) {
                any = true;
                complete(rt, d.on_packet(key, pkt));
            }
            if let Poll::Ready(Some(ev)) = self.net_events.poll_recv(cx) {
                any = true;
                // Whatever else is queued too, so that a burst of address
                // changes (a thousand VIPs moving) costs one read of each
                // interface's addresses, not one per change.
                let mut batch = vec![ev];
                while batch.len() < NET_BATCH
                    && let Ok(ev) = self.net_events.try_recv()
                {
                    batch.push(ev);
                }
                complete(rt, d.on_net_events(batch));
            }
            if let Poll::Ready(Some(ev)) = self.health_rx.poll_recv(cx) {
                any = true;
                complete(rt, d.on_health(ev));
            }
            if let Poll::Ready(Some(req)) = self.ctl_rx.poll_recv(cx) {
                any = true;
                complete(rt, d.on_control(req));
            }
            if let Some(w) = &mut self.watchdog
                && w.poll_tick(cx).is_ready()
            {
                any = true;
                systemd::watchdog();
            }
            // Not looked at without an endpoint, so that it does not wake
            // the loop; a reload that adds one is an event, and the round
            // after it looks.
            if d.has_metrics() && self.metrics_tick.poll_tick(cx).is_ready() {
                any = true;
                d.publish_metrics();
            }
            match self.signals.rx.poll_recv(cx) {
                Poll::Ready(Some(Signal::Stop)) => return Drained::Stop,
                Poll::Ready(Some(Signal::Reload)) => {
                    any = true;
                    if self.reading.is_some() {
                        self.read_again = true;
                    } else {
                        self.reading = Some(self.read());
                    }
                }
                _ => {}
            }
            if let Some(r) = &mut self.reading
                && let Poll::Ready(r) = std::pin::Pin::new(r).poll(cx)
            {
                any = true;
                self.reading = None;
                let loaded =
                    r.unwrap_or_else(|e| Err(vec![format!("reading the declaration: {e}")]));
                complete(rt, d.reload(loaded));
                if std::mem::take(&mut self.read_again) {
                    self.reading = Some(self.read());
                }
            }
            if !any {
                return Drained::All;
            }
        }
        Drained::Some
    }

    fn read(&self) -> JoinHandle<Result<setup::Loaded, Vec<String>>> {
        tokio::spawn(setup::read_for_reload(self.config.clone()))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals, from a task of their own: one queue for the loop to look
/// at instead of three signal streams.
pub struct Signals {
    pub rx: mpsc::Receiver<Signal>,
    _task: AbortOnDrop,
}

impl Signals {
    pub fn listen() -> Result<Signals, DaemonError> {
        let mut term = signal(SignalKind::terminate()).map_err(io_err("SIGTERM handler"))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("SIGINT handler"))?;
        let mut hup = signal(SignalKind::hangup()).map_err(io_err("SIGHUP handler"))?;
        // Bounded; a burst of SIGHUPs beyond it waits in the signal
        // streams, which coalesce them (the loop coalesces reloads too).
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(async move {
            loop {
                let sig = tokio::select! {
                    _ = term.recv() => Signal::Stop,
                    _ = int.recv() => Signal::Stop,
                    _ = hup.recv() => Signal::Reload,
                };
                if tx.send(sig).await.is_err() {
                    break;
                }
            }
        });
        Ok(Signals {
            rx,
            _task: AbortOnDrop(task),
        })
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
