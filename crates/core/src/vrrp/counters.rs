//! What the state machine counts: adverts sent and received, and why
//! received ones were ignored (stable counter names, shown by `status`).

use std::collections::BTreeMap;

/// Why a received advert was ignored (counter names are stable).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DropReason {
    VersionMismatch,
    AuthMismatch,
    /// RFC 3768 §7.1: v2 adverts must carry our interval.
    IntervalMismatch,
    /// RFC 5798 §7.1: the address owner drops every advert for its VRID.
    WeAreOwner,
    ChecksumStyle,
    OwnAdvert,
    NotRunning,
}

impl DropReason {
    pub fn counter(self) -> &'static str {
        match self {
            DropReason::VersionMismatch => "version_mismatch",
            DropReason::AuthMismatch => "auth_mismatch",
            DropReason::IntervalMismatch => "interval_mismatch",
            DropReason::WeAreOwner => "we_are_owner",
            DropReason::ChecksumStyle => "checksum_style",
            DropReason::OwnAdvert => "own_advert",
            DropReason::NotRunning => "not_running",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub adverts_sent: u64,
    pub adverts_received: u64,
    pub priority_zero_sent: u64,
    pub priority_zero_received: u64,
    /// Received with VIPs different from ours (RFC 5798 §7.1: log, continue).
    pub address_mismatch: u64,
    /// Lower-priority adverts a master answered (another node thought it
    /// was master: split brain healed, or a fast backup timed out).
    pub lower_priority_answered: u64,
    /// State changes (INIT, BACKUP, MASTER, FAULT), each counted once.
    pub transitions: u64,
    /// The same changes by (from, to, reason kind), for metrics.
    pub transitions_by: BTreeMap<(&'static str, &'static str, &'static str), u64>,
    /// Times the master of this virtual router became another router
    /// (this node included), as learned from adverts and transitions. The
    /// first master learned after start is not a change.
    pub master_changes: u64,
    pub dropped: BTreeMap<&'static str, u64>,
}
