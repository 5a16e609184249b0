//! The escape hatch, `extraDirectives`: simple directives only, never one
//! that opens a block, pulls in unvalidated config or fights a field the
//! renderer writes itself.

use super::Directive;
use super::token::{self, Spaces, Vars, show};
use crate::config::validate::Problems;

/// Directives the escape hatch refuses: block directives cannot be written
/// without braces anyway, `include` would pull in config nobody validated,
/// and the others are fields of their own, so the renderer keeps control of
/// them (a second `proxy_pass` is a hard nginx error).
const REFUSED_DIRECTIVES: &[&str] = &[
    "include",
    "load_module",
    "http",
    "server",
    "location",
    "if",
    "upstream",
    "map",
    "geo",
    "types",
    "limit_except",
    "split_clients",
    "proxy_pass",
    "return",
    "root",
    "server_name",
    "listen",
    "ssl_certificate",
    "ssl_certificate_key",
    "stub_status",
    // Rendered from the declaration's own fields; a second copy is an nginx
    // "directive is duplicate" error.
    "proxy_http_version",
    "ssl_protocols",
    "ssl_ciphers",
    "ssl_prefer_server_ciphers",
    "ssl_session_timeout",
    "ssl_session_cache",
    "ssl_session_tickets",
    "ssl_stapling",
    "ssl_stapling_verify",
    "ssl_reject_handshake",
    "http2",
];

/// Directives nginx accepts more than once per block. Any other name given
/// twice in one block is an nginx "directive is duplicate" error, so the
/// escape hatch refuses it up front.
const REPEATABLE_DIRECTIVES: &[&str] = &[
    "add_header",
    "add_trailer",
    "proxy_set_header",
    "proxy_hide_header",
    "proxy_pass_header",
    "proxy_cookie_path",
    "proxy_cookie_domain",
    "proxy_redirect",
    "allow",
    "deny",
    "error_page",
    "rewrite",
    "set",
    "sub_filter",
    "access_log",
    "limit_req",
    "limit_conn",
    "set_real_ip_from",
    "ssl_conf_command",
];

pub(super) fn check_directives(p: &mut Problems, at: &str, ds: &[Directive]) {
    for (i, d) in ds.iter().enumerate() {
        let dp = format!("{at}.{i}");
        let name_ok = !d.name.is_empty()
            && d.name.len() <= 64
            && d.name.as_bytes()[0].is_ascii_lowercase()
            && d.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            p.push(
                format!("{dp}.name"),
                format!(
                    "\"{}\" is not a directive name (lower-case letters, digits and '_')",
                    show(&d.name)
                ),
            );
        } else if REFUSED_DIRECTIVES.contains(&d.name.as_str()) {
            p.push(
                format!("{dp}.name"),
                format!(
                    "\"{}\" is not allowed here: block directives and include cannot be written through the escape hatch, and the others have their own fields",
                    d.name
                ),
            );
        }
        if name_ok
            && !REPEATABLE_DIRECTIVES.contains(&d.name.as_str())
            && ds[..i].iter().any(|o| o.name == d.name)
        {
            p.push(
                format!("{dp}.name"),
                format!(
                    "\"{}\" is given twice; nginx allows it once per block",
                    d.name
                ),
            );
        }
        if d.args.len() > 16 {
            p.push(format!("{dp}.args"), "at most 16 arguments");
        }
        for (j, a) in d.args.iter().enumerate() {
            if let Err(e) = token::check_value(a, Vars::Allowed, Spaces::Allowed) {
                p.push(format!("{dp}.args.{j}"), e);
            }
        }
    }
}
