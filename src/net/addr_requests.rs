//! Adding and removing addresses on the loop's own thread: a takeover
//! waits for its VIPs before it announces them, and going through the
//! runtime's netlink connection costs two thread hand-offs (there and
//! back), a good part of a millisecond on a busy machine.
//!
//! rtnetlink carries out a request inside the sendmsg that sends it and
//! queues the answer before returning, so the answers are there to read
//! at once; the wait for them has a deadline all the same. Nothing here
//! waits for anything but the kernel.

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use rtnetlink::AddressMessageBuilder;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Requests sent before their answers are read: few enough that the
/// answers (an error message each, the request not echoed: NETLINK_CAP_ACK)
/// fit the socket's receive buffer.
const IN_FLIGHT: usize = 64;
const NLMSG_ERROR: u16 = 2;
const NLMSG_HDRLEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrChange {
    pub add: bool,
    pub index: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Why a change did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The kernel's answer: an errno.
    Errno(i32),
    /// No answer within the deadline (or the request could not be sent).
    NoAnswer,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Errno(e) => write!(f, "{}", io::Error::from_raw_os_error(*e)),
            Refused::NoAnswer => write!(f, "no answer from netlink in time"),
        }
    }
}

pub struct AddrRequests {
    sock: Socket,
    seq: u32,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl AddrRequests {
    pub fn open() -> io::Result<AddrRequests> {
        let sock = Socket::new(
            Domain::from(libc::AF_NETLINK),
            Type::RAW.cloexec(),
            Some(Protocol::from(libc::NETLINK_ROUTE)),
        )?;
        sock.set_nonblocking(true)?;
        // Answers without the request echoed in them; an older kernel
        // without the option only sends longer answers.
        let on: libc::c_int = 1;
        #[allow(unsafe_code)]
        // SAFETY: setsockopt reads an int from a pointer to a live one,
        // of the length given.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_NETLINK,
                libc::NETLINK_CAP_ACK,
                (&raw const on).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        Ok(AddrRequests {
            sock,
            seq: 0,
            tx: Vec::new(),
            rx: vec![0; 64 * 1024],
        })
    }

    /// Carries out `changes`, `IN_FLIGHT` at a time; for each, the
    /// kernel's answer. An address already there counts as added; one to
    /// remove that is not there with that prefix length is the kernel's
    /// EADDRNOTAVAIL, for the caller to look for
    /// (`Net::del_addr_any_prefix`).
    pub fn run(&mut self, changes: &[AddrChange], deadline: Duration) -> Vec<Result<(), Refused>> {
        let until = Instant::now() + deadline;
        let mut out = vec![Err(Refused::NoAnswer); changes.len()];
        for (w, window) in changes.chunks(IN_FLIGHT).enumerate() {
            let first = self.seq.wrapping_add(1);
            let mut sent = 0;
            for c in window {
                self.seq = self.seq.wrapping_add(1);
                if self.send(c, self.seq).is_err() {
                    break;
                }
                sent += 1;
            }
            self.collect(first, &mut out[w * IN_FLIGHT..w * IN_FLIGHT + sent], until);
            if Instant::now() >= until {
                break;
            }
        }
        for (c, r) in changes.iter().zip(out.iter_mut()) {
            if c.add && *r == Err(Refused::Errno(libc::EEXIST)) {
                *r = Ok(());
            }
        }
        out
    }

    fn send(&mut self, c: &AddrChange, seq: u32) -> io::Result<()> {
        let mut msg = address_message(c.addr, c.prefix);
        msg.header.index = c.index;
        let (payload, flags) = if c.add {
            if c.addr.is_ipv6() {
                // The VRRP election keeps a VIP unique; duplicate
                // address detection would hold it unusable for a second
                // after a failover.
                msg.attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
            (
                RouteNetlinkMessage::NewAddress(msg),
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            )
        } else {
            (
                RouteNetlinkMessage::DelAddress(msg),
                NLM_F_REQUEST | NLM_F_ACK,
            )
        };
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = seq;
        let mut m = NetlinkMessage::new(header, NetlinkPayload::from(payload));
        m.finalize();
        self.tx.clear();
        self.tx.resize(m.buffer_len(), 0);
        m.serialize(&mut self.tx);
        let n = self.sock.send(&self.tx)?;
        if n == self.tx.len() {
            Ok(())
        } else {
            Err(io::Error::other("netlink request cut short"))
        }
    }

    /// Reads the answers to the requests numbered from `first`, one per
    /// slot of `out`, until all came or `until`.
    fn collect(&mut self, first: u32, out: &mut [Result<(), Refused>], until: Instant) {
        let mut left = out.len();
        while left > 0 {
            let n = match self.sock.recv(as_uninit(&mut self.rx)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= until || !wait_readable(&self.sock, until - now) {
                        return;
                    }
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ENOBUFS and the like: the answers still missing are lost.
                Err(_) => return,
            };
            for (seq, errno) in answers(&self.rx[..n]) {
                let slot = seq.wrapping_sub(first) as usize;
                if let Some(r) = out.get_mut(slot)
                    && *r == Err(Refused::NoAnswer)
                {
                    *r = if errno == 0 {
                        Ok(())
                    } else {
                        Err(Refused::Errno(errno))
                    };
                    left -= 1;
                }
            }
        }
    }
}

fn address_message(addr: IpAddr, prefix: u8) -> AddressMessage {
    match addr {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .address(a, prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .address(a, prefix)
            .build(),
    }
}

/// The (sequence number, errno) of every answer (NLMSG_ERROR; 0 is
/// success) in one datagram; whatever is malformed ends the walk.
fn answers(mut buf: &[u8]) -> Vec<(u32, i32)> {
    let mut out = Vec::new();
    while buf.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let kind = u16::from_ne_bytes([buf[4], buf[5]]);
        let seq = u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]);
        if kind == NLMSG_ERROR && len >= NLMSG_HDRLEN + 4 {
            let e = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            out.push((seq, -e));
        }
        // Messages are 4-byte aligned.
        let step = len.div_ceil(4) * 4;
        buf = buf.get(step..).unwrap_or(&[]);
    }
    out
}

fn as_uninit(b: &mut [u8]) -> &mut [std::mem::MaybeUninit<u8>] {
    #[allow(unsafe_code)]
    // SAFETY: u8 and MaybeUninit<u8> have the same layout, and the kernel
    // only writes into the buffer.
    unsafe {
        std::slice::from_raw_parts_mut(b.as_mut_ptr().cast(), b.len())
    }
}

/// Whether the socket turned readable within `wait`.
fn wait_readable(s: &Socket, wait: Duration) -> bool {
    let mut pfd = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
    #[allow(unsafe_code)]
    // SAFETY: one pollfd, alive for the call.
    let r = unsafe { libc::poll(&mut pfd, 1, ms) };
    r > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(seq: u32, errno: i32) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&NLMSG_ERROR.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(&(-errno).to_ne_bytes());
        m.extend_from_slice(&[0; 16]);
        m
    }

    #[test]
    fn answers_are_read_by_sequence_number_and_a_cut_one_ends_the_walk() {
        let mut d = answer(7, 0);
        d.extend(answer(8, libc::EEXIST));
        assert_eq!(answers(&d), vec![(7, 0), (8, libc::EEXIST)]);
        let cut = &d[..d.len() - 1];
        assert_eq!(answers(cut), vec![(7, 0)]);
        let mut bad = answer(9, 0);
        bad[0] = 3; // shorter than a header
        assert_eq!(answers(&bad), vec![]);
    }
}
