//! The load tool end to end: the `warren-perf` binary against a real Warren on a
//! loopback port, each kind of run, its JSON summary read back and checked for what
//! the run must have done. Counts and relations only: no timing is asserted beyond
//! what a rate limit guarantees.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::process::Command;

use serde_json::Value;
use warren_testkit::TestBroker;

/// Runs the tool with `args` against `broker` (reporting this process's CPU and RSS as
/// the broker's: the broker runs in it), and returns its JSON summary.
async fn perf(broker: &TestBroker, args: &[&str]) -> Value {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warren-perf"));
    command
        .args(["--url", &broker.url(), "--json", "--quiet"])
        .args(["--broker-pid", &std::process::id().to_string()])
        .args(args);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "warren-perf {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("not a JSON summary ({e}): {stdout}"))
}

fn count(summary: &Value, field: &str) -> u64 {
    summary[field]
        .as_u64()
        .unwrap_or_else(|| panic!("no {field} in {summary}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counted_run_consumes_every_message_it_publishes() {
    let broker = TestBroker::start().await;
    let s = perf(&broker, &["--messages", "20000", "--duration", "60"]).await;
    assert_eq!(count(&s, "published"), 20_000);
    assert_eq!(count(&s, "consumed"), 20_000);
    assert!(s["consumed_per_sec"].as_f64().unwrap() > 0.0);
    assert!(s["broker_cpu_us_per_msg"].as_f64().unwrap() > 0.0);
    assert!(s["broker_rss_mib"].as_f64().unwrap() > 0.0);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_with_confirms_and_acks_are_all_confirmed_and_consumed() {
    let broker = TestBroker::start().await;
    let s = perf(
        &broker,
        &[
            "--messages",
            "5000",
            "--duration",
            "60",
            "--persistent",
            "--durable",
            "--confirm",
            "100",
            "--ack",
            "--prefetch",
            "50",
            "--ack-every",
            "10",
            "--size",
            "1024",
        ],
    )
    .await;
    assert_eq!(count(&s, "published"), 5000);
    assert_eq!(count(&s, "confirmed"), 5000);
    assert_eq!(count(&s, "nacked"), 0);
    assert_eq!(count(&s, "consumed"), 5000);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_each_message_to_every_queue() {
    let broker = TestBroker::start().await;
    let s = perf(
        &broker,
        &[
            "--messages",
            "3000",
            "--duration",
            "60",
            "--exchange-type",
            "fanout",
            "--queues",
            "3",
            "--consumers",
            "3",
        ],
    )
    .await;
    assert_eq!(count(&s, "published"), 3000);
    assert_eq!(count(&s, "consumed"), 9000);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_latency_run_keeps_to_its_rate_and_reports_ordered_percentiles() {
    let broker = TestBroker::start().await;
    let s = perf(
        &broker,
        &[
            "--latency",
            "--rate",
            "1000",
            "--duration",
            "2",
            "--size",
            "16",
        ],
    )
    .await;
    let seconds = s["seconds"].as_f64().unwrap();
    let published = count(&s, "published");
    // The limiter never runs ahead of the rate; a slow machine may fall behind it.
    assert!(
        (published as f64) <= 1000.0 * seconds + 1.0,
        "{published} in {seconds} s"
    );
    assert!(published >= 500, "{published} in {seconds} s");
    let l = &s["latency_us"];
    // (Samples are counted until the consumers stop, after the published count is
    // taken, so they may exceed it by the last few.)
    assert!(l["samples"].as_u64().unwrap() > 0, "{l}");
    let [p50, p90, p99, p999, max] =
        ["p50", "p90", "p99", "p999", "max"].map(|k| l[k].as_u64().unwrap());
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{l}"
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_latency_run_times_each_confirm() {
    let broker = TestBroker::start().await;
    let s = perf(
        &broker,
        &[
            "--confirm-latency",
            "--persistent",
            "--durable",
            "--messages",
            "300",
            "--duration",
            "60",
        ],
    )
    .await;
    assert_eq!(count(&s, "published"), 300);
    assert_eq!(count(&s, "confirmed"), 300);
    assert_eq!(s["latency_us"]["samples"].as_u64(), Some(300));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_runs_open_connections_and_declare_queues() {
    let broker = TestBroker::start().await;
    let s = perf(&broker, &["--connections", "200"]).await;
    assert_eq!(s["kind"], "connections");
    assert_eq!(count(&s, "count"), 200);
    assert_eq!(count(&s, "failed"), 0, "{s}");
    assert!(s["broker_rss_mib"].as_f64().unwrap() > 0.0);
    let s = perf(&broker, &["--declare-queues", "500"]).await;
    assert_eq!(s["kind"], "queues");
    assert_eq!(count(&s, "count"), 500);
    assert_eq!(count(&s, "failed"), 0, "{s}");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_combination_fails_before_connecting() {
    let output = tokio::task::spawn_blocking(|| {
        Command::new(env!("CARGO_BIN_EXE_warren-perf"))
            .args(["--url", "amqp://guest:guest@127.0.0.1:1/%2f", "--rate", "0"])
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--rate must be positive"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_held_back_by_a_resource_alarm_says_so_and_finishes_once_it_clears() {
    let broker = TestBroker::start().await;
    broker.broker().set_memory_alarm(true);
    let clear = {
        let broker = broker.broker().clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            broker.set_memory_alarm(false);
        })
    };
    let s = perf(&broker, &["--messages", "1000", "--duration", "60"]).await;
    clear.await.unwrap();
    assert!(count(&s, "blocked") >= 1, "{s}");
    assert_eq!(count(&s, "consumed"), 1000);
    broker.shutdown().await;
}
