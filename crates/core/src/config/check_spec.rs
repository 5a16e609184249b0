//! The health checks as they run: parsed once from the declaration into
//! the types the probes need (a URL, a socket address, an argv, counts as
//! `u32`), so nothing downstream parses again, narrows, or quietly falls
//! back to a default. A declaration that passed `validate` always parses;
//! one that did not is refused here by name.

use super::url::HttpUrl;
use super::{ExtraCheck, ExtraCheckType, NginxCheck};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// Which HTTP status means healthy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Status(u16),
    /// Unset `expectStatus`: any 2xx (a health endpoint may answer 204).
    Any2xx,
}

impl Expect {
    pub fn accepts(self, code: u16) -> bool {
        match self {
            Expect::Status(s) => code == s,
            Expect::Any2xx => (200..300).contains(&code),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    Http { url: HttpUrl, expect: Expect },
    Tcp { addr: SocketAddr },
    Exec { argv: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtraSpec {
    pub probe: Probe,
    pub timing: Timing,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NginxSpec {
    pub pid_file: PathBuf,
    pub status_url: HttpUrl,
    pub timing: Timing,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("checks.{check}.{field}: {why}")]
pub struct SpecError {
    pub check: String,
    pub field: &'static str,
    pub why: String,
}

fn err(check: &str, field: &'static str, why: impl Into<String>) -> SpecError {
    SpecError {
        check: check.to_string(),
        field,
        why: why.into(),
    }
}

fn count(check: &str, field: &'static str, v: u64) -> Result<u32, SpecError> {
    u32::try_from(v).map_err(|_| err(check, field, format!("{v} is out of range")))
}

fn timing(
    check: &str,
    interval: Duration,
    timeout: Duration,
    rise: u64,
    fall: u64,
) -> Result<Timing, SpecError> {
    Ok(Timing {
        interval,
        timeout,
        rise: count(check, "rise", rise)?,
        fall: count(check, "fall", fall)?,
    })
}

impl ExtraSpec {
    pub fn parse(name: &str, c: &ExtraCheck) -> Result<ExtraSpec, SpecError> {
        let at = format!("extra.{name}");
        let probe = match c.kind {
            ExtraCheckType::Http => {
                let raw = c
                    .url
                    .as_deref()
                    .ok_or_else(|| err(&at, "url", "is required"))?;
                let url = HttpUrl::parse(raw).map_err(|e| err(&at, "url", e))?;
                let expect = match c.expect_status {
                    None => Expect::Any2xx,
                    Some(s) => Expect::Status(
                        u16::try_from(s).map_err(|_| err(&at, "expectStatus", s.to_string()))?,
                    ),
                };
                Probe::Http { url, expect }
            }
            ExtraCheckType::Tcp => {
                let raw = c
                    .address
                    .as_deref()
                    .ok_or_else(|| err(&at, "address", "is required"))?;
                let addr = raw
                    .parse()
                    .map_err(|_| err(&at, "address", format!("\"{raw}\" is not ADDRESS:PORT")))?;
                Probe::Tcp { addr }
            }
            ExtraCheckType::Exec => {
                let argv = c
                    .command
                    .clone()
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| err(&at, "command", "is required"))?;
                Probe::Exec { argv }
            }
        };
        let t = timing(
            &at,
            c.interval.as_duration(),
            c.timeout.as_duration(),
            c.rise,
            c.fall,
        )?;
        Ok(ExtraSpec { probe, timing: t })
    }
}

impl NginxSpec {
    pub fn parse(c: &NginxCheck) -> Result<NginxSpec, SpecError> {
        let status_url = HttpUrl::parse(&c.status_url).map_err(|e| err("nginx", "statusUrl", e))?;
        Ok(NginxSpec {
            pid_file: c.pid_file.clone(),
            status_url,
            timing: timing(
                "nginx",
                c.interval.as_duration(),
                c.timeout.as_duration(),
                c.rise,
                c.fall,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;

    fn extra(v: serde_json::Value) -> ExtraCheck {
        serde_json::from_value(v).expect("shape")
    }

    #[test]
    fn expect_status_or_any_2xx() {
        assert!(Expect::Any2xx.accepts(204));
        assert!(!Expect::Any2xx.accepts(301));
        assert!(Expect::Status(503).accepts(503));
        assert!(!Expect::Status(204).accepts(200));
    }

    #[test]
    fn every_check_of_a_valid_declaration_parses() {
        let text = include_str!("../../../../examples/complete.json");
        let d = parse(text.as_bytes()).expect("the complete example is valid");
        assert!(NginxSpec::parse(&d.checks.nginx).is_ok());
        assert!(!d.checks.extra.is_empty());
        for (n, c) in &d.checks.extra {
            ExtraSpec::parse(n, c).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    #[test]
    fn unvalidated_checks_are_refused_by_name_not_defaulted() {
        let e = ExtraSpec::parse("api", &extra(serde_json::json!({"type": "http"}))).unwrap_err();
        assert_eq!(e.to_string(), "checks.extra.api.url: is required");
        let e = ExtraSpec::parse(
            "db",
            &extra(serde_json::json!({"type": "tcp", "address": "db:5432"})),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "checks.extra.db.address: \"db:5432\" is not ADDRESS:PORT"
        );
        let e = ExtraSpec::parse(
            "x",
            &extra(serde_json::json!({"type": "exec", "command": []})),
        )
        .unwrap_err();
        assert_eq!(e.field, "command");
        let s = ExtraSpec::parse(
            "api",
            &extra(serde_json::json!({"type": "http", "url": "http://127.0.0.1:8080/healthz"})),
        )
        .expect("valid");
        assert!(matches!(
            s.probe,
            Probe::Http {
                expect: Expect::Any2xx,
                ..
            }
        ));
    }
}
