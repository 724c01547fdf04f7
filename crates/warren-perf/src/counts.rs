//! Count runs: what N open connections or N declared queues cost the broker.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Res;
use crate::args::Args;
use crate::client::{Client, Target};
use crate::cpu::rss_mib;

/// Connection handshakes in flight at once: enough to keep the broker busy, few enough
/// not to overflow its listen backlog.
const CONNECTING_AT_ONCE: usize = 64;
/// Queue declarations in flight on the one channel of a queue-count run.
const DECLARING_AT_ONCE: u32 = 256;
/// How long one connection may take to open before it counts as refused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Serialize)]
pub struct CountSummary {
    /// `connections` or `queues`.
    pub kind: &'static str,
    pub count: u32,
    pub seconds: f64,
    pub per_second: f64,
    pub broker_rss_before_mib: Option<f64>,
    pub broker_rss_mib: Option<f64>,
    /// RSS growth divided by the count.
    pub broker_kib_each: Option<f64>,
    /// Connections that could not be opened (within [`CONNECT_TIMEOUT`] each), and why
    /// the first one failed.
    pub failed: u32,
    pub error: Option<String>,
}

impl CountSummary {
    fn new(
        kind: &'static str,
        count: u32,
        seconds: f64,
        before: Option<f64>,
        pid: Option<u32>,
    ) -> Self {
        let after = pid.and_then(rss_mib);
        Self {
            kind,
            count,
            seconds,
            per_second: f64::from(count) / seconds.max(1e-9),
            broker_rss_before_mib: before,
            broker_rss_mib: after,
            broker_kib_each: before
                .zip(after)
                .map(|(b, a)| (a - b) * 1024.0 / f64::from(count.max(1))),
            failed: 0,
            error: None,
        }
    }

    pub fn print(&self, json: bool) -> Res<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
            return Ok(());
        }
        println!(
            "{} {} in {:.3} s ({:.0}/s)",
            self.count, self.kind, self.seconds, self.per_second
        );
        if let Some(e) = &self.error {
            println!("{} failed, the first with: {e}", self.failed);
        }
        if let (Some(b), Some(a)) = (self.broker_rss_before_mib, self.broker_rss_mib) {
            println!(
                "broker RSS {b:.1} MiB before, {a:.1} MiB after ({:.1} KiB each)",
                self.broker_kib_each.unwrap_or(0.0)
            );
        }
        Ok(())
    }
}

/// Let the broker finish what the last replies set in motion before reading its RSS.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(500)).await;
}

pub async fn open_connections(args: &Args, target: &Target, count: u32) -> Res<()> {
    let before = args.broker_pid.and_then(rss_mib);
    let started = Instant::now();
    let gate = std::sync::Arc::new(Semaphore::new(CONNECTING_AT_ONCE));
    let mut opening = JoinSet::new();
    for _ in 0..count {
        let gate = gate.clone();
        let target = target.clone();
        opening.spawn(async move {
            let _permit = gate.acquire_owned().await;
            match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(&target)).await {
                Ok(Ok(c)) => Ok(c),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no connection within {CONNECT_TIMEOUT:?}")),
            }
        });
    }
    let mut open = Vec::with_capacity(count as usize);
    let mut failed = 0;
    let mut error = None;
    while let Some(joined) = opening.join_next().await {
        match joined? {
            Ok(c) => open.push(c),
            Err(e) => {
                failed += 1;
                error.get_or_insert(e);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    settle().await;
    let opened = u32::try_from(open.len()).unwrap_or(u32::MAX);
    let mut summary = CountSummary::new("connections", opened, seconds, before, args.broker_pid);
    summary.failed = failed;
    summary.error = error;
    summary.print(args.json)?;
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    drop(open);
    Ok(())
}

pub async fn declare_queues(args: &Args, target: &Target, count: u32) -> Res<()> {
    let mut c = Client::connect(target).await?;
    let name = |i: u32| format!("{}-q{i}", args.queue);
    let before = args.broker_pid.and_then(rss_mib);
    let started = Instant::now();
    let mut sent = 0;
    while sent < count {
        let n = DECLARING_AT_ONCE.min(count - sent);
        for i in sent..sent + n {
            c.send_declare_queue(&name(i), args.durable, &args.queue_args)
                .await?;
        }
        for _ in 0..n {
            c.expect_declare_ok().await?;
        }
        sent += n;
    }
    let seconds = started.elapsed().as_secs_f64();
    settle().await;
    CountSummary::new("queues", count, seconds, before, args.broker_pid).print(args.json)?;
    tokio::time::sleep(Duration::from_secs(args.hold)).await;
    if !args.keep_queue {
        let mut deleted = 0;
        while deleted < count {
            let n = DECLARING_AT_ONCE.min(count - deleted);
            for i in deleted..deleted + n {
                c.send_delete_queue(&name(i)).await?;
            }
            for _ in 0..n {
                c.expect_delete_ok().await?;
            }
            deleted += n;
        }
    }
    Ok(())
}
