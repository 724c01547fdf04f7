//! Command-line options, in PerfTest's vocabulary where it has a word for the thing.

use clap::{Parser, ValueEnum};

/// A load tool for AMQP 0-9-1 brokers (Warren or RabbitMQ alike).
///
/// Throughput runs by default; `--latency` stamps bodies and reports end-to-end
/// latency percentiles; `--confirm-latency` times confirms one message at a time;
/// `--connections N` and `--declare-queues N` measure what N connections or N queues
/// cost the broker; `--probe` times a broker until a queue answers.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Broker URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub url: String,
    /// Publishing connections.
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// Consuming connections (spread over the queues round-robin).
    #[arg(long, default_value_t = 1)]
    pub consumers: u32,
    /// Queue name, or the name prefix when `--queues` is more than 1 (`<queue>-<i>`).
    #[arg(long, default_value = "warren-perf")]
    pub queue: String,
    /// Queues to declare (and purge first, unless `--no-purge`).
    #[arg(long, default_value_t = 1)]
    pub queues: u32,
    /// Publish through an exchange of this type, declared as `warren-perf-<type>` and
    /// bound to every queue (default: the default exchange, producers spread over the
    /// queues).
    #[arg(long, value_enum)]
    pub exchange_type: Option<ExchangeKind>,
    /// Routing key of published messages when publishing through an exchange
    /// (default: `perf.key`).
    #[arg(long)]
    pub routing_key: Option<String>,
    /// Binding key from the exchange to each queue (default: the routing key; `perf.#`
    /// for topic; ignored for fanout and headers, which bind on `x-match=all, perf=1`).
    #[arg(long)]
    pub binding_key: Option<String>,
    /// Body size in bytes.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Run time in seconds.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Publish this many messages in all, then stop (the run ends when they are
    /// confirmed, or consumed, or at `--duration`).
    #[arg(long)]
    pub messages: Option<u64>,
    /// Publish at most this many messages per second per producer (default: as fast
    /// as the broker takes them).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Consume with manual acks (default: no-ack).
    #[arg(long)]
    pub ack: bool,
    /// Prefetch per consumer when acking.
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// Ack every N deliveries with multiple=true.
    #[arg(long, default_value_t = 100)]
    pub ack_every: u64,
    /// Publisher confirms with this many unconfirmed messages in flight.
    #[arg(long)]
    pub confirm: Option<u32>,
    /// Publish persistent messages (delivery-mode 2).
    #[arg(long)]
    pub persistent: bool,
    /// Declare queues (and the exchange) durable: persistent messages then go to disk.
    #[arg(long)]
    pub durable: bool,
    /// Per-message TTL (`expiration` property) in milliseconds.
    #[arg(long)]
    pub expiration: Option<u64>,
    /// A queue argument `key=value` for the declaration (integers as long, else text);
    /// repeatable.
    #[arg(long = "queue-arg")]
    pub queue_args: Vec<String>,
    /// Leave queues and exchange in place at the end (default: delete them).
    #[arg(long)]
    pub keep_queue: bool,
    /// Do not purge the queues before the run.
    #[arg(long)]
    pub no_purge: bool,
    /// End-to-end latency: every body starts with its send time and consumers record
    /// publish-to-delivery time (p50, p90, p99, p99.9, max). Pair with `--rate`.
    #[arg(long)]
    pub latency: bool,
    /// Confirm latency: one message at a time, each waiting for its confirm.
    #[arg(long)]
    pub confirm_latency: bool,
    /// Open this many connections (one channel each), report the time taken and the
    /// broker's RSS (with `--broker-pid`), hold them `--hold` seconds, close them.
    #[arg(long)]
    pub connections: Option<u32>,
    /// Declare this many queues on one channel, report the time taken and the broker's
    /// RSS (with `--broker-pid`), then delete them (unless `--keep-queue`).
    #[arg(long)]
    pub declare_queues: Option<u32>,
    /// Seconds to hold the connections or queues of a count run before cleaning up.
    #[arg(long, default_value_t = 0)]
    pub hold: u64,
    /// Only wait for the queue to be declarable (passively) and report the time taken
    /// and its message count; nothing is published or purged.
    #[arg(long)]
    pub probe: bool,
    /// Print the summary as JSON (progress still goes to stderr unless `--quiet`).
    #[arg(long)]
    pub json: bool,
    /// The broker's process id, to report its CPU time per message and its RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Do not print per-second progress.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl ExchangeKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Fanout => "fanout",
            Self::Topic => "topic",
            Self::Headers => "headers",
        }
    }
}

impl Args {
    /// The queue names of this run.
    pub fn queue_names(&self) -> Vec<String> {
        if self.queues <= 1 {
            vec![self.queue.clone()]
        } else {
            (0..self.queues)
                .map(|i| format!("{}-{i}", self.queue))
                .collect()
        }
    }

    /// What is checked before connecting, so a bad combination fails at once.
    pub fn validate(&self) -> Result<(), String> {
        if self.latency && self.size < 8 {
            return Err("--latency needs --size of at least 8 (the send time)".into());
        }
        if self.latency && self.consumers == 0 {
            return Err("--latency needs at least one consumer".into());
        }
        if self.rate == Some(0) {
            return Err("--rate must be positive".into());
        }
        Ok(())
    }
}
