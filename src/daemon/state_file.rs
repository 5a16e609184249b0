//! The classic per-instance state file (`STATE=MASTER`), for scripts and
//! monitoring written for the keepalived recipe.

use crate::vrrp::instance::State;
use log::warn;
use std::path::Path;

pub fn write(dir: &Path, instance: &str, state: State) {
    let path = dir.join(format!("{instance}.state"));
    let tmp = dir.join(format!(".{instance}.state.tmp"));
    let body = format!("STATE={}\n", state.as_str());
    // Written aside and renamed, so a reader never sees half a file.
    let r = std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = r {
        warn!("state file {}: {e}", path.display());
    }
}
