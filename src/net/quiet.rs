//! Adverts a BACKUP may read late. A master repeats the same advert every
//! interval; to a BACKUP that accepted it, each repeat only restarts the
//! Master_Down_Timer (`Node::routine`), so it need not wake the loop: it
//! is enough to read the repeats when that timer is due, and hand each to
//! the node at its arrival time, which is then where it would have left
//! the timer. At 10 ms adverts that is one wake-up per Master_Down_Interval
//! instead of one per advert, for the backup and for the master, whose
//! sends no longer wake anyone.
//!
//! The split is done by the kernel, with two classic BPF filters built
//! from the exact bytes of each repeat (IPv4 header fields that matter and
//! the whole VRRP message): the loop's socket drops the repeats, a quiet
//! socket beside it takes only them. Anything else (another priority, a
//! priority 0, another sender, a changed VIP list, a wrong TTL) still
//! wakes the loop at once.

use super::vrrp_socket::Received;
use crate::vrrp::packet::IpMeta;
use libc::sock_filter;
use socket2::Socket;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;

/// One advert whose repeats are routine: as the IPv4 raw socket sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// The VRRP message (after a 20-byte IP header), a multiple of 4 bytes.
    pub msg: Vec<u8>,
}

/// The kernel's limit on a classic BPF program (BPF_MAXINSNS).
const MAX_INSNS: usize = 4096;
/// A jump's offset is one byte: a pattern longer than this cannot skip
/// itself, so its message is limited (about 120 VIPs).
const MAX_PATTERN_INSNS: usize = 255;
const ACCEPT: u32 = u32::MAX;
const DROP: u32 = 0;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const LD_H_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
const LD_B_ABS: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

impl Pattern {
    /// Whether a datagram is this advert again, byte for byte (what the
    /// quiet filter let through for it).
    pub fn matches(&self, ip: IpMeta, msg: &[u8]) -> bool {
        ip.src == IpAddr::V4(self.src)
            && ip.dst == IpAddr::V4(self.dst)
            && ip.ttl == self.ttl
            && msg == self.msg.as_slice()
    }

    /// The datagram as the socket hands it over.
    pub fn received(&self) -> Received<'_> {
        Received {
            ip: IpMeta {
                src: IpAddr::V4(self.src),
                dst: IpAddr::V4(self.dst),
                ttl: self.ttl,
            },
            msg: &self.msg,
            arrived: None,
        }
    }

    /// Whether a filter can hold it (`compile` covers patterns up to the
    /// first that it cannot).
    pub fn encodable(&self) -> bool {
        self.checks().is_some()
    }

    /// (field offset, load code, value), in the order checked.
    fn checks(&self) -> Option<Vec<(u32, u16, u32)>> {
        if self.msg.is_empty() || !self.msg.len().is_multiple_of(4) {
            return None;
        }
        let total = u32::try_from(20 + self.msg.len()).ok()?;
        let mut c = vec![
            // Version 4, no options: the message then starts at 20.
            (0, LD_B_ABS, 0x45),
            (2, LD_H_ABS, total),
            (8, LD_B_ABS, u32::from(self.ttl)),
            (12, LD_W_ABS, u32::from(self.src)),
            (16, LD_W_ABS, u32::from(self.dst)),
        ];
        for (i, w) in self.msg.chunks_exact(4).enumerate() {
            let off = u32::try_from(20 + 4 * i).ok()?;
            c.push((off, LD_W_ABS, u32::from_be_bytes([w[0], w[1], w[2], w[3]])));
        }
        (2 * c.len() < MAX_PATTERN_INSNS).then_some(c)
    }
}

/// Which filter: the loop's socket drops the routine adverts, the quiet
/// socket takes only them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Loop,
    Quiet,
}

/// The program for `side`, and how many of `patterns` (from the first)
/// it covers: up to the first that is not `encodable` or does not fit in
/// the program; the others stay with the loop.
pub fn compile(patterns: &[Pattern], side: Side) -> (Vec<sock_filter>, usize) {
    let (matched, otherwise) = match side {
        Side::Loop => (DROP, ACCEPT),
        Side::Quiet => (ACCEPT, DROP),
    };
    let mut prog = Vec::new();
    let mut covered = 0;
    for p in patterns {
        let Some(checks) = p.checks() else { break };
        // Each check is a load and a compare; then the pattern's return;
        // the program's own return comes last.
        if prog.len() + 2 * checks.len() + 2 > MAX_INSNS {
            break;
        }
        let n = checks.len();
        for (i, (off, code, value)) in checks.into_iter().enumerate() {
            prog.push(insn(code, 0, 0, off));
            // On a mismatch, past this pattern's remaining checks and its
            // return: 2 per remaining check, 1 for the return.
            let skip = u8::try_from(2 * (n - i - 1) + 1).unwrap_or(u8::MAX);
            prog.push(insn(JEQ_K, 0, skip, value));
        }
        prog.push(insn(RET_K, 0, 0, matched));
        covered += 1;
    }
    prog.push(insn(RET_K, 0, 0, otherwise));
    (prog, covered)
}

/// Takes nothing.
pub fn drop_all() -> Vec<sock_filter> {
    vec![insn(RET_K, 0, 0, DROP)]
}

#[allow(unsafe_code)] // SO_ATTACH_FILTER: see the SAFETY comment.
pub fn set_filter(s: &Socket, prog: &[sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(io::Error::other)?,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: the kernel copies `len` instructions from `filter`, which
    // points to that many; `fprog` outlives the call.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Classic BPF as the kernel runs these programs (loads, compares,
    /// returns), over a datagram as an IPv4 raw socket sees it.
    fn run(prog: &[sock_filter], pkt: &[u8]) -> u32 {
        let (mut a, mut pc) = (0u32, 0usize);
        loop {
            let i = prog[pc];
            let k = i.k as usize;
            match i.code {
                LD_W_ABS | LD_H_ABS | LD_B_ABS => {
                    let n = match i.code {
                        LD_W_ABS => 4,
                        LD_H_ABS => 2,
                        _ => 1,
                    };
                    let Some(b) = pkt.get(k..k + n) else {
                        return 0;
                    };
                    a = b.iter().fold(0, |acc, x| (acc << 8) | u32::from(*x));
                }
                JEQ_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                RET_K => return i.k,
                c => panic!("unexpected code {c}"),
            }
            pc += 1;
        }
    }

    fn packet(p: &Pattern) -> Vec<u8> {
        let mut v = vec![0x45, 0xc0];
        v.extend_from_slice(&u16::try_from(20 + p.msg.len()).unwrap().to_be_bytes());
        v.extend_from_slice(&[0x12, 0x34, 0, 0, p.ttl, 112, 0xab, 0xcd]);
        v.extend_from_slice(&p.src.octets());
        v.extend_from_slice(&p.dst.octets());
        v.extend_from_slice(&p.msg);
        v
    }

    fn pattern(src: [u8; 4], prio: u8) -> Pattern {
        Pattern {
            src: src.into(),
            dst: Ipv4Addr::new(224, 0, 0, 18),
            ttl: 255,
            msg: vec![0x31, 51, prio, 1, 0, 1, 0x12, 0x34, 192, 0, 2, 100],
        }
    }

    #[test]
    fn only_exact_repeats_are_quiet() {
        let pats = [pattern([192, 0, 2, 1], 150), pattern([192, 0, 2, 3], 120)];
        let (lp, n) = compile(&pats, Side::Loop);
        let (qp, m) = compile(&pats, Side::Quiet);
        assert_eq!((n, m), (2, 2));
        for p in &pats {
            let pkt = packet(p);
            assert_eq!(run(&lp, &pkt), DROP, "a repeat does not wake the loop");
            assert_eq!(run(&qp, &pkt), ACCEPT, "a repeat waits on the quiet socket");
            // The IP ID and checksum change with every packet.
            let mut other_id = pkt.clone();
            other_id[4] = 0x99;
            other_id[11] = 0x01;
            assert_eq!(run(&lp, &other_id), DROP);
            // Any byte of the message, the TTL, either address, IP
            // options: not a repeat.
            for at in [8, 12, 15, 16, 19, 20, 22, 27, 28, pkt.len() - 1] {
                let mut changed = pkt.clone();
                changed[at] ^= 0x01;
                assert_eq!(run(&lp, &changed), ACCEPT, "byte {at} changed");
                assert_eq!(run(&qp, &changed), DROP, "byte {at} changed");
            }
            let mut options = pkt.clone();
            options[0] = 0x46;
            assert_eq!(run(&lp, &options), ACCEPT);
            // Fewer VIPs: the IP layer has made the total length match.
            let mut shorter = p.clone();
            shorter.msg.truncate(p.msg.len() - 4);
            assert_eq!(run(&lp, &packet(&shorter)), ACCEPT, "shorter");
        }
        // No pattern: the loop takes everything, the quiet socket nothing.
        let (lp, _) = compile(&[], Side::Loop);
        assert_eq!(run(&lp, &packet(&pats[0])), ACCEPT);
        assert_eq!(run(&drop_all(), &packet(&pats[0])), DROP);
    }

    #[test]
    fn what_does_not_fit_stays_with_the_loop() {
        let many: Vec<Pattern> = (0..=255u8).map(|i| pattern([192, 0, 2, i], 100)).collect();
        let (prog, n) = compile(&many, Side::Loop);
        assert!(prog.len() <= MAX_INSNS && n < many.len() && n > 100);
        assert_eq!(run(&prog, &packet(&many[n - 1])), DROP);
        assert_eq!(run(&prog, &packet(&many[n])), ACCEPT);
        // A message too long to skip with one jump: never quiet.
        let mut long = pattern([192, 0, 2, 1], 100);
        long.msg = vec![0; 4 * 200];
        assert!(!long.encodable());
        assert_eq!(compile(&[long], Side::Quiet).1, 0);
    }
}
