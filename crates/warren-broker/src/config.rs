//! Broker settings, with RabbitMQ 3.10's defaults.

use std::path::PathBuf;
use std::time::Duration;

/// A user allowed to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// Password, compared as given.
    pub password: String,
}

/// Everything the broker's behaviour depends on.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where durable state lives.
    pub data_dir: PathBuf,
    /// `channel_max` proposed in `connection.tune`.
    pub channel_max: u16,
    /// `frame_max` proposed in `connection.tune`.
    pub frame_max: u32,
    /// Heartbeat interval proposed in `connection.tune`, in seconds.
    pub heartbeat: u16,
    /// A connection must finish its handshake within this long.
    pub handshake_timeout: Duration,
    /// How long a failed login waits before it is answered, to slow down guessing.
    pub auth_failure_delay: Duration,
    /// How long we wait for `close-ok` after sending `connection.close`.
    pub close_timeout: Duration,
    /// Largest message body accepted (RabbitMQ's `max_message_size`).
    pub max_message_size: u64,
    /// Users allowed to log in.
    pub users: Vec<User>,
    /// Users allowed to log in only over a loopback address.
    pub loopback_users: Vec<String>,
    /// Messages (a command carrying none counts as one) a queue task's inbox holds
    /// before publishers wait (back-pressure). Acks and consumer credit share this
    /// inbox with publishes and wait behind them, so a deep inbox starves a manual-ack
    /// consumer while a fast publisher fills it: 4,096 gave 278,000 msg/s with prefetch
    /// 1,000 where 512 gives 708,000 (docs/benchmarks.md). RabbitMQ bounds a queue's
    /// mailbox the same way, with 400 credits per sender.
    pub queue_command_capacity: usize,
    /// Deliveries on their way to one connection's socket before queues hold off.
    pub connection_delivery_window: u32,
    /// How long a delivery may stay unacknowledged before its channel is closed
    /// (RabbitMQ's `consumer_timeout`; `None` disables it).
    pub consumer_timeout: Option<Duration>,
}

impl Config {
    /// RabbitMQ's defaults, with data kept in `data_dir`.
    #[must_use]
    pub fn new(data_dir: PathBuf) -> Self {
        Self {
            data_dir,
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 60,
            handshake_timeout: Duration::from_secs(10),
            auth_failure_delay: Duration::from_secs(1),
            close_timeout: Duration::from_secs(5),
            max_message_size: 128 * 1024 * 1024,
            users: vec![User {
                name: "guest".into(),
                password: "guest".into(),
            }],
            loopback_users: vec!["guest".into()],
            queue_command_capacity: 512,
            connection_delivery_window: 2048,
            consumer_timeout: Some(Duration::from_secs(30 * 60)),
        }
    }
}
