//! Rules for the `anycast` section: prefixes BIRD can carry as host routes,
//! checks that exist, and names BIRD can parse.

use super::validate::{Problems, check_abs_path, truncate};
use super::{Declaration, limits};
use std::net::IpAddr;

pub fn validate_anycast(p: &mut Problems, d: &Declaration) {
    let Some(a) = &d.anycast else {
        return;
    };
    if a.prefixes.is_empty() {
        p.push(
            "anycast.prefixes",
            "at least one prefix is needed (an IPv4 /32 or IPv6 /128)",
        );
    }
    if a.prefixes.len() > limits::ANYCAST_PREFIXES as usize {
        p.push(
            "anycast.prefixes",
            format!(
                "{} prefixes are more than {}",
                a.prefixes.len(),
                limits::ANYCAST_PREFIXES
            ),
        );
    }
    let vips: Vec<(IpAddr, &str)> = d
        .instances
        .iter()
        .flat_map(|(n, i)| i.virtual_ips.iter().map(move |v| (v.addr, n.as_str())))
        .collect();
    for (i, prefix) in a.prefixes.iter().enumerate() {
        let at = format!("anycast.prefixes.{i}");
        let host_len = if prefix.addr.is_ipv4() { 32 } else { 128 };
        if prefix.len != host_len {
            p.push(
                &at,
                format!(
                    "{prefix}: an anycast service address is one host: write /{host_len} (BIRD announces exactly this route)"
                ),
            );
        }
        match prefix.addr {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => p.push(
                &at,
                format!(
                    "{prefix} is an IPv4-mapped IPv6 address (::ffff:0:0/96), which is never routed; write the IPv4 address as /32"
                ),
            ),
            a if a.is_unspecified() || a.is_multicast() || a.is_loopback() => {
                p.push(&at, format!("{prefix} cannot be a service address"))
            }
            _ => {}
        }
        if a.prefixes[..i].iter().any(|o| o.addr == prefix.addr) {
            p.push(&at, format!("{} is listed twice", prefix.addr));
        }
        if let Some((_, inst)) = vips.iter().find(|(v, _)| *v == prefix.addr) {
            p.push(
                &at,
                format!(
                    "{} is also a virtual IP of instance \"{inst}\"; an address is either moved by VRRP or announced by anycast, not both",
                    prefix.addr
                ),
            );
        }
    }

    let socket = &a.bird.socket;
    check_abs_path(p, "anycast.bird.socket", socket);
    if socket.as_os_str().len() > limits::UNIX_SOCKET_PATH_MAX {
        p.push(
            "anycast.bird.socket",
            format!(
                "is longer than {} bytes, more than a Unix socket address holds",
                limits::UNIX_SOCKET_PATH_MAX
            ),
        );
    }
    let has = |v4: bool| a.prefixes.iter().any(|x| x.addr.is_ipv4() == v4);
    for (key, name) in [
        ("protocol4", &a.bird.protocol4),
        ("protocol6", &a.bird.protocol6),
    ] {
        if let Some(why) = not_a_bird_symbol(name) {
            p.push(
                format!("anycast.bird.{key}"),
                format!("\"{}\" {why}", truncate(name)),
            );
        }
    }
    if has(true) && has(false) && a.bird.protocol4 == a.bird.protocol6 {
        p.push(
            "anycast.bird.protocol6",
            "is the same protocol as bird.protocol4; a BIRD static protocol carries one family",
        );
    }

    let known: Vec<String> = std::iter::once("nginx".to_string())
        .chain(d.checks.extra.keys().cloned())
        .collect();
    match &a.track_checks {
        Some(track) => {
            if track.is_empty() {
                p.push(
                    "anycast.trackChecks",
                    "is empty: the announcement needs at least one check to gate it (or leave it unset for all checks)",
                );
            }
            for (i, c) in track.iter().enumerate() {
                let at = format!("anycast.trackChecks.{i}");
                if !known.contains(c) {
                    p.push(
                        at,
                        format!(
                            "\"{}\" is not a check (known: {})",
                            truncate(c),
                            known.join(", ")
                        ),
                    );
                } else if c == "nginx" && !d.checks.nginx.enable {
                    p.push(
                        at,
                        "tracks the nginx check, but checks.nginx.enable is false",
                    );
                } else if track[..i].contains(c) {
                    p.push(at, format!("\"{c}\" is listed twice"));
                }
            }
        }
        None if !d.checks.nginx.enable && d.checks.extra.is_empty() => p.push(
            "anycast",
            "no check gates the announcement (checks.nginx.enable is false and there are no checks.extra); a node that announces without checking would attract traffic while broken",
        ),
        None => {}
    }

    if a.announce_after.as_duration() > limits::ANNOUNCE_AFTER_MAX {
        p.push("anycast.announceAfter", "is more than 1h");
    }
    if a.drain.as_duration() > limits::DRAIN_MAX {
        p.push("anycast.drain", "is more than 10m");
    }
}

/// BIRD's lexer reads a symbol as a letter or `_` followed by letters,
/// digits and `_`; anything else would not name the protocol in
/// `enable <name>`. Keywords (e.g. `static`) would not either, but BIRD's
/// own parse of its config rejects those.
fn not_a_bird_symbol(s: &str) -> Option<&'static str> {
    let mut bytes = s.bytes();
    match bytes.next() {
        None => Some("is empty; name the BIRD static protocol"),
        Some(_) if s.len() > limits::BIRD_SYMBOL_MAX => Some("is longer than 64 characters"),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_') => {
            Some("is not a BIRD symbol: it must start with a letter or '_'")
        }
        Some(_) if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
            Some("is not a BIRD symbol: use letters, digits and '_' only")
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::not_a_bird_symbol;

    #[test]
    fn bird_symbols() {
        assert_eq!(not_a_bird_symbol("nginx_ha4"), None);
        assert_eq!(not_a_bird_symbol("_x"), None);
        assert!(not_a_bird_symbol("").is_some());
        assert!(not_a_bird_symbol("4x").is_some());
        assert!(not_a_bird_symbol("a-b").is_some());
        assert!(not_a_bird_symbol("a b").is_some());
        assert!(not_a_bird_symbol(&"a".repeat(65)).is_some());
    }
}
