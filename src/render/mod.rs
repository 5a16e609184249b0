//! `render-nginx`: the `nginx` part of a declaration as an http-level nginx
//! config (to be included inside `http {}`).
//!
//! The declaration is validated again here, so no caller can render values
//! that `check-config` would refuse. A view model (`model`) then resolves
//! every decision (defaults, sockets, upgrade headers) in Rust, and the
//! templates in `nginx-templates/` only lay it out. Iteration is over
//! BTreeMaps and sorted sets only, so every node renders byte-identical
//! output from the same declaration.

mod atomic;
mod model;
mod version;

pub use atomic::write_atomically;
pub use version::NginxVersion;

use crate::config::nginx::{Nginx, listens_on_nonlocal};
use crate::config::{Declaration, Problem, Problems};
use minijinja::{Environment, UndefinedBehavior};
use std::net::IpAddr;

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("the declaration has no \"nginx\" section, so there is nothing to render")]
    NoNginx,
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
    /// A bug in the templates or the model, not in the declaration.
    #[error("template {name}: {source}")]
    Template {
        name: String,
        source: minijinja::Error,
    },
}

#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// The nginx that will load the output. `None` means "any supported
    /// version", which picks syntax nginx 1.22 (Debian 12) understands.
    pub nginx_version: Option<NginxVersion>,
    /// The cluster's virtual IPs: sites listening on one of them get the
    /// ip_nonlocal_bind note.
    pub virtual_ips: Vec<IpAddr>,
}

/// Templates are compiled into the binary so that the renderer a node runs
/// is exactly the one that was tested.
const TEMPLATES: &[(&str, &str)] = &[
    (
        "http.conf.j2",
        include_str!("../../nginx-templates/http.conf.j2"),
    ),
    (
        "upstream.conf.j2",
        include_str!("../../nginx-templates/upstream.conf.j2"),
    ),
    (
        "site.conf.j2",
        include_str!("../../nginx-templates/site.conf.j2"),
    ),
    (
        "location.conf.j2",
        include_str!("../../nginx-templates/location.conf.j2"),
    ),
    (
        "status.conf.j2",
        include_str!("../../nginx-templates/status.conf.j2"),
    ),
    (
        "catch-all.conf.j2",
        include_str!("../../nginx-templates/catch-all.conf.j2"),
    ),
];

fn environment() -> Result<Environment<'static>, RenderError> {
    let mut env = Environment::new();
    // nginx config is not HTML: escaping would corrupt it, and values are
    // made safe by validation instead.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let syntax = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true)
        .build()
        .map_err(|source| RenderError::Template {
            name: "<syntax>".into(),
            source,
        })?;
    env.set_syntax(syntax);
    for (name, src) in TEMPLATES {
        env.add_template(name, src)
            .map_err(|source| RenderError::Template {
                name: (*name).into(),
                source,
            })?;
    }
    Ok(env)
}

/// The virtual IPs of every instance in the declaration.
pub fn virtual_ips(d: &Declaration) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = d
        .instances
        .values()
        .flat_map(|i| i.virtual_ips.iter().map(|p| p.addr))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Renders the declaration's `nginx` part, with its virtual IPs taken from
/// the instances (overriding `opts.virtual_ips`).
pub fn render_declaration(d: &Declaration, opts: &RenderOptions) -> Result<String, RenderError> {
    let n = d.nginx.as_ref().ok_or(RenderError::NoNginx)?;
    let opts = RenderOptions {
        virtual_ips: virtual_ips(d),
        ..opts.clone()
    };
    render(n, &opts)
}

pub fn render(n: &Nginx, opts: &RenderOptions) -> Result<String, RenderError> {
    let mut p = Problems::default();
    crate::config::nginx::validate(&mut p, n);
    if !p.is_empty() {
        return Err(RenderError::Invalid(p.into_vec()));
    }
    let nonlocal = listens_on_nonlocal(n, &opts.virtual_ips);
    let http2_directive = opts.nginx_version.is_some_and(|v| v.has_http2_directive());
    let model = model::build(n, &nonlocal, http2_directive);
    let env = environment()?;
    let name = "http.conf.j2";
    env.get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&model)))
        .map_err(|source| RenderError::Template {
            name: name.into(),
            source,
        })
}
