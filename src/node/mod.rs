//! The node's policy around the VRRP state machine (`crate::vrrp`), with
//! no I/O and no clock: why an instance is in FAULT, what the health
//! checks do to its priority, when it announces its VIPs, and which
//! received adverts reach it. Time comes in as a `Duration` since the
//! node started; the daemon (`crate::daemon::driver`) turns sockets,
//! netlink, timers and health verdicts into calls here and carries out
//! what comes back.

pub mod announce;
pub mod checks;
pub mod faults;
pub mod log_limit;
pub mod plan;
pub mod rx_filter;
pub mod status;

#[cfg(test)]
mod purity {
    /// The policy stays testable without root or a network only while it
    /// touches neither; a look at the sources keeps it so.
    #[test]
    fn policy_and_protocol_core_do_no_io() {
        let forbidden = [
            "tokio",
            "socket",
            "std::fs",
            "std::net::Udp",
            "std::net::Tcp",
            "Instant",
            "SystemTime",
            "std::process",
            "libc::",
        ];
        for (name, text) in [
            ("node/mod.rs", include_str!("mod.rs")),
            ("node/announce.rs", include_str!("announce.rs")),
            ("node/checks.rs", include_str!("checks.rs")),
            ("node/faults.rs", include_str!("faults.rs")),
            ("node/plan.rs", include_str!("plan.rs")),
            ("node/rx_filter.rs", include_str!("rx_filter.rs")),
            ("vrrp/instance.rs", include_str!("../vrrp/instance.rs")),
            ("vrrp/packet.rs", include_str!("../vrrp/packet.rs")),
        ] {
            let code: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect::<Vec<_>>()
                .join("\n");
            let code = code.split("#[cfg(test)]").next().unwrap_or_default();
            for word in forbidden {
                assert!(!code.contains(word), "{name} uses {word}");
            }
        }
    }
}
