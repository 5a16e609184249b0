//! The daemon's own process numbers (Prometheus's standard `process_*`
//! series): resident memory, CPU time, open descriptors, start time, read
//! from /proc/self off the event loop, once per published snapshot.

use crate::file_read::{self, ReadError, Symlinks};
use std::path::Path;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Process {
    pub resident_memory_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// A scrape waits this long for /proc at most; past it the series are
/// left out rather than the scrape delayed.
const DEADLINE: Duration = Duration::from_millis(200);
const LIMIT: usize = 64 * 1024;

pub async fn read() -> Option<Process> {
    let here = Path::new("/proc/self");
    file_read::off_loop(here, DEADLINE, read_now).await.ok()
}

fn text(path: &str) -> Result<String, ReadError> {
    let raw = file_read::read_regular(Path::new(path), LIMIT, Symlinks::Refuse)?;
    Ok(String::from_utf8_lossy(&raw).into_owned())
}

fn malformed(path: &str) -> ReadError {
    ReadError::Io {
        path: path.into(),
        source: std::io::Error::other("unexpected format"),
    }
}

fn read_now() -> Result<Process, ReadError> {
    use nix::unistd::{SysconfVar, sysconf};
    let constant = |v| sysconf(v).ok().flatten().filter(|n| *n > 0);
    let ticks = constant(SysconfVar::CLK_TCK).ok_or_else(|| malformed("sysconf(CLK_TCK)"))? as f64;
    let page =
        constant(SysconfVar::PAGE_SIZE).ok_or_else(|| malformed("sysconf(PAGE_SIZE)"))? as u64;
    let stat = text("/proc/self/stat")?;
    let statm = text("/proc/self/statm")?;
    let boot = text("/proc/stat")?;
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .map_err(|source| ReadError::Io {
            path: "/proc/self/fd".into(),
            source,
        })?
        .count() as u64;
    parse(&stat, &statm, &boot, ticks, page, open_fds)
}

/// The numbers from /proc/self/stat, /proc/self/statm and /proc/stat.
fn parse(
    stat: &str,
    statm: &str,
    boot: &str,
    ticks: f64,
    page: u64,
    open_fds: u64,
) -> Result<Process, ReadError> {
    // Fields after the command name, which may itself hold spaces and ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(|| malformed("/proc/self/stat"))?
        .1
        .split_whitespace()
        .collect();
    // proc(5) numbers fields from 1; fields[0] is field 3 (state).
    let field = |n: usize| -> Result<f64, ReadError> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| malformed("/proc/self/stat"))
    };
    let cpu_seconds = (field(14)? + field(15)?) / ticks;
    let started_ticks = field(22)?;
    let rss_pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| malformed("/proc/self/statm"))?;
    let btime: f64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| malformed("/proc/stat"))?;
    Ok(Process {
        resident_memory_bytes: rss_pages.saturating_mul(page),
        cpu_seconds,
        open_fds,
        start_time_seconds: btime + started_ticks / ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_procfs_lines_with_a_hostile_command_name() {
        let stat = "42 (nginx-ha) x) S 1 42 42 0 -1 4194560 500 0 0 0 150 50 0 0 20 0 3 0 1000 1000000 300 18446744073709551615";
        let p = parse(
            stat,
            "1000 300 200 10 0 500 0\n",
            "cpu 1 2 3\nbtime 1700000000\n",
            100.0,
            4096,
            9,
        )
        .expect("parses");
        assert_eq!(p.resident_memory_bytes, 300 * 4096);
        assert_eq!(p.cpu_seconds, 2.0);
        assert_eq!(p.open_fds, 9);
        assert_eq!(p.start_time_seconds, 1_700_000_010.0);
        assert!(parse("garbage", "", "", 100.0, 4096, 0).is_err());
    }

    #[tokio::test]
    async fn reads_this_process() {
        let p = read().await.expect("/proc/self is readable");
        assert!(p.resident_memory_bytes > 0 && p.open_fds > 0, "{p:?}");
        assert!(p.start_time_seconds > 1_000_000_000.0, "{p:?}");
    }
}
