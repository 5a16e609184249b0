//! Interfaces and addresses through rtnetlink: look-ups, adding and
//! removing virtual IPs, and a stream of link/address events.

use super::addr_requests::{AddrChange, AddrRequests, Refused};
use futures::StreamExt;
use futures::TryStreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, MulticastGroup};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("interface {0} does not exist")]
    NoSuchInterface(String),
    #[error("netlink: {0}")]
    Netlink(#[from] rtnetlink::Error),
    #[error("netlink socket: {0}")]
    Io(#[from] std::io::Error),
}

pub use crate::node::plan::LinkInfo;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetEvent {
    Link(LinkInfo),
    /// The interface was deleted (its index will not come back; an
    /// interface of the same name would get a new one).
    LinkGone {
        index: u32,
        name: String,
    },
    /// Addresses on this interface changed.
    Addresses(u32),
    /// The kernel dropped events (ENOBUFS: our socket buffer overran), so
    /// what we know of links and addresses may be stale: look again.
    Resync,
}

/// How long `add_addr` waits for the kernel's answer.
const ADD_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct Net {
    handle: Handle,
    /// VIP changes, made from the loop's thread (`addr_requests`).
    requests: Arc<std::sync::Mutex<AddrRequests>>,
    /// Held for the length of an address dump: the kernel runs one dump
    /// at a time per socket and refuses another meanwhile (EBUSY), and
    /// VIP removals run concurrently.
    dump: Arc<tokio::sync::Mutex<()>>,
}

fn link_info(m: &LinkMessage) -> LinkInfo {
    let mut name = String::new();
    let mut mac = None;
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Address(b) if b.len() == 6 => {
                let mut m6 = [0u8; 6];
                m6.copy_from_slice(b);
                mac = Some(m6);
            }
            _ => {}
        }
    }
    let f = m.header.flags;
    LinkInfo {
        index: m.header.index,
        name,
        up: f.contains(LinkFlags::Up) && f.contains(LinkFlags::Running),
        mac,
    }
}

fn is_errno(e: &rtnetlink::Error, codes: &[i32]) -> bool {
    match e {
        rtnetlink::Error::NetlinkError(m) => codes.contains(&m.raw_code().abs()),
        _ => false,
    }
}

impl Net {
    /// Opens the request connection; its driver runs on the current tokio
    /// runtime.
    pub fn new() -> Result<Net, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection()?;
        tokio::spawn(conn);
        Ok(Net {
            handle,
            requests: Arc::new(std::sync::Mutex::new(AddrRequests::open()?)),
            dump: Arc::default(),
        })
    }

    /// Adds and removes addresses from the calling thread, within
    /// `deadline` (`addr_requests`).
    pub fn change_addrs(
        &self,
        changes: &[AddrChange],
        deadline: std::time::Duration,
    ) -> Vec<Result<(), Refused>> {
        match self.requests.lock() {
            Ok(mut r) => r.run(changes, deadline),
            // A thread panicked while holding it: the socket may hold
            // answers to someone else's requests, which `run` skips.
            Err(poisoned) => poisoned.into_inner().run(changes, deadline),
        }
    }

    /// Subscribes to link and address changes.
    pub fn events() -> Result<mpsc::UnboundedReceiver<NetEvent>, NetError> {
        let (conn, _h, mut messages) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
        ])?;
        tokio::spawn(conn);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            // netlink-proto reports ENOBUFS as an Overrun message and ends
            // the stream only on errors it cannot recover from.
            while let Some((msg, _)) = messages.next().await {
                let ev = event_of(msg.payload);
                if let Some(ev) = ev
                    && tx.send(ev).is_err()
                {
                    break;
                }
            }
            log::error!(
                "the netlink event stream ended: link and address changes are no longer seen"
            );
        });
        Ok(rx)
    }

    pub async fn link(&self, name: &str) -> Result<LinkInfo, NetError> {
        let mut s = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match s.try_next().await {
            Ok(Some(m)) => Ok(link_info(&m)),
            Ok(None) => Err(NetError::NoSuchInterface(name.into())),
            Err(e) if is_errno(&e, &[libc::ENODEV]) => Err(NetError::NoSuchInterface(name.into())),
            Err(e) => Err(e.into()),
        }
    }

    /// The addresses on an interface, with prefix lengths.
    pub async fn addresses(&self, index: u32) -> Result<Vec<(IpAddr, u8)>, NetError> {
        let _dump = self.dump.lock().await;
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(m) = s.try_next().await? {
            if let Some(a) = addr_of(&m) {
                out.push((a, m.header.prefix_len));
            }
        }
        Ok(out)
    }

    /// Adds an address; present already is fine (`addr_requests`, which
    /// also makes IPv6 ones skip duplicate address detection).
    pub async fn add_addr(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let change = AddrChange {
            add: true,
            index,
            addr,
            prefix,
        };
        match self.change_addrs(&[change], ADD_DEADLINE).pop() {
            Some(Ok(())) => Ok(()),
            Some(Err(Refused::Errno(e))) => Err(std::io::Error::from_raw_os_error(e).into()),
            Some(Err(Refused::NoAnswer)) | None => {
                Err(std::io::Error::other(Refused::NoAnswer.to_string()).into())
            }
        }
    }

    /// Removes `addr` with whatever prefix length it has on the
    /// interface (one removed with ours was not found): the interface's
    /// addresses are read to find it, a dump too costly for the usual
    /// case, a thousand VIPs moving at once.
    pub async fn del_addr_any_prefix(&self, index: u32, addr: IpAddr) -> Result<(), NetError> {
        let dump = self.dump.lock().await;
        let mut s = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .execute();
        let mut found = Vec::new();
        while let Some(m) = s.try_next().await? {
            if addr_of(&m) == Some(addr) {
                found.push(m);
            }
        }
        drop(s);
        drop(dump);
        for m in found {
            match self.handle.address().del(m).execute().await {
                Ok(()) => {}
                Err(e) if is_errno(&e, &[libc::EADDRNOTAVAIL, libc::ENOENT]) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// What a multicast message means to the daemon.
fn event_of(payload: NetlinkPayload<RouteNetlinkMessage>) -> Option<NetEvent> {
    match payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(l)) => {
            Some(NetEvent::Link(link_info(&l)))
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(l)) => {
            let l = link_info(&l);
            Some(NetEvent::LinkGone {
                index: l.index,
                name: l.name,
            })
        }
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a))
        | NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(a)) => {
            Some(NetEvent::Addresses(a.header.index))
        }
        NetlinkPayload::Overrun(_) => Some(NetEvent::Resync),
        _ => None,
    }
}

fn addr_of(m: &AddressMessage) -> Option<IpAddr> {
    // IFA_LOCAL is the interface's own address on point-to-point links;
    // IFA_ADDRESS otherwise. Prefer LOCAL when both are there.
    let mut address = None;
    for a in &m.attributes {
        match a {
            AddressAttribute::Local(ip) => return Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    address
}
