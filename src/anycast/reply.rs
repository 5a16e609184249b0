//! BIRD's control-socket replies (BIRD's doc/prog "CLI protocol"): lines
//! `DDDD-text` (more follow), `DDDD text` (the last), ` text` (continues
//! the previous code), and `+text` (asynchronous output, ignored). Codes
//! 8xxx are run-time errors, 9xxx parse errors. Everything is bounded: the
//! socket is local, but a confused or hostile peer must not make the
//! daemon buffer without end.

/// Longest line accepted (BIRD's own buffer is 4 KiB).
pub const MAX_LINE: usize = 4096;
/// Most bytes in one reply: `show protocols <one>` is a few hundred.
pub const MAX_REPLY: usize = 64 * 1024;
/// Most lines in one reply.
pub const MAX_LINES: usize = 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub code: u16,
    pub text: String,
}

/// One whole reply: its lines (continuations carry the code before them)
/// and the code of the last line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub lines: Vec<Line>,
    pub code: u16,
}

impl Reply {
    /// 8xxx (run-time error) or 9xxx (parse error).
    pub fn is_error(&self) -> bool {
        self.code >= 8000
    }

    /// The last line's text (where BIRD puts an error message).
    pub fn message(&self) -> &str {
        self.lines.last().map_or("", |l| l.text.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("BIRD sent a line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("BIRD sent a reply longer than {MAX_REPLY} bytes or {MAX_LINES} lines")]
    TooLong,
    #[error("BIRD sent a line that is not its protocol: {0:?}")]
    Malformed(String),
}

/// Reads a reply line by line.
#[derive(Debug, Default)]
pub struct Parser {
    lines: Vec<Line>,
    bytes: usize,
}

impl Parser {
    /// One line without its `\n`. `Ok(Some(reply))` when it was the last.
    pub fn push(&mut self, raw: &[u8]) -> Result<Option<Reply>, ReplyError> {
        if raw.len() > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        self.bytes += raw.len() + 1;
        if self.bytes > MAX_REPLY || self.lines.len() >= MAX_LINES {
            return Err(ReplyError::TooLong);
        }
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        match raw {
            [b'+', rest @ ..] => {
                // Asynchronous output (e.g. `echo` of log messages): not
                // part of the reply.
                let _ = rest;
                Ok(None)
            }
            [b' ', rest @ ..] => {
                let Some(code) = self.lines.last().map(|l| l.code) else {
                    return Err(ReplyError::Malformed(text(raw)));
                };
                self.lines.push(Line {
                    code,
                    text: text(rest),
                });
                Ok(None)
            }
            [a, b, c, d, sep @ (b'-' | b' '), rest @ ..]
                if [a, b, c, d].iter().all(|x| x.is_ascii_digit()) =>
            {
                let code = [a, b, c, d]
                    .iter()
                    .fold(0u16, |n, x| n * 10 + u16::from(**x - b'0'));
                self.lines.push(Line {
                    code,
                    text: text(rest),
                });
                if *sep == b' ' {
                    let lines = std::mem::take(&mut self.lines);
                    self.bytes = 0;
                    Ok(Some(Reply { lines, code }))
                } else {
                    Ok(None)
                }
            }
            _ => Err(ReplyError::Malformed(text(&raw[..raw.len().min(80)]))),
        }
    }
}

/// Parses a whole reply given at once (tests, fuzzing): the reply and the
/// bytes after it.
pub fn parse_all(bytes: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut p = Parser::default();
    let mut at = 0;
    while let Some(nl) = bytes[at..].iter().position(|b| *b == b'\n') {
        if nl > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let line = &bytes[at..at + nl];
        at += nl + 1;
        if let Some(r) = p.push(line)? {
            return Ok(Some((r, at)));
        }
    }
    if bytes.len() - at > MAX_LINE {
        return Err(ReplyError::LineTooLong);
    }
    Ok(None)
}

/// BIRD's state of a protocol from `show protocols "<name>"`: the `State`
/// column (`up`, `down`, `start`, ...) of the row that names it, with the
/// `Info` column.
pub fn protocol_state(reply: &Reply, name: &str) -> Option<(String, String)> {
    reply.lines.iter().filter(|l| l.code == 1002).find_map(|l| {
        let mut cols = l.text.split_whitespace();
        (cols.next()? == name).then_some(())?;
        let _proto = cols.next()?;
        let _table = cols.next()?;
        let state = cols.next()?.to_string();
        let _since = cols.next();
        let info: Vec<&str> = cols.collect();
        Some((state, info.join(" ")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Debian's bird2 2.0.12 (doc/anycast.md has the config).
    const GREETING: &[u8] = b"0001 BIRD 2.0.12 ready.\n";
    const SHOW_DOWN: &[u8] = b"2002-Name       Proto      Table      State  Since         Info\n1002-nginx_ha4  Static     master4    down   03:51:55.804  \n0000 \n";
    const SHOW_UP: &[u8] = b"2002-Name       Proto      Table      State  Since         Info\n1002-nginx_ha4  Static     master4    up     03:51:57.616  \n0000 \n";
    const SHOW_ALL: &[u8] = b"2002-Name       Proto      Table      State  Since         Info\n1002-device1    Device     ---        up     03:51:55.804  \n nginx_ha4  Static     master4    down   03:52:07.004  \n nginx_ha6  Static     master6    down   03:51:55.804  \n0000 \n";
    const ENABLED: &[u8] = b"0011-nginx_ha4: enabled\n0000 \n";
    const ALREADY: &[u8] = b"0010-nginx_ha4: already enabled\n0000 \n";
    const NO_MATCH: &[u8] = b"8003 No protocols match\n";
    const SYNTAX: &[u8] =
        b"9001 syntax error, unexpected CF_SYM_UNDEFINED, expecting CF_SYM_KNOWN or TEXT or ALL\n";
    const STATUS: &[u8] = b"1000-BIRD 2.0.12\n1011-Router ID is 192.0.2.1\n Hostname is vm\n Current server time is 2026-12-01 03:52:03.137\n0013 Daemon is up and running\n";

    fn one(b: &[u8]) -> Reply {
        let (r, used) = parse_all(b).expect("parses").expect("complete");
        assert_eq!(used, b.len());
        r
    }

    #[test]
    fn captured_replies() {
        assert_eq!(one(GREETING).code, 1);
        assert_eq!(one(GREETING).message(), "BIRD 2.0.12 ready.");
        let r = one(SHOW_DOWN);
        assert_eq!(r.code, 0);
        assert_eq!(
            protocol_state(&r, "nginx_ha4"),
            Some(("down".into(), String::new()))
        );
        assert_eq!(protocol_state(&one(SHOW_UP), "nginx_ha4").unwrap().0, "up");
        assert_eq!(protocol_state(&one(SHOW_UP), "nginx_ha6"), None);
        // Continuation lines carry the code of the line they continue.
        let all = one(SHOW_ALL);
        assert_eq!(protocol_state(&all, "nginx_ha6").unwrap().0, "down");
        assert_eq!(one(ENABLED).lines[0].code, 11);
        assert_eq!(one(ALREADY).lines[0].code, 10);
        let e = one(NO_MATCH);
        assert!(e.is_error());
        assert_eq!(e.message(), "No protocols match");
        assert!(one(SYNTAX).is_error());
        let s = one(STATUS);
        assert_eq!(s.code, 13);
        assert_eq!(s.lines[2].code, 1011);
        assert!(!s.is_error());
    }

    #[test]
    fn partial_and_bad_input() {
        assert_eq!(parse_all(b"0011-nginx_ha4: enabled\n"), Ok(None));
        assert_eq!(parse_all(b"0000"), Ok(None));
        assert!(matches!(
            parse_all(b" orphan continuation\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_all(b"12a4 x\n"),
            Err(ReplyError::Malformed(_))
        ));
        assert!(matches!(
            parse_all(b"0000\n"),
            Err(ReplyError::Malformed(_))
        ));
        let long = vec![b'1'; MAX_LINE + 2];
        assert_eq!(parse_all(&long), Err(ReplyError::LineTooLong));
        let many = b"1002-x\n".repeat(MAX_LINES + 1);
        assert_eq!(parse_all(&many), Err(ReplyError::TooLong));
        // Asynchronous lines are skipped.
        let r = one(b"+log line\n0000 \n");
        assert_eq!(r.lines.len(), 1);
    }
}
