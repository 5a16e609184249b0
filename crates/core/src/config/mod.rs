//! The declaration: parsing, validation, and the errors that name the JSON
//! path of every problem.

pub mod anycast;
pub mod check_spec;
mod duplicate_keys;
pub mod duration;
pub mod limits;
pub mod nginx;
pub mod schema;
mod types;
pub mod url;
mod validate;
mod validate_anycast;
mod validate_checks;
mod validate_metrics;

pub use anycast::{Anycast, Bird};
pub use duration::HumanDuration;
pub use types::*;
pub use validate::{Problems, validate};

use std::fmt;

/// Declarations are small; anything bigger is a mistake or an attack, and
/// refusing it early keeps a 10 MB string out of every later step.
pub const MAX_DECLARATION_BYTES: usize = 1 << 20;

/// One thing wrong with a declaration, at one JSON path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Dotted JSON path, e.g. `instances.web.virtualRouterId`; `.` for the
    /// document itself.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read (the daemon's reader says why).
    #[error("{0}")]
    Read(String),
    #[error(
        "{path}: a declaration may be at most {MAX_DECLARATION_BYTES} bytes; this one is larger"
    )]
    TooLarge { path: String },
    #[error("{}", .problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
}

impl LoadError {
    /// Every problem as its own line, for `check-config` and the logs.
    pub fn lines(&self) -> Vec<String> {
        self.lines_with_prefix("")
    }

    /// Like `lines`, with `prefix` before every JSON path (`.`, the whole
    /// document, becomes the prefix without its trailing dot).
    pub fn lines_with_prefix(&self, prefix: &str) -> Vec<String> {
        match self {
            LoadError::Invalid { problems } => problems
                .iter()
                .map(|p| match (prefix, p.path.as_str()) {
                    ("", _) => p.to_string(),
                    (_, ".") => format!("{}: {}", prefix.trim_end_matches('.'), p.message),
                    _ => format!("{prefix}{}: {}", p.path, p.message),
                })
                .collect(),
            other => vec![other.to_string()],
        }
    }
}

/// Parses and validates a declaration from bytes.
pub fn parse(bytes: &[u8]) -> Result<Declaration, LoadError> {
    if bytes.len() > MAX_DECLARATION_BYTES {
        return Err(LoadError::TooLarge {
            path: "<input>".into(),
        });
    }
    if let Some(problem) = byte_order_mark(bytes) {
        return Err(LoadError::Invalid {
            problems: vec![problem],
        });
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let decl: Declaration = match serde_path_to_error::deserialize(&mut de) {
        Ok(d) => d,
        Err(e) => {
            let path = dotted(e.path());
            let inner = e.into_inner();
            let message = if inner.is_syntax() || inner.is_eof() {
                format!("not valid JSON: {inner}")
            } else {
                strip_position(&inner.to_string())
            };
            return Err(LoadError::Invalid {
                problems: vec![Problem { path, message }],
            });
        }
    };
    if let Err(e) = de.end() {
        return Err(LoadError::Invalid {
            problems: vec![Problem {
                path: ".".into(),
                message: format!("not valid JSON: {e}"),
            }],
        });
    }
    let dups = duplicate_keys::find(bytes);
    if !dups.is_empty() {
        return Err(LoadError::Invalid { problems: dups });
    }
    let shape = positional_structs(bytes, &decl);
    if !shape.is_empty() {
        return Err(LoadError::Invalid { problems: shape });
    }
    let problems = validate(&decl);
    if problems.is_empty() {
        Ok(decl)
    } else {
        Err(LoadError::Invalid { problems })
    }
}

/// Editors on some systems save with a byte order mark, which JSON does
/// not allow (RFC 8259 §8.1); "expected value at column 1" would send the
/// reader looking for a typo they cannot see.
fn byte_order_mark(bytes: &[u8]) -> Option<Problem> {
    let what = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        "starts with a UTF-8 byte order mark (BOM, bytes EF BB BF); save it as UTF-8 without a BOM"
    } else if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        "starts with a UTF-16 byte order mark (BOM): the file is UTF-16; save it as UTF-8 without a BOM"
    } else {
        return None;
    };
    Some(Problem {
        path: ".".into(),
        message: format!("not valid JSON: the file {what}"),
    })
}

/// The dotted form of a serde path (`instances.web.virtualIps.0`), the form
/// validation writes too, so a path can be grepped and matched. Built from
/// the segments rather than from serde_path_to_error's Display, which
/// writes indices as `[0]` and an empty key as nothing at all: `{"": 1}`
/// would be reported at path "" and name no field. An empty key is shown
/// as `""`. A trailing unknown segment (a syntax error where a key should
/// be, e.g. a `//` comment) is dropped: the error is in the enclosing
/// object, which is more use to a reader than serde's `?`.
fn dotted(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut segments: Vec<&Segment> = path.iter().collect();
    while matches!(segments.last(), Some(Segment::Unknown)) {
        segments.pop();
    }
    let parts: Vec<String> = segments
        .into_iter()
        .map(|s| match s {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } | Segment::Enum { variant: key } if key.is_empty() => {
                "\"\"".into()
            }
            Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
            Segment::Unknown => "?".into(),
        })
        .collect();
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join(".")
    }
}

/// serde's derived structs also accept a JSON array, read by position:
/// `"node": ["lb1", 150]` or a whole declaration as `[{...}, {...}]` would
/// pass, though no field is named and a generator that emits fields in
/// another order would silently set the wrong ones. Only objects with named
/// (and checked) keys are declarations; this finds every array that stands
/// where a struct was read, by walking the input beside the declaration's
/// own serialised form, in which every struct is an object.
fn positional_structs(bytes: &[u8], decl: &Declaration) -> Vec<Problem> {
    // Both succeed for anything that deserialised; if either did not, there
    // is nothing positional to report.
    let (Ok(input), Ok(canonical)) = (
        serde_json::from_slice::<serde_json::Value>(bytes),
        serde_json::to_value(decl),
    ) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut path = Vec::new();
    walk_shapes(&input, &canonical, &mut path, &mut found);
    found
}

fn walk_shapes(
    input: &serde_json::Value,
    canonical: &serde_json::Value,
    path: &mut Vec<String>,
    found: &mut Vec<Problem>,
) {
    use serde_json::Value;
    match (input, canonical) {
        (Value::Array(_), Value::Object(_)) => found.push(Problem {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.join(".")
            },
            message: "is an array, but this takes an object with named fields".into(),
        }),
        (Value::Object(i), Value::Object(c)) => {
            for (k, v) in i {
                if let Some(cv) = c.get(k) {
                    path.push(if k.is_empty() {
                        "\"\"".into()
                    } else {
                        k.clone()
                    });
                    walk_shapes(v, cv, path, found);
                    path.pop();
                }
            }
        }
        (Value::Array(i), Value::Array(c)) => {
            for (n, (v, cv)) in i.iter().zip(c).enumerate() {
                path.push(n.to_string());
                walk_shapes(v, cv, path, found);
                path.pop();
            }
        }
        _ => {}
    }
}

/// serde_json appends " at line L column C" to data errors; the JSON path
/// already says where, and the position of a value is less useful to a
/// reader than its name.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// A one-line summary for `check-config`.
pub fn summary(d: &Declaration) -> String {
    let insts: Vec<String> = d
        .instances
        .iter()
        .map(|(n, i)| {
            format!(
                "{n} (VRRPv{} vrid {} on {}, {} VIP{}, {})",
                i.version,
                i.virtual_router_id,
                i.interface,
                i.virtual_ips.len(),
                if i.virtual_ips.len() == 1 { "" } else { "s" },
                if i.unicast_peers.is_empty() {
                    "multicast"
                } else {
                    "unicast"
                }
            )
        })
        .collect();
    let sites = d.nginx.as_ref().map_or(0, |n| n.sites.len());
    let anycast = d.anycast.as_ref().map_or(String::new(), |a| {
        format!(
            "; anycast {} prefix{} via {}",
            a.prefixes.len(),
            if a.prefixes.len() == 1 { "" } else { "es" },
            a.bird.socket.display()
        )
    });
    format!(
        "node {} priority {}; {} instance{}{}; {} extra check{}; {} nginx site{}{anycast}",
        d.node.name,
        d.node.priority,
        d.instances.len(),
        if d.instances.len() == 1 { "" } else { "s" },
        if insts.is_empty() {
            String::new()
        } else {
            format!(": {}", insts.join(", "))
        },
        d.checks.extra.len(),
        if d.checks.extra.len() == 1 { "" } else { "s" },
        sites,
        if sites == 1 { "" } else { "s" },
    )
}
