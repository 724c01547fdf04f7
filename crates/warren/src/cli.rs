//! Command-line flags, each also settable from the environment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use clap::Parser;

use crate::alarms::Watermark;

/// Warren, an AMQP 0-9-1 message broker. With no arguments it listens on port 5672 of
/// 127.0.0.1 and ::1 and keeps its data in ./warren-data.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// Address to listen on; repeat the flag or separate with commas for several.
    /// [default: 127.0.0.1 and ::1]
    #[arg(long = "bind", env = "WARREN_BIND", value_delimiter = ',')]
    pub bind: Vec<IpAddr>,

    /// TCP port for AMQP.
    #[arg(long, env = "WARREN_PORT", default_value_t = 5672)]
    pub port: u16,

    /// Directory for durable state; created if missing.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "warren-data")]
    pub data_dir: PathBuf,

    /// Log filter: a level (error, warn, info, debug, trace) or tracing directives.
    #[arg(long, env = "WARREN_LOG", default_value = "info")]
    pub log_level: String,

    /// The user created at start.
    #[arg(long, env = "WARREN_DEFAULT_USER", default_value = "guest")]
    pub default_user: String,

    /// That user's password.
    #[arg(
        long,
        env = "WARREN_DEFAULT_PASS",
        default_value = "guest",
        hide_env_values = true
    )]
    pub default_pass: String,

    /// Users who may only log in over loopback, comma-separated; empty for none.
    #[arg(
        long,
        env = "WARREN_LOOPBACK_USERS",
        default_value = "guest",
        value_delimiter = ','
    )]
    pub loopback_users: Vec<String>,

    /// How long a delivery may stay unacknowledged before its channel is closed, in
    /// milliseconds (0 disables; queues may set their own with `x-consumer-timeout`).
    #[arg(long, env = "WARREN_CONSUMER_TIMEOUT", default_value_t = 1_800_000)]
    pub consumer_timeout: u64,

    /// Heartbeat interval offered to clients, in seconds (0 disables).
    #[arg(long, env = "WARREN_HEARTBEAT", default_value_t = 60)]
    pub heartbeat: u16,

    /// Memory high watermark: while the broker's resident size is at or above it,
    /// publishing connections are blocked. A fraction of the memory available (of the
    /// machine, or of the control group when lower), a size (`2GiB`, `512MB`, octets),
    /// or 0 for none.
    #[arg(long, env = "WARREN_MEMORY_HIGH_WATERMARK", default_value = "0.4")]
    pub memory_high_watermark: Watermark,

    /// Free disk space limit: while the data directory's file system has less free
    /// space, publishing connections are blocked. A size (`50MB`, `2GiB`, octets), a
    /// fraction of the memory available, or 0 for none.
    #[arg(long, env = "WARREN_DISK_FREE_LIMIT", default_value = "50MB")]
    pub disk_free_limit: Watermark,
}

impl Cli {
    /// The addresses to bind: those given, or both loopbacks.
    pub(crate) fn bind_addresses(&self) -> Vec<IpAddr> {
        if self.bind.is_empty() {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        } else {
            self.bind.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_both_loopbacks_on_5672() {
        let cli = Cli::parse_from(["warren"]);
        assert_eq!(cli.port, 5672);
        assert_eq!(cli.bind_addresses().len(), 2);
        assert_eq!(cli.data_dir, PathBuf::from("warren-data"));
        let cli = Cli::parse_from([
            "warren",
            "--bind",
            "127.0.0.1,::1",
            "--port",
            "5673",
            "--log-level",
            "debug",
        ]);
        assert_eq!(cli.bind.len(), 2);
        assert_eq!(cli.port, 5673);
    }
}
