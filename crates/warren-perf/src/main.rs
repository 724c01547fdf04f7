//! `warren-perf`: a load tool in the spirit of RabbitMQ's PerfTest, speaking plain AMQP
//! 0-9-1 so the same run can be pointed at Warren and at RabbitMQ.
//!
//! A throughput run declares its queues (and an exchange of the chosen type, bound to
//! every queue), starts consumers, then producers, prints rates once a second and a
//! summary at the end (JSON with `--json`). Producers encode a batch of publishes once
//! and write it again and again, many frames per system call, so the tool spends little
//! CPU per message; with `--broker-pid` it reports the broker's CPU time per message
//! next to its own.
//!
//! Other runs: `--latency` (send times in bodies, HdrHistogram percentiles of
//! publish-to-delivery time, usually with `--rate`), `--confirm-latency` (one message
//! at a time, each waiting for its confirm), `--connections N` and `--declare-queues N`
//! (time and broker RSS), `--probe` (how long until a queue answers, to time restarts).

mod args;
mod client;
mod consumer;
mod counts;
mod cpu;
mod latency;
mod publisher;
mod topology;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde::Serialize;

use args::Args;
use client::{Client, Target};
use consumer::Acking;
use latency::{Percentiles, Recorder};
use publisher::{Batch, Plan};
use topology::Topology;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Debug, Default)]
pub struct Stats {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    pub consumed: AtomicU64,
    /// Times a producer's connection was blocked by the broker (`connection.blocked`).
    pub blocked: AtomicU64,
}

impl Stats {
    /// The counts at one moment (the end of the timed part of a run).
    fn snapshot(&self) -> Self {
        let copy = |c: &AtomicU64| AtomicU64::new(c.load(Ordering::Relaxed));
        Self {
            published: copy(&self.published),
            confirmed: copy(&self.confirmed),
            nacked: copy(&self.nacked),
            consumed: copy(&self.consumed),
            blocked: copy(&self.blocked),
        }
    }
}

/// What every task of a run shares.
#[derive(Debug, Default)]
pub struct Shared {
    pub stats: Stats,
    pub stop: AtomicBool,
    /// Messages producers have claimed under `--messages`.
    pub reserved: AtomicU64,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let outcome = match args.validate() {
        Ok(()) => run(args).await,
        Err(e) => Err(e.into()),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Res<()> {
    let target = Target::parse(&args.url)?;
    // A connection-count run needs a descriptor per connection.
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("warren-perf: cannot raise the open file limit: {e}");
    }
    if args.probe {
        return probe(&args, &target).await;
    }
    if let Some(n) = args.connections {
        return counts::open_connections(&args, &target, n).await;
    }
    if let Some(n) = args.declare_queues {
        return counts::declare_queues(&args, &target, n).await;
    }
    throughput(&args, &target).await
}

async fn throughput(args: &Args, target: &Target) -> Res<()> {
    let mut setup = Client::connect(target).await?;
    let topology = Topology::declare(&mut setup, args).await?;
    let shared = Arc::new(Shared::default());
    let recorder = Arc::new(Recorder::default());
    let mut consumers = Vec::new();
    let mut producers = Vec::new();
    let acking = Acking {
        manual: args.ack,
        // Never wait for more acks than the prefetch lets through.
        every: args.ack_every.clamp(1, u64::from(args.prefetch / 2).max(1)),
    };
    for i in 0..args.consumers as usize {
        let mut c = Client::connect(target).await?;
        if args.ack {
            c.qos(args.prefetch).await?;
        }
        c.consume(topology.queue_of_consumer(i), !args.ack).await?;
        let recorder = args.latency.then(|| recorder.clone());
        consumers.push(tokio::spawn(consumer::consume(
            c,
            acking,
            shared.clone(),
            recorder,
        )));
    }
    let properties = topology.properties(args);
    let producer_count = if args.confirm_latency {
        1
    } else {
        args.producers
    };
    for i in 0..producer_count as usize {
        let mut c = Client::connect(target).await?;
        let batch = Batch::encode(
            &topology.exchange,
            topology.routing_key(i),
            &properties,
            args.size,
            c.frame_max,
        )?;
        if args.confirm.is_some() || args.confirm_latency {
            c.confirm_select().await?;
        }
        let plan = Plan {
            confirm: args.confirm,
            rate: args.rate,
            limit: args.messages,
            stamp: args.latency,
        };
        if args.confirm_latency {
            producers.push(tokio::spawn(publisher::produce_one_at_a_time(
                c,
                batch,
                plan,
                shared.clone(),
                recorder.clone(),
            )));
        } else {
            producers.push(tokio::spawn(publisher::produce(
                c,
                batch,
                plan,
                shared.clone(),
            )));
        }
    }

    let cpu_before = (
        cpu::process_seconds(None),
        args.broker_pid.map(|p| cpu::process_seconds(Some(p))),
    );
    let started = Instant::now();
    watch(args, &shared, started).await;
    shared.stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let own_cpu = cpu::process_seconds(None) - cpu_before.0;
    let broker_cpu = args
        .broker_pid
        .zip(cpu_before.1)
        .map(|(pid, before)| cpu::process_seconds(Some(pid)) - before);
    let broker_rss_mib = args.broker_pid.and_then(cpu::rss_mib);
    let counted = shared.stats.snapshot();
    // Producers close their connections and wait for the broker to catch up; then the
    // consumers go. A task that ended early with an error says why the run was short.
    for t in producers.iter().filter(|_| args.confirm_latency) {
        t.abort();
    }
    for mut t in producers {
        match tokio::time::timeout(Duration::from_secs(40), &mut t).await {
            Ok(Ok(Err(e))) => eprintln!("warren-perf: {e}"),
            Err(_) => t.abort(),
            _ => {}
        }
    }
    for t in &consumers {
        t.abort();
    }
    for t in consumers {
        if let Ok(Err(e)) = t.await {
            eprintln!("warren-perf: {e}");
        }
    }
    if !args.keep_queue {
        topology.remove(&mut setup).await?;
    }
    let summary = Summary::new(
        args,
        &counted,
        elapsed,
        own_cpu,
        broker_cpu,
        broker_rss_mib,
        recorder.summary(),
    );
    summary.print(args.json)
}

/// Print progress once a second until the run's time is up or its messages are done.
async fn watch(args: &Args, shared: &Shared, started: Instant) {
    let stats = &shared.stats;
    let mut last = (0, 0, 0);
    let mut tick = 0u64;
    while tick < args.duration * 10 {
        tick += 1;
        tokio::time::sleep_until((started + Duration::from_millis(tick * 100)).into()).await;
        if let Some(limit) = args.messages {
            let settled = if args.confirm.is_some() {
                stats.confirmed.load(Ordering::Relaxed)
            } else if args.consumers > 0 {
                // Fanout multiplies deliveries: every queue gets every message.
                let copies = if args.exchange_type.is_some() {
                    u64::from(args.queues)
                } else {
                    1
                };
                stats.consumed.load(Ordering::Relaxed) / copies
            } else {
                stats.published.load(Ordering::Relaxed)
            };
            if settled >= limit {
                break;
            }
        }
        if !tick.is_multiple_of(10) || args.quiet {
            continue;
        }
        let now = (
            stats.published.load(Ordering::Relaxed),
            stats.confirmed.load(Ordering::Relaxed),
            stats.consumed.load(Ordering::Relaxed),
        );
        eprintln!(
            "time {:>3}s  published {:>9} msg/s  confirmed {:>9} msg/s  consumed {:>9} msg/s",
            tick / 10,
            now.0 - last.0,
            now.1 - last.1,
            now.2 - last.2
        );
        last = now;
    }
}

/// The end-of-run report.
#[derive(Debug, Serialize)]
struct Summary {
    seconds: f64,
    published: u64,
    confirmed: u64,
    nacked: u64,
    consumed: u64,
    /// Times a producer was blocked by a resource alarm of the broker.
    blocked: u64,
    published_per_sec: f64,
    consumed_per_sec: f64,
    consumed_mib_per_sec: f64,
    size: usize,
    producers: u32,
    consumers: u32,
    queues: u32,
    exchange_type: Option<&'static str>,
    ack: bool,
    confirm: Option<u32>,
    rate: Option<u64>,
    persistent: bool,
    tool_cpu_us_per_msg: f64,
    broker_cpu_us_per_msg: Option<f64>,
    broker_rss_mib: Option<f64>,
    /// End-to-end (`--latency`) or confirm (`--confirm-latency`) latency.
    latency_us: Option<Percentiles>,
}

impl Summary {
    fn new(
        args: &Args,
        stats: &Stats,
        seconds: f64,
        own_cpu: f64,
        broker_cpu: Option<f64>,
        broker_rss_mib: Option<f64>,
        latency_us: Option<Percentiles>,
    ) -> Self {
        let published = stats.published.load(Ordering::Relaxed);
        let consumed = stats.consumed.load(Ordering::Relaxed);
        let counted = if consumed > 0 { consumed } else { published };
        let per_msg = |cpu: f64| {
            if counted > 0 {
                cpu / counted as f64 * 1e6
            } else {
                0.0
            }
        };
        Self {
            seconds,
            published,
            confirmed: stats.confirmed.load(Ordering::Relaxed),
            nacked: stats.nacked.load(Ordering::Relaxed),
            blocked: stats.blocked.load(Ordering::Relaxed),
            consumed,
            published_per_sec: published as f64 / seconds,
            consumed_per_sec: consumed as f64 / seconds,
            consumed_mib_per_sec: consumed as f64 * args.size as f64 / seconds / 1048576.0,
            size: args.size,
            producers: args.producers,
            consumers: args.consumers,
            queues: args.queues,
            exchange_type: args.exchange_type.map(args::ExchangeKind::name),
            ack: args.ack,
            confirm: args.confirm,
            rate: args.rate,
            persistent: args.persistent,
            tool_cpu_us_per_msg: per_msg(own_cpu),
            broker_cpu_us_per_msg: broker_cpu.map(per_msg),
            broker_rss_mib,
            latency_us,
        }
    }

    fn print(&self, json: bool) -> Res<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "published {:.0} msg/s, consumed {:.0} msg/s ({:.1} MiB/s) over {:.1} s",
            self.published_per_sec, self.consumed_per_sec, self.consumed_mib_per_sec, self.seconds
        );
        if self.confirm.is_some() {
            println!("confirmed {} ({} nacked)", self.confirmed, self.nacked);
        }
        if self.blocked > 0 {
            println!("blocked by the broker {} times", self.blocked);
        }
        println!("tool CPU {:.3} µs/msg", self.tool_cpu_us_per_msg);
        if let Some(c) = self.broker_cpu_us_per_msg {
            println!("broker CPU {c:.3} µs/msg");
        }
        if let Some(r) = self.broker_rss_mib {
            println!("broker RSS {r:.1} MiB");
        }
        if let Some(l) = &self.latency_us {
            println!("latency: {l}");
        }
        Ok(())
    }
}

/// Wait until the queue can be declared passively; report the wait and its count.
async fn probe(args: &Args, target: &Target) -> Res<()> {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration.max(1) * 10);
    loop {
        if let Ok(mut c) = Client::connect(target).await
            && let Ok(count) = c.passive_count(&args.queue).await
        {
            println!(
                "{{\"ready_seconds\":{:.3},\"messages\":{count}}}",
                started.elapsed().as_secs_f64()
            );
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("the broker never answered".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
