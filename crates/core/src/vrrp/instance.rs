//! One virtual router's state machine: RFC 5798 §6 (VRRPv3) and RFC 3768 §6
//! (VRRPv2), plus a FAULT state driven from outside (health checks, link).
//!
//! The machine is pure: it is fed `(now, input)` and returns actions. It
//! never reads a clock; `deadline()` says when it wants `Input::Timer`.
//! Spurious or late timer calls are harmless: deadlines are re-checked.
//!
//! Times are microseconds (as `Duration`) rather than the RFC's
//! centiseconds, so Skew_Time is never truncated (at 1 s adverts and
//! priority 100 it is 609.375 ms, not 600 ms or, in integer seconds, 0).

use super::packet::{Advert, Auth, ChecksumStyle, Version};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// Monotonic time since an arbitrary origin chosen by the caller.
pub type Time = Duration;

/// The owner of the virtual addresses advertises this priority
/// (RFC 5798 §5.2.4).
pub const OWNER_PRIORITY: u8 = 255;

mod adver_timer;
mod receive;
mod routine;
pub use adver_timer::LentAdverTimer;
use adver_timer::rearm;
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub version: Version,
    pub vrid: u8,
    /// Configured priority, 1..=255 (255 = address owner).
    pub priority: u8,
    /// Advertisement_Interval in centiseconds (v2: a multiple of 100).
    pub advert_interval_cs: u16,
    pub preempt: bool,
    /// How long a node that became eligible (start-up, end of FAULT) waits
    /// before preempting a lower-priority master. Not in the RFC; the
    /// holdoff keeps a flapping node from pulling the VIP back and forth.
    pub preempt_delay: Duration,
    /// This node's primary address on the interface: the advert source
    /// and the tie-breaker (RFC 5798 §6.4.3).
    pub primary_addr: IpAddr,
    pub vips: Vec<IpAddr>,
    /// v2 only: expected and sent authentication.
    pub auth: Auth,
    /// The checksum variant sent, and accepted besides the RFC's, for v3
    /// over IPv4 (interop with peers built that way).
    pub checksum: ChecksumStyle,
    /// Departure from RFC 5798 §6.4.2: on a priority-0 advert, take over at
    /// once instead of after Skew_Time. Safe only when this node is the
    /// only possible successor (a unicast pair); the caller decides.
    pub fast_takeover: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum State {
    Initialize,
    Backup,
    Master,
    /// Not in the RFC: the node cannot serve (health check at weight 0,
    /// link down, maintenance). It neither advertises nor takes over.
    Fault,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// RFC 5798 §6.4.1 Startup event.
    Startup,
    /// RFC 5798 §6.4.1/6.4.2/6.4.3 Shutdown event.
    Shutdown,
    /// A timer may have expired.
    Timer,
    /// A decoded advert for this VRID from `src`.
    Advert {
        src: IpAddr,
        advert: Advert,
        checksum: ChecksumStyle,
    },
    /// The effective priority changed (checks with non-zero weight).
    /// Ignored for an address owner, whose priority is fixed at 255.
    Priority(u8),
    /// Something outside says this node cannot serve.
    Fault(String),
    /// The fault is over; start again as after Startup.
    Recover,
}

/// Why a transition happened, for logs and `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reason {
    Startup,
    AddressOwner,
    /// Master_Down_Timer fired: no advert for Master_Down_Interval, or only
    /// lower-priority ones while preempting.
    MasterDown,
    /// The master resigned (priority 0) and Skew_Time passed.
    MasterResigned,
    /// Took over at once on a priority-0 advert (fast_takeover).
    FastTakeover,
    /// Preempted a master known to have a lower priority after Skew_Time
    /// (at once with fast_takeover), not Master_Down_Interval.
    PreemptLower {
        priority: u8,
    },
    HigherPriority {
        src: IpAddr,
        priority: u8,
    },
    Shutdown,
    Fault(String),
    Recovered,
}

impl Reason {
    /// A stable, label-friendly name of the kind of reason (no addresses
    /// or numbers): metrics count transitions by it.
    pub fn kind(&self) -> &'static str {
        match self {
            Reason::Startup => "startup",
            Reason::AddressOwner => "address_owner",
            Reason::MasterDown => "master_down",
            Reason::MasterResigned => "master_resigned",
            Reason::FastTakeover => "fast_takeover",
            Reason::PreemptLower { .. } => "preempt_lower",
            Reason::HigherPriority { .. } => "higher_priority",
            Reason::Shutdown => "shutdown",
            Reason::Fault(_) => "fault",
            Reason::Recovered => "recovered",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Startup => f.write_str("start-up"),
            Reason::AddressOwner => f.write_str("address owner (priority 255)"),
            Reason::MasterDown => f.write_str("master down interval expired"),
            Reason::MasterResigned => f.write_str("master resigned (priority 0), skew time passed"),
            Reason::FastTakeover => f.write_str("master resigned (priority 0), fast takeover"),
            Reason::PreemptLower { priority } => {
                write!(f, "preempted a master with the lower priority {priority}")
            }
            Reason::HigherPriority { src, priority } => {
                write!(f, "advert from {src} with priority {priority}")
            }
            Reason::Shutdown => f.write_str("shutdown"),
            Reason::Fault(why) => write!(f, "fault: {why}"),
            Reason::Recovered => f.write_str("fault cleared"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    SendAdvert {
        priority: u8,
    },
    AddVips,
    RemoveVips,
    /// Gratuitous ARP / unsolicited NA for the VIPs.
    Announce,
    /// A master heard `src` advertise a lower priority and answered it
    /// (with an advert and announcements): for the log.
    Reassert {
        src: IpAddr,
        priority: u8,
    },
    Transition {
        from: State,
        to: State,
        reason: Reason,
    },
}

pub use super::counters::{Counters, DropReason};

pub struct Instance {
    cfg: Config,
    state: State,
    /// Effective priority (configured + check weights), 1..=254 or 255.
    priority: u8,
    /// Master_Adver_Interval (v3: learned from the master's adverts).
    master_adver_interval_cs: u16,
    adver_timer: Option<Time>,
    master_down_timer: Option<Time>,
    /// Until when a lower-priority master is still accepted (preempt delay).
    holdoff_until: Option<Time>,
    fault: Option<String>,
    started: bool,
    /// The Master_Down_Timer was set to Skew_Time by a priority-0 advert.
    resigned_master_seen: bool,
    /// The latest advert of another router, heard in any state (also in
    /// FAULT): a node that comes back knows whom it would preempt.
    heard: Option<Heard>,
    /// The Master_Down_Timer was shortened to preempt a lower master.
    preempting: Option<u8>,
    master_addr: Option<IpAddr>,
    last: Option<(Time, Reason)>,
    counters: Counters,
    /// The advert, and its sender, that this BACKUP accepted last and
    /// that, received again unchanged, would only restart the
    /// Master_Down_Timer (§6.4.2). Cleared by whatever else decides: a
    /// transition, a new priority, another advert. The I/O shell may read
    /// such repeats late, up to the timer's deadline, fed with their
    /// arrival times (`routine`).
    routine: Option<(IpAddr, Advert)>,
    /// Why the latest input was dropped, if it was.
    last_drop: Option<&'static str>,
    /// The Adver_Timer is out (`lend_adver_timer`).
    adver_lent: bool,
}

impl Instance {
    pub fn new(cfg: Config) -> Instance {
        let priority = cfg.priority;
        let mai = cfg.advert_interval_cs;
        Instance {
            cfg,
            state: State::Initialize,
            priority,
            master_adver_interval_cs: mai,
            adver_timer: None,
            master_down_timer: None,
            holdoff_until: None,
            fault: None,
            started: false,
            resigned_master_seen: false,
            heard: None,
            preempting: None,
            master_addr: None,
            last: None,
            counters: Counters::default(),
            routine: None,
            last_drop: None,
            adver_lent: false,
        }
    }

    /// Why the latest input was dropped (its counter's name), once.
    pub fn take_last_drop(&mut self) -> Option<&'static str> {
        self.last_drop.take()
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn priority(&self) -> u8 {
        self.priority
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    /// The master's address as last seen (ours when we are master).
    pub fn master_addr(&self) -> Option<IpAddr> {
        self.master_addr
    }
    pub fn last_transition(&self) -> Option<&(Time, Reason)> {
        self.last.as_ref()
    }
    pub fn master_adver_interval(&self) -> Duration {
        cs(self.master_adver_interval_cs)
    }

    /// Skew_Time: RFC 5798 §6.1 `((256 - Priority) * Master_Adver_Interval)
    /// / 256`; RFC 3768 §6.1 `(256 - Priority) / 256` seconds.
    pub fn skew_time(&self) -> Duration {
        let p = 256 - u64::from(self.priority);
        match self.cfg.version {
            Version::V3 => {
                Duration::from_micros(p * u64::from(self.master_adver_interval_cs) * 10_000 / 256)
            }
            Version::V2 => Duration::from_micros(p * 1_000_000 / 256),
        }
    }

    /// Master_Down_Interval: `3 * Master_Adver_Interval + Skew_Time`
    /// (RFC 5798 §6.1; RFC 3768 uses Advertisement_Interval, which for v2
    /// is the same value since v2 adverts must carry ours).
    pub fn master_down_interval(&self) -> Duration {
        3 * cs(self.master_adver_interval_cs) + self.skew_time()
    }

    /// When `Input::Timer` is next due, if ever.
    pub fn deadline(&self) -> Option<Time> {
        match self.state {
            State::Master => self.adver_timer,
            State::Backup => self.master_down_timer,
            State::Initialize | State::Fault => None,
        }
    }

    pub fn handle(&mut self, now: Time, input: Input) -> Vec<Action> {
        let mut out = Vec::new();
        self.handle_into(now, input, &mut out);
        out
    }

    /// `handle`, appending to `out`: a caller that keeps the list saves
    /// an allocation per input (an advert sent or received).
    pub fn handle_into(&mut self, now: Time, input: Input, out: &mut Vec<Action>) {
        debug_assert!(!self.adver_lent, "an input while the Adver_Timer is lent");
        if self.adver_lent {
            // Not given back: what it did is unknown, so it fires now; an
            // advert early rather than one missed.
            self.adver_lent = false;
            self.adver_timer = Some(now);
        }
        match input {
            Input::Startup => {
                if !self.started {
                    self.started = true;
                    match self.fault.clone() {
                        None => self.start(now, Reason::Startup, out),
                        Some(why) => self.transition(now, State::Fault, Reason::Fault(why), out),
                    }
                }
            }
            Input::Shutdown => self.shutdown(now, out),
            Input::Timer => self.timer(now, out),
            Input::Advert {
                src,
                advert,
                checksum,
            } => self.receive(now, src, advert, checksum, out),
            Input::Priority(p) => self.set_priority(p),
            Input::Fault(why) => self.enter_fault(now, why, out),
            Input::Recover => {
                if self.fault.take().is_some() && self.started && self.state == State::Fault {
                    self.transition(now, State::Initialize, Reason::Recovered, out);
                    self.start(now, Reason::Recovered, out);
                }
            }
        }
    }

    fn transition(&mut self, now: Time, to: State, reason: Reason, out: &mut Vec<Action>) {
        let from = self.state;
        if from == to {
            return;
        }
        self.routine = None;
        self.state = to;
        self.counters.transitions += 1;
        *self
            .counters
            .transitions_by
            .entry((from.as_str(), to.as_str(), reason.kind()))
            .or_insert(0) += 1;
        self.last = Some((now, reason.clone()));
        out.push(Action::Transition { from, to, reason });
    }

    fn learn_master(&mut self, addr: IpAddr) {
        if self.master_addr.is_some_and(|m| m != addr) {
            self.counters.master_changes += 1;
        }
        self.master_addr = Some(addr);
    }

    fn send(&mut self, priority: u8, out: &mut Vec<Action>) {
        self.counters.adverts_sent += 1;
        if priority == 0 {
            self.counters.priority_zero_sent += 1;
        }
        out.push(Action::SendAdvert { priority });
    }

    /// RFC 5798 §6.4.1 (Initialize, on Startup).
    fn start(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        if self.cfg.priority == OWNER_PRIORITY {
            self.become_master(now, Reason::AddressOwner, out);
        } else {
            self.master_adver_interval_cs = self.cfg.advert_interval_cs;
            self.master_down_timer = Some(now + self.master_down_interval());
            self.holdoff_until =
                (!self.cfg.preempt_delay.is_zero()).then(|| now + self.cfg.preempt_delay);
            self.preempting = None;
            self.transition(now, State::Backup, reason, out);
            // Departure from RFC 5798 §6.4.2: coming back (start-up, or a
            // fault cleared) next to a master this node outranks, it
            // preempts after Skew_Time instead of first waiting a whole
            // Master_Down_Interval for adverts it would only discard.
            if let Some(h) = self.heard
                && now.saturating_sub(h.at) < self.down_interval_of(h.interval_cs)
            {
                self.consider_preempt(now, h.src, h.priority);
            }
        }
    }

    /// RFC 5798 §6.4.2 "If the Master_Down_Timer fires" (and §6.4.1 for the
    /// address owner): announce, advertise, arm the Adver_Timer.
    ///
    /// Departure from the RFC's order (advertise, then announce), as
    /// keepalived does: the gratuitous ARP is what moves the clients'
    /// traffic, and it goes first, the advert a few microseconds later
    /// (sending it costs the sender the wire's delivery to every peer,
    /// on a veth the peer's whole receive path).
    fn become_master(&mut self, now: Time, reason: Reason, out: &mut Vec<Action>) {
        self.master_down_timer = None;
        out.push(Action::AddVips);
        out.push(Action::Announce);
        let p = self.priority;
        self.send(p, out);
        self.adver_timer = Some(now + cs(self.cfg.advert_interval_cs));
        self.learn_master(self.cfg.primary_addr);
        self.transition(now, State::Master, reason, out);
    }

    fn shutdown(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            // RFC 5798 §6.4.3: cancel the Adver_Timer, send priority 0.
            State::Master => {
                self.adver_timer = None;
                self.send(0, out);
                out.push(Action::RemoveVips);
            }
            // §6.4.2: cancel the Master_Down_Timer.
            State::Backup => self.master_down_timer = None,
            State::Initialize | State::Fault => {}
        }
        self.started = false;
        self.transition(now, State::Initialize, Reason::Shutdown, out);
    }

    fn enter_fault(&mut self, now: Time, why: String, out: &mut Vec<Action>) {
        self.fault = Some(why.clone());
        match self.state {
            State::Master => {
                // Resign the way a shutdown does, so backups take over after
                // Skew_Time instead of Master_Down_Interval.
                self.adver_timer = None;
                self.send(0, out);
                out.push(Action::RemoveVips);
                self.transition(now, State::Fault, Reason::Fault(why), out);
            }
            State::Backup => {
                self.master_down_timer = None;
                self.transition(now, State::Fault, Reason::Fault(why), out);
            }
            // Not started yet: the fault is remembered and Startup will
            // find it; already in FAULT: only the reason is updated.
            State::Initialize if self.started => {
                self.transition(now, State::Fault, Reason::Fault(why), out);
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn set_priority(&mut self, p: u8) {
        if self.cfg.priority == OWNER_PRIORITY {
            return;
        }
        // 0 means "resign" on the wire and 255 "owner"; weights are clamped
        // so that neither can be reached by arithmetic.
        let p = p.clamp(1, 254);
        if p != self.priority {
            self.routine = None;
        }
        self.priority = p;
        // A preemption decided at the old priority may no longer hold.
        if let (Some(lower), Some(h)) = (self.preempting, self.heard)
            && lower >= self.priority
        {
            self.preempting = None;
            self.master_down_timer = Some(h.at + self.down_interval_of(h.interval_cs));
        }
    }

    fn timer(&mut self, now: Time, out: &mut Vec<Action>) {
        match self.state {
            State::Master => {
                if let Some(due) = self.adver_timer.filter(|&t| now >= t) {
                    // §6.4.3 "If the Adver_Timer fires".
                    let p = self.priority;
                    self.send(p, out);
                    let iv = cs(self.cfg.advert_interval_cs);
                    self.adver_timer = Some(rearm(due, now, iv));
                }
            }
            State::Backup => {
                if self.master_down_timer.is_some_and(|t| now >= t) {
                    let reason = match (self.resigned_master_seen, self.preempting) {
                        (true, _) => Reason::MasterResigned,
                        (false, Some(priority)) => Reason::PreemptLower { priority },
                        (false, None) => Reason::MasterDown,
                    };
                    self.resigned_master_seen = false;
                    self.preempting = None;
                    self.become_master(now, reason, out);
                }
            }
            State::Initialize | State::Fault => {}
        }
    }

    fn count_drop(&mut self, d: DropReason) {
        self.last_drop = Some(d.counter());
        *self.counters.dropped.entry(d.counter()).or_insert(0) += 1;
    }
}

fn cs(c: u16) -> Duration {
    Duration::from_millis(u64::from(c) * 10)
}

/// RFC 5798 §6.4.3: addresses compare as unsigned integers in network
/// byte order.
/// The latest advert of another router.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heard {
    at: Time,
    src: IpAddr,
    priority: u8,
    interval_cs: u16,
}

fn addr_greater(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) > u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) > u128::from(b),
        _ => false,
    }
}

fn same_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    // Peers configured alike list them in the same order: no sorting (and
    // no allocation) for every advert received.
    if a == b {
        return true;
    }
    if a.len() != b.len() {
        return false;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}
