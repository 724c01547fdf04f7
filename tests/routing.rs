//! Issue 3 end to end: topic and headers exchanges, exchange-to-exchange bindings,
//! alternate exchanges, CC/BCC, exchange lifecycle and the consistent-hash exchange.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a panic is the failure report"
)]

use std::collections::HashMap;
use std::time::Duration;

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{TestBroker, channel, consume, declare, err_code, next, no_delivery};

async fn exchange(ch: &Channel, name: &str, kind: &str, args: FieldTable) {
    let kind = match kind {
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "topic" => ExchangeKind::Topic,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.into()),
    };
    ch.exchange_declare(name.into(), kind, ExchangeDeclareOptions::default(), args)
        .await
        .unwrap();
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    )
    .await
    .unwrap();
}

async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    publish_with(ch, exchange, key, body, BasicProperties::default()).await;
}

/// Everything in `queue` right now (no-ack gets until empty).
async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut out = Vec::new();
    while let Some(m) = ch
        .basic_get(
            queue.into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
    {
        out.push(m.delivery.data.clone());
    }
    out
}

fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

#[tokio::test]
async fn topic_rules() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    exchange(&ch, "t", "topic", FieldTable::default()).await;
    let patterns = [
        ("all", "#"),
        ("one", "*"),
        ("a_any", "a.#"),
        ("ends_b", "#.b"),
        ("a_b", "a.#.b"),
        ("a_star_any", "a.*.#"),
        ("empty", ""),
    ];
    for (q, p) in patterns {
        declare(&ch, q).await;
        bind(&ch, q, "t", p, FieldTable::default()).await;
        // A second matching binding must not duplicate deliveries.
        bind(&ch, q, "t", "#.#", FieldTable::default()).await;
        ch.queue_unbind(q.into(), "t".into(), "#.#".into(), FieldTable::default())
            .await
            .unwrap();
    }
    for key in ["", "a", "a.b", "a.x.y.b", "b", "a..b"] {
        publish(&ch, "t", key, key.as_bytes()).await;
    }
    let expect: HashMap<&str, Vec<&str>> = HashMap::from([
        ("all", vec!["", "a", "a.b", "a.x.y.b", "b", "a..b"]),
        ("one", vec!["a", "b"]),
        ("a_any", vec!["a", "a.b", "a.x.y.b", "a..b"]),
        ("ends_b", vec!["a.b", "a.x.y.b", "b", "a..b"]),
        ("a_b", vec!["a.b", "a.x.y.b", "a..b"]),
        ("a_star_any", vec!["a.b", "a.x.y.b", "a..b"]),
        ("empty", vec![""]),
    ]);
    for (q, _) in patterns {
        let got: Vec<String> = drain(&ch, q)
            .await
            .into_iter()
            .map(|b| String::from_utf8(b).unwrap())
            .collect();
        assert_eq!(got, expect[q], "queue {q}");
    }
}

#[tokio::test]
async fn headers_exchange_modes() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    for q in [
        "all",
        "any",
        "all_x",
        "any_x",
        "presence",
        "typed",
        "via_match",
    ] {
        declare(&ch, q).await;
    }
    bind(
        &ch,
        "all",
        "amq.headers",
        "",
        table(&[("x-match", s("all")), ("a", s("1")), ("b", s("2"))]),
    )
    .await;
    bind(
        &ch,
        "any",
        "amq.headers",
        "",
        table(&[("x-match", s("any")), ("a", s("1")), ("b", s("2"))]),
    )
    .await;
    bind(
        &ch,
        "via_match",
        "amq.match",
        "",
        table(&[("x-match", s("any")), ("a", s("1"))]),
    )
    .await;
    bind(
        &ch,
        "all_x",
        "amq.headers",
        "",
        table(&[("x-match", s("all-with-x")), ("x-tenant", s("t1"))]),
    )
    .await;
    bind(
        &ch,
        "any_x",
        "amq.headers",
        "",
        table(&[
            ("x-match", s("any-with-x")),
            ("x-tenant", s("t2")),
            ("a", s("9")),
        ]),
    )
    .await;
    bind(
        &ch,
        "presence",
        "amq.headers",
        "",
        table(&[("flag", AMQPValue::Void)]),
    )
    .await;
    bind(
        &ch,
        "typed",
        "amq.headers",
        "",
        table(&[("n", AMQPValue::LongInt(5))]),
    )
    .await;
    let send = |h: FieldTable, body: &'static [u8]| {
        let ch = ch.clone();
        async move {
            publish_with(
                &ch,
                "amq.headers",
                "",
                body,
                BasicProperties::default().with_headers(h),
            )
            .await
        }
    };
    send(table(&[("a", s("1")), ("b", s("2"))]), b"ab").await;
    send(table(&[("a", s("1"))]), b"a").await;
    send(table(&[("x-tenant", s("t1"))]), b"t1").await;
    send(table(&[("x-tenant", s("t2"))]), b"t2").await;
    send(table(&[("flag", s("anything"))]), b"flag").await;
    send(table(&[("n", AMQPValue::LongLongInt(5))]), b"n-long").await;
    send(table(&[("n", s("5"))]), b"n-string").await;
    assert_eq!(drain(&ch, "all").await, vec![b"ab".to_vec()]);
    assert_eq!(drain(&ch, "any").await, vec![b"ab".to_vec(), b"a".to_vec()]);
    assert_eq!(drain(&ch, "all_x").await, vec![b"t1".to_vec()]);
    assert_eq!(drain(&ch, "any_x").await, vec![b"t2".to_vec()]);
    assert_eq!(drain(&ch, "presence").await, vec![b"flag".to_vec()]);
    assert_eq!(drain(&ch, "typed").await, vec![b"n-long".to_vec()]);
    publish_with(
        &ch,
        "amq.match",
        "",
        b"m",
        BasicProperties::default().with_headers(table(&[("a", s("1"))])),
    )
    .await;
    assert_eq!(drain(&ch, "via_match").await, vec![b"m".to_vec()]);
}

#[tokio::test]
async fn invalid_binding_arguments_are_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    declare(&ch, "q").await;
    let err = ch
        .queue_bind(
            "q".into(),
            "amq.headers".into(),
            "".into(),
            Default::default(),
            table(&[("x-match", s("most"))]),
        )
        .await;
    assert_eq!(err_code(err), 406);
    let ch = conn.create_channel().await.unwrap();
    exchange(&ch, "ch", "x-consistent-hash", FieldTable::default()).await;
    let err = ch
        .queue_bind(
            "q".into(),
            "ch".into(),
            "heavy".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await;
    assert_eq!(err_code(err), 406);
    let ch = conn.create_channel().await.unwrap();
    let err = ch
        .exchange_declare(
            "bad-ch".into(),
            ExchangeKind::Custom("x-consistent-hash".into()),
            Default::default(),
            table(&[("hash-property", s("priority"))]),
        )
        .await;
    assert_eq!(err_code(err), 406);
}

#[tokio::test]
async fn exchange_to_exchange_chains_loops_and_single_copies() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    for x in ["x1", "x2", "x3"] {
        exchange(&ch, x, "fanout", FieldTable::default()).await;
    }
    let e2e = |dest: &'static str, src: &'static str| {
        let ch = ch.clone();
        async move {
            ch.exchange_bind(
                dest.into(),
                src.into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        }
    };
    e2e("x2", "x1").await;
    e2e("x3", "x2").await;
    e2e("x1", "x3").await; // a loop
    declare(&ch, "deep").await;
    bind(&ch, "deep", "x3", "", FieldTable::default()).await;
    bind(&ch, "deep", "x1", "", FieldTable::default()).await; // a second path
    publish(&ch, "x1", "", b"once").await;
    assert_eq!(drain(&ch, "deep").await, vec![b"once".to_vec()]);
    ch.exchange_unbind(
        "x2".into(),
        "x1".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind("deep".into(), "x1".into(), "".into(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "x1", "", b"nowhere").await;
    assert!(drain(&ch, "deep").await.is_empty());
}

#[tokio::test]
async fn alternate_exchange_chains_and_mandatory() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    exchange(&ch, "last", "fanout", FieldTable::default()).await;
    exchange(
        &ch,
        "ae1",
        "direct",
        table(&[("alternate-exchange", s("last"))]),
    )
    .await;
    exchange(
        &ch,
        "main",
        "direct",
        table(&[("alternate-exchange", s("ae1"))]),
    )
    .await;
    exchange(
        &ch,
        "lonely",
        "direct",
        table(&[("alternate-exchange", s("missing"))]),
    )
    .await;
    for q in ["m", "a1", "l"] {
        declare(&ch, q).await;
    }
    bind(&ch, "m", "main", "k", FieldTable::default()).await;
    bind(&ch, "a1", "ae1", "special", FieldTable::default()).await;
    bind(&ch, "l", "last", "", FieldTable::default()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    for (key, body) in [("k", "main"), ("special", "ae1"), ("other", "last")] {
        let confirm = ch
            .basic_publish(
                "main".into(),
                key.into(),
                mandatory,
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(
            confirm.take_message().is_none(),
            "{key} was returned although an alternate routed it"
        );
    }
    let confirm = ch
        .basic_publish(
            "lonely".into(),
            "x".into(),
            mandatory,
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(confirm.take_message().unwrap().reply_code, 312);
    assert_eq!(drain(&ch, "m").await, vec![b"main".to_vec()]);
    assert_eq!(drain(&ch, "a1").await, vec![b"ae1".to_vec()]);
    assert_eq!(drain(&ch, "l").await, vec![b"last".to_vec()]);
}

#[tokio::test]
async fn cc_and_bcc_route_and_bcc_is_removed() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    for q in ["to", "cc", "bcc"] {
        declare(&ch, q).await;
    }
    let headers = table(&[
        ("CC", AMQPValue::FieldArray(FieldArray::from(vec![s("cc")]))),
        (
            "BCC",
            AMQPValue::FieldArray(FieldArray::from(vec![s("bcc")])),
        ),
        ("keep", s("me")),
    ]);
    publish_with(
        &ch,
        "",
        "to",
        b"memo",
        BasicProperties::default().with_headers(headers),
    )
    .await;
    for q in ["to", "cc", "bcc"] {
        let mut c = consume(&ch, q, &format!("c-{q}"), true).await;
        let d = next(&mut c).await;
        assert_eq!(d.data, b"memo");
        let h = d.properties.headers().clone().unwrap();
        assert!(h.contains_key("CC") && h.contains_key("keep"), "{q}: {h:?}");
        assert!(!h.contains_key("BCC"), "{q}: BCC leaked");
        no_delivery(&mut c, Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn auto_delete_through_exchange_bindings_and_cleanup_on_delete() {
    let broker = TestBroker::start().await;
    let (conn, ch) = channel(&broker).await;
    ch.exchange_declare(
        "ad".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .unwrap();
    exchange(&ch, "dst", "fanout", FieldTable::default()).await;
    ch.exchange_bind(
        "dst".into(),
        "ad".into(),
        "".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    // Deleting the destination removes the binding; the auto-delete source goes with it.
    ch.exchange_delete("dst".into(), Default::default())
        .await
        .unwrap();
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    assert_eq!(
        err_code(
            ch.exchange_declare(
                "ad".into(),
                ExchangeKind::Fanout,
                passive,
                FieldTable::default()
            )
            .await
        ),
        404
    );
    // Deleting a queue removes its bindings: a queue of the same name starts unbound.
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "qq").await;
    bind(&ch, "qq", "amq.fanout", "", FieldTable::default()).await;
    ch.queue_delete("qq".into(), Default::default())
        .await
        .unwrap();
    declare(&ch, "qq").await;
    publish(&ch, "amq.fanout", "", b"x").await;
    assert!(drain(&ch, "qq").await.is_empty());
}

#[tokio::test]
async fn consistent_hash_spreads_and_is_stable() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    exchange(&ch, "ring", "x-consistent-hash", FieldTable::default()).await;
    for q in ["h1", "h2", "h3"] {
        declare(&ch, q).await;
        bind(&ch, q, "ring", "10", FieldTable::default()).await;
    }
    for i in 0..300 {
        publish(&ch, "ring", &format!("key-{i}"), format!("{i}").as_bytes()).await;
    }
    let mut owner = HashMap::new();
    let mut total = 0;
    for q in ["h1", "h2", "h3"] {
        let got = drain(&ch, q).await;
        assert!(got.len() > 30, "{q} got only {}", got.len());
        total += got.len();
        for body in got {
            owner.insert(String::from_utf8(body).unwrap(), q);
        }
    }
    assert_eq!(total, 300, "each message goes to exactly one queue");
    // The same key always lands in the same queue.
    for i in [7, 42, 199] {
        publish(&ch, "ring", &format!("key-{i}"), b"again").await;
        let q = owner[&i.to_string()];
        assert_eq!(drain(&ch, q).await, vec![b"again".to_vec()], "key-{i}");
    }
    // Adding a queue moves only part of the keys.
    declare(&ch, "h4").await;
    bind(&ch, "h4", "ring", "10", FieldTable::default()).await;
    for i in 0..300 {
        publish(&ch, "ring", &format!("key-{i}"), format!("{i}").as_bytes()).await;
    }
    let mut moved = 0;
    for q in ["h1", "h2", "h3", "h4"] {
        for body in drain(&ch, q).await {
            if owner[&String::from_utf8(body).unwrap()] != q {
                moved += 1;
            }
        }
    }
    assert!(moved < 150, "{moved} of 300 keys moved");
}

#[tokio::test]
async fn consistent_hash_on_a_header() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = channel(&broker).await;
    exchange(
        &ch,
        "by-user",
        "x-consistent-hash",
        table(&[("hash-header", s("user"))]),
    )
    .await;
    for q in ["u1", "u2"] {
        declare(&ch, q).await;
        bind(&ch, q, "by-user", "5", FieldTable::default()).await;
    }
    for i in 0..20 {
        let h = table(&[("user", s("alice"))]);
        publish_with(
            &ch,
            "by-user",
            &format!("rk-{i}"),
            b"a",
            BasicProperties::default().with_headers(h),
        )
        .await;
    }
    let (a, b) = (drain(&ch, "u1").await.len(), drain(&ch, "u2").await.len());
    assert!(
        (a, b) == (20, 0) || (a, b) == (0, 20),
        "one user, one queue: {a} {b}"
    );
}
