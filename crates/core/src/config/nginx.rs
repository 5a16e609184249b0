//! The `nginx` part of the declaration: upstreams, sites and the status page
//! that `render-nginx` turns into an http-level nginx config.
//!
//! Every string here ends up verbatim in nginx's config language, so the
//! types stay narrow (addresses are parsed, ports are numbers, names are
//! names) and `validate` refuses anything that could end a directive or open
//! a block. Defaults are written next to each field.

mod check;
mod directives;
pub mod token;

pub use check::{check_status_url, proxy_target_upstream, validate};

use super::HumanDuration;
use super::limits;
use super::schema::{ABSOLUTE_PATH, NAME, SOCKET_ADDRESS};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Nginx {
    /// `upstream NAME { ... }` blocks, referenced from `locations.*.proxyPass`.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"format": NAME}))]
    pub upstreams: BTreeMap<String, Upstream>,
    /// One `server { ... }` (plus its HTTP redirect, if any) per site.
    #[serde(default)]
    #[schemars(extend("propertyNames" = {"format": NAME}))]
    pub sites: BTreeMap<String, Site>,
    /// The loopback stub_status listener the built-in health check probes.
    #[serde(default)]
    pub status_page: StatusPage,
    /// A catch-all `default_server` on every socket the sites
    /// use that answers unknown Host headers with 444 (close, no reply), so
    /// a request for a name we do not serve never lands on the first site.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub default_server: bool,
}

impl Default for Nginx {
    fn default() -> Self {
        Nginx {
            upstreams: BTreeMap::new(),
            sites: BTreeMap::new(),
            status_page: StatusPage::default(),
            default_server: true,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Upstream {
    /// The servers of this upstream.
    #[schemars(length(min = 1))]
    pub servers: Vec<UpstreamServer>,
    /// Load-balancing method: `"roundRobin"`, `"leastConn"`, `"ipHash"`,
    /// `"random"`, or `{ hash = { key = "$request_uri"; consistent = true; }; }`.
    #[serde(default)]
    #[schemars(example = &"leastConn")]
    pub method: Method,
    /// Idle keepalive connections cached per worker (`keepalive N`). When
    /// set, proxied locations speak HTTP/1.1 with an empty Connection header,
    /// which keepalive needs. Default: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 32, range(min = *limits::UPSTREAM_KEEPALIVE.start(), max = *limits::UPSTREAM_KEEPALIVE.end()))]
    pub keepalive: Option<u64>,
}

/// Load-balancing method. Written `"roundRobin"`, `"leastConn"`, `"ipHash"`,
/// `"random"`, or `{"hash": {"key": "$request_uri", "consistent": true}}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum Method {
    #[default]
    RoundRobin,
    LeastConn,
    IpHash,
    /// `hash KEY [consistent]`: the same key goes to the same server.
    Hash {
        /// Text with nginx variables, e.g. `$request_uri`.
        #[schemars(example = &"$request_uri")]
        key: String,
        /// Ketama consistent hashing: fewer keys move when a server is added
        /// or removed.
        #[serde(default)]
        #[schemars(example = true)]
        consistent: bool,
    },
    Random,
}

impl Method {
    /// nginx refuses `backup` servers with these methods.
    pub fn allows_backup(&self) -> bool {
        matches!(self, Method::RoundRobin | Method::LeastConn)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamServer {
    /// `IP:PORT`, `[IPv6]:PORT`, `HOST:PORT` (resolved once, when nginx
    /// loads the config) or `unix:/ABSOLUTE/PATH`.
    #[schemars(example = &"192.0.2.50:8080")]
    pub address: String,
    /// Default (nginx): 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 2, range(min = *limits::SERVER_WEIGHT.start(), max = *limits::SERVER_WEIGHT.end()))]
    pub weight: Option<u64>,
    /// Default (nginx): 1; 0 disables failure accounting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = 3, range(min = *limits::MAX_FAILS.start(), max = *limits::MAX_FAILS.end()))]
    pub max_fails: Option<u64>,
    /// Whole seconds, e.g. `"10s"`. Default (nginx): 10s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"30s")]
    pub fail_timeout: Option<HumanDuration>,
    /// A backup server: used only when the primary ones are down.
    #[serde(default)]
    #[schemars(example = true)]
    pub backup: bool,
    /// Marked down: not used.
    #[serde(default)]
    #[schemars(example = true)]
    pub down: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Site {
    /// `server_name`: the first is the primary name, the rest are aliases.
    /// Exact names, `*.example.com` or `.example.com`; no regexes.
    #[schemars(example = ["www.example.org", "example.org"], length(min = 1))]
    pub server_names: Vec<String>,
    /// Default: port 80 on every IPv4 and IPv6 address; with `tls`, port 443
    /// (TLS) plus port 80 (which then only redirects, see
    /// `tls.redirectHttp`).
    #[serde(default)]
    pub listen: Vec<Listen>,
    /// The `location` blocks, in order.
    #[schemars(length(min = 1))]
    pub locations: Vec<Location>,
    /// HTTPS for this site. Unset: plain HTTP only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,
    /// Server-level escape hatch: simple directives `name args...;`, in
    /// order. Block directives, `include` and the directives the renderer
    /// writes itself are refused.
    #[serde(default)]
    pub extra_directives: Vec<Directive>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Listen {
    /// Omitted: every address of both families (`listen PORT` and
    /// `listen [::]:PORT`). Use `0.0.0.0` on hosts without IPv6. A virtual
    /// IP here needs `net.ipv4.ip_nonlocal_bind` / `net.ipv6.ip_nonlocal_bind`
    /// on the node that is not master.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"192.0.2.100")]
    pub address: Option<IpAddr>,
    /// TCP port.
    #[schemars(example = 443, range(min = *limits::PORT.start(), max = *limits::PORT.end()))]
    pub port: u64,
    /// A TLS listener; needs the site's `tls`.
    #[serde(default)]
    #[schemars(example = true)]
    pub ssl: bool,
    /// This site answers requests whose Host matches no
    /// site on this socket (instead of the 444 catch-all).
    #[serde(default)]
    #[schemars(example = true)]
    pub default_server: bool,
}

impl Listen {
    pub fn plain(port: u64) -> Listen {
        Listen {
            address: None,
            port,
            ssl: false,
            default_server: false,
        }
    }

    /// The sockets nginx binds for this line: one, or both wildcards.
    pub fn sockets(&self) -> Vec<IpAddr> {
        match self.address {
            Some(a) => vec![a],
            None => vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ],
        }
    }
}

impl Site {
    /// The listen lines after defaults are applied.
    pub fn effective_listen(&self) -> Vec<Listen> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        match &self.tls {
            None => vec![Listen::plain(80)],
            Some(_) => vec![
                Listen {
                    ssl: true,
                    ..Listen::plain(443)
                },
                Listen::plain(80),
            ],
        }
    }
}

#[derive(
    Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum LocationMatch {
    /// `location /path` (default).
    #[default]
    Prefix,
    /// `location = /path`.
    Exact,
}

/// One `location`. Exactly one of `proxyPass`, `root` and `return` says what
/// it serves.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Location {
    /// The URI path this location matches, starting with `/`.
    #[schemars(example = &"/api/")]
    pub path: String,
    /// `prefix` (`location /path`) or `exact` (`location = /path`).
    #[serde(default, rename = "match")]
    #[schemars(example = &"exact")]
    pub match_kind: LocationMatch,
    /// An upstream name (`"www"`, proxied as `http://www`), or a URL
    /// `http(s)://HOST[:PORT][/PATH]` whose HOST may be an upstream name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"app")]
    pub proxy_pass: Option<String>,
    /// Serve static files from this directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"/srv/www", extend("format" = ABSOLUTE_PATH))]
    pub root: Option<PathBuf>,
    /// Answer with a status (and a redirect target or a body text).
    #[serde(default, rename = "return", skip_serializing_if = "Option::is_none")]
    pub return_: Option<Return>,
    /// Pass WebSocket upgrades through (proxyPass only).
    #[serde(default)]
    #[schemars(example = true)]
    pub websockets: bool,
    /// Location-level escape hatch: simple directives `name args...;`, in
    /// order.
    #[serde(default)]
    pub extra_directives: Vec<Directive>,
}

/// `return STATUS [TARGET]`: a URL for 301/302/303/307/308, otherwise an
/// optional body text. Both may use nginx variables (`$request_uri`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Return {
    /// HTTP status 200..599, or 444 (close without a reply).
    #[schemars(example = 301)]
    pub status: u64,
    /// The redirect URL, or the body text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = &"https://www.example.org$request_uri")]
    pub target: Option<String>,
}

impl Return {
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }
}

/// The escape hatch: one simple directive, `name arg...;`. Names are
/// lower-case identifiers; arguments may hold spaces (they are then quoted)
/// and nginx variables, but never `;`, `{`, `}`, quotes, `#`, `\` or control
/// characters, so a directive can neither end early nor open a block.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Directive {
    /// The directive's name, a lower-case identifier.
    #[schemars(example = &"client_max_body_size")]
    pub name: String,
    /// Its arguments.
    #[serde(default)]
    #[schemars(example = ["10m"])]
    pub args: Vec<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tls {
    /// Path of the certificate chain (PEM). Paths only: the key material
    /// never enters the declaration (or the Nix store).
    #[schemars(example = &"/run/secrets/www.crt", extend("format" = ABSOLUTE_PATH))]
    pub certificate_file: PathBuf,
    /// Path of the private key (PEM), readable by nginx at run time; never
    /// a Nix store path.
    #[schemars(example = &"/run/secrets/www.key", extend("format" = ABSOLUTE_PATH))]
    pub key_file: PathBuf,
    /// Plain-HTTP listen lines of this site only redirect (301) to HTTPS.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age=63072000` (two years). Default:
    /// false: once sent, browsers refuse plain HTTP for that long.
    #[serde(default)]
    #[schemars(example = true)]
    pub hsts: bool,
    /// Serve HTTP/2 on this site's TLS listeners.
    #[serde(default)]
    #[schemars(example = true)]
    pub http2: bool,
    /// `ssl_stapling` with verification.
    #[serde(default)]
    #[schemars(example = true)]
    pub ocsp_stapling: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusPage {
    /// Serve stub_status for the health check.
    #[serde(default = "yes")]
    #[schemars(example = false)]
    pub enable: bool,
    /// A loopback socket, `IP:PORT`.
    #[serde(default = "default_status_listen")]
    #[schemars(example = &"127.0.0.1:8082", extend("format" = SOCKET_ADDRESS))]
    pub listen: SocketAddr,
    /// The URI path of the status page.
    #[serde(default = "default_status_path")]
    #[schemars(example = &"/status")]
    pub path: String,
}

impl Default for StatusPage {
    fn default() -> Self {
        StatusPage {
            enable: true,
            listen: default_status_listen(),
            path: default_status_path(),
        }
    }
}

fn yes() -> bool {
    true
}
fn default_status_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}
fn default_status_path() -> String {
    "/nginx_status".into()
}

/// Which address families need `ip_nonlocal_bind`, because a site listens
/// on a virtual IP that only the master holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NonlocalBind {
    pub v4: bool,
    pub v6: bool,
    /// The virtual IPs listened on, sorted.
    pub addresses: Vec<IpAddr>,
}

impl NonlocalBind {
    pub fn needed(&self) -> bool {
        self.v4 || self.v6
    }
}

/// Whether nginx must bind addresses this node may not hold. Conservative:
/// nginx skips binding a specific address when a wildcard listener shares
/// its port, but that is an accident of the current site list, and a node
/// whose nginx cannot start while backup is no backup at all.
pub fn listens_on_nonlocal(n: &Nginx, vips: &[IpAddr]) -> NonlocalBind {
    let mut addresses: Vec<IpAddr> = n
        .sites
        .values()
        .flat_map(|s| s.effective_listen())
        .filter_map(|l| l.address)
        .filter(|a| vips.contains(a))
        .collect();
    addresses.sort();
    addresses.dedup();
    NonlocalBind {
        v4: addresses.iter().any(IpAddr::is_ipv4),
        v6: addresses.iter().any(IpAddr::is_ipv6),
        addresses,
    }
}
