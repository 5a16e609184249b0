//! The properties each fuzz target checks, as plain functions that panic on
//! a violation. The fuzz targets call them; so does tests/fuzz_regressions.rs
//! (which includes this file with `#[path]`), so a crash the fuzzer once
//! found is re-checked by `cargo test` on stable, with the same assertions.
//! Hence this file depends only on nginx-ha and serde_json.

use nginx_ha::config::nginx::{Nginx, validate};
use nginx_ha::config::url::HttpUrl;
use nginx_ha::config::{self, LoadError, Problems};
use nginx_ha::health::stub_status;
use nginx_ha::render::{RenderError, RenderOptions, render, render_declaration};
use nginx_ha::vrrp::packet::IpMeta;
use nginx_ha::vrrp::packet::{Advert, Auth, V3_MAX_INTERVAL_CS, Version};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How the checksum of a framed message is treated before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Repair {
    /// Keep the bytes as they are (seeds from real captures are correct).
    Keep,
    /// Recompute it the RFC 5798 way (pseudo-header with the real dst).
    Rfc,
    /// Recompute it without pseudo-header (VRRPv2, and v3 "asV2").
    AsV2,
    /// keepalived's old unicast checksum: pseudo-header naming 224.0.0.18.
    OldUnicast,
}

/// A fuzz input split into the VRRP message and what the IP layer knows.
#[derive(Debug)]
pub struct Framed {
    pub ip: IpMeta,
    pub msg: Vec<u8>,
}

/// Framing (seeds in it are made by fuzz/seeds/make-vrrp-seeds):
///
/// ```text
/// byte 0   flags: bit 0 = IPv6; bit 1 = destination of the other family;
///          bits 2-3 = checksum repair (0 keep, 1 rfc, 2 asV2, 3 oldUnicast)
/// byte 1   TTL / hop limit
/// then     source address (4 or 16 bytes), destination address (4 or 16)
/// rest     the VRRP message (the IP payload)
/// ```
///
/// Deriving every IP fact from the input lets the fuzzer explore the TTL,
/// family and pseudo-header checks as freely as the message itself.
pub fn frame(data: &[u8]) -> Option<Framed> {
    let (&flags, rest) = data.split_first()?;
    let (&ttl, mut rest) = rest.split_first()?;
    let v6 = flags & 1 != 0;
    let mismatch = flags & 2 != 0;
    let repair = match (flags >> 2) & 3 {
        0 => Repair::Keep,
        1 => Repair::Rfc,
        2 => Repair::AsV2,
        _ => Repair::OldUnicast,
    };
    let mut take = |is_v6: bool| -> Option<IpAddr> {
        if is_v6 {
            let (a, r) = rest.split_first_chunk::<16>()?;
            rest = r;
            Some(IpAddr::V6(Ipv6Addr::from(*a)))
        } else {
            let (a, r) = rest.split_first_chunk::<4>()?;
            rest = r;
            Some(IpAddr::V4(Ipv4Addr::from(*a)))
        }
    };
    let src = take(v6)?;
    let dst = take(v6 != mismatch)?;
    let mut msg = rest.to_vec();
    fix_checksum(&mut msg, src, dst, repair);
    Some(Framed {
        ip: IpMeta { src, dst, ttl },
        msg,
    })
}

/// The Internet checksum (RFC 1071) over concatenated parts. Written here
/// again rather than exported from the library: the harness should not
/// trust the code it checks to compute its own expected values.
pub fn internet_checksum(parts: &[&[u8]]) -> u16 {
    let mut bytes = parts.iter().flat_map(|p| p.iter().copied());
    let mut sum: u32 = 0;
    loop {
        match (bytes.next(), bytes.next()) {
            (Some(hi), Some(lo)) => sum += u32::from(u16::from_be_bytes([hi, lo])),
            (Some(hi), None) => sum += u32::from(hi) << 8,
            _ => break,
        }
        // Fold as we go so a megabyte of 0xff cannot overflow u32.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(a) => a.octets(),
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
    }
}

/// RFC 5798 §5.2.8 pseudo-header (RFC 768 for IPv4, RFC 8200 §8.1 for IPv6).
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Vec<u8> {
    let mut ph = Vec::with_capacity(40);
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ph.extend_from_slice(&s.octets());
            ph.extend_from_slice(&d.octets());
            ph.extend_from_slice(&[0, 112]);
            ph.extend_from_slice(&(len as u16).to_be_bytes());
        }
        (s, d) => {
            ph.extend_from_slice(&v6_octets(s));
            ph.extend_from_slice(&v6_octets(d));
            ph.extend_from_slice(&(len as u32).to_be_bytes());
            ph.extend_from_slice(&[0, 0, 0, 112]);
        }
    }
    ph
}

/// Rewrites bytes 6..8 so that the message passes the chosen checksum.
/// VRRPv2 messages always get the plain checksum, as RFC 3768 has no other.
pub fn fix_checksum(msg: &mut [u8], src: IpAddr, dst: IpAddr, repair: Repair) {
    if repair == Repair::Keep || msg.len() < 8 {
        return;
    }
    msg[6] = 0;
    msg[7] = 0;
    let v2 = msg[0] >> 4 == 2;
    let ck = match repair {
        _ if v2 => internet_checksum(&[msg]),
        Repair::AsV2 => internet_checksum(&[msg]),
        Repair::OldUnicast => {
            let mcast = IpAddr::V4(Ipv4Addr::new(224, 0, 0, 18));
            internet_checksum(&[&pseudo_header(src, mcast, msg.len()), msg])
        }
        _ => internet_checksum(&[&pseudo_header(src, dst, msg.len()), msg]),
    };
    msg[6..8].copy_from_slice(&ck.to_be_bytes());
}

/// The line-level shape every rendered config must have (the same rules as
/// tests/render.rs `assert_structure`): each statement ends in `;`, `{` or
/// `}`, braces balance and never go negative, nesting stays within
/// http > server > location (3, counting `map` and `upstream` as blocks at
/// the http level), and single quotes appear only inside `map` bodies, which
/// the templates write themselves; a config with any statement ends with a
/// closed block. Returns the first violation.
pub fn check_structure(out: &str) -> Result<(), String> {
    let mut depth: i64 = 0;
    let mut in_map = false;
    let mut statements = 0usize;
    for (i, line) in out.lines().enumerate() {
        let n = i + 1;
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if !(t.ends_with(';') || t.ends_with('{') || t == "}") {
            return Err(format!("line {n}: {line:?} is not a complete statement"));
        }
        statements += 1;
        if t.starts_with("map ") {
            in_map = true;
        }
        if !in_map && t.contains('\'') {
            return Err(format!("line {n}: {line:?} has a quote outside a map"));
        }
        for c in t.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return Err(format!("line {n}: unbalanced '}}'"));
            }
        }
        if depth == 0 {
            in_map = false;
        }
        if depth > 3 {
            return Err(format!("line {n}: nested deeper than 3 blocks"));
        }
    }
    if depth != 0 {
        return Err(format!("{depth} block(s) left open"));
    }
    // An nginx part with no site and no status page renders to comments
    // only, which is a valid (empty) include.
    if statements > 0 && !out.ends_with("}\n") {
        return Err("does not end with a closed block".into());
    }
    Ok(())
}

/// vrrp_decode: the decoder never panics, and every accepted advert is
/// self-consistent and survives a round trip through the encoder, so what
/// the daemon acts on is exactly what the wire said.
pub fn vrrp_decode(data: &[u8]) {
    let Some(f) = frame(data) else {
        return;
    };
    let (adv, style) = match Advert::decode(&f.msg, f.ip) {
        Err(e) => {
            // Every refusal has a counter name and a message for the log.
            assert!(!e.counter().is_empty());
            assert!(!e.to_string().is_empty());
            return;
        }
        Ok(ok) => ok,
    };
    let v4 = f.ip.src.is_ipv4();
    assert_eq!(f.ip.ttl, 255, "accepted TTL {}", f.ip.ttl);
    assert_eq!(v4, f.ip.dst.is_ipv4(), "accepted mixed families");
    assert_ne!(adv.vrid, 0);
    assert_eq!(adv.vrid, f.msg[1]);
    assert_eq!(adv.priority, f.msg[2]);
    assert_eq!(adv.addrs.len(), usize::from(f.msg[3]));
    assert!(!adv.addrs.is_empty());
    assert!(adv.addrs.iter().all(|a| a.is_ipv4() == v4));
    match adv.version {
        Version::V2 => {
            assert!(v4, "accepted VRRPv2 over IPv6");
            assert!(adv.interval_cs % 100 == 0 && adv.interval_cs <= 25_500);
        }
        Version::V3 => {
            assert_eq!(adv.auth, Auth::None);
            assert!(adv.interval_cs <= V3_MAX_INTERVAL_CS);
        }
    }
    assert_ne!(adv.interval_cs, 0);
    let _ = adv.to_string();
    let again = adv.encode(f.ip.src, f.ip.dst, style);
    match Advert::decode(&again, f.ip) {
        Ok((back, _)) => assert_eq!(back, adv, "round trip changed the advert"),
        Err(e) => panic!("re-encoded advert refused: {e}"),
    }
}

/// config_parse: a refusal names where the problem is; an accepted
/// declaration survives its own JSON form unchanged (one meaning per
/// document) and, with an nginx part, renders to a well-formed config.
pub fn config_parse(data: &[u8]) {
    let d = match config::parse(data) {
        Err(LoadError::Invalid { problems }) => {
            assert!(!problems.is_empty(), "refused without a reason");
            for p in &problems {
                assert!(!p.path.is_empty(), "problem without a path: {p:?}");
                assert!(!p.message.is_empty(), "problem without a message: {p:?}");
            }
            return;
        }
        Err(e) => {
            assert!(!e.lines().is_empty());
            return;
        }
        Ok(d) => d,
    };
    let _ = config::summary(&d);
    let json = match serde_json::to_vec(&d) {
        Ok(j) => j,
        Err(e) => panic!("a valid declaration does not serialise: {e}"),
    };
    match config::parse(&json) {
        Ok(back) => assert_eq!(back, d, "JSON round trip changed the declaration"),
        Err(e) => panic!("its own JSON form is refused: {:?}", e.lines()),
    }
    match render_declaration(&d, &RenderOptions::default()) {
        Ok(out) => {
            if let Err(e) = check_structure(&out) {
                panic!("rendered config is malformed: {e}\n{out}");
            }
        }
        Err(RenderError::NoNginx) => assert!(d.nginx.is_none()),
        Err(e) => panic!("a valid declaration does not render: {e}"),
    }
}

/// stub_status: an accepted page means what it says: printing the numbers
/// back in nginx's own layout parses to the same numbers.
pub fn stub_status(data: &[u8]) {
    // The probe hands the parser text; lossy conversion is what a probe
    // reading a hostile body would see at worst.
    let body = String::from_utf8_lossy(data);
    if let Ok(s) = stub_status::parse(&body) {
        let again = format!(
            "Active connections: {} \nserver accepts handled requests\n {} {} {} \nReading: {} Writing: {} Waiting: {} \n",
            s.active, s.accepts, s.handled, s.requests, s.reading, s.writing, s.waiting
        );
        assert_eq!(stub_status::parse(&again), Ok(s));
    }
}

/// http_url: an accepted URL is one the probe can use as is: a non-zero
/// port, a path starting with '/', nothing that could be smuggled into the
/// request line or Host header, and the same meaning when written back.
pub fn http_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(u) = HttpUrl::parse(text) else {
        return;
    };
    assert_ne!(u.addr.port(), 0);
    assert!(u.path.starts_with('/'), "path {:?}", u.path);
    for part in [&u.host, &u.path] {
        assert!(
            !part.chars().any(|c| c.is_control() || c.is_whitespace()),
            "{part:?} would reach the request as is"
        );
    }
    assert!(!u.host.contains('/'), "host {:?}", u.host);
    let again = format!("http://{}{}", u.host, u.path);
    assert_eq!(HttpUrl::parse(&again), Ok(u));
}

/// render_nginx: `render` validates again before laying anything out; it
/// refuses exactly what validation refuses, and whatever it accepts renders
/// (a template error is a bug in the templates or the model) to a
/// well-formed config, byte-identical on a second run, from a declaration
/// that round-trips through its JSON form.
pub fn render_nginx(n: &Nginx, opts: &RenderOptions) {
    let mut p = Problems::default();
    validate(&mut p, n);
    let valid = p.is_empty();
    match render(n, opts) {
        Ok(out) => {
            assert!(valid, "rendered a declaration validation refuses");
            if let Err(e) = check_structure(&out) {
                panic!("rendered config is malformed: {e}\n{out}");
            }
            match render(n, opts) {
                Ok(second) => assert_eq!(out, second, "rendering is not deterministic"),
                Err(e) => panic!("second render failed: {e}"),
            }
            let back: Nginx = match serde_json::to_string(n).map(|j| serde_json::from_str(&j)) {
                Ok(Ok(b)) => b,
                other => panic!("JSON round trip failed: {other:?}"),
            };
            assert_eq!(&back, n, "JSON round trip changed the declaration");
        }
        Err(RenderError::Invalid(problems)) => {
            assert!(!valid, "validation passed but render refused: {problems:?}");
            assert!(problems.iter().all(|q| !q.path.is_empty()));
        }
        Err(e) => panic!("render failed on a valid declaration: {e}"),
    }
}

/// BIRD control-socket replies: parsing never panics and stays within its
/// bounds; a complete reply, written back in BIRD's layout, parses to the
/// same lines; feeding the lines one by one agrees with the whole; and
/// reading a protocol's state from anything parsed never panics.
pub fn bird_reply(data: &[u8]) {
    use nginx_ha::anycast::reply::{MAX_LINES, Parser, parse_all, protocol_state};
    let whole = parse_all(data);
    let mut p = Parser::default();
    let mut incremental = Ok(None);
    let mut at = 0;
    for line in data.split_inclusive(|b| *b == b'\n') {
        let Some(line) = line.strip_suffix(b"\n") else {
            break;
        };
        at += line.len() + 1;
        incremental = p.push(line);
        if !matches!(incremental, Ok(None)) {
            break;
        }
    }
    if let Ok(Some((reply, used))) = &whole {
        assert_eq!(*used, at);
        assert_eq!(
            incremental.as_ref().ok().and_then(|r| r.as_ref()),
            Some(reply)
        );
        assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_LINES);
        assert_eq!(reply.lines.last().map(|l| l.code), Some(reply.code));
        assert!(reply.code <= 9999);
        let _ = protocol_state(reply, "nginx_ha4");
        // Invalid UTF-8 comes back as U+FFFD (three bytes for one), which
        // may write back longer than the line or reply bound: compare only
        // what round-trips byte for byte.
        if std::str::from_utf8(&data[..*used]).is_ok()
            && reply.lines.iter().all(|l| !l.text.ends_with('\r'))
        {
            let mut again = Vec::new();
            for (n, l) in reply.lines.iter().enumerate() {
                let sep = if n + 1 == reply.lines.len() { ' ' } else { '-' };
                again.extend_from_slice(format!("{:04}{sep}{}\n", l.code, l.text).as_bytes());
            }
            let (back, _) = parse_all(&again)
                .expect("a written-back reply parses")
                .expect("and is complete");
            assert_eq!(&back, reply);
        }
    }
}
