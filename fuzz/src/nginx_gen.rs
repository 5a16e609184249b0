//! Structured nginx declarations from fuzzer bytes.
//!
//! Raw JSON bytes almost never make a *valid* declaration, so the renderer
//! would hardly ever be reached from `config_parse` alone. Here every value
//! is drawn mostly from a pool of values that validation accepts (so many
//! inputs render), sometimes from the pool's hostile cousins (injection
//! attempts, edge numbers), and sometimes as an arbitrary string, so the
//! fuzzer still explores the border between what validation lets through
//! and what the renderer can lay out safely.

use arbitrary::{Result, Unstructured};
use nginx_ha::config::HumanDuration;
use nginx_ha::config::nginx::{
    Directive, Listen, Location, LocationMatch, Method, Nginx, Return, Site, StatusPage, Tls,
    Upstream, UpstreamServer,
};
use nginx_ha::render::NginxVersion;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// One value: usually from `pool`, else any string the fuzzer makes.
fn pick(u: &mut Unstructured, pool: &[&str]) -> Result<String> {
    if u.ratio(7u8, 8u8)? {
        Ok((*u.choose(pool)?).to_string())
    } else {
        u.arbitrary::<String>()
    }
}

/// A number: usually from `pool` (which holds the edges of the valid
/// range), else any u64.
fn pick_num(u: &mut Unstructured, pool: &[u64]) -> Result<u64> {
    if u.ratio(7u8, 8u8)? {
        Ok(*u.choose(pool)?)
    } else {
        u.arbitrary()
    }
}

fn some<T>(
    u: &mut Unstructured,
    f: impl FnOnce(&mut Unstructured) -> Result<T>,
) -> Result<Option<T>> {
    if u.arbitrary()? {
        Ok(Some(f(u)?))
    } else {
        Ok(None)
    }
}

fn list<T>(
    u: &mut Unstructured,
    min: usize,
    max: usize,
    mut f: impl FnMut(&mut Unstructured, usize) -> Result<T>,
) -> Result<Vec<T>> {
    let n = u.int_in_range(min..=max)?;
    (0..n).map(|i| f(u, i)).collect()
}

fn duration(u: &mut Unstructured, pool: &[&str]) -> Result<Option<HumanDuration>> {
    let s = pick(u, pool)?;
    Ok(nginx_ha::config::duration::parse_duration(&s)
        .ok()
        .map(HumanDuration))
}

const NAMES: &[&str] = &[
    "www", "api", "dev", "a-b_c", "up0", "x", "nginx", "", "bad name",
];
const SERVER_ADDRS: &[&str] = &[
    "198.51.100.10:80",
    "198.51.100.11:8080",
    "[2001:db8::5]:80",
    "app.internal:80",
    "unix:/run/app.sock",
    "unix:/run/../x.sock",
    "198.51.100.10",
    "198.51.100.10:0",
    "2001:db8::1:80",
    "a;b:80",
];
const HASH_KEYS: &[&str] = &["$request_uri", "$remote_addr$uri", "$", "a b", "$host}"];
const SERVER_NAMES: &[&str] = &[
    "example.com",
    "www.example.com",
    "*.example.com",
    ".example.org",
    "www.example.*",
    "localhost",
    "~^regex",
    "a b",
    "exa_mple.com",
];
const LISTEN_ADDRS: &[&str] = &[
    "203.0.113.10",
    "2001:db8::10",
    "0.0.0.0",
    "::",
    "127.0.0.1",
    "255.255.255.255",
    "224.0.0.18",
];
const PORTS: &[u64] = &[80, 443, 8080, 8443, 8081, 1, 65535, 0, 65536];
const PATHS: &[&str] = &[
    "/", "/api", "/static/", "/ws", "/a b", "api", "/x?y", "/$uri", "/}",
];
const FILES: &[&str] = &[
    "/etc/nginx-ha/tls/www.crt",
    "/etc/nginx-ha/tls/www.key",
    "/srv/www",
    "/srv/../etc",
    "relative/path",
    "/with space",
    "/semi;colon",
];
const PROXY: &[&str] = &[
    "www",
    "api",
    "http://www",
    "http://www/app/",
    "https://198.51.100.20:8443/x/",
    "http://[2001:db8::7]:8080",
    "http://www:80",
    "ftp://x",
    "http://x/?q",
    "nowhere",
];
const RETURN_TARGETS: &[&str] = &[
    "https://$host$request_uri",
    "/moved/",
    "ok from $hostname",
    "plain body",
    "no-scheme",
    "https://a b",
    "$",
];
const DIRECTIVE_NAMES: &[&str] = &[
    "add_header",
    "proxy_set_header",
    "client_max_body_size",
    "proxy_read_timeout",
    "gzip",
    "include",
    "proxy_pass",
    "Bad",
    "",
];
const DIRECTIVE_ARGS: &[&str] = &[
    "X-Frame-Options",
    "SAMEORIGIN",
    "two words",
    "$request_id",
    "30s",
    "10m",
    "on",
    "a;b",
    "x\ny",
    "{",
    "'",
];
const DURATIONS: &[&str] = &["1s", "10s", "30s", "3600s", "500ms", "0s", "2h"];
const STATUS_LISTEN: &[&str] = &[
    "127.0.0.1:8081",
    "[::1]:8081",
    "127.0.0.2:9000",
    "192.0.2.1:8081",
    "127.0.0.1:0",
];

fn upstream(u: &mut Unstructured) -> Result<Upstream> {
    let method = match u.int_in_range(0u8..=4)? {
        0 => Method::RoundRobin,
        1 => Method::LeastConn,
        2 => Method::IpHash,
        3 => Method::Random,
        _ => Method::Hash {
            key: pick(u, HASH_KEYS)?,
            consistent: u.arbitrary()?,
        },
    };
    let servers = list(u, 0, 4, |u, _| {
        Ok(UpstreamServer {
            address: pick(u, SERVER_ADDRS)?,
            weight: some(u, |u| pick_num(u, &[1, 5, 1000, 0, 1001]))?,
            max_fails: some(u, |u| pick_num(u, &[0, 3, 1000, 1001]))?,
            fail_timeout: duration(u, DURATIONS)?,
            backup: u.arbitrary()?,
            down: u.arbitrary()?,
        })
    })?;
    Ok(Upstream {
        servers,
        method,
        keepalive: some(u, |u| pick_num(u, &[1, 16, 10_000, 0, 10_001]))?,
    })
}

fn directives(u: &mut Unstructured) -> Result<Vec<Directive>> {
    list(u, 0, 3, |u, _| {
        Ok(Directive {
            name: pick(u, DIRECTIVE_NAMES)?,
            args: list(u, 0, 3, |u, _| pick(u, DIRECTIVE_ARGS))?,
        })
    })
}

fn location(u: &mut Unstructured) -> Result<Location> {
    let mut l = Location {
        path: pick(u, PATHS)?,
        match_kind: if u.arbitrary()? {
            LocationMatch::Exact
        } else {
            LocationMatch::Prefix
        },
        proxy_pass: None,
        root: None,
        return_: None,
        websockets: u.arbitrary()?,
        extra_directives: directives(u)?,
    };
    // Mostly exactly one way to serve (what validation wants), sometimes
    // none or two.
    match u.int_in_range(0u8..=4)? {
        0 | 1 => l.proxy_pass = Some(pick(u, PROXY)?),
        2 => l.root = Some(PathBuf::from(pick(u, FILES)?)),
        3 => {
            l.return_ = Some(Return {
                status: pick_num(u, &[200, 301, 302, 404, 444, 199, 600])?,
                target: some(u, |u| pick(u, RETURN_TARGETS))?,
            })
        }
        _ => {
            l.proxy_pass = some(u, |u| pick(u, PROXY))?;
            l.root = some(u, |u| pick(u, FILES).map(PathBuf::from))?;
        }
    }
    Ok(l)
}

fn site(u: &mut Unstructured) -> Result<Site> {
    let tls = some(u, |u| {
        Ok(Tls {
            certificate_file: PathBuf::from(pick(u, FILES)?),
            key_file: PathBuf::from(pick(u, FILES)?),
            redirect_http: u.arbitrary()?,
            hsts: u.arbitrary()?,
            http2: u.arbitrary()?,
            ocsp_stapling: u.arbitrary()?,
        })
    })?;
    Ok(Site {
        server_names: list(u, 0, 3, |u, _| pick(u, SERVER_NAMES))?,
        listen: list(u, 0, 3, |u, _| {
            Ok(Listen {
                address: some(u, |u| Ok(pick(u, LISTEN_ADDRS)?.parse::<IpAddr>().ok()))?.flatten(),
                port: pick_num(u, PORTS)?,
                ssl: u.arbitrary()?,
                default_server: u.arbitrary()?,
            })
        })?,
        locations: list(u, 0, 4, |u, _| location(u))?,
        tls,
        extra_directives: directives(u)?,
    })
}

/// An nginx section built from the fuzzer's bytes.
pub fn nginx(u: &mut Unstructured) -> Result<Nginx> {
    let mut upstreams = BTreeMap::new();
    for _ in 0..u.int_in_range(0u8..=3)? {
        let name = pick(u, NAMES)?;
        upstreams.insert(name, upstream(u)?);
    }
    let mut sites = BTreeMap::new();
    for _ in 0..u.int_in_range(0u8..=3)? {
        let name = pick(u, NAMES)?;
        sites.insert(name, site(u)?);
    }
    let listen = pick(u, STATUS_LISTEN)?
        .parse::<SocketAddr>()
        .unwrap_or_else(|_| StatusPage::default().listen);
    Ok(Nginx {
        upstreams,
        sites,
        status_page: StatusPage {
            enable: u.arbitrary()?,
            listen,
            path: pick(u, &["/nginx_status", "/status", "status", "/a b"])?,
        },
        default_server: u.arbitrary()?,
    })
}

/// Which nginx the output is for: both sides of the 1.25.1 http2 change.
pub fn nginx_version(u: &mut Unstructured) -> Result<Option<NginxVersion>> {
    Ok(match u.int_in_range(0u8..=2)? {
        0 => None,
        1 => Some(NginxVersion(1, 22, 1)),
        _ => Some(NginxVersion(1, 26, 3)),
    })
}

/// Virtual IPs for the ip_nonlocal_bind note: some of the listen pool.
pub fn virtual_ips(u: &mut Unstructured) -> Result<Vec<IpAddr>> {
    list(u, 0, 2, |u, _| {
        Ok(u.choose(LISTEN_ADDRS)?.parse::<IpAddr>().ok())
    })
    .map(|v| v.into_iter().flatten().collect())
}
