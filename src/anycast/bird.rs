//! A small client for BIRD's control socket (the `birdc` protocol): one
//! connection, one command at a time, every call under a deadline and every
//! reply bounded (`super::reply`). The `birdc` crate exists, but reads
//! without bounds or deadlines; this is the part of it nginx-ha needs.

use super::reply::{self, MAX_LINE, Parser, Reply, ReplyError};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

#[derive(Debug, thiserror::Error)]
pub enum BirdError {
    #[error("BIRD's control socket {0} does not exist (is BIRD running?)")]
    Missing(PathBuf),
    #[error(
        "{path} is not a socket but a {kind}; anycast.bird.socket must name BIRD's control socket"
    )]
    NotASocket { path: PathBuf, kind: &'static str },
    #[error("cannot connect to BIRD at {path}: {source} (is BIRD running?)")]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("BIRD did not answer within {0:?}")]
    Timeout(Duration),
    #[error("BIRD closed the control connection")]
    Closed,
    #[error("talking to BIRD: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Reply(#[from] ReplyError),
    #[error("BIRD did not greet with 0001 but {0:?}")]
    Greeting(String),
    #[error(
        "BIRD has no protocol \"{name}\" ({code} {message}): the BIRD config must declare `protocol static {name} {{ disabled; ... }}` holding the anycast routes"
    )]
    UnknownProtocol {
        name: String,
        code: u16,
        message: String,
    },
    #[error("BIRD refused `{command}`: {code} {message}")]
    Refused {
        command: String,
        code: u16,
        message: String,
    },
}

impl BirdError {
    /// Whether the connection is still good after this error (BIRD
    /// answered; it just said no).
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            BirdError::UnknownProtocol { .. } | BirdError::Refused { .. }
        )
    }
}

pub struct Bird {
    stream: BufReader<UnixStream>,
    pub version: String,
}

/// What a file is, for the error that says it is not a socket.
fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_symlink() {
        "symbolic link"
    } else if ft.is_fifo() {
        "FIFO"
    } else {
        "special file"
    }
}

impl Bird {
    /// Connects and reads BIRD's greeting (`0001 BIRD 2.0.12 ready.`).
    pub async fn connect(path: &Path, deadline: Duration) -> Result<Bird, BirdError> {
        match tokio::fs::metadata(path).await {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BirdError::Missing(path.to_path_buf()));
            }
            Err(source) => {
                return Err(BirdError::Connect {
                    path: path.to_path_buf(),
                    source,
                });
            }
            Ok(m) if !m.file_type().is_socket() => {
                return Err(BirdError::NotASocket {
                    path: path.to_path_buf(),
                    kind: kind(m.file_type()),
                });
            }
            Ok(_) => {}
        }
        let connect = async {
            let s = UnixStream::connect(path)
                .await
                .map_err(|source| BirdError::Connect {
                    path: path.to_path_buf(),
                    source,
                })?;
            let mut bird = Bird {
                stream: BufReader::with_capacity(MAX_LINE + 1, s),
                version: String::new(),
            };
            let hello = bird.read_reply().await?;
            if hello.code != 1 {
                return Err(BirdError::Greeting(hello.message().to_string()));
            }
            bird.version = hello
                .message()
                .trim_end_matches(" ready.")
                .trim_end_matches(" ready")
                .to_string();
            Ok(bird)
        };
        tokio::time::timeout(deadline, connect)
            .await
            .map_err(|_| BirdError::Timeout(deadline))?
    }

    /// Sends one command and reads its whole reply.
    pub async fn call(&mut self, command: &str, deadline: Duration) -> Result<Reply, BirdError> {
        let exchange = async {
            let line = format!("{command}\n");
            self.stream.get_mut().write_all(line.as_bytes()).await?;
            self.read_reply().await
        };
        tokio::time::timeout(deadline, exchange)
            .await
            .map_err(|_| BirdError::Timeout(deadline))?
    }

    /// `enable`/`disable` a protocol by its exact name (quoted: BIRD then
    /// matches a name, and says "No protocols match" for an unknown one).
    pub async fn set_enabled(
        &mut self,
        name: &str,
        enable: bool,
        deadline: Duration,
    ) -> Result<(), BirdError> {
        let command = format!("{} \"{name}\"", if enable { "enable" } else { "disable" });
        let r = self.call(&command, deadline).await?;
        check(&command, name, &r)?;
        // 0008/0010: already so; 0009/0011: done. Anything else names some
        // other protocol, which a quoted exact name cannot match.
        let ok = r
            .lines
            .iter()
            .any(|l| matches!(l.code, 8..=11) && l.text.split(':').next() == Some(name));
        if ok {
            Ok(())
        } else {
            Err(BirdError::Refused {
                command,
                code: r.code,
                message: format!("unexpected reply {:?}", r.lines),
            })
        }
    }

    /// BIRD's state of a protocol (`up`, `down`, ...) and its info column.
    pub async fn protocol_state(
        &mut self,
        name: &str,
        deadline: Duration,
    ) -> Result<(String, String), BirdError> {
        let command = format!("show protocols \"{name}\"");
        let r = self.call(&command, deadline).await?;
        check(&command, name, &r)?;
        reply::protocol_state(&r, name).ok_or_else(|| BirdError::UnknownProtocol {
            name: name.to_string(),
            code: r.code,
            message: "not in `show protocols`".into(),
        })
    }

    /// Resolves when BIRD closes the connection (it restarted or stopped).
    /// BIRD sends nothing unasked, so any byte here is out of protocol and
    /// the connection is given up as well.
    pub async fn closed(&mut self) -> BirdError {
        match self.stream.fill_buf().await {
            Ok([]) => BirdError::Closed,
            Ok(b) => BirdError::Reply(ReplyError::Malformed(
                String::from_utf8_lossy(&b[..b.len().min(80)]).into_owned(),
            )),
            Err(e) => BirdError::Io(e),
        }
    }

    async fn read_reply(&mut self) -> Result<Reply, BirdError> {
        let mut parser = Parser::default();
        let mut line = Vec::with_capacity(128);
        loop {
            line.clear();
            self.read_line(&mut line).await?;
            if let Some(r) = parser.push(&line)? {
                return Ok(r);
            }
        }
    }

    /// One line without its `\n`, at most `MAX_LINE` bytes.
    async fn read_line(&mut self, out: &mut Vec<u8>) -> Result<(), BirdError> {
        loop {
            let buf = self.stream.fill_buf().await?;
            if buf.is_empty() {
                return Err(BirdError::Closed);
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i, true),
                None => (buf.len(), false),
            };
            if out.len() + take > MAX_LINE {
                return Err(ReplyError::LineTooLong.into());
            }
            out.extend_from_slice(&buf[..take]);
            self.stream.consume(take + usize::from(done));
            if done {
                return Ok(());
            }
        }
    }
}

/// An error reply as a typed error: "No protocols match" means the BIRD
/// config lacks the protocol.
fn check(command: &str, name: &str, r: &Reply) -> Result<(), BirdError> {
    if !r.is_error() {
        return Ok(());
    }
    if r.code == 8003 {
        return Err(BirdError::UnknownProtocol {
            name: name.to_string(),
            code: r.code,
            message: r.message().to_string(),
        });
    }
    Err(BirdError::Refused {
        command: command.to_string(),
        code: r.code,
        message: r.message().to_string(),
    })
}
