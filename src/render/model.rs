//! The view model: every decision the templates need, already made. The
//! templates stay declarative and all logic stays testable Rust.

use crate::config::nginx::{
    Directive, Listen, Location, LocationMatch, Method, Nginx, NonlocalBind, Site, Tls,
    proxy_target_upstream,
};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// The Connection header for a plain WebSocket location: "upgrade" when the
/// client asks for one, otherwise "close" like nginx's default.
pub const UPGRADE_MAP: &str = "$nginx_ha_connection_upgrade";
/// The same for upstreams with keepalive, which need an empty Connection
/// header (not "close") on ordinary requests to reuse connections.
pub const UPGRADE_KEEPALIVE_MAP: &str = "$nginx_ha_connection_upgrade_keepalive";

#[derive(Serialize)]
pub struct Model {
    nonlocal: Option<NonlocalView>,
    upgrade_map: Option<&'static str>,
    upgrade_keepalive_map: Option<&'static str>,
    upstreams: Vec<UpstreamView>,
    status: Option<StatusView>,
    catch_all: Option<CatchAllView>,
    sites: Vec<SiteView>,
}

#[derive(Serialize)]
struct NonlocalView {
    addresses: String,
    sysctls: Vec<&'static str>,
}

#[derive(Serialize)]
struct UpstreamView {
    name: String,
    /// The balancing directive, `None` for round robin.
    method: Option<String>,
    servers: Vec<ServerView>,
    keepalive: Option<u64>,
}

#[derive(Serialize)]
struct ServerView {
    address: String,
    weight: Option<u64>,
    max_fails: Option<u64>,
    fail_timeout: Option<String>,
    backup: bool,
    down: bool,
}

#[derive(Serialize)]
struct StatusView {
    listen: String,
    path: String,
}

#[derive(Serialize)]
struct CatchAllView {
    listens: Vec<ListenView>,
    any_ssl: bool,
}

#[derive(Serialize, Clone)]
struct ListenView {
    socket: String,
    ssl: bool,
    http2: bool,
    default_server: bool,
}

#[derive(Serialize)]
struct SiteView {
    name: String,
    server_names: String,
    /// Plain-HTTP listeners that only redirect to HTTPS.
    redirect: Option<RedirectView>,
    listens: Vec<ListenView>,
    tls: Option<TlsView>,
    directives: Vec<String>,
    locations: Vec<LocationView>,
}

#[derive(Serialize)]
struct RedirectView {
    listens: Vec<ListenView>,
    target: String,
}

#[derive(Serialize)]
struct TlsView {
    certificate: String,
    key: String,
    http2_directive: bool,
    hsts: bool,
    ocsp_stapling: bool,
}

#[derive(Serialize)]
struct LocationView {
    modifier: &'static str,
    path: String,
    proxy: Option<ProxyView>,
    root: Option<String>,
    return_: Option<String>,
    directives: Vec<String>,
    /// `add_header` in a location drops every inherited `add_header`, HSTS
    /// included, so the location repeats it.
    repeat_hsts: bool,
}

#[derive(Serialize)]
struct ProxyView {
    pass: String,
    http11: bool,
    upgrade: bool,
    /// Value of the Connection header, if it must be set.
    connection: Option<&'static str>,
}

pub fn build(n: &Nginx, nonlocal: &NonlocalBind, http2_directive: bool) -> Model {
    let mut upgrade = false;
    let mut upgrade_keepalive = false;
    let sites: Vec<SiteView> = n
        .sites
        .iter()
        .map(|(name, site)| {
            let v = site_view(n, name, site, http2_directive);
            for l in v.locations.iter().filter_map(|l| l.proxy.as_ref()) {
                match l.connection {
                    Some(UPGRADE_MAP) => upgrade = true,
                    Some(UPGRADE_KEEPALIVE_MAP) => upgrade_keepalive = true,
                    _ => {}
                }
            }
            v
        })
        .collect();
    Model {
        nonlocal: nonlocal.needed().then(|| NonlocalView {
            addresses: nonlocal
                .addresses
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            sysctls: [
                (nonlocal.v4, "net.ipv4.ip_nonlocal_bind = 1"),
                (nonlocal.v6, "net.ipv6.ip_nonlocal_bind = 1"),
            ]
            .into_iter()
            .filter_map(|(on, s)| on.then_some(s))
            .collect(),
        }),
        upgrade_map: upgrade.then_some(UPGRADE_MAP),
        upgrade_keepalive_map: upgrade_keepalive.then_some(UPGRADE_KEEPALIVE_MAP),
        upstreams: n
            .upstreams
            .iter()
            .map(|(name, u)| UpstreamView {
                name: name.clone(),
                method: match &u.method {
                    Method::RoundRobin => None,
                    Method::LeastConn => Some("least_conn".into()),
                    Method::IpHash => Some("ip_hash".into()),
                    Method::Random => Some("random".into()),
                    Method::Hash { key, consistent } => Some(if *consistent {
                        format!("hash {key} consistent")
                    } else {
                        format!("hash {key}")
                    }),
                },
                servers: u
                    .servers
                    .iter()
                    .map(|s| ServerView {
                        address: s.address.clone(),
                        weight: s.weight,
                        max_fails: s.max_fails,
                        // Validation keeps it whole seconds, which is all
                        // nginx accepts here.
                        fail_timeout: s
                            .fail_timeout
                            .map(|t| format!("{}s", t.as_duration().as_secs())),
                        backup: s.backup,
                        down: s.down,
                    })
                    .collect(),
                keepalive: u.keepalive,
            })
            .collect(),
        status: n.status_page.enable.then(|| StatusView {
            listen: socket(
                n.status_page.listen.ip(),
                u64::from(n.status_page.listen.port()),
            ),
            path: n.status_page.path.clone(),
        }),
        catch_all: if n.default_server {
            catch_all(n, http2_directive)
        } else {
            None
        },
        sites,
    }
}

/// How a socket is written after `listen`: a bare port for the IPv4
/// wildcard (nginx's own idiom), brackets for IPv6.
fn socket(addr: IpAddr, port: u64) -> String {
    match addr {
        IpAddr::V4(a) if a.is_unspecified() => port.to_string(),
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

fn listen_views(l: &Listen, http2_flag: bool) -> Vec<ListenView> {
    l.sockets()
        .into_iter()
        .map(|a| ListenView {
            socket: socket(a, l.port),
            ssl: l.ssl,
            http2: l.ssl && http2_flag,
            default_server: l.default_server,
        })
        .collect()
}

fn site_view(n: &Nginx, name: &str, site: &Site, http2_directive: bool) -> SiteView {
    let http2_flag = site.tls.as_ref().is_some_and(|t| t.http2) && !http2_directive;
    let redirecting = site.tls.as_ref().is_some_and(|t| t.redirect_http);
    let listen = site.effective_listen();
    let (plain, main): (Vec<&Listen>, Vec<&Listen>) = if redirecting {
        listen.iter().partition(|l| !l.ssl)
    } else {
        (Vec::new(), listen.iter().collect())
    };
    let hsts = site.tls.as_ref().is_some_and(|t| t.hsts);
    let redirect = (!plain.is_empty()).then(|| {
        let https_port = listen.iter().find(|l| l.ssl).map_or(443, |l| l.port);
        RedirectView {
            listens: plain.iter().flat_map(|l| listen_views(l, false)).collect(),
            target: if https_port == 443 {
                "https://$host$request_uri".into()
            } else {
                format!("https://$host:{https_port}$request_uri")
            },
        }
    });
    SiteView {
        name: name.into(),
        server_names: site.server_names.join(" "),
        redirect,
        listens: main
            .iter()
            .flat_map(|l| listen_views(l, http2_flag))
            .collect(),
        tls: site.tls.as_ref().map(|t| tls_view(t, http2_directive)),
        directives: site.extra_directives.iter().map(directive).collect(),
        locations: site
            .locations
            .iter()
            .map(|l| location_view(n, l, hsts))
            .collect(),
    }
}

fn tls_view(t: &Tls, http2_directive: bool) -> TlsView {
    TlsView {
        certificate: t.certificate_file.display().to_string(),
        key: t.key_file.display().to_string(),
        http2_directive: t.http2 && http2_directive,
        hsts: t.hsts,
        ocsp_stapling: t.ocsp_stapling,
    }
}

fn location_view(n: &Nginx, l: &Location, hsts: bool) -> LocationView {
    let proxy = l.proxy_pass.as_ref().map(|pp| {
        let keepalive = proxy_target_upstream(n, pp)
            .and_then(|u| n.upstreams.get(u))
            .is_some_and(|u| u.keepalive.is_some());
        ProxyView {
            pass: if pp.contains("://") {
                pp.clone()
            } else {
                format!("http://{pp}")
            },
            http11: keepalive || l.websockets,
            upgrade: l.websockets,
            connection: match (l.websockets, keepalive) {
                (true, true) => Some(UPGRADE_KEEPALIVE_MAP),
                (true, false) => Some(UPGRADE_MAP),
                (false, true) => Some("\"\""),
                (false, false) => None,
            },
        }
    });
    LocationView {
        modifier: match l.match_kind {
            LocationMatch::Prefix => "",
            LocationMatch::Exact => "= ",
        },
        path: l.path.clone(),
        proxy,
        root: l.root.as_ref().map(|r| r.display().to_string()),
        return_: l.return_.as_ref().map(|r| match &r.target {
            Some(t) => format!("{} {}", r.status, quote(t)),
            None => r.status.to_string(),
        }),
        directives: l.extra_directives.iter().map(directive).collect(),
        repeat_hsts: hsts && l.extra_directives.iter().any(|d| d.name == "add_header"),
    }
}

/// Validation has refused quotes, `\` and control characters, so wrapping
/// in double quotes is all a value with spaces needs.
fn quote(s: &str) -> String {
    if s.contains(' ') {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

fn directive(d: &Directive) -> String {
    std::iter::once(d.name.clone())
        .chain(d.args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Every socket some site listens on, unless a site is already its default
/// server. The flags follow the socket, as nginx merges them per socket.
fn catch_all(n: &Nginx, http2_directive: bool) -> Option<CatchAllView> {
    let mut sockets: BTreeMap<(IpAddr, u64), (bool, bool)> = BTreeMap::new();
    let mut taken: BTreeSet<(IpAddr, u64)> = BTreeSet::new();
    for site in n.sites.values() {
        let h2 = site.tls.as_ref().is_some_and(|t| t.http2) && !http2_directive;
        for l in site.effective_listen() {
            for a in l.sockets() {
                let e = sockets.entry((a, l.port)).or_default();
                e.0 |= l.ssl;
                e.1 |= l.ssl && h2;
                if l.default_server {
                    taken.insert((a, l.port));
                }
            }
        }
    }
    let listens: Vec<ListenView> = sockets
        .into_iter()
        .filter(|(k, _)| !taken.contains(k))
        .map(|((a, port), (ssl, http2))| ListenView {
            socket: socket(a, port),
            ssl,
            http2,
            default_server: true,
        })
        .collect();
    (!listens.is_empty()).then(|| CatchAllView {
        any_ssl: listens.iter().any(|l| l.ssl),
        listens,
    })
}
