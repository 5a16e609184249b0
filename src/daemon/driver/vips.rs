//! A batch's VIP changes, with their netlink requests in flight together:
//! a thousand instances changing state cost about one round trip's wait,
//! not a thousand, so the loop is back at the sockets before adverts pile
//! up. Which commands may run meanwhile is `commands.rs`'s business.

use crate::config::IpPrefix;
use crate::net::netlink::Net;
use futures::StreamExt;
use std::time::Duration;

/// Netlink requests in flight at once: enough to hide the round trips,
/// few enough that the answers fit the socket's receive buffer.
const IN_FLIGHT: usize = 64;
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

/// One netlink request: a VIP of the op at `op`.
#[derive(Clone, Copy)]
struct Request {
    op: usize,
    add: bool,
    index: u32,
    vip: IpPrefix,
}

impl Request {
    /// Owns what it needs (a handle clone is cheap): a future borrowing
    /// the batch would not be `Send` for the runtime.
    async fn run(self, net: Net) -> Result<(), String> {
        let r = if self.add {
            net.add_addr(self.index, self.vip.addr, self.vip.len).await
        } else {
            net.del_addr(self.index, self.vip.addr, self.vip.len).await
        };
        r.map_err(|e| e.to_string())
    }
}

/// Runs every op's requests, at most `IN_FLIGHT` at a time and within
/// `DEADLINE`; per op, the VIPs that failed and why.
pub(super) async fn apply(net: &Net, ops: &[VipOp]) -> Vec<Vec<(IpPrefix, String)>> {
    let mut requests = Vec::new();
    for (op, o) in ops.iter().enumerate() {
        let (index, vips) = o.target();
        let add = matches!(o, VipOp::Add { .. });
        requests.extend(vips.iter().map(|&vip| Request {
            op,
            add,
            index,
            vip,
        }));
    }
    let mut outcome: Vec<Option<Result<(), String>>> = vec![None; requests.len()];
    let net = net.clone();
    let run = async {
        let mut answers = futures::stream::iter(requests.clone().into_iter().enumerate())
            .map(move |(r, req)| {
                let net = net.clone();
                async move { (r, req.run(net).await) }
            })
            .buffer_unordered(IN_FLIGHT);
        while let Some((r, result)) = answers.next().await {
            outcome[r] = Some(result);
        }
    };
    // Requests still waiting are dropped with the stream; their outcome
    // stays None.
    let _ = tokio::time::timeout(DEADLINE, run).await;
    let mut failed = vec![Vec::new(); ops.len()];
    for (req, result) in requests.into_iter().zip(outcome) {
        let error = match result {
            Some(Ok(())) => continue,
            Some(Err(e)) => e,
            None => format!("no answer from netlink within {DEADLINE:?}"),
        };
        failed[req.op].push((req.vip, error));
    }
    failed
}
