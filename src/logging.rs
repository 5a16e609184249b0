//! Logs go to journald with structured fields when the journal socket
//! exists, and to stderr otherwise.

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct Stderr;

impl Log for Stderr {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }
    fn log(&self, r: &Record) {
        // One write per line: unbuffered stderr took one write(2) per
        // formatted piece (fourteen for a transition), and lines from two
        // threads could interleave.
        let line = format!("nginx-ha[{}]: {}\n", r.level(), r.args());
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    fn flush(&self) {}
}

static STDERR: Stderr = Stderr;

pub fn init(level: LevelFilter) {
    let journal = std::path::Path::new("/run/systemd/journal/socket").exists()
        && std::env::var_os("NGINX_HA_LOG_STDERR").is_none();
    if journal
        && let Ok(j) = systemd_journal_logger::JournalLog::new()
        && j.install().is_ok()
    {
        log::set_max_level(level);
        return;
    }
    if log::set_logger(&STDERR).is_ok() {
        log::set_max_level(level);
    }
}
