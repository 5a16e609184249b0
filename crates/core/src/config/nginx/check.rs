//! Semantic checks on the `nginx` part: every value that reaches the
//! rendered config, and the combinations nginx itself would refuse (or,
//! worse, accept with a warning and serve the wrong site).

use super::directives::check_directives;
use super::token::{self, Spaces, Vars, show};
use super::{Location, Method, Nginx, Site, Tls, Upstream};
use crate::config::limits;
use crate::config::validate::{Problems, check_abs_path, check_not_in_store, is_safe_name};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

pub fn validate(p: &mut Problems, n: &Nginx) {
    for (name, up) in &n.upstreams {
        check_upstream(p, &format!("nginx.upstreams.{name}"), name, up);
    }
    for (name, site) in &n.sites {
        check_site(p, n, &format!("nginx.sites.{name}"), name, site);
    }
    check_sockets(p, n);
    check_status_page(p, n);
}

fn check_upstream(p: &mut Problems, at: &str, name: &str, up: &Upstream) {
    if !is_safe_name(name) {
        p.push(
            at,
            "upstream names must be 1-64 characters of letters, digits, '-' and '_'",
        );
    }
    if up.servers.is_empty() {
        p.push(format!("{at}.servers"), "at least one server is needed");
    } else if up.servers.iter().all(|s| s.backup) {
        p.push(
            format!("{at}.servers"),
            "every server is a backup; at least one must be primary",
        );
    }
    if let Method::Hash { key, .. } = &up.method
        && let Err(e) = token::check_value(key, Vars::Allowed, Spaces::Refused)
    {
        p.push(format!("{at}.method.hash.key"), e);
    }
    if let Some(k) = up.keepalive
        && let Some(e) = limits::out_of(&limits::UPSTREAM_KEEPALIVE, k)
    {
        p.push(format!("{at}.keepalive"), e);
    }
    for (i, s) in up.servers.iter().enumerate() {
        let sp = format!("{at}.servers.{i}");
        if let Err(e) = check_server_address(&s.address) {
            p.push(format!("{sp}.address"), e);
        }
        if up.servers[..i].iter().any(|o| o.address == s.address) {
            p.push(
                format!("{sp}.address"),
                format!("\"{}\" is listed twice", show(&s.address)),
            );
        }
        if let Some(w) = s.weight
            && let Some(e) = limits::out_of(&limits::SERVER_WEIGHT, w)
        {
            p.push(format!("{sp}.weight"), e);
        }
        if let Some(m) = s.max_fails
            && let Some(e) = limits::out_of(&limits::MAX_FAILS, m)
        {
            p.push(format!("{sp}.maxFails"), e);
        }
        if let Some(t) = s.fail_timeout {
            let d = t.as_duration();
            // nginx parses fail_timeout in whole seconds and refuses "ms".
            if d.subsec_nanos() != 0 || d.is_zero() || d > Duration::from_secs(3600) {
                p.push(
                    format!("{sp}.failTimeout"),
                    format!("{t}: nginx takes whole seconds here, 1s..=1h"),
                );
            }
        }
        if s.backup && !up.method.allows_backup() {
            p.push(
                format!("{sp}.backup"),
                "nginx does not support backup servers with ipHash, hash or random",
            );
        }
        if s.backup && s.down {
            p.push(
                format!("{sp}.down"),
                "a server cannot be both backup and down",
            );
        }
    }
}

/// `IP:PORT`, `[IPv6]:PORT`, `HOST:PORT` or `unix:/path`.
fn check_server_address(a: &str) -> Result<(), String> {
    if let Some(path) = a.strip_prefix("unix:") {
        token::check_conf_path(path)?;
        if !path.starts_with('/') || path.split('/').any(|c| c == "..") {
            return Err(format!(
                "\"{}\": the socket path must be absolute, without \"..\"",
                show(a)
            ));
        }
        return Ok(());
    }
    token::check_value(a, Vars::Refused, Spaces::Refused)?;
    let (_, port) = token::split_host_port(a)?;
    if port.is_none() {
        return Err(format!(
            "\"{}\" has no port (write e.g. 198.51.100.10:80)",
            show(a)
        ));
    }
    Ok(())
}

fn check_site(p: &mut Problems, n: &Nginx, at: &str, name: &str, site: &Site) {
    if !is_safe_name(name) {
        p.push(
            at,
            "site names must be 1-64 characters of letters, digits, '-' and '_'",
        );
    }
    if site.server_names.is_empty() {
        p.push(
            format!("{at}.serverNames"),
            "at least one server name is needed",
        );
    }
    for (i, s) in site.server_names.iter().enumerate() {
        let sp = format!("{at}.serverNames.{i}");
        if let Err(e) = token::check_server_name(s) {
            p.push(&sp, e);
        } else if site.server_names[..i]
            .iter()
            .any(|o| o.eq_ignore_ascii_case(s))
        {
            p.push(&sp, format!("\"{}\" is listed twice", show(s)));
        }
    }

    for (i, l) in site.listen.iter().enumerate() {
        let lp = format!("{at}.listen.{i}");
        if let Some(e) = limits::out_of(&limits::PORT, l.port) {
            p.push(format!("{lp}.port"), e);
        }
        if let Some(a) = l.address
            && (a.is_multicast() || is_broadcast(&a))
        {
            p.push(
                format!("{lp}.address"),
                format!("{a} cannot be listened on"),
            );
        }
        if l.ssl && site.tls.is_none() {
            p.push(
                format!("{lp}.ssl"),
                "needs the site's tls (certificate and key)",
            );
        }
        if site.listen[..i]
            .iter()
            .any(|o| o.address == l.address && o.port == l.port)
        {
            p.push(&lp, "this address and port is listed twice");
        }
    }

    if let Some(tls) = &site.tls {
        check_tls(p, &format!("{at}.tls"), tls);
        if !site.effective_listen().iter().any(|l| l.ssl) {
            p.push(
                format!("{at}.listen"),
                "the site has tls but no listen entry with ssl: true",
            );
        }
    }

    if site.locations.is_empty() {
        p.push(format!("{at}.locations"), "at least one location is needed");
    }
    for (i, loc) in site.locations.iter().enumerate() {
        let lp = format!("{at}.locations.{i}");
        check_location(p, n, &lp, loc);
        if site.locations[..i]
            .iter()
            .any(|o| o.path == loc.path && o.match_kind == loc.match_kind)
        {
            p.push(
                format!("{lp}.path"),
                format!(
                    "\"{}\" is listed twice (nginx: duplicate location)",
                    show(&loc.path)
                ),
            );
        }
    }
    check_directives(p, &format!("{at}.extraDirectives"), &site.extra_directives);
}

fn is_broadcast(a: &IpAddr) -> bool {
    matches!(a, IpAddr::V4(v4) if v4.is_broadcast())
}

fn check_tls(p: &mut Problems, at: &str, tls: &Tls) {
    for (field, path) in [
        ("certificateFile", &tls.certificate_file),
        ("keyFile", &tls.key_file),
    ] {
        check_file_path(p, &format!("{at}.{field}"), path);
    }
    check_not_in_store(p, &format!("{at}.keyFile"), &tls.key_file);
}

/// Absolute and free of nginx syntax; paths are not checked for existence,
/// as the declaration is usually validated on another machine.
fn check_file_path(p: &mut Problems, at: &str, path: &Path) {
    let before = p.len();
    check_abs_path(p, at, path);
    if p.len() == before
        && let Some(s) = path.to_str()
        && let Err(e) = token::check_conf_path(s)
    {
        p.push(at, e);
    }
}

fn check_location(p: &mut Problems, n: &Nginx, at: &str, loc: &Location) {
    if let Err(e) = token::check_uri_path(&loc.path) {
        p.push(format!("{at}.path"), e);
    }
    let set = [
        loc.proxy_pass.is_some(),
        loc.root.is_some(),
        loc.return_.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if set != 1 {
        p.push(
            at,
            "set exactly one of proxyPass, root and return (what the location serves)",
        );
    }
    if let Some(pp) = &loc.proxy_pass
        && let Err(e) = check_proxy_pass(n, pp)
    {
        p.push(format!("{at}.proxyPass"), e);
    }
    if let Some(root) = &loc.root {
        check_file_path(p, &format!("{at}.root"), root);
    }
    if let Some(r) = &loc.return_ {
        let ok_status = (200..=599).contains(&r.status) || r.status == 444;
        if !ok_status {
            p.push(
                format!("{at}.return.status"),
                format!(
                    "{} is not a status nginx can return (200..=599 or 444)",
                    r.status
                ),
            );
        }
        match &r.target {
            None if r.is_redirect() => p.push(
                format!("{at}.return.target"),
                format!("a {} redirect needs a target URL", r.status),
            ),
            None => {}
            Some(t) => {
                if let Err(e) = token::check_value(t, Vars::Allowed, Spaces::Allowed) {
                    p.push(format!("{at}.return.target"), e);
                } else if r.is_redirect()
                    && !(t.starts_with("http://")
                        || t.starts_with("https://")
                        || t.starts_with('/'))
                {
                    p.push(
                        format!("{at}.return.target"),
                        format!("\"{}\" must be a URL (http://, https:// or /path)", show(t)),
                    );
                } else if r.is_redirect() && t.contains(' ') {
                    p.push(format!("{at}.return.target"), "a URL cannot contain spaces");
                }
            }
        }
    }
    if loc.websockets && loc.proxy_pass.is_none() {
        p.push(format!("{at}.websockets"), "only applies with proxyPass");
    }
    check_directives(p, &format!("{at}.extraDirectives"), &loc.extra_directives);
}

/// The upstream a proxyPass refers to, if any: a bare name, or the host of
/// a URL (nginx matches `proxy_pass http://NAME/...` against upstream
/// blocks before trying DNS).
pub fn proxy_target_upstream<'a>(n: &'a Nginx, pp: &str) -> Option<&'a str> {
    let host = match pp.split_once("://") {
        None => pp,
        Some((_, rest)) => rest.split('/').next().unwrap_or(rest),
    };
    n.upstreams.get_key_value(host).map(|(k, _)| k.as_str())
}

fn check_proxy_pass(n: &Nginx, pp: &str) -> Result<(), String> {
    token::check_value(pp, Vars::Refused, Spaces::Refused)?;
    let Some((scheme, rest)) = pp.split_once("://") else {
        if n.upstreams.contains_key(pp) {
            return Ok(());
        }
        let known: Vec<&str> = n.upstreams.keys().map(String::as_str).collect();
        return Err(format!(
            "\"{}\" is not an upstream (known: {}) nor a URL (http://HOST[:PORT][/PATH])",
            show(pp),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ));
    };
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "\"{}\": the scheme must be http or https",
            show(pp)
        ));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if path.contains('?') {
        return Err(format!(
            "\"{}\": proxyPass cannot carry a query string",
            show(pp)
        ));
    }
    let (host, port) = token::split_host_port(authority)?;
    if n.upstreams.contains_key(&host) && port.is_some() {
        // With a port nginx no longer matches the upstream block and tries
        // to resolve the name in DNS instead.
        return Err(format!(
            "\"{}\": \"{host}\" is an upstream; drop the port (the servers carry it)",
            show(pp)
        ));
    }
    Ok(())
}

/// What nginx decides per listening socket rather than per site: TLS, the
/// HTTP/2 listen flag (before nginx 1.25.1), the default server, and which
/// site a server name belongs to.
fn check_sockets(p: &mut Problems, n: &Nginx) {
    struct Seen<'a> {
        site: &'a str,
        ssl: bool,
        http2: bool,
    }
    let mut sockets: BTreeMap<(IpAddr, u64), Seen> = BTreeMap::new();
    let mut defaults: BTreeMap<(IpAddr, u64), &str> = BTreeMap::new();
    let mut names: BTreeMap<(IpAddr, u64, String), &str> = BTreeMap::new();
    let status = n.status_page.enable.then_some(n.status_page.listen);
    for (site_name, site) in &n.sites {
        let http2 = site.tls.as_ref().is_some_and(|t| t.http2);
        let explicit = !site.listen.is_empty();
        for (i, l) in site.effective_listen().iter().enumerate() {
            let lp = if explicit {
                format!("nginx.sites.{site_name}.listen.{i}")
            } else {
                format!("nginx.sites.{site_name}.listen")
            };
            for addr in l.sockets() {
                let key = (addr, l.port);
                let shown = show_socket(addr, l.port);
                let h2 = l.ssl && http2;
                match sockets.get(&key) {
                    Some(o) if o.site != site_name && o.ssl != l.ssl => p.push(
                        &lp,
                        format!(
                            "{shown} is {} here but {} in site \"{}\"; nginx sets TLS per socket",
                            if l.ssl { "TLS" } else { "plain HTTP" },
                            if o.ssl { "TLS" } else { "plain HTTP" },
                            o.site
                        ),
                    ),
                    Some(o) if o.site != site_name && o.ssl && o.http2 != h2 => p.push(
                        &lp,
                        format!(
                            "{shown} is shared with site \"{}\", which sets tls.http2 differently; nginx before 1.25.1 sets HTTP/2 per socket",
                            o.site
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        sockets.insert(
                            key,
                            Seen {
                                site: site_name,
                                ssl: l.ssl,
                                http2: h2,
                            },
                        );
                    }
                }
                if l.default_server {
                    if let Some(o) = defaults.get(&key) {
                        p.push(
                            format!("{lp}.defaultServer"),
                            format!("site \"{o}\" is already the default server on {shown}"),
                        );
                    } else {
                        defaults.insert(key, site_name);
                    }
                }
                if status.is_some_and(|s| s.ip() == addr && u64::from(s.port()) == l.port) {
                    p.push(&lp, format!("{shown} is the status page's listener"));
                }
                let mut seen_here = BTreeSet::new();
                for sn in &site.server_names {
                    let k = (addr, l.port, sn.to_ascii_lowercase());
                    if !seen_here.insert(k.clone()) {
                        continue;
                    }
                    match names.get(&k) {
                        Some(o) if *o != site_name => p.push(
                            format!("nginx.sites.{site_name}.serverNames"),
                            format!(
                                "\"{}\" on {shown} is already served by site \"{o}\"",
                                show(sn)
                            ),
                        ),
                        Some(_) => {}
                        None => {
                            names.insert(k, site_name);
                        }
                    }
                }
            }
        }
    }
}

fn show_socket(addr: IpAddr, port: u64) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn check_status_page(p: &mut Problems, n: &Nginx) {
    let s = &n.status_page;
    if !s.enable {
        return;
    }
    if !s.listen.ip().is_loopback() {
        p.push(
            "nginx.statusPage.listen",
            format!(
                "{} is not a loopback address; the status page is for the local health check only",
                s.listen
            ),
        );
    }
    if s.listen.port() == 0 {
        p.push("nginx.statusPage.listen", "port 0");
    }
    if let Err(e) = token::check_uri_path(&s.path) {
        p.push("nginx.statusPage.path", e);
    }
}

/// The health check probes the status page; if both are declared they must
/// point at the same place, or the node would report itself unhealthy (or
/// probe someone else's listener).
pub fn check_status_url(p: &mut Problems, n: &Nginx, status_url: &str) {
    let s = &n.status_page;
    let Ok(url) = crate::config::url::HttpUrl::parse(status_url) else {
        return; // reported by the checks validation
    };
    if !s.enable {
        p.push(
            "checks.nginx.statusUrl",
            "the nginx check probes stub_status, but nginx.statusPage.enable is false",
        );
    } else if url.addr != s.listen || url.path != s.path {
        p.push(
            "checks.nginx.statusUrl",
            format!(
                "\"{}\" does not match nginx.statusPage (http://{}{})",
                show(status_url),
                s.listen,
                show(&s.path)
            ),
        );
    }
}
