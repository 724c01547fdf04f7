//! `warren-perf`: a load tool in the spirit of RabbitMQ's PerfTest, speaking plain AMQP
//! 0-9-1 so the same run can be pointed at Warren and at RabbitMQ.
//!
//! A throughput run starts consumers, then producers publishing to one queue through
//! the default exchange, prints rates once a second and a summary at the end (or JSON
//! with `--json`). Publishers encode a batch of messages once and write it repeatedly,
//! so the tool spends little CPU per message; with `--broker-pid` it reports the
//! broker's CPU time per message next to its own.
//!
//! `--latency` measures publisher-confirm latency instead: one publisher sends one
//! message, waits for its confirm, and repeats. `--messages` stops publishing after a
//! number of messages (to build a backlog); `--probe` waits until the broker answers a
//! passive declare of the queue and reports how long that took and the message count
//! (to time a restart).

mod client;
mod cpu;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;
use warren_codec::encode::{encode_basic_ack, encode_content, encode_method};
use warren_codec::frame::{FrameType, decode_frame};
use warren_codec::spec::{AMQPClass, basic};

use client::{Client, Target};

/// Throughput run against one queue.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Broker URL.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    url: String,
    /// Publishing connections.
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consuming connections.
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Queue to use (declared and purged first).
    #[arg(long, default_value = "warren-perf")]
    queue: String,
    /// Body size in bytes.
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// Run time in seconds.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Consume with manual acks (default: no-ack).
    #[arg(long)]
    ack: bool,
    /// Prefetch per consumer when acking.
    #[arg(long, default_value_t = 1000)]
    prefetch: u16,
    /// Ack every N deliveries with multiple=true.
    #[arg(long, default_value_t = 100)]
    ack_every: u64,
    /// Publisher confirms with this many unconfirmed messages in flight.
    #[arg(long)]
    confirm: Option<u32>,
    /// Publish persistent messages (delivery-mode 2).
    #[arg(long)]
    persistent: bool,
    /// Declare the queue durable (persistent messages then go to disk).
    #[arg(long)]
    durable: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// The broker's process id, to report its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Do not print per-second progress.
    #[arg(long)]
    quiet: bool,
    /// Per-message TTL (`expiration` property) in milliseconds.
    #[arg(long)]
    expiration: Option<u64>,
    /// A queue argument `key=value` for the declaration (integers as long, else text);
    /// repeatable.
    #[arg(long = "queue-arg")]
    queue_args: Vec<String>,
    /// Leave the queue in place at the end (default: delete it).
    #[arg(long)]
    keep_queue: bool,
    /// Publish this many messages in all, then stop (the run ends when they are
    /// confirmed, or consumed without confirms, or at `--duration`).
    #[arg(long)]
    messages: Option<u64>,
    /// Measure confirm latency: one message at a time, each waiting for its confirm.
    #[arg(long)]
    latency: bool,
    /// Only wait for the queue to be declarable (passively) and report the time taken
    /// and its message count; nothing is published or purged.
    #[arg(long)]
    probe: bool,
    /// Do not purge the queue before the run.
    #[arg(long)]
    no_purge: bool,
}

#[derive(Debug, Default)]
struct Stats {
    published: AtomicU64,
    confirmed: AtomicU64,
    consumed: AtomicU64,
}

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("warren-perf: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Res<()> {
    let target = Target::parse(&args.url)?;
    if args.probe {
        return probe(&args, &target).await;
    }
    let mut setup = Client::connect(&target).await?;
    setup
        .declare_queue(&args.queue, args.durable, &args.queue_args)
        .await?;
    if !args.no_purge {
        setup.purge_queue(&args.queue).await?;
    }
    let stats = Arc::new(Stats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        let mut c = Client::connect(&target).await?;
        if args.ack {
            c.qos(args.prefetch).await?;
        }
        c.consume(&args.queue, !args.ack).await?;
        tasks.push(tokio::spawn(consume(
            c,
            args.ack,
            args.ack_every,
            stats.clone(),
            stop.clone(),
        )));
    }
    let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
    if args.latency {
        let mut c = Client::connect(&target).await?;
        c.confirm_select().await?;
        tasks.push(tokio::spawn(produce_one_at_a_time(
            c,
            publish_batch(&args, 1).slice(..one_message_len(&args)),
            stats.clone(),
            stop.clone(),
            latencies.clone(),
        )));
    } else {
        let batch = publish_batch(&args, 1);
        for _ in 0..args.producers {
            let mut c = Client::connect(&target).await?;
            if args.confirm.is_some() {
                c.confirm_select().await?;
            }
            tasks.push(tokio::spawn(produce(
                c,
                batch.clone(),
                args.confirm,
                args.messages,
                stats.clone(),
                stop.clone(),
            )));
        }
    }
    let cpu_before = (
        cpu::process_seconds(None),
        args.broker_pid.map(|p| cpu::process_seconds(Some(p))),
    );
    let started = Instant::now();
    let mut last = (0, 0);
    let mut tick = 0u64;
    while tick < args.duration * 10 {
        tick += 1;
        tokio::time::sleep_until((started + Duration::from_millis(tick * 100)).into()).await;
        if let Some(limit) = args.messages {
            let settled = if args.confirm.is_some() {
                stats.confirmed.load(Ordering::Relaxed)
            } else if args.consumers > 0 {
                stats.consumed.load(Ordering::Relaxed)
            } else {
                stats.published.load(Ordering::Relaxed)
            };
            if settled >= limit {
                break;
            }
        }
        if !tick.is_multiple_of(10) {
            continue;
        }
        let now = (
            stats.published.load(Ordering::Relaxed),
            stats.consumed.load(Ordering::Relaxed),
        );
        if !args.quiet && !args.json {
            eprintln!(
                "time {:>3}s  published {:>9} msg/s  consumed {:>9} msg/s",
                tick / 10,
                now.0 - last.0,
                now.1 - last.1
            );
        }
        last = now;
    }
    stop.store(true, Ordering::SeqCst);
    let elapsed = started.elapsed().as_secs_f64();
    let published = stats.published.load(Ordering::Relaxed);
    let consumed = stats.consumed.load(Ordering::Relaxed);
    let own_cpu = cpu::process_seconds(None) - cpu_before.0;
    let broker_cpu = args
        .broker_pid
        .zip(cpu_before.1)
        .map(|(pid, before)| cpu::process_seconds(Some(pid)) - before);
    for t in tasks {
        t.abort();
    }
    // Leave nothing behind on the broker.
    if !args.keep_queue {
        setup.delete_queue(&args.queue).await?;
    }
    let counted = if consumed > 0 { consumed } else { published };
    let per_msg = |cpu: f64| {
        if counted > 0 {
            cpu / counted as f64 * 1e6
        } else {
            0.0
        }
    };
    let latency = percentiles(
        &mut latencies
            .lock()
            .map_or_else(|e| e.into_inner().clone(), |l| l.clone()),
    );
    if args.json {
        println!(
            "{{\"published_per_sec\":{:.0},\"consumed_per_sec\":{:.0},\"confirmed\":{},\"seconds\":{:.2},\"size\":{},\"producers\":{},\"consumers\":{},\"ack\":{},\"tool_cpu_us_per_msg\":{:.3},\"broker_cpu_us_per_msg\":{}{latency}}}",
            published as f64 / elapsed,
            consumed as f64 / elapsed,
            stats.confirmed.load(Ordering::Relaxed),
            elapsed,
            args.size,
            args.producers,
            args.consumers,
            args.ack,
            per_msg(own_cpu),
            broker_cpu.map_or("null".to_owned(), |c| format!("{:.3}", per_msg(c))),
        );
    } else {
        println!(
            "published {:.0} msg/s, consumed {:.0} msg/s over {elapsed:.1} s",
            published as f64 / elapsed,
            consumed as f64 / elapsed
        );
        println!("tool CPU {:.3} us/msg", per_msg(own_cpu));
        if let Some(c) = broker_cpu {
            println!("broker CPU {:.3} us/msg", per_msg(c));
        }
        if !latency.is_empty() {
            println!("confirm latency (µs){}", latency.replace('"', " "));
        }
    }
    Ok(())
}

/// `,"latency_us":{"p50":..,"p99":..,"p999":..,"max":..,"samples":..}`, or nothing.
fn percentiles(samples: &mut [u64]) -> String {
    if samples.is_empty() {
        return String::new();
    }
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    format!(
        ",\"latency_us\":{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"samples\":{}}}",
        at(0.5),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1],
        samples.len()
    )
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

/// The encoded size of one publish (method, header and body frames).
fn one_message_len(args: &Args) -> usize {
    publish_batch(args, 1).len() / 64
}

/// Publish one message, wait for its confirm, record the time, repeat.
async fn produce_one_at_a_time(
    c: Client,
    message: bytes::Bytes,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
) -> Res<()> {
    let Client {
        mut rd,
        mut wr,
        mut rbuf,
        ..
    } = c;
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        wr.write_all(&message).await?;
        stats.published.fetch_add(1, Ordering::Relaxed);
        'wait: loop {
            while let Some(frame) = decode_frame(&mut rbuf, 0)? {
                if frame.frame_type != FrameType::Method || frame.payload.len() < 4 {
                    continue;
                }
                let mut p = frame.payload.clone();
                let (class, method) = (p.get_u16(), p.get_u16());
                if class == 60 && (method == 80 || method == 120) {
                    break 'wait;
                }
                if class == 10 && method == 50 {
                    return Err("the broker closed the publisher".into());
                }
            }
            if rd.read_buf(&mut rbuf).await? == 0 {
                return Err("the broker closed the publisher".into());
            }
        }
        // Recorded at once: the task is stopped by abort at the end of the run.
        if let Ok(mut all) = latencies.lock() {
            all.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
        }
        stats.confirmed.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// `count` publish+header+body frame sets, encoded once and written again and again.
fn publish_batch(args: &Args, count: usize) -> bytes::Bytes {
    let count = count.max(64);
    let publish = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
        exchange: "".into(),
        routing_key: args.queue.as_str().into(),
        mandatory: false,
        immediate: false,
    }));
    let properties: &[u8] = if args.persistent {
        &[0x10, 0x00, 2]
    } else {
        &[0, 0]
    };
    let body = vec![b'x'; args.size];
    let mut buf = BytesMut::new();
    for _ in 0..count {
        let _ = encode_method(&mut buf, 1, &publish);
        let _ = encode_content(&mut buf, 1, properties, &body, 131_072);
    }
    buf.freeze()
}

async fn produce(
    c: Client,
    batch: bytes::Bytes,
    confirm: Option<u32>,
    limit: Option<u64>,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Res<()> {
    let Client { mut rd, mut wr, .. } = c;
    let per_batch = 64u64;
    let window = confirm.map(|w| Arc::new(Semaphore::new(w.max(per_batch as u32) as usize)));
    // Read what the broker sends: confirms, or an error that ends the run.
    let reader = {
        let window = window.clone();
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            let mut confirmed = 0u64;
            loop {
                if rd.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                    return;
                }
                while let Ok(Some(frame)) = decode_frame(&mut buf, 0) {
                    if frame.frame_type != FrameType::Method || frame.payload.len() < 13 {
                        continue;
                    }
                    let mut p = frame.payload.clone();
                    let (class, method) = (p.get_u16(), p.get_u16());
                    if class == 60 && (method == 80 || method == 120) {
                        let tag = p.get_u64();
                        let multiple = p.get_u8() & 1 == 1;
                        let n = if multiple { tag - confirmed } else { 1 };
                        confirmed = confirmed.max(tag);
                        stats.confirmed.fetch_add(n, Ordering::Relaxed);
                        if let Some(w) = &window {
                            w.add_permits(n as usize);
                        }
                    } else if class == 10 && method == 50 {
                        eprintln!(
                            "warren-perf: the broker closed a producer: {:?}",
                            warren_codec::method::decode_method(&frame.payload)
                        );
                        return;
                    }
                }
            }
        })
    };
    while !stop.load(Ordering::Relaxed) {
        if let Some(w) = &window {
            w.acquire_many(per_batch as u32).await?.forget();
        }
        if limit.is_some_and(|l| stats.published.fetch_add(per_batch, Ordering::Relaxed) >= l) {
            stats.published.fetch_sub(per_batch, Ordering::Relaxed);
            break;
        }
        wr.write_all(&batch).await?;
        if limit.is_none() {
            stats.published.fetch_add(per_batch, Ordering::Relaxed);
        }
    }
    // Keep reading confirms for what was sent.
    if limit.is_some() {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    reader.abort();
    Ok(())
}

async fn consume(
    c: Client,
    ack: bool,
    ack_every: u64,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
) -> Res<()> {
    let Client {
        mut rd,
        mut wr,
        mut rbuf,
        ..
    } = c;
    let mut since_ack = 0u64;
    let mut out = BytesMut::with_capacity(256);
    while !stop.load(Ordering::Relaxed) {
        if rd.read_buf(&mut rbuf).await? == 0 {
            return Err("the broker closed a consumer".into());
        }
        let mut delivered = 0;
        let mut last_tag = 0;
        while let Some(frame) = decode_frame(&mut rbuf, 0)? {
            if frame.frame_type != FrameType::Method || frame.payload.len() < 4 {
                continue;
            }
            let mut p = frame.payload.clone();
            let (class, method) = (p.get_u16(), p.get_u16());
            if class == 60 && method == 60 {
                delivered += 1;
                if ack {
                    let tag_len = usize::from(p.get_u8());
                    p.advance(tag_len);
                    last_tag = p.get_u64();
                }
            } else if class == 10 && method == 50 {
                return Err(format!(
                    "the broker closed a consumer: {:?}",
                    warren_codec::method::decode_method(&frame.payload)
                )
                .into());
            }
        }
        stats.consumed.fetch_add(delivered, Ordering::Relaxed);
        since_ack += delivered;
        if ack && since_ack >= ack_every && last_tag > 0 {
            out.clear();
            encode_basic_ack(&mut out, 1, last_tag, true);
            wr.write_all(&out).await?;
            since_ack = 0;
        }
    }
    Ok(())
}
