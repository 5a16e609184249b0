//! The declaration (`nginx_ha_core::config`: types, parsing, validation,
//! schema) and reading it from a file, which only the daemon's side does.

pub use nginx_ha_core::config::*;

use crate::file_read::{ReadError, Symlinks, read_regular};
use std::path::Path;
use std::time::Duration;

/// Reads, parses and validates a declaration file. Nothing is returned
/// unless the whole declaration is valid. Blocking (see `load_within`).
/// The file may be a symlink: NixOS links /etc files into the store.
pub fn load(path: &Path) -> Result<Declaration, LoadError> {
    let bytes = read_regular(path, MAX_DECLARATION_BYTES, Symlinks::Follow).map_err(read_error)?;
    parse(&bytes)
}

/// `load` on the blocking pool, bounded by `deadline`: what the daemon
/// uses, so neither a stalled filesystem nor parsing a megabyte of JSON
/// holds up adverts.
pub async fn load_within(path: &Path, deadline: Duration) -> Result<Declaration, LoadError> {
    let p = path.to_path_buf();
    match crate::file_read::off_loop(path, deadline, move || Ok(load(&p))).await {
        Ok(r) => r,
        Err(e) => Err(read_error(e)),
    }
}

fn read_error(e: ReadError) -> LoadError {
    match e {
        ReadError::TooLarge { path, .. } => LoadError::TooLarge {
            path: path.display().to_string(),
        },
        other => LoadError::Read(other.to_string()),
    }
}
