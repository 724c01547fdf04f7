//! The crash harness: publishers in confirm mode and consumers with manual acks run
//! against a real `warren` process, which is killed with SIGKILL at random moments and
//! restarted on the same data directory. A ledger then checks that no confirmed message
//! is missing, that nothing arrives that was never published, and that every message
//! delivered more than once carries `redelivered` on its later deliveries.
//!
//! `WARREN_CRASH_CYCLES` sets the number of kill cycles (12 by default; `docs/storage.md`
//! records a long run). `WARREN_CRASH_SEED` replays a run's kill timings.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const QUEUES: [&str; 2] = ["crash.a", "crash.b"];
const EXCHANGE: &str = "crash.fanout";

#[derive(Default)]
struct Ledger {
    next_id: u64,
    published: HashSet<u64>,
    confirmed: HashSet<u64>,
    /// Deliveries seen per (queue, message id).
    delivered: HashMap<(usize, u64), u32>,
    violations: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

struct Broker {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start(data: &Path) -> Broker {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .arg("--data-dir")
        .arg(data)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    while !warren_testkit::accepts(addr).await {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "warren never listened"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Broker { child, addr }
}

fn url(addr: SocketAddr) -> String {
    format!("amqp://guest:guest@{addr}/%2f")
}

async fn declare(addr: SocketAddr) {
    let conn = Connection::connect(&url(addr), ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    for q in QUEUES {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q.into(),
            EXCHANGE.into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let _ = conn.close(200, "declared".into()).await;
}

/// Publish persistent messages in windows of up to `window`, recording what was sent
/// and what was confirmed, until the connection breaks.
async fn publisher(addr: SocketAddr, ledger: Shared, window: usize) {
    let Ok(conn) = Connection::connect(&url(addr), ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if ch
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .is_err()
    {
        return;
    }
    loop {
        let mut pending = Vec::with_capacity(window);
        for _ in 0..window {
            let id = {
                let mut l = ledger.lock().unwrap();
                l.next_id += 1;
                let id = l.next_id;
                l.published.insert(id);
                id
            };
            let sent = ch
                .basic_publish(
                    EXCHANGE.into(),
                    "".into(),
                    BasicPublishOptions::default(),
                    id.to_string().as_bytes(),
                    BasicProperties::default().with_delivery_mode(2),
                )
                .await;
            match sent {
                Ok(confirm) => pending.push((id, confirm)),
                Err(_) => return,
            }
        }
        for (id, confirm) in pending {
            match confirm.await {
                Ok(c) if c.is_ack() => {
                    ledger.lock().unwrap().confirmed.insert(id);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    }
}

/// Consume one queue with manual acks, recording every delivery, until the connection
/// breaks or (when `until_idle`) nothing arrives for a while.
async fn consumer(addr: SocketAddr, ledger: Shared, queue: usize, until_idle: bool) {
    let Ok(conn) = Connection::connect(&url(addr), ConnectionProperties::default()).await else {
        return;
    };
    let Ok(ch) = conn.create_channel().await else {
        return;
    };
    if ch.basic_qos(64, BasicQosOptions::default()).await.is_err() {
        return;
    }
    let Ok(mut deliveries) = ch
        .basic_consume(
            QUEUES[queue].into(),
            format!("c{queue}").as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
    else {
        return;
    };
    let idle = if until_idle {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(3600)
    };
    let mut n = 0u64;
    loop {
        let d = match tokio::time::timeout(idle, deliveries.next()).await {
            Ok(Some(Ok(d))) => d,
            _ => break,
        };
        {
            let mut l = ledger.lock().unwrap();
            let body = String::from_utf8_lossy(&d.data).into_owned();
            match body.parse::<u64>() {
                Ok(id) if l.published.contains(&id) => {
                    let seen = l.delivered.entry((queue, id)).or_default();
                    *seen += 1;
                    if *seen > 1 && !d.redelivered {
                        let n = *seen;
                        l.violations.push(format!(
                            "{}: message {id} delivered {n} times, later without redelivered",
                            QUEUES[queue]
                        ));
                    }
                }
                _ => l.violations.push(format!(
                    "{}: message {body:?} was never published",
                    QUEUES[queue]
                )),
            }
        }
        n += 1;
        // Mostly single acks, sometimes a multiple ack covering a few.
        if !n.is_multiple_of(5) {
            let multiple = n.is_multiple_of(7);
            if d.acker.ack(BasicAckOptions { multiple }).await.is_err() {
                break;
            }
        }
    }
    let _ = conn.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_confirmed_message_is_lost_across_sigkills() {
    let cycles: usize = std::env::var("WARREN_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("WARREN_CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("crash harness: {cycles} cycles, WARREN_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().unwrap();
    let ledger: Shared = Arc::default();
    let run_started = Instant::now();

    for cycle in 0..cycles {
        let mut broker = start(data.path()).await;
        if cycle == 0 {
            declare(broker.addr).await;
        }
        let mut tasks = Vec::new();
        tasks.push(tokio::spawn(publisher(broker.addr, ledger.clone(), 64)));
        tasks.push(tokio::spawn(publisher(broker.addr, ledger.clone(), 8)));
        for q in 0..QUEUES.len() {
            tasks.push(tokio::spawn(consumer(
                broker.addr,
                ledger.clone(),
                q,
                false,
            )));
        }
        let alive = Duration::from_millis(rng.random_range(100..1200));
        tokio::time::sleep(alive).await;
        broker.child.kill().unwrap();
        broker.child.wait().unwrap();
        // Clients notice the dead socket at different speeds (a pending confirm may wait
        // forever); the ledger is updated synchronously, so stopping them is safe.
        tokio::time::sleep(Duration::from_millis(100)).await;
        for t in &tasks {
            t.abort();
        }
        for t in tasks {
            let _ = t.await;
        }
        let l = ledger.lock().unwrap();
        eprintln!(
            "cycle {cycle}: killed after {alive:?}; {} published, {} confirmed so far",
            l.published.len(),
            l.confirmed.len()
        );
    }

    // Final round: no publishers, no kill; drain both queues.
    let broker = start(data.path()).await;
    let drains: Vec<_> = (0..QUEUES.len())
        .map(|q| tokio::spawn(consumer(broker.addr, ledger.clone(), q, true)))
        .collect();
    for d in drains {
        d.await.unwrap();
    }
    drop(broker);

    let l = ledger.lock().unwrap();
    let mut violations = l.violations.clone();
    for (q, name) in QUEUES.iter().enumerate() {
        let missing: Vec<u64> = l
            .confirmed
            .iter()
            .filter(|id| !l.delivered.contains_key(&(q, **id)))
            .copied()
            .collect();
        if !missing.is_empty() {
            violations.push(format!(
                "{name}: {} confirmed messages never delivered, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(10)]
            ));
        }
    }
    let duplicates = l.delivered.values().filter(|n| **n > 1).count();
    eprintln!(
        "crash harness: {cycles} cycles in {:?}; {} published, {} confirmed, {} deliveries, {} redelivered duplicates, {} violations",
        run_started.elapsed(),
        l.published.len(),
        l.confirmed.len(),
        l.delivered.values().map(|n| u64::from(*n)).sum::<u64>(),
        duplicates,
        violations.len()
    );
    assert!(
        l.confirmed.len() > cycles,
        "the harness confirmed too little to mean anything"
    );
    assert!(violations.is_empty(), "{violations:#?}");
}
