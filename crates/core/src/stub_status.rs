//! nginx's stub_status page:
//!
//! ```text
//! Active connections: 2
//! server accepts handled requests
//!  16 16 31
//! Reading: 0 Writing: 1 Waiting: 1
//! ```

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StubStatus {
    pub active: u64,
    pub accepts: u64,
    pub handled: u64,
    pub requests: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a stub_status page: {0}")]
pub struct ParseError(&'static str);

fn num(s: Option<&str>, what: &'static str) -> Result<u64, ParseError> {
    s.and_then(|v| v.parse().ok()).ok_or(ParseError(what))
}

pub fn parse(body: &str) -> Result<StubStatus, ParseError> {
    let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
    let active = lines
        .next()
        .and_then(|l| l.strip_prefix("Active connections:"))
        .ok_or(ParseError("no \"Active connections:\" line"))?;
    let active = num(Some(active.trim()), "active connections")?;
    if lines.next() != Some("server accepts handled requests") {
        return Err(ParseError("no counters header"));
    }
    let mut c = lines
        .next()
        .ok_or(ParseError("no counters"))?
        .split_whitespace();
    let accepts = num(c.next(), "accepts")?;
    let handled = num(c.next(), "handled")?;
    let requests = num(c.next(), "requests")?;
    let rw: Vec<&str> = lines
        .next()
        .ok_or(ParseError("no Reading/Writing/Waiting line"))?
        .split_whitespace()
        .collect();
    let field = |name: &str, what: &'static str| -> Result<u64, ParseError> {
        let i = rw.iter().position(|w| *w == name).ok_or(ParseError(what))?;
        num(rw.get(i + 1).copied(), what)
    };
    Ok(StubStatus {
        active,
        accepts,
        handled,
        requests,
        reading: field("Reading:", "reading")?,
        writing: field("Writing:", "writing")?,
        waiting: field("Waiting:", "waiting")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nginx_output() {
        let s = parse(
            "Active connections: 2 \nserver accepts handled requests\n 16 16 31 \nReading: 0 Writing: 1 Waiting: 1 \n",
        )
        .unwrap();
        assert_eq!(
            s,
            StubStatus {
                active: 2,
                accepts: 16,
                handled: 16,
                requests: 31,
                reading: 0,
                writing: 1,
                waiting: 1
            }
        );
    }

    #[test]
    fn refuses_other_pages() {
        assert!(parse("<html>welcome to nginx</html>").is_err());
        assert!(parse("Active connections: x").is_err());
        assert!(parse("").is_err());
        assert!(parse("Active connections: 1\nserver accepts handled requests\n 1 2\n").is_err());
    }
}
