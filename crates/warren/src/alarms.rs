//! The resource alarms, as RabbitMQ has them. The memory high watermark
//! (`vm_memory_high_watermark`): the broker's resident size is checked ten times a
//! second, and while it is at or above the watermark the memory alarm is set. The free
//! disk space limit (`disk_free_limit`): the free space of the data directory's file
//! system is checked every second, and while it is below the limit the disk alarm is
//! set. Either blocks publishing connections.
//!
//! The resident size is what the kernel and container limits count. It falls back
//! once memory is freed because the allocator's free memory is given back first (see
//! `trim.rs`), here too before deciding that the alarm must stay on.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tracing::{info, warn};
use warren_broker::Broker;

/// How often the resident size is compared with the watermark: often, because a
/// publisher of large messages adds hundreds of megabytes a second (at one check a
/// second, a 100 MiB watermark was overshot to 294 MiB); reading `/proc/self/statm`
/// costs a few microseconds.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// What `--memory-high-watermark` or `--disk-free-limit` asked for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Watermark {
    /// No alarm.
    Off,
    /// A share of the memory available to the process (for the disk limit too, as
    /// RabbitMQ's `disk_free_limit.relative`).
    Relative(f64),
    /// Octets.
    Absolute(u64),
}

impl std::str::FromStr for Watermark {
    type Err = String;

    /// `0` (off), a fraction such as `0.4` (of the memory available), or a size: octets,
    /// or a number with `kB`, `MB`, `GB` (powers of 1000) or `KiB`, `MiB`, `GiB`
    /// (powers of 1024), as RabbitMQ's `vm_memory_high_watermark.absolute` takes.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let invalid = || format!("{s:?} is not 0, a fraction of memory, or a size like 2GiB");
        let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit_size: u64 = match unit.trim() {
            "" => 1,
            "B" => 1,
            "kB" | "KB" => 1000,
            "MB" => 1000 * 1000,
            "GB" => 1000 * 1000 * 1000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(invalid()),
        };
        if unit.trim().is_empty() && number.contains('.') {
            let share: f64 = number.parse().map_err(|_| invalid())?;
            return if share > 0.0 && share <= 1.0 {
                Ok(Watermark::Relative(share))
            } else if share == 0.0 {
                Ok(Watermark::Off)
            } else {
                Err(invalid())
            };
        }
        let count: u64 = number.trim().parse().map_err(|_| invalid())?;
        match count.checked_mul(unit_size) {
            Some(0) => Ok(Watermark::Off),
            Some(octets) => Ok(Watermark::Absolute(octets)),
            None => Err(invalid()),
        }
    }
}

impl Watermark {
    /// The limit in octets, given the memory available (if known); `None` when off,
    /// or when relative to a memory size that cannot be read.
    pub(crate) fn limit(self, available: Option<u64>) -> Option<u64> {
        match self {
            Watermark::Off => None,
            Watermark::Relative(share) => available.map(|a| (a as f64 * share) as u64),
            Watermark::Absolute(octets) => Some(octets),
        }
    }
}

/// The memory available to this process: the machine's, or its control group's limit
/// when lower. `None` where `/proc` cannot tell.
pub(crate) fn available_memory() -> Option<u64> {
    let total = kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemTotal:")?;
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .filter_map(|path| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    })
    .min();
    Some(cgroup.map_or(total, |limit| limit.min(total)))
}

/// This process's resident size. From `statm`, the cheapest place to read it: it is
/// read ten times a second for as long as the broker runs.
fn resident() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * rustix::param::page_size() as u64)
}

/// A `Name:   123 kB` line of a `/proc` file, in octets.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Sets and clears the broker's memory alarm as the resident size crosses `limit`;
/// runs until the process ends.
pub(crate) async fn watch_memory(broker: Arc<Broker>, limit: u64) {
    info!(limit_mib = limit >> 20, "memory high watermark");
    let mut tick = tokio::time::interval(CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(mut rss) = resident() else {
            warn!("cannot read the resident size; the memory alarm is off");
            broker.set_memory_alarm(false);
            return;
        };
        if rss >= limit {
            // Only memory in use counts: give a large free part back, then look again.
            // (Not the whole of it every time: a trim walks every arena under its lock.)
            rss = tokio::task::spawn_blocking(|| {
                crate::trim::release_if_worth_it();
                resident()
            })
            .await
            .ok()
            .flatten()
            .unwrap_or(rss);
        }
        if (rss >= limit) != broker.alarms().memory() {
            info!(
                resident_mib = rss >> 20,
                limit_mib = limit >> 20,
                "memory high watermark crossed"
            );
        }
        broker.set_memory_alarm(rss >= limit);
    }
}

/// How often the data directory's free space is compared with the limit.
const DISK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Sets and clears the broker's disk alarm as the free space of `dir`'s file system
/// crosses `limit`; runs until the process ends.
pub(crate) async fn watch_disk(broker: Arc<Broker>, dir: std::path::PathBuf, limit: u64) {
    info!(limit_mib = limit >> 20, "free disk space limit");
    let mut tick = tokio::time::interval(DISK_CHECK_EVERY);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let free = match free_space(&dir) {
            Ok(free) => free,
            Err(e) => {
                warn!(error = %e, dir = %dir.display(), "cannot read the free disk space; the disk alarm is off");
                broker.set_disk_alarm(false);
                return;
            }
        };
        if (free < limit) != broker.alarms().disk() {
            info!(
                free_mib = free >> 20,
                limit_mib = limit >> 20,
                "free disk space limit crossed"
            );
        }
        broker.set_disk_alarm(free < limit);
    }
}

/// Octets an unprivileged process may still write on `dir`'s file system.
fn free_space(dir: &std::path::Path) -> std::io::Result<u64> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watermarks_parse_like_rabbitmq_s() {
        let parse = |s: &str| s.parse::<Watermark>();
        assert_eq!(parse("0.4"), Ok(Watermark::Relative(0.4)));
        assert_eq!(parse("1.0"), Ok(Watermark::Relative(1.0)));
        assert_eq!(parse("0"), Ok(Watermark::Off));
        assert_eq!(parse("0.0"), Ok(Watermark::Off));
        assert_eq!(parse("1048576"), Ok(Watermark::Absolute(1 << 20)));
        assert_eq!(parse("2GiB"), Ok(Watermark::Absolute(2 << 30)));
        assert_eq!(parse("512MiB"), Ok(Watermark::Absolute(512 << 20)));
        assert_eq!(parse("2GB"), Ok(Watermark::Absolute(2_000_000_000)));
        assert_eq!(parse("100 MB"), Ok(Watermark::Absolute(100_000_000)));
        for bad in ["1.5", "-1", "0.4GB", "2TB", "lots", ""] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Watermark::Relative(0.5).limit(Some(1000)), Some(500));
        assert_eq!(Watermark::Relative(0.5).limit(None), None);
        assert_eq!(Watermark::Absolute(7).limit(None), Some(7));
        assert_eq!(Watermark::Off.limit(Some(1000)), None);
    }

    #[test]
    fn proc_fields_are_read_in_kib() {
        let meminfo = "MemTotal:       24576000 kB\nMemFree:        1000 kB\n";
        assert_eq!(kib_field(meminfo, "MemTotal:"), Some(24_576_000 * 1024));
        assert_eq!(kib_field(meminfo, "VmRSS:"), None);
        assert!(available_memory().is_some_and(|m| m > 0));
        assert!(resident().is_some_and(|r| r > 0));
        assert!(free_space(std::path::Path::new(".")).is_ok_and(|f| f > 0));
    }
}
