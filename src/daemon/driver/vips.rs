//! A batch's VIP changes, with their netlink requests in flight together
//! (`net::addr_requests`): a thousand instances changing state cost about
//! one round trip's wait, not a thousand, so the loop is back at the
//! sockets before adverts pile up. Which commands may run meanwhile is
//! `commands.rs`'s business.

use crate::config::IpPrefix;
use crate::net::addr_requests::{AddrChange, Refused};
use crate::net::netlink::Net;
use std::time::{Duration, Instant};

/// The whole batch's deadline; what has not answered by then counts as
/// failed (an add is then refused like any failed add: no master without
/// its VIPs).
const DEADLINE: Duration = Duration::from_secs(2);

pub(super) enum VipOp {
    /// `restore`: as in `Command::AddVips`.
    Add {
        instance: String,
        index: u32,
        vips: Vec<IpPrefix>,
        restore: bool,
    },
    Remove {
        instance: String,
        index: u32,
        vips: Vec<IpPrefix>,
    },
}

impl VipOp {
    pub(super) fn instance(&self) -> &str {
        match self {
            VipOp::Add { instance, .. } | VipOp::Remove { instance, .. } => instance,
        }
    }

    fn target(&self) -> (u32, &[IpPrefix]) {
        match self {
            VipOp::Add { index, vips, .. } | VipOp::Remove { index, vips, .. } => (*index, vips),
        }
    }
}

/// Runs every op's changes within `DEADLINE`; per op, the VIPs that
/// failed and why. The requests go from the loop's thread
/// (`net::addr_requests`); only a removal the kernel did not find with
/// our prefix length waits on the runtime, to look for it.
pub(super) async fn apply(net: &Net, ops: &[VipOp]) -> Vec<Vec<(IpPrefix, String)>> {
    let until = Instant::now() + DEADLINE;
    let mut owner = Vec::new();
    let mut changes = Vec::new();
    for (op, o) in ops.iter().enumerate() {
        let (index, vips) = o.target();
        let add = matches!(o, VipOp::Add { .. });
        for &vip in vips {
            owner.push((op, vip));
            changes.push(AddrChange {
                add,
                index,
                addr: vip.addr,
                prefix: vip.len,
            });
        }
    }
    let answers = net.change_addrs(&changes, DEADLINE);
    let mut failed = vec![Vec::new(); ops.len()];
    for ((op, vip), (c, answer)) in owner.into_iter().zip(changes.iter().zip(answers)) {
        let error = match answer {
            Ok(()) => continue,
            Err(Refused::Errno(e)) if !c.add && (e == libc::EADDRNOTAVAIL || e == libc::ENOENT) => {
                let left = until.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, net.del_addr_any_prefix(c.index, c.addr)).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no answer from netlink within {DEADLINE:?}"),
                }
            }
            Err(e) => e.to_string(),
        };
        failed[op].push((vip, error));
    }
    failed
}
