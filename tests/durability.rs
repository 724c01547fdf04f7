//! Issue 5 end to end: durable definitions and persistent messages across restarts,
//! confirms and transactions over a message store, disk space coming back, and damaged
//! store files. Restarts here are graceful (in-process, same data directory); crashes
//! with SIGKILL are the crash harness's job (`crates/warren/tests/crash.rs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeBindOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{TestBroker, channel, consume, err_code, next};

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    }
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8], props: BasicProperties) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            props,
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack(), "publish to {exchange}/{key} confirmed");
}

async fn count(ch: &Channel, queue: &str) -> u32 {
    ch.queue_declare(queue.into(), passive(), FieldTable::default())
        .await
        .unwrap()
        .message_count()
}

async fn get_body(ch: &Channel, queue: &str) -> Option<(Vec<u8>, bool)> {
    ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .map(|m| (m.delivery.data.clone(), m.delivery.redelivered))
}

async fn confirming(broker: &TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = channel(broker).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    (conn, ch)
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_bytes(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}

fn queue_dirs(data: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(data.join("queues"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn durable_definitions_come_back_and_transient_ones_do_not() {
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = channel(&broker).await;
        let durable_x = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        let ae = table(&[("alternate-exchange", AMQPValue::LongString("ae".into()))]);
        ch.exchange_declare("orders".into(), ExchangeKind::Topic, durable_x, ae)
            .await
            .unwrap();
        ch.exchange_declare(
            "ae".into(),
            ExchangeKind::Fanout,
            durable_x,
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_declare(
            "fleeting".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let limits = table(&[
            ("x-max-length", AMQPValue::LongInt(1000)),
            ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ]);
        for (name, options, args) in [
            ("orders.eu", durable(), limits.clone()),
            ("unrouted", durable(), FieldTable::default()),
            (
                "scratch",
                QueueDeclareOptions::default(),
                FieldTable::default(),
            ),
            (
                "mine",
                QueueDeclareOptions {
                    durable: true,
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        ] {
            ch.queue_declare(name.into(), options, args).await.unwrap();
        }
        ch.queue_bind(
            "orders.eu".into(),
            "orders".into(),
            "eu.#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            "unrouted".into(),
            "ae".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // A durable exchange bound into amq.topic, and bindings to a transient queue.
        ch.exchange_bind(
            "orders".into(),
            "amq.topic".into(),
            "eu.#".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_bind(
            "scratch".into(),
            "orders".into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let broker = broker.restart().await;
    let (_conn, ch) = confirming(&broker).await;
    for name in ["orders.eu", "unrouted"] {
        assert_eq!(count(&ch, name).await, 0, "durable queue {name} is back");
    }
    for name in ["scratch", "mine"] {
        let (_c, ch) = channel(&broker).await;
        let r = ch
            .queue_declare(name.into(), passive(), FieldTable::default())
            .await;
        assert_eq!(err_code(r), 404, "{name} did not come back");
    }
    let (_c, probe) = channel(&broker).await;
    let r = probe
        .exchange_declare(
            "fleeting".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(r), 404, "transient exchange did not come back");

    // The arguments came back: the same ones are equivalent, others are not.
    let limits = table(&[
        ("x-max-length", AMQPValue::LongInt(1000)),
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
    ]);
    ch.queue_declare("orders.eu".into(), durable(), limits)
        .await
        .unwrap();
    let (_c, probe) = channel(&broker).await;
    let r = probe
        .queue_declare("orders.eu".into(), durable(), FieldTable::default())
        .await;
    assert_eq!(err_code(r), 406);

    // Bindings and the alternate exchange route again: through amq.topic -> orders ->
    // orders.eu, and an unroutable key via the alternate exchange.
    publish(&ch, "amq.topic", "eu.1", b"one", persistent()).await;
    publish(&ch, "orders", "us.1", b"two", persistent()).await;
    assert_eq!(get_body(&ch, "orders.eu").await.unwrap().0, b"one");
    assert_eq!(get_body(&ch, "unrouted").await.unwrap().0, b"two");

    // Deleting removes them from disk too.
    ch.exchange_delete("orders".into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    ch.queue_delete("unrouted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    assert_eq!(count(&ch, "orders.eu").await, 0);
    let r = ch
        .queue_declare("unrouted".into(), passive(), FieldTable::default())
        .await;
    assert_eq!(err_code(r), 404);
    let (_conn, ch) = channel(&broker).await;
    let r = ch
        .exchange_declare(
            "orders".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(r), 404);
    assert_eq!(
        queue_dirs(&broker.data_dir()).len(),
        1,
        "only orders.eu keeps files"
    );
}

#[tokio::test]
async fn persistent_messages_come_back_in_order_with_unacked_ones_redelivered() {
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = confirming(&broker).await;
        ch.queue_declare("jobs".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        ch.queue_declare(
            "memory".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        let headers = table(&[("tenant", AMQPValue::LongString(LongString::from("acme")))]);
        for i in 0..60u32 {
            let props = if i % 3 == 2 {
                BasicProperties::default()
            } else {
                persistent()
                    .with_content_type(ShortString::from("text/plain"))
                    .with_headers(headers.clone())
            };
            publish(&ch, "", "jobs", format!("m{i}").as_bytes(), props.clone()).await;
            publish(&ch, "", "memory", b"gone", props).await;
        }
        // Take m0..m4 and acknowledge m0 and m1; m2 (transient), m3 and m4 stay
        // unacknowledged at shutdown.
        let (_c2, consumer_ch) = channel(&broker).await;
        let mut taken = Vec::new();
        for _ in 0..5 {
            taken.push(
                consumer_ch
                    .basic_get("jobs".into(), BasicGetOptions { no_ack: false })
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        for m in &taken[..2] {
            m.delivery
                .acker
                .ack(BasicAckOptions::default())
                .await
                .unwrap();
        }
        // Make sure the acks reached the queue before the shutdown.
        assert_eq!(count(&ch, "jobs").await, 60 - 5);
    }
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    let r = ch
        .queue_declare("memory".into(), passive(), FieldTable::default())
        .await;
    assert_eq!(err_code(r), 404, "a non-durable queue does not come back");
    let (_conn, ch) = channel(&broker).await;
    let persistent_ids: Vec<u32> = (0..60).filter(|i| i % 3 != 2).collect();
    // m0 and m1 were acked; m3 and m4 were delivered and come back redelivered.
    assert_eq!(count(&ch, "jobs").await, persistent_ids.len() as u32 - 2);
    let mut got = Vec::new();
    while let Some(m) = ch
        .basic_get("jobs".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        let props = m.delivery.properties.clone();
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.content_type().as_ref().map(ShortString::as_str),
            Some("text/plain")
        );
        assert!(
            props
                .headers()
                .as_ref()
                .unwrap()
                .inner()
                .contains_key("tenant")
        );
        got.push((
            String::from_utf8(m.delivery.data.clone()).unwrap(),
            m.delivery.redelivered,
        ));
    }
    let expected: Vec<(String, bool)> = persistent_ids[2..]
        .iter()
        .enumerate()
        .map(|(k, i)| (format!("m{i}"), k < 2))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn transactions_and_ttls_survive_restart() {
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = channel(&broker).await;
        ch.queue_declare("tx".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        ch.tx_select().await.unwrap();
        for i in 0..3 {
            ch.basic_publish(
                "".into(),
                "tx".into(),
                BasicPublishOptions::default(),
                format!("t{i}").as_bytes(),
                persistent(),
            )
            .await
            .unwrap();
        }
        ch.tx_commit().await.unwrap();
        ch.basic_publish(
            "".into(),
            "tx".into(),
            BasicPublishOptions::default(),
            b"short-lived",
            persistent().with_expiration(ShortString::from("1500")),
        )
        .await
        .unwrap();
        ch.tx_commit().await.unwrap();
    }
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    assert_eq!(count(&ch, "tx").await, 4);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        count(&ch, "tx").await,
        3,
        "the TTL still ran out after the restart"
    );
    for i in 0..3 {
        assert_eq!(
            get_body(&ch, "tx").await.unwrap(),
            (format!("t{i}").into_bytes(), false)
        );
    }
}

#[tokio::test]
async fn draining_a_queue_gives_disk_space_back_and_deleting_removes_its_files() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = confirming(&broker).await;
    ch.queue_declare("bulk".into(), durable(), FieldTable::default())
        .await
        .unwrap();
    let body = vec![7u8; 4096];
    let mut confirms = Vec::new();
    for _ in 0..6000 {
        confirms.push(
            ch.basic_publish(
                "".into(),
                "bulk".into(),
                BasicPublishOptions::default(),
                &body,
                persistent(),
            )
            .await
            .unwrap(),
        );
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
    let dirs = queue_dirs(&broker.data_dir());
    assert_eq!(dirs.len(), 1);
    let full = dir_bytes(&dirs[0]);
    assert!(full > 6000 * 4096, "messages are on disk ({full} octets)");
    let (_c2, consumer_ch) = channel(&broker).await;
    consumer_ch
        .basic_qos(500, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = consume(&consumer_ch, "bulk", "drain", false).await;
    for _ in 0..6000 {
        let d = next(&mut consumer).await;
        d.acker.ack(BasicAckOptions::default()).await.unwrap();
    }
    let mut drained = full;
    for _ in 0..100 {
        drained = dir_bytes(&dirs[0]);
        if drained < 9 * 1024 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        drained < 9 * 1024 * 1024,
        "segments of acknowledged messages are deleted ({full} -> {drained} octets)"
    );
    ch.queue_delete("bulk".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    for _ in 0..100 {
        if !dirs[0].exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!dirs[0].exists(), "a deleted queue's files are removed");
}

/// Flip a byte in the middle of a segment and cut its tail: the broker starts, reports
/// the damage and serves what is intact.
#[tokio::test]
async fn damaged_message_files_are_reported_and_skipped() {
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = confirming(&broker).await;
        for q in ["flipped", "cut"] {
            ch.queue_declare(q.into(), durable(), FieldTable::default())
                .await
                .unwrap();
            for i in 0..10 {
                publish(&ch, "", q, format!("{q}{i}").as_bytes(), persistent()).await;
            }
        }
    }
    let data = broker.data_dir();
    let broker = broker.stop().await;
    let mut segments: Vec<PathBuf> = queue_dirs(&data)
        .iter()
        .flat_map(|d| std::fs::read_dir(d).unwrap().flatten().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "msg") && p.metadata().unwrap().len() > 0)
        .collect();
    segments.sort();
    assert_eq!(segments.len(), 2);
    // Queues were declared in order, so their storage ids (and directories) sort so too.
    let flipped = &segments[0];
    let mut bytes = std::fs::read(flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(flipped, &bytes).unwrap();
    let cut = &segments[1];
    let len = std::fs::metadata(cut).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(cut)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    let broker = broker.start().await;
    let (_conn, ch) = channel(&broker).await;
    let flipped_left = count(&ch, "flipped").await;
    assert!(
        (1..10).contains(&flipped_left),
        "messages before the damage survive ({flipped_left})"
    );
    assert_eq!(
        count(&ch, "cut").await,
        9,
        "only the torn last record is lost"
    );
    for i in 0..flipped_left {
        assert_eq!(
            get_body(&ch, "flipped").await.unwrap().0,
            format!("flipped{i}").into_bytes()
        );
    }
    // The queue keeps working after the damage.
    let (_c, ch) = confirming(&broker).await;
    publish(&ch, "", "cut", b"after", persistent()).await;
    assert_eq!(count(&ch, "cut").await, 10);
}

#[tokio::test]
async fn amqprs_persistent_messages_survive_restart() {
    use amqprs::BasicProperties as Props;
    use amqprs::channel::{BasicGetArguments, BasicPublishArguments, QueueDeclareArguments};

    let broker = TestBroker::start().await;
    let open = warren_e2e::amqprs_open;
    {
        let (conn, ch) = open(&broker).await;
        ch.queue_declare(QueueDeclareArguments::durable_client_named(
            "amqprs.durable",
        ))
        .await
        .unwrap();
        // No confirm mode: amqprs needs a callback for confirms, and a confirm
        // arriving while it closes the connection makes its close() report an error.
        for i in 0..5 {
            ch.basic_publish(
                Props::default().with_delivery_mode(2).finish(),
                format!("p{i}").into_bytes(),
                BasicPublishArguments::new("", "amqprs.durable"),
            )
            .await
            .unwrap();
        }
        // Publishing, then a declare round trip: the queue has taken every publish.
        let (_, count, _) = ch
            .queue_declare(QueueDeclareArguments::durable_client_named(
                "amqprs.durable",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(count, 5);
        conn.close().await.unwrap();
    }
    let broker = broker.restart().await;
    let (conn, ch) = open(&broker).await;
    for i in 0..5 {
        let (_, _, body) = ch
            .basic_get(
                BasicGetArguments::new("amqprs.durable")
                    .no_ack(true)
                    .finish(),
            )
            .await
            .unwrap()
            .unwrap();
        assert_eq!(body, format!("p{i}").into_bytes());
    }
    conn.close().await.unwrap();
}

/// Publish `n` messages numbered from `from` to `queue`, every `transient_every`-th one
/// transient, waiting for all confirms.
async fn publish_numbered(ch: &Channel, queue: &str, from: u32, n: u32, transient_every: u32) {
    let mut confirms = Vec::new();
    for i in from..from + n {
        let props = if transient_every > 0 && i % transient_every == 0 {
            BasicProperties::default()
        } else {
            persistent()
        };
        confirms.push(
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                i.to_string().as_bytes(),
                props,
            )
            .await
            .unwrap(),
        );
        if confirms.len() == 2000 {
            for c in confirms.drain(..) {
                assert!(c.await.unwrap().is_ack());
            }
        }
    }
    for c in confirms {
        assert!(c.await.unwrap().is_ack());
    }
}

/// A backlog larger than a durable queue keeps in memory waits on disk and is served in
/// order, transient messages included; after a restart it is counted, served from disk
/// and purged.
#[tokio::test]
async fn a_backlog_beyond_memory_is_served_in_order_and_survives_restart() {
    let broker = TestBroker::start().await;
    let total = 40_000u32;
    {
        let (_conn, ch) = confirming(&broker).await;
        ch.queue_declare("backlog".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        publish_numbered(&ch, "backlog", 0, total, 4).await;
        assert_eq!(count(&ch, "backlog").await, total);
        {
            let (c2, consumer_ch) = channel(&broker).await;
            let mut consumer = consume(&consumer_ch, "backlog", "all", true).await;
            for i in 0..total {
                let d = next(&mut consumer).await;
                assert_eq!(d.data, i.to_string().into_bytes(), "in order");
            }
            c2.close(200, "done".into()).await.unwrap();
        }
        assert_eq!(count(&ch, "backlog").await, 0);
        // Now leave a backlog for the restart.
        publish_numbered(&ch, "backlog", 0, total, 4).await;
        assert_eq!(count(&ch, "backlog").await, total);
    }
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    let persistent_left = total - total / 4;
    assert_eq!(
        count(&ch, "backlog").await,
        persistent_left,
        "transient ones died"
    );
    for i in (0..total).filter(|i| i % 4 != 0).take(5) {
        assert_eq!(
            get_body(&ch, "backlog").await.unwrap(),
            (i.to_string().into_bytes(), false)
        );
    }
    let purged = ch
        .queue_purge(
            "backlog".into(),
            lapin::options::QueuePurgeOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(purged, persistent_left - 5);
    assert_eq!(count(&ch, "backlog").await, 0);
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    assert_eq!(count(&ch, "backlog").await, 0, "the purge reached the disk");
}

/// Length limits count the backlog: drop-head takes from the oldest, on disk or not.
#[tokio::test]
async fn length_limits_count_the_backlog() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = confirming(&broker).await;
    let limit = table(&[("x-max-length", AMQPValue::LongInt(30_000))]);
    ch.queue_declare("capped".into(), durable(), limit)
        .await
        .unwrap();
    publish_numbered(&ch, "capped", 0, 35_000, 0).await;
    assert_eq!(count(&ch, "capped").await, 30_000);
    assert_eq!(get_body(&ch, "capped").await.unwrap().0, b"5000");
}

/// Damage to the definition store (sled cuts its log at the damage, silently) never
/// throws messages away: a queue it lost comes back from the record kept beside its
/// messages, and the start is clean.
#[tokio::test]
async fn a_damaged_definition_store_does_not_lose_queues_with_messages() {
    for damage in ["truncate", "flip"] {
        let broker = TestBroker::start().await;
        {
            let (_conn, ch) = confirming(&broker).await;
            for i in 0..40 {
                ch.queue_declare(
                    format!("filler{i}").as_str().into(),
                    durable(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            }
            let args = table(&[("x-max-length", AMQPValue::LongInt(100))]);
            ch.queue_declare("precious".into(), durable(), args)
                .await
                .unwrap();
            for i in 0..5 {
                publish(
                    &ch,
                    "",
                    "precious",
                    format!("p{i}").as_bytes(),
                    persistent(),
                )
                .await;
            }
        }
        let data = broker.data_dir();
        let stopped = broker.stop().await;
        let db = data.join("definitions").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        if damage == "truncate" {
            bytes.truncate(bytes.len() / 3);
        } else {
            let at = bytes.len() / 3;
            for b in &mut bytes[at..at + 64] {
                *b ^= 0xA5;
            }
        }
        std::fs::write(&db, &bytes).unwrap();

        let broker = stopped.start().await;
        let (_conn, ch) = channel(&broker).await;
        assert_eq!(
            count(&ch, "precious").await,
            5,
            "{damage}: the queue and its messages are back"
        );
        // Its arguments came back too.
        let (_c, probe) = channel(&broker).await;
        let r = probe
            .queue_declare("precious".into(), durable(), FieldTable::default())
            .await;
        assert_eq!(err_code(r), 406, "{damage}");
        for i in 0..5 {
            assert_eq!(
                get_body(&ch, "precious").await.unwrap().0,
                format!("p{i}").into_bytes()
            );
        }
        let broker = broker.restart().await;
        let (_conn, ch) = channel(&broker).await;
        assert_eq!(
            count(&ch, "precious").await,
            0,
            "{damage}: adopted for good"
        );
    }
}

/// The disk refuses a write (the next segment file is `/dev/full`): the queue nacks
/// every confirm from then on and refuses new messages, never acks anything it could
/// not store, and the broker and its other queues carry on.
#[tokio::test]
async fn a_failing_disk_never_leads_to_a_confirm() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = confirming(&broker).await;
    for q in ["doomed", "healthy"] {
        ch.queue_declare(q.into(), durable(), FieldTable::default())
            .await
            .unwrap();
    }
    // The queue's directory: the one whose own record names it. The queue task writes
    // that record when it opens its log, which may be just after declare-ok (the
    // definition store has the queue by then).
    let mut dir = None;
    for _ in 0..500 {
        dir = queue_dirs(&broker.data_dir()).into_iter().find(|d| {
            std::fs::read_to_string(d.join("queue.def")).is_ok_and(|s| s.contains("doomed"))
        });
        if dir.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = dir.expect("the queue's directory");
    std::os::unix::fs::symlink("/dev/full", dir.join("0000000001.msg")).unwrap();

    // 100 KiB messages: the first segment (8 MiB) fills after about 80.
    let body = vec![1u8; 100 * 1024];
    let mut outcomes = Vec::new();
    for _ in 0..120 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "doomed".into(),
                BasicPublishOptions::default(),
                &body,
                persistent(),
            )
            .await
            .unwrap();
        outcomes.push(confirm.await.unwrap().is_ack());
    }
    let first_nack = outcomes
        .iter()
        .position(|ack| !ack)
        .expect("the failure is nacked");
    assert!(first_nack > 50, "the first segment worked ({first_nack})");
    assert!(
        outcomes[first_nack..].iter().all(|ack| !ack),
        "no ack after the failure: {outcomes:?}"
    );
    // Still refused later; the broker and the other queue are fine.
    let later = ch
        .basic_publish(
            "".into(),
            "doomed".into(),
            BasicPublishOptions::default(),
            b"x",
            persistent(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(later.is_nack());
    publish(&ch, "", "healthy", b"fine", persistent()).await;
    assert_eq!(get_body(&ch, "healthy").await.unwrap().0, b"fine");
}

/// A persistent body that arrived in many frames is written to disk whole and comes back
/// whole after a restart.
#[tokio::test]
async fn multi_frame_persistent_bodies_survive_restart() {
    let broker = TestBroker::start().await;
    // Three 128 KiB frames: kept as three parts, written to the log one after another.
    let body: Vec<u8> = (0..300_001).map(|i| (i % 241) as u8).collect();
    {
        let (conn, ch) = confirming(&broker).await;
        ch.queue_declare("frames".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        publish(&ch, "", "frames", &body, persistent()).await;
        publish(&ch, "", "frames", b"after", persistent()).await;
        conn.close(200, "bye".into()).await.unwrap();
    }
    let broker = broker.restart().await;
    let (_conn, ch) = channel(&broker).await;
    assert_eq!(count(&ch, "frames").await, 2);
    let (got, _) = get_body(&ch, "frames").await.unwrap();
    assert!(
        got == body,
        "the body read back from disk is the one published"
    );
    assert_eq!(get_body(&ch, "frames").await.unwrap().0, b"after");
}

/// A durable queue stored with arguments that a newer Warren refuses for new
/// declarations (here `x-max-in-memory-length`, which RabbitMQ refuses on classic
/// queues) still comes back at start, with its messages.
#[tokio::test]
async fn a_stored_queue_comes_back_even_if_its_arguments_are_now_refused() {
    use warren_store::definitions::{DefinitionStore, SledDefinitions};
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = channel(&broker).await;
        ch.confirm_select(Default::default()).await.unwrap();
        ch.queue_declare("kept".into(), durable(), FieldTable::default())
            .await
            .unwrap();
        publish(&ch, "", "kept", b"still here", persistent()).await;
    }
    let data = broker.data_dir();
    let broker = broker.stop().await;
    {
        let store = SledDefinitions::open(&data.join("definitions")).unwrap();
        let mut queue = store
            .load()
            .unwrap()
            .queues
            .into_iter()
            .find(|q| q.name == "kept")
            .unwrap();
        let mut args = FieldTable::default();
        args.insert("x-max-in-memory-length".into(), AMQPValue::LongInt(5));
        queue.arguments = warren_codec::table::encode_field_table(&args).unwrap();
        store.put_queue(&queue).unwrap();
        store.flush().unwrap();
    }
    let broker = broker.start().await;
    let (_conn, ch) = channel(&broker).await;
    assert_eq!(count(&ch, "kept").await, 1);
    let mut c = consume(&ch, "kept", "c", true).await;
    assert_eq!(next(&mut c).await.data, b"still here");
}
