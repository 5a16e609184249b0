//! render-nginx: golden files, real `nginx -t`, injection refusals,
//! determinism, and generated declarations.
//!
//! `nginx -t` runs in a private network namespace (`unshare -n`) so that it
//! can bind ports 80/443 and virtual IPs without touching the host. Without
//! nginx or root the nginx tests print SKIPPED, unless CI is set: then they
//! fail, so CI cannot pass without having checked anything.
//!
//! Regenerate the golden files with `UPDATE_GOLDEN=1 cargo test --test render`.

use nginx_ha::config::nginx::{
    Directive, Listen, Location, LocationMatch, Method, Nginx, Return, Site, StatusPage, Tls,
    Upstream, UpstreamServer,
};
use nginx_ha::config::{self, Declaration, LoadError};
use nginx_ha::render::{NginxVersion, RenderError, RenderOptions, render, render_declaration};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Examples with an `nginx` part, and the golden file of each.
const EXAMPLES: &[&str] = &["seed000-sites", "two-node"];

fn example_path(name: &str) -> PathBuf {
    Path::new(ROOT)
        .join("examples")
        .join(format!("{name}.json"))
}

fn load_example(name: &str) -> Declaration {
    config::load(&example_path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn check_golden(file: &str, actual: &str) {
    let path = Path::new(ROOT).join("tests/golden").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
        eprintln!("updated {}", path.display());
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or_else(|| "length".to_string(), |i| format!("line {}", i + 1));
        panic!(
            "{} differs from the rendered output at {line}; if the change is intended, \
             run UPDATE_GOLDEN=1 cargo test --test render\n--- rendered ---\n{actual}",
            path.display()
        );
    }
}

#[test]
fn golden_examples() {
    for name in EXAMPLES {
        let out = render_declaration(&load_example(name), &RenderOptions::default()).unwrap();
        check_golden(&format!("{name}.conf"), &out);
    }
    // nginx 1.25.1+ gets `http2 on;` instead of the deprecated listen flag.
    let opts = RenderOptions {
        nginx_version: Some(NginxVersion(1, 26, 3)),
        ..RenderOptions::default()
    };
    let out = render_declaration(&load_example("seed000-sites"), &opts).unwrap();
    assert!(out.contains("    http2 on;\n") && !out.contains(" http2;"));
    check_golden("seed000-sites.nginx-1.26.conf", &out);
}

#[test]
fn every_example_passes_check_config() {
    for entry in std::fs::read_dir(Path::new(ROOT).join("examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            config::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    for name in EXAMPLES {
        let d = load_example(name);
        let a = render_declaration(&d, &RenderOptions::default()).unwrap();
        // A fresh parse of the same file, too: nothing may depend on
        // allocation or hashing order.
        let b = render_declaration(&load_example(name), &RenderOptions::default()).unwrap();
        assert_eq!(a.as_bytes(), b.as_bytes(), "{name}");
    }
}

#[test]
fn output_is_http_level_and_balanced() {
    for name in EXAMPLES {
        let out = render_declaration(&load_example(name), &RenderOptions::default()).unwrap();
        assert_structure(&out);
        let http_block = out
            .lines()
            .any(|l| !l.trim_start().starts_with('#') && l.contains("http {"));
        assert!(!http_block, "{name}: must be included inside http {{}}");
    }
}

#[test]
fn nonlocal_note_only_when_listening_on_a_vip() {
    let seed =
        render_declaration(&load_example("seed000-sites"), &RenderOptions::default()).unwrap();
    assert!(seed.contains("virtual IP(s) 203.0.113.10"));
    assert!(seed.contains("net.ipv4.ip_nonlocal_bind = 1"));
    assert!(!seed.contains("net.ipv6.ip_nonlocal_bind"));
    let two = render_declaration(&load_example("two-node"), &RenderOptions::default()).unwrap();
    assert!(!two.contains("nonlocal"));

    let d = load_example("seed000-sites");
    let n = d.nginx.as_ref().unwrap();
    let vips = nginx_ha::render::virtual_ips(&d);
    let nl = nginx_ha::config::nginx::listens_on_nonlocal(n, &vips);
    assert!(nl.v4 && !nl.v6);
    assert_eq!(
        nl.addresses,
        vec!["203.0.113.10".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn declaration_without_nginx_is_a_clear_error() {
    let d = config::load(&example_path("minimal")).unwrap();
    let e = render_declaration(&d, &RenderOptions::default()).unwrap_err();
    assert!(matches!(e, RenderError::NoNginx));
    assert!(e.to_string().contains("no \"nginx\" section"));
}

#[test]
fn render_refuses_an_invalid_nginx_part_on_its_own() {
    // A caller that skips check-config still cannot render bad values.
    let mut n = Nginx::default();
    n.sites.insert(
        "x".into(),
        Site {
            server_names: vec!["a.example; evil".into()],
            listen: vec![],
            locations: vec![],
            tls: None,
            extra_directives: vec![],
        },
    );
    match render(&n, &RenderOptions::default()) {
        Err(RenderError::Invalid(p)) => {
            assert!(
                p.iter().any(|p| p.path == "nginx.sites.x.serverNames.0"),
                "{p:?}"
            )
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- CLI

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nginx-ha"))
}

#[test]
fn cli_renders_to_stdout_and_atomically_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sites.conf");
    let st = bin()
        .args(["render-nginx", "--config"])
        .arg(example_path("two-node"))
        .arg("--out")
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let written = std::fs::read_to_string(&out).unwrap();
    let golden = std::fs::read_to_string(Path::new(ROOT).join("tests/golden/two-node.conf"));
    if std::env::var_os("UPDATE_GOLDEN").is_none() {
        assert_eq!(written, golden.unwrap());
    }
    // No temporary file is left beside the output.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(names.len(), 1);

    let o = bin()
        .args(["render-nginx", "-c"])
        .arg(example_path("two-node"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(String::from_utf8(o.stdout).unwrap(), written);
}

#[test]
fn cli_without_nginx_part_fails_clearly() {
    let o = bin()
        .args(["render-nginx", "-c"])
        .arg(example_path("minimal"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("minimal.json: the declaration has no \"nginx\" section"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn cli_refuses_an_invalid_declaration_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut v = example_json("seed000-sites");
    *v.pointer_mut("/nginx/sites/dev/serverNames/0").unwrap() = "a;b".into();
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    let out = dir.path().join("out.conf");
    let o = bin()
        .args(["render-nginx", "-c"])
        .arg(&cfg)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nginx.sites.dev.serverNames.0"));
    assert!(!out.exists());
}

// ---------------------------------------------------------- injection

fn example_json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(example_path(name)).unwrap()).unwrap()
}

fn problems_of(v: &serde_json::Value) -> Vec<config::Problem> {
    match config::parse(&serde_json::to_vec(v).unwrap()) {
        Ok(_) => Vec::new(),
        Err(LoadError::Invalid { problems }) => problems,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn injection_attempts_are_refused_with_their_path() {
    use serde_json::json;
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "/nginx/sites/dev/serverNames/0",
            json!("dev.example.com; include /etc/passwd"),
            "nginx.sites.dev.serverNames.0",
        ),
        (
            "/nginx/sites/dev/serverNames/0",
            json!("$host"),
            "nginx.sites.dev.serverNames.0",
        ),
        (
            "/nginx/sites/dev/serverNames/0",
            json!("a\nb"),
            "nginx.sites.dev.serverNames.0",
        ),
        (
            "/nginx/sites/dev/locations/0/path",
            json!("/svn {"),
            "nginx.sites.dev.locations.0.path",
        ),
        (
            "/nginx/sites/dev/locations/0/path",
            json!("/svn}"),
            "nginx.sites.dev.locations.0.path",
        ),
        (
            "/nginx/sites/dev/locations/0/path",
            json!("/a#b"),
            "nginx.sites.dev.locations.0.path",
        ),
        (
            "/nginx/sites/dev/locations/0/path",
            json!("svn"),
            "nginx.sites.dev.locations.0.path",
        ),
        (
            "/nginx/sites/dev/locations/0/proxyPass",
            json!("http://dev;return 200"),
            "nginx.sites.dev.locations.0.proxyPass",
        ),
        (
            "/nginx/sites/dev/locations/0/proxyPass",
            json!("http://$host"),
            "nginx.sites.dev.locations.0.proxyPass",
        ),
        (
            "/nginx/sites/dev/locations/0/proxyPass",
            json!("nosuchupstream"),
            "nginx.sites.dev.locations.0.proxyPass",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/args/0",
            json!("1m;\nserver_tokens on"),
            "nginx.sites.dev.locations.0.extraDirectives.0.args.0",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/args/0",
            json!("1m\" \"x"),
            "nginx.sites.dev.locations.0.extraDirectives.0.args.0",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/args/0",
            json!("'1m'"),
            "nginx.sites.dev.locations.0.extraDirectives.0.args.0",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/args/0",
            json!("1m\\"),
            "nginx.sites.dev.locations.0.extraDirectives.0.args.0",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/name",
            json!("include"),
            "nginx.sites.dev.locations.0.extraDirectives.0.name",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/name",
            json!("client_max_body_size 1m; x"),
            "nginx.sites.dev.locations.0.extraDirectives.0.name",
        ),
        (
            "/nginx/sites/dev/locations/0/extraDirectives/0/name",
            json!("location"),
            "nginx.sites.dev.locations.0.extraDirectives.0.name",
        ),
        (
            "/nginx/sites/www/tls/certificateFile",
            json!("/etc/x.crt;ssl_verify_client off"),
            "nginx.sites.www.tls.certificateFile",
        ),
        (
            "/nginx/sites/www/tls/certificateFile",
            json!("/etc/$ssl_server_name.crt"),
            "nginx.sites.www.tls.certificateFile",
        ),
        (
            "/nginx/sites/www/tls/keyFile",
            json!("www.key"),
            "nginx.sites.www.tls.keyFile",
        ),
        (
            "/nginx/upstreams/dev/servers/0/address",
            json!("198.51.100.21:80 backup;"),
            "nginx.upstreams.dev.servers.0.address",
        ),
        (
            "/nginx/upstreams/dev/servers/0/address",
            json!("198.51.100.21"),
            "nginx.upstreams.dev.servers.0.address",
        ),
        (
            "/nginx/upstreams/dev/servers/0/address",
            json!("unix:relative.sock"),
            "nginx.upstreams.dev.servers.0.address",
        ),
        (
            "/nginx/upstreams/www/method",
            json!({"hash": {"key": "$remote_addr}"}}),
            "nginx.upstreams.www.method.hash.key",
        ),
        (
            "/nginx/statusPage/path",
            json!("/status\n"),
            "nginx.statusPage.path",
        ),
        (
            "/nginx/statusPage/listen",
            json!("203.0.113.10:8081"),
            "nginx.statusPage.listen",
        ),
        (
            "/nginx/sites/dev/locations/2/return/target",
            json!("/x'y"),
            "nginx.sites.dev.locations.2.return.target",
        ),
        (
            "/nginx/sites/dev/locations/2",
            json!({"path": "/files", "root": "/srv/a b"}),
            "nginx.sites.dev.locations.2.root",
        ),
        (
            "/nginx/sites/dev/listen/0/port",
            json!(70000),
            "nginx.sites.dev.listen.0.port",
        ),
        (
            "/nginx/sites/dev/listen/0/ssl",
            json!(true),
            "nginx.sites.dev.listen.0.ssl",
        ),
        (
            "/nginx/upstreams/oa/servers/1/backup",
            json!(true),
            "nginx.upstreams.oa.servers.1.backup",
        ),
        (
            "/nginx/upstreams/www/servers/0/failTimeout",
            json!("500ms"),
            "nginx.upstreams.www.servers.0.failTimeout",
        ),
        // A name served twice on one socket: nginx would warn and ignore one.
        (
            "/nginx/sites/oa/serverNames/0",
            json!("dev.example.com"),
            "nginx.sites.oa.serverNames",
        ),
        // The health check must probe the status page that is rendered.
        (
            "/checks",
            json!({"nginx": {"statusUrl": "http://127.0.0.1:9999/nginx_status"}}),
            "checks.nginx.statusUrl",
        ),
        // Once-per-block directives given twice.
        (
            "/nginx/sites/dev/locations/0/extraDirectives/1",
            json!({"name": "client_max_body_size", "args": ["1m"]}),
            "nginx.sites.dev.locations.0.extraDirectives.1.name",
        ),
        (
            "/nginx/sites/www/extraDirectives",
            json!([{"name": "ssl_protocols", "args": ["TLSv1"]}]),
            "nginx.sites.www.extraDirectives.0.name",
        ),
        // Unknown keys are refused (typos of the escape hatch included),
        // with the same dotted path form as every other problem.
        (
            "/nginx/sites/dev/locations/0/proxy_pass",
            json!("dev"),
            "nginx.sites.dev.locations.0.proxy_pass",
        ),
    ];
    let base = example_json("seed000-sites");
    assert!(problems_of(&base).is_empty());
    for (pointer, value, path) in cases {
        let mut v = base.clone();
        set_pointer(&mut v, pointer, value.clone());
        let problems = problems_of(&v);
        assert!(
            problems.iter().any(|p| p.path == path),
            "{pointer} = {value}: expected a problem at {path}, got {problems:?}"
        );
        // Messages escape what they quote: one problem is one line.
        for p in &problems {
            assert!(!p.message.contains('\n'), "{p:?}");
        }
    }
}

/// Sets a JSON pointer, creating the last key of an object or appending to
/// an array if needed.
fn set_pointer(v: &mut serde_json::Value, pointer: &str, value: serde_json::Value) {
    if let Some(slot) = v.pointer_mut(pointer) {
        *slot = value;
        return;
    }
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    match v.pointer_mut(parent) {
        Some(serde_json::Value::Object(m)) => {
            m.insert(key.to_string(), value);
        }
        Some(serde_json::Value::Array(a)) if key.parse() == Ok(a.len()) => a.push(value),
        _ => panic!("cannot set {pointer}"),
    }
}

// ------------------------------------------------------- real nginx -t

enum NginxT {
    Ok { stderr: String },
    Failed { stderr: String },
}

/// The nginx binary and a way to run it in a private network namespace,
/// or `None` (after printing SKIPPED) when this machine cannot; with CI set
/// that is a failure instead.
fn nginx_available(test: &str) -> Option<PathBuf> {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let netns_ok = Command::new("unshare")
        .args(["-n", "true"])
        .status()
        .is_ok_and(|s| s.success());
    let why = match (&nginx, netns_ok) {
        (None, _) => "nginx is not installed",
        (Some(_), false) => "cannot create a network namespace (unshare -n; needs root)",
        (Some(_), true) => return nginx,
    };
    if std::env::var_os("CI").is_some() {
        panic!("{test}: {why}, and CI is set: the rendered configs must be checked by nginx -t");
    }
    eprintln!("SKIPPED {test}: {why}");
    None
}

/// `nginx -t` on `http_conf` included from a minimal main config, inside a
/// fresh network namespace with loopback up and, if asked, non-local binds.
fn nginx_t(nginx: &Path, http_conf: &str, nonlocal_bind: bool) -> NginxT {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("sites.conf"), http_conf).unwrap();
    std::fs::write(
        d.join("nginx.conf"),
        format!(
            "events {{}}\nhttp {{\n    include {};\n}}\n",
            d.join("sites.conf").display()
        ),
    )
    .unwrap();
    let script = r#"set -e
ip link set lo up
if [ "$2" = 1 ]; then sysctl -qw net.ipv4.ip_nonlocal_bind=1 net.ipv6.ip_nonlocal_bind=1; fi
exec "$3" -t -p "$1/" -c "$1/nginx.conf" -g "pid $1/nginx.pid; error_log stderr;"
"#;
    let o = Command::new("unshare")
        .args(["-n", "--", "sh", "-c", script, "sh"])
        .arg(d)
        .arg(if nonlocal_bind { "1" } else { "0" })
        .arg(nginx)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    if o.status.success() {
        NginxT::Ok { stderr }
    } else {
        NginxT::Failed { stderr }
    }
}

/// Warnings nginx -t prints that are expected here: OCSP stapling cannot
/// find an issuer for a self-signed certificate.
fn unexpected_warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("[warn]") || l.contains("[emerg]") || l.contains("[alert]"))
        .filter(|l| !l.contains("\"ssl_stapling\" ignored, issuer certificate not found"))
        .collect()
}

fn assert_nginx_accepts(nginx: &Path, what: &str, conf: &str) {
    match nginx_t(nginx, conf, true) {
        NginxT::Ok { stderr } => {
            let w = unexpected_warnings(&stderr);
            assert!(
                w.is_empty(),
                "{what}: nginx -t warned:\n{}\n{conf}",
                w.join("\n")
            );
        }
        NginxT::Failed { stderr } => panic!("{what}: nginx -t failed:\n{stderr}\n{conf}"),
    }
}

/// Points TLS files at the TEST-ONLY pair in tests/fixtures/secrets/, which nginx -t loads.
fn with_test_certs(d: &mut Declaration) {
    let secrets = Path::new(ROOT).join("tests/fixtures/secrets");
    if let Some(n) = d.nginx.as_mut() {
        for site in n.sites.values_mut() {
            if let Some(t) = site.tls.as_mut() {
                t.certificate_file = secrets.join("test-www.example.com.crt");
                t.key_file = secrets.join("test-www.example.com.key");
            }
        }
    }
}

#[test]
fn nginx_accepts_every_rendered_example() {
    let Some(nginx) = nginx_available("nginx_accepts_every_rendered_example") else {
        return;
    };
    for name in EXAMPLES {
        let mut d = load_example(name);
        with_test_certs(&mut d);
        let conf = render_declaration(&d, &RenderOptions::default()).unwrap();
        assert_nginx_accepts(&nginx, name, &conf);
    }
}

#[test]
fn vip_listeners_need_nonlocal_bind() {
    // Why the rendered comment matters: on a node without the VIP, nginx
    // cannot start unless ip_nonlocal_bind is set.
    let Some(nginx) = nginx_available("vip_listeners_need_nonlocal_bind") else {
        return;
    };
    let mut d = load_example("seed000-sites");
    with_test_certs(&mut d);
    let conf = render_declaration(&d, &RenderOptions::default()).unwrap();
    match nginx_t(&nginx, &conf, false) {
        NginxT::Failed { stderr } => {
            assert!(stderr.contains("203.0.113.10"), "{stderr}");
        }
        NginxT::Ok { stderr } => {
            panic!("expected a bind failure without ip_nonlocal_bind: {stderr}")
        }
    }
}

// ----------------------------------------------- generated declarations

/// Line-level shape every rendered config must have: balanced braces that
/// never go negative, and each statement ends in `;`, `{` or `}`.
fn assert_structure(out: &str) {
    let mut depth: i64 = 0;
    let mut in_map = false;
    for (i, line) in out.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        assert!(
            t.ends_with(';') || t.ends_with('{') || t == "}",
            "line {}: {line:?} is not a complete statement\n{out}",
            i + 1
        );
        if t.starts_with("map ") {
            in_map = true;
        }
        // Outside map bodies, quotes only come from our own templates.
        if !in_map {
            assert!(!t.contains('\''), "line {}: {line:?}", i + 1);
        }
        for c in t.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0, "line {}: unbalanced '}}'\n{out}", i + 1);
        }
        if depth == 0 {
            in_map = false;
        }
        assert!(
            depth <= 3,
            "line {}: nested deeper than http > server > location",
            i + 1
        );
    }
    assert_eq!(depth, 0, "unbalanced braces\n{out}");
    assert!(out.ends_with("}\n"));
}

fn arb_upstream() -> impl Strategy<Value = Upstream> {
    let method = prop_oneof![
        Just(Method::RoundRobin),
        Just(Method::LeastConn),
        Just(Method::IpHash),
        Just(Method::Random),
        (
            any::<bool>(),
            prop::sample::select(vec!["$request_uri", "$remote_addr$uri"])
        )
            .prop_map(|(consistent, key)| Method::Hash {
                key: key.into(),
                consistent
            }),
    ];
    let server = (
        1u8..=254,
        prop::sample::select(vec![80u16, 8080, 8443]),
        prop::option::of(1u64..=10),
        prop::option::of(0u64..=5),
        prop::option::of(1u64..=60),
        any::<bool>(),
        any::<bool>(),
    );
    (
        method,
        prop::collection::vec(server, 1..4),
        prop::option::of(1u64..=64),
    )
        .prop_map(|(method, servers, keepalive)| {
            let n = servers.len();
            let servers = servers
                .into_iter()
                .enumerate()
                .map(
                    |(i, (host, port, weight, max_fails, ft, backup, down))| UpstreamServer {
                        // The index keeps addresses distinct.
                        address: format!(
                            "198.51.100.{}:{}",
                            (usize::from(host) + i * 37) % 254 + 1,
                            port + i as u16
                        ),
                        weight,
                        max_fails,
                        fail_timeout: ft.map(nginx_ha::config::HumanDuration::from_secs),
                        // Never all backups; only where the method allows it.
                        backup: backup && i + 1 < n && method.allows_backup(),
                        down: down && !(backup && i + 1 < n && method.allows_backup()),
                    },
                )
                .collect();
            Upstream {
                servers,
                method,
                keepalive,
            }
        })
}

#[derive(Debug, Clone)]
enum Serve {
    Upstream(usize, bool),
    Url,
    Root,
    Return(u64),
}

fn arb_location(i: usize) -> impl Strategy<Value = (Serve, bool, Vec<Directive>)> {
    let serve = prop_oneof![
        4 => (0usize..3, any::<bool>()).prop_map(|(u, ws)| Serve::Upstream(u, ws)),
        1 => Just(Serve::Url),
        1 => Just(Serve::Root),
        1 => prop::sample::select(vec![200u64, 301, 404, 444]).prop_map(Serve::Return),
    ];
    let directives = prop::collection::vec(
        prop::sample::select(vec![
            ("proxy_read_timeout", vec!["30s"]),
            ("client_max_body_size", vec!["10m"]),
            ("add_header", vec!["X-Frame-Options", "SAMEORIGIN"]),
            ("add_header", vec!["X-Note", "two words"]),
            ("proxy_set_header", vec!["X-Request-Id", "$request_id"]),
        ]),
        0..3,
    );
    (serve, Just(i == 0), directives).prop_map(|(s, exact, mut ds)| {
        // nginx allows most directives once per block (validation refuses
        // repeats, tested separately); keep add_header/proxy_set_header.
        let mut seen = Vec::new();
        ds.retain(|(n, _)| {
            n.starts_with("add_") || n.starts_with("proxy_set") || {
                let fresh = !seen.contains(n);
                seen.push(*n);
                fresh
            }
        });
        let ds = ds
            .into_iter()
            .map(|(n, a)| Directive {
                name: n.into(),
                args: a.into_iter().map(String::from).collect(),
            })
            .collect();
        (s, exact, ds)
    })
}

fn arb_nginx() -> impl Strategy<Value = Nginx> {
    let site = (
        any::<bool>(), // tls
        any::<bool>(), // hsts
        any::<bool>(), // redirect
        any::<bool>(), // stapling
        prop::sample::select(vec![80u64, 8080]),
        prop::collection::vec(arb_location(0), 1..4),
        1usize..3, // aliases
    );
    (
        prop::collection::vec(arb_upstream(), 3..=3),
        prop::collection::vec(site, 1..4),
        any::<bool>(), // http2, one choice for the shared 443 socket
        any::<bool>(), // catch-all default server
    )
        .prop_map(|(ups, sites, http2, default_server)| {
            let upstreams: BTreeMap<String, Upstream> = ups
                .into_iter()
                .enumerate()
                .map(|(i, u)| (format!("up{i}"), u))
                .collect();
            let sites = sites
                .into_iter()
                .enumerate()
                .map(
                    |(si, (tls, hsts, redirect, stapling, port, locs, aliases))| {
                        let locations = locs
                            .into_iter()
                            .enumerate()
                            .map(|(li, (serve, _, ds))| {
                                let mut l = Location {
                                    path: if li == 0 {
                                        "/".into()
                                    } else {
                                        format!("/p{li}/")
                                    },
                                    match_kind: if li == 2 {
                                        LocationMatch::Exact
                                    } else {
                                        LocationMatch::Prefix
                                    },
                                    proxy_pass: None,
                                    root: None,
                                    return_: None,
                                    websockets: false,
                                    extra_directives: ds,
                                };
                                match serve {
                                    Serve::Upstream(u, ws) => {
                                        l.proxy_pass = Some(format!("up{u}"));
                                        l.websockets = ws;
                                    }
                                    Serve::Url => {
                                        l.proxy_pass =
                                            Some("http://198.51.100.200:8080/app/".into())
                                    }
                                    Serve::Root => l.root = Some(format!("/srv/site{si}").into()),
                                    Serve::Return(s) => {
                                        l.return_ = Some(Return {
                                            status: s,
                                            target: match s {
                                                301 => {
                                                    Some("https://example.com$request_uri".into())
                                                }
                                                200 => Some("ok from $hostname".into()),
                                                _ => None,
                                            },
                                        })
                                    }
                                }
                                l
                            })
                            .collect();
                        let secrets = Path::new(ROOT).join("tests/fixtures/secrets");
                        let site = Site {
                            server_names: (0..aliases)
                                .map(|a| format!("s{si}-{a}.example.com"))
                                .collect(),
                            listen: if tls {
                                vec![
                                    Listen {
                                        ssl: true,
                                        ..Listen::plain(443)
                                    },
                                    Listen::plain(port),
                                ]
                            } else {
                                vec![Listen::plain(port)]
                            },
                            locations,
                            tls: tls.then(|| Tls {
                                certificate_file: secrets.join("test-www.example.com.crt"),
                                key_file: secrets.join("test-www.example.com.key"),
                                redirect_http: redirect,
                                hsts,
                                http2,
                                ocsp_stapling: stapling,
                            }),
                            extra_directives: vec![],
                        };
                        (format!("site{si}"), site)
                    },
                )
                .collect();
            Nginx {
                upstreams,
                sites,
                status_page: StatusPage::default(),
                default_server,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_declarations_render_to_well_formed_config(n in arb_nginx()) {
        let mut p = nginx_ha::config::Problems::default();
        nginx_ha::config::nginx::validate(&mut p, &n);
        prop_assert!(p.is_empty(), "generator produced an invalid declaration: {:?}", p.into_vec());
        let out = render(&n, &RenderOptions::default()).unwrap();
        assert_structure(&out);
        prop_assert_eq!(&out, &render(&n, &RenderOptions::default()).unwrap());
        // The declaration round-trips through its JSON form unchanged.
        let json = serde_json::to_string(&n).unwrap();
        let back: Nginx = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &n);
    }
}

proptest! {
    // Each case runs nginx -t (tens of milliseconds), so fewer cases.
    #![proptest_config(ProptestConfig {
        cases: 12,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn generated_declarations_pass_nginx_t(n in arb_nginx()) {
        if let Some(nginx) = nginx_available("generated_declarations_pass_nginx_t") {
            let out = render(&n, &RenderOptions::default()).unwrap();
            assert_nginx_accepts(&nginx, "generated", &out);
        }
    }
}
