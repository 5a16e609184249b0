//! Lexical rules for values that land in nginx's config language. nginx
//! splits on whitespace, ends a directive at `;`, opens and closes blocks at
//! `{` `}`, starts comments at `#`, and gives quotes and `\` meaning; any of
//! those inside a value would let a declaration write config we did not
//! mean to write. These checks refuse them with a reason, so `check-config`
//! can say why.

use std::net::IpAddr;

/// Whether a value may reference nginx variables (`$host`). Only where a
/// variable is useful (hash keys, `return` targets, escape-hatch arguments);
/// elsewhere `$` would silently change meaning (a `$` in `proxy_pass` turns
/// on run-time DNS resolution, one in `ssl_certificate` loads the file per
/// handshake).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Vars {
    Allowed,
    Refused,
}

/// Whether a value may contain spaces; if so the renderer quotes it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Spaces {
    Allowed,
    Refused,
}

pub const MAX_VALUE_LEN: usize = 1024;

fn why_refused(c: char) -> Option<&'static str> {
    Some(match c {
        ';' => "';' would end the nginx directive",
        '{' | '}' => "braces would open or close an nginx block",
        '"' | '\'' => "quotes would change how nginx splits the value",
        '#' => "'#' would start an nginx comment",
        '\\' => "'\\' is an nginx escape character",
        '\n' | '\r' => "a line break would start a new directive",
        c if c.is_control() => "control characters are not allowed",
        _ => return None,
    })
}

/// Checks one value against the rules above. The message quotes the value
/// with its special characters escaped, so it is safe to print.
pub fn check_value(s: &str, vars: Vars, spaces: Spaces) -> Result<(), String> {
    let shown = show(s);
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_VALUE_LEN {
        return Err(format!("is longer than {MAX_VALUE_LEN} bytes"));
    }
    if let Some((c, why)) = s.chars().find_map(|c| why_refused(c).map(|w| (c, w))) {
        return Err(format!(
            "\"{shown}\" contains {}: {why}",
            c.escape_debug().collect::<String>().replace('"', "\\\"")
        ));
    }
    if spaces == Spaces::Refused && s.chars().any(char::is_whitespace) {
        return Err(format!(
            "\"{shown}\" contains whitespace, which would split it into two nginx arguments"
        ));
    }
    if s.chars().any(|c| c.is_whitespace() && c != ' ') {
        return Err(format!("\"{shown}\" contains whitespace other than ' '"));
    }
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'$' {
            continue;
        }
        if vars == Vars::Refused {
            return Err(format!(
                "\"{shown}\" contains '$', which nginx would read as a variable here"
            ));
        }
        let next = bytes.get(i + 1).copied();
        if !next.is_some_and(|n| n.is_ascii_alphanumeric() || n == b'_') {
            return Err(format!(
                "\"{shown}\": '$' must start a variable name such as $host"
            ));
        }
    }
    Ok(())
}

/// The value, shortened and with control characters escaped, for messages.
pub fn show(s: &str) -> String {
    let short: String = s.chars().take(60).collect();
    let mut out = short.escape_debug().to_string();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// A DNS host name: dot-separated labels of letters, digits and '-'.
pub fn is_hostname(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An nginx `server_name` we accept: a host name, optionally with a leading
/// `*.` or `.` (wildcard / name and subdomains) or a trailing `.*`. Regex
/// names (`~...`) are refused: they are a language of their own.
pub fn check_server_name(s: &str) -> Result<(), String> {
    let bare = s
        .strip_prefix("*.")
        .or_else(|| s.strip_prefix('.'))
        .or_else(|| s.strip_suffix(".*"))
        .unwrap_or(s);
    if s.starts_with('~') {
        return Err(format!(
            "\"{}\": regex server names are not supported",
            show(s)
        ));
    }
    if !is_hostname(bare) || bare.ends_with('.') {
        return Err(format!(
            "\"{}\" is not a host name (letters, digits, '-' and '.', optionally \"*.\" or \".\" in front)",
            show(s)
        ));
    }
    Ok(())
}

/// A URI path for `location` and `stub_status`: starts with '/', no
/// whitespace, variables or query.
pub fn check_uri_path(s: &str) -> Result<(), String> {
    check_value(s, Vars::Refused, Spaces::Refused)?;
    if !s.starts_with('/') {
        return Err(format!("\"{}\" must start with '/'", show(s)));
    }
    if s.contains('?') {
        return Err(format!(
            "\"{}\": nginx matches locations without the query string, so '?' would never match",
            show(s)
        ));
    }
    Ok(())
}

/// A file path written into the config (certificate, key, root).
pub fn check_conf_path(s: &str) -> Result<(), String> {
    check_value(s, Vars::Refused, Spaces::Refused)
}

/// `HOST` or `HOST:PORT` where HOST is an IP literal (IPv6 in brackets) or
/// a host name. Returns the host and the port, if any.
pub fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("\"{}\": unclosed '['", show(s)))?;
        if h.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!(
                "\"{}\": [{}] is not an IPv6 address",
                show(s),
                show(h)
            ));
        }
        match after {
            "" => (h.to_string(), None),
            p => (
                h.to_string(),
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| format!("\"{}\": expected ':' after ']'", show(s)))?,
                ),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, _)) if h.contains(':') => {
                return Err(format!(
                    "\"{}\": write IPv6 addresses in brackets, e.g. [2001:db8::1]:80",
                    show(s)
                ));
            }
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (s.to_string(), None),
        }
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n != 0 && !p.starts_with('+') => Some(n),
            _ => {
                return Err(format!(
                    "\"{}\": \"{}\" is not a port (1-65535)",
                    show(s),
                    show(p)
                ));
            }
        },
    };
    if host.parse::<IpAddr>().is_err() && !is_hostname(&host) {
        return Err(format!(
            "\"{}\": \"{}\" is neither an IP address nor a host name",
            show(s),
            show(&host)
        ));
    }
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_structure_characters() {
        for bad in [
            "a;b", "a{", "}", "a\"b", "a'b", "a#b", "a\\b", "a\nb", "a\rb", "a\tb", "",
        ] {
            assert!(
                check_value(bad, Vars::Allowed, Spaces::Allowed).is_err(),
                "{bad:?}"
            );
        }
        assert!(check_value("a b", Vars::Allowed, Spaces::Refused).is_err());
        assert!(check_value("a b", Vars::Allowed, Spaces::Allowed).is_ok());
    }

    #[test]
    fn variables() {
        assert!(check_value("$host", Vars::Allowed, Spaces::Refused).is_ok());
        assert!(check_value("$", Vars::Allowed, Spaces::Refused).is_err());
        assert!(check_value("a$ b", Vars::Allowed, Spaces::Allowed).is_err());
        assert!(check_value("$host", Vars::Refused, Spaces::Refused).is_err());
    }

    #[test]
    fn server_names() {
        for ok in [
            "example.com",
            "*.example.com",
            ".example.com",
            "www.example.*",
            "localhost",
        ] {
            assert!(check_server_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "~^www",
            "a b",
            "a;b",
            "*.",
            "exa_mple.com",
            "-a.com",
            "a..b",
        ] {
            assert!(check_server_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_port() {
        assert_eq!(
            split_host_port("192.0.2.1:80"),
            Ok(("192.0.2.1".into(), Some(80)))
        );
        assert_eq!(
            split_host_port("[2001:db8::1]:443"),
            Ok(("2001:db8::1".into(), Some(443)))
        );
        assert_eq!(
            split_host_port("backend.example"),
            Ok(("backend.example".into(), None))
        );
        for bad in [
            "2001:db8::1",
            "a:0",
            "a:99999",
            "[::1",
            "a b:80",
            "a:+80",
            "[x]:80",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad}");
        }
    }
}
