//! Semantic checks on the health checks and the notify hooks.

use super::validate::{Problems, check_abs_path, is_safe_name, truncate};
use super::{Declaration, ExtraCheck, ExtraCheckType, limits};
use std::path::Path;
use std::time::Duration;

fn check_timing(
    p: &mut Problems,
    at: &str,
    interval: Duration,
    timeout: Duration,
    rise: u64,
    fall: u64,
    weight: i64,
) {
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(3600) {
        p.push(format!("{at}.interval"), "must be between 10ms and 1h");
    }
    if timeout.is_zero() || timeout > interval {
        p.push(
            format!("{at}.timeout"),
            "must be more than 0 and at most the interval",
        );
    }
    if let Some(e) = limits::out_of(&limits::RISE_FALL, rise) {
        p.push(format!("{at}.rise"), e);
    }
    if let Some(e) = limits::out_of(&limits::RISE_FALL, fall) {
        p.push(format!("{at}.fall"), e);
    }
    if let Some(e) = limits::out_of(&limits::WEIGHT, weight) {
        p.push(format!("{at}.weight"), e);
    }
}

pub(super) fn validate_checks(p: &mut Problems, d: &Declaration) {
    let n = &d.checks.nginx;
    if n.enable {
        check_abs_path(p, "checks.nginx.pidFile", &n.pid_file);
        match super::url::HttpUrl::parse(&n.status_url) {
            Err(e) => p.push("checks.nginx.statusUrl", e),
            // stub_status shows connection counts; it is served on loopback
            // only, and a check of another machine's nginx would keep this
            // node's VIP up while its own nginx is dead.
            Ok(url) if !url.addr.ip().is_loopback() => p.push(
                "checks.nginx.statusUrl",
                format!(
                    "\"{}\" is not a loopback address; the nginx check probes this node's own nginx (e.g. http://127.0.0.1:8081/nginx_status)",
                    truncate(&n.status_url)
                ),
            ),
            Ok(_) => {}
        }
        check_timing(
            p,
            "checks.nginx",
            n.interval.as_duration(),
            n.timeout.as_duration(),
            n.rise,
            n.fall,
            n.weight,
        );
    }
    for (name, c) in &d.checks.extra {
        let at = format!("checks.extra.{name}");
        if !is_safe_name(name) || name == "nginx" {
            p.push(
                &at,
                "check names must be 1-64 characters of letters, digits, '-' and '_', and not \"nginx\"",
            );
        }
        validate_extra(p, &at, c);
    }
}

fn validate_extra(p: &mut Problems, at: &str, c: &ExtraCheck) {
    check_timing(
        p,
        at,
        c.interval.as_duration(),
        c.timeout.as_duration(),
        c.rise,
        c.fall,
        c.weight,
    );
    let misplaced = |p: &mut Problems, field: &str, set: bool| {
        if set {
            p.push(
                format!("{at}.{field}"),
                format!("does not apply to a {:?} check", c.kind).to_lowercase(),
            );
        }
    };
    match c.kind {
        ExtraCheckType::Http => {
            match &c.url {
                None => p.push(format!("{at}.url"), "is required for an http check"),
                Some(u) => {
                    if let Err(e) = super::url::HttpUrl::parse(u) {
                        p.push(format!("{at}.url"), e);
                    }
                }
            }
            if let Some(s) = c.expect_status
                && let Some(e) = limits::out_of(&limits::EXPECT_STATUS, s)
            {
                p.push(
                    format!("{at}.expectStatus"),
                    format!("{e}: not an HTTP status"),
                );
            }
            misplaced(p, "address", c.address.is_some());
            misplaced(p, "command", c.command.is_some());
        }
        ExtraCheckType::Tcp => {
            match &c.address {
                None => p.push(format!("{at}.address"), "is required for a tcp check"),
                Some(a) => {
                    if a.parse::<std::net::SocketAddr>().is_err() {
                        p.push(
                            format!("{at}.address"),
                            format!(
                                "\"{}\" is not ADDRESS:PORT (e.g. 127.0.0.1:443 or [::1]:443)",
                                truncate(a)
                            ),
                        );
                    }
                }
            }
            misplaced(p, "url", c.url.is_some());
            misplaced(p, "expectStatus", c.expect_status.is_some());
            misplaced(p, "command", c.command.is_some());
        }
        ExtraCheckType::Exec => {
            match &c.command {
                None => p.push(format!("{at}.command"), "is required for an exec check"),
                Some(argv) => check_argv(p, &format!("{at}.command"), argv),
            }
            misplaced(p, "url", c.url.is_some());
            misplaced(p, "expectStatus", c.expect_status.is_some());
            misplaced(p, "address", c.address.is_some());
        }
    }
}

fn check_argv(p: &mut Problems, at: &str, argv: &[String]) {
    match argv.first() {
        None => p.push(at, "must name a program"),
        Some(prog) => check_abs_path(p, &format!("{at}.0"), Path::new(prog)),
    }
    for (i, a) in argv.iter().enumerate() {
        if a.contains('\0') {
            p.push(format!("{at}.{i}"), "must not contain a NUL byte");
        }
    }
}

pub(super) fn validate_notify(p: &mut Problems, d: &Declaration) {
    let n = &d.notify;
    for (event, cmds) in [
        ("master", &n.master),
        ("backup", &n.backup),
        ("fault", &n.fault),
        ("stop", &n.stop),
    ] {
        for (i, argv) in cmds.iter().enumerate() {
            check_argv(p, &format!("notify.{event}.{i}"), argv);
        }
    }
    let t = n.timeout.as_duration();
    if t.is_zero() || t > Duration::from_secs(600) {
        p.push("notify.timeout", "must be more than 0 and at most 10m");
    }
}
