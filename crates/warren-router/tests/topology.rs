//! Routing across exchanges: types, e2e chains and loops, alternate exchanges, CC/BCC,
//! auto-delete and cleanup.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;

use bytes::Bytes;
use smallvec::SmallVec;
use warren_router::{
    AMQPValue, Dest, ExchangeFlags, ExchangeKind, FieldTable, RouteError, RouteInput, Topology,
};

type T = Topology<&'static str>;

fn topology(queues: &[&'static str]) -> T {
    let mut t = Topology::new();
    for q in queues {
        t.add_queue(Arc::from(*q), *q).unwrap();
    }
    t
}

fn declare(t: &mut T, name: &str, kind: ExchangeKind) {
    t.declare_exchange(
        Arc::from(name),
        kind,
        ExchangeFlags::default(),
        FieldTable::default(),
    )
    .unwrap();
}

fn declare_with(t: &mut T, name: &str, kind: ExchangeKind, flags: ExchangeFlags, args: FieldTable) {
    t.declare_exchange(Arc::from(name), kind, flags, args)
        .unwrap();
}

fn bind_q(t: &mut T, x: &str, q: &'static str, key: &str) {
    t.bind(
        x,
        Dest::Queue(q),
        Bytes::copy_from_slice(key.as_bytes()),
        FieldTable::default(),
    )
    .unwrap();
}

fn bind_x(t: &mut T, x: &str, dest: &str, key: &str) {
    t.bind(
        x,
        Dest::Exchange(Arc::from(dest)),
        Bytes::copy_from_slice(key.as_bytes()),
        FieldTable::default(),
    )
    .unwrap();
}

fn route_keys(
    t: &T,
    x: &str,
    key: &str,
    extra: &[&str],
    headers: Option<FieldTable>,
) -> Vec<&'static str> {
    let extra: Vec<Bytes> = extra
        .iter()
        .map(|k| Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    let mut out: SmallVec<[&'static str; 4]> = SmallVec::new();
    t.route(
        &RouteInput {
            exchange: x,
            routing_key: key.as_bytes(),
            extra_keys: &extra,
            message: &headers,
        },
        &mut out,
    )
    .unwrap();
    let mut v = out.to_vec();
    v.sort_unstable();
    v
}

fn route(t: &T, x: &str, key: &str) -> Vec<&'static str> {
    route_keys(t, x, key, &[], None)
}

#[test]
fn default_exchange_reaches_queues_by_name_and_refuses_bindings() {
    let mut t = topology(&["a", "b"]);
    assert_eq!(route(&t, "", "a"), vec!["a"]);
    assert!(route(&t, "", "zz").is_empty());
    assert_eq!(
        t.bind("", Dest::Queue("a"), Bytes::new(), FieldTable::default()),
        Err(RouteError::DefaultExchange)
    );
    assert!(t.delete_exchange("").is_empty());
    assert!(t.exchange("").is_some());
}

#[test]
fn direct_and_fanout() {
    let mut t = topology(&["a", "b", "c"]);
    declare(&mut t, "d", ExchangeKind::Direct);
    declare(&mut t, "f", ExchangeKind::Fanout);
    bind_q(&mut t, "d", "a", "k1");
    bind_q(&mut t, "d", "b", "k1");
    bind_q(&mut t, "d", "c", "k2");
    bind_q(&mut t, "f", "a", "");
    bind_q(&mut t, "f", "c", "ignored");
    assert_eq!(route(&t, "d", "k1"), vec!["a", "b"]);
    assert_eq!(route(&t, "d", "k2"), vec!["c"]);
    assert!(route(&t, "d", "k3").is_empty());
    assert_eq!(route(&t, "f", "anything"), vec!["a", "c"]);
}

#[test]
fn a_queue_matched_by_several_bindings_gets_one_copy() {
    let mut t = topology(&["a"]);
    declare(&mut t, "t", ExchangeKind::Topic);
    bind_q(&mut t, "t", "a", "x.*");
    bind_q(&mut t, "t", "a", "#");
    bind_q(&mut t, "t", "a", "x.y");
    assert_eq!(route(&t, "t", "x.y"), vec!["a"]);
}

#[test]
fn binding_is_idempotent_and_unbind_of_missing_binding_is_fine() {
    let mut t = topology(&["a"]);
    declare(&mut t, "d", ExchangeKind::Direct);
    assert!(
        t.bind(
            "d",
            Dest::Queue("a"),
            Bytes::from_static(b"k"),
            FieldTable::default()
        )
        .unwrap()
    );
    assert!(
        !t.bind(
            "d",
            Dest::Queue("a"),
            Bytes::from_static(b"k"),
            FieldTable::default()
        )
        .unwrap()
    );
    assert_eq!(t.exchange("d").unwrap().binding_count(), 1);
    let none = t
        .unbind(
            "d",
            &Dest::Queue("a"),
            &Bytes::from_static(b"nope"),
            &FieldTable::default(),
        )
        .unwrap();
    assert!(none.is_empty());
    t.unbind(
        "d",
        &Dest::Queue("a"),
        &Bytes::from_static(b"k"),
        &FieldTable::default(),
    )
    .unwrap();
    assert!(route(&t, "d", "k").is_empty());
}

#[test]
fn exchange_to_exchange_chains_and_loops() {
    let mut t = topology(&["a", "b"]);
    for x in ["x1", "x2", "x3"] {
        declare(&mut t, x, ExchangeKind::Fanout);
    }
    bind_x(&mut t, "x1", "x2", "");
    bind_x(&mut t, "x2", "x3", "");
    bind_x(&mut t, "x3", "x1", ""); // a loop
    bind_q(&mut t, "x3", "a", "");
    bind_q(&mut t, "x1", "a", ""); // a second path to a
    bind_q(&mut t, "x2", "b", "");
    assert_eq!(route(&t, "x1", "k"), vec!["a", "b"]);
    assert_eq!(route(&t, "x3", "k"), vec!["a", "b"]);
}

#[test]
fn alternate_exchange_takes_what_cannot_be_routed() {
    let mut t = topology(&["main", "unrouted", "last"]);
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae1".into()),
    );
    declare_with(
        &mut t,
        "x",
        ExchangeKind::Direct,
        ExchangeFlags::default(),
        args,
    );
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae2".into()),
    );
    declare_with(
        &mut t,
        "ae1",
        ExchangeKind::Direct,
        ExchangeFlags::default(),
        args,
    );
    declare(&mut t, "ae2", ExchangeKind::Fanout);
    bind_q(&mut t, "x", "main", "k");
    bind_q(&mut t, "ae1", "unrouted", "special");
    bind_q(&mut t, "ae2", "last", "");
    assert_eq!(route(&t, "x", "k"), vec!["main"]);
    assert_eq!(route(&t, "x", "special"), vec!["unrouted"]);
    assert_eq!(route(&t, "x", "other"), vec!["last"]);
}

#[test]
fn alternate_exchange_loop_ends() {
    let mut t = topology(&[]);
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("y".into()),
    );
    declare_with(
        &mut t,
        "x",
        ExchangeKind::Direct,
        ExchangeFlags::default(),
        args,
    );
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("x".into()),
    );
    declare_with(
        &mut t,
        "y",
        ExchangeKind::Direct,
        ExchangeFlags::default(),
        args,
    );
    assert!(route(&t, "x", "k").is_empty());
}

#[test]
fn cc_and_bcc_keys_route_too() {
    let mut t = topology(&["a", "b", "c"]);
    declare(&mut t, "d", ExchangeKind::Direct);
    bind_q(&mut t, "d", "a", "k1");
    bind_q(&mut t, "d", "b", "k2");
    bind_q(&mut t, "d", "c", "k3");
    assert_eq!(
        route_keys(&t, "d", "k1", &["k2", "k3", "k1"], None),
        vec!["a", "b", "c"]
    );
    assert_eq!(route_keys(&t, "", "a", &["c"], None), vec!["a", "c"]);
}

#[test]
fn headers_exchange_routes_on_headers() {
    let mut t = topology(&["a", "b"]);
    declare(&mut t, "h", ExchangeKind::Headers);
    let mut args = FieldTable::default();
    args.insert("x-match".into(), AMQPValue::LongString("any".into()));
    args.insert("format".into(), AMQPValue::LongString("pdf".into()));
    args.insert("type".into(), AMQPValue::LongString("report".into()));
    t.bind("h", Dest::Queue("a"), Bytes::new(), args).unwrap();
    let mut args = FieldTable::default();
    args.insert("format".into(), AMQPValue::LongString("pdf".into()));
    args.insert("type".into(), AMQPValue::LongString("report".into()));
    t.bind("h", Dest::Queue("b"), Bytes::new(), args).unwrap();
    let mut h = FieldTable::default();
    h.insert("format".into(), AMQPValue::LongString("pdf".into()));
    assert_eq!(route_keys(&t, "h", "", &[], Some(h.clone())), vec!["a"]);
    h.insert("type".into(), AMQPValue::LongString("report".into()));
    assert_eq!(route_keys(&t, "h", "", &[], Some(h)), vec!["a", "b"]);
    assert!(route_keys(&t, "h", "", &[], None).is_empty());
    let mut bad = FieldTable::default();
    bad.insert("x-match".into(), AMQPValue::LongString("some".into()));
    assert!(matches!(
        t.bind("h", Dest::Queue("a"), Bytes::new(), bad),
        Err(RouteError::InvalidArguments(_))
    ));
}

#[test]
fn auto_delete_exchange_goes_with_its_last_binding() {
    let mut t = topology(&["a", "b"]);
    let auto = ExchangeFlags {
        auto_delete: true,
        ..ExchangeFlags::default()
    };
    declare_with(
        &mut t,
        "ad",
        ExchangeKind::Fanout,
        auto,
        FieldTable::default(),
    );
    bind_q(&mut t, "ad", "a", "");
    bind_q(&mut t, "ad", "b", "");
    let gone = t
        .unbind(
            "ad",
            &Dest::Queue("a"),
            &Bytes::new(),
            &FieldTable::default(),
        )
        .unwrap();
    assert!(gone.is_empty());
    let (_, gone) = t.remove_queue("b").unwrap();
    assert_eq!(gone, vec![Arc::<str>::from("ad")]);
    assert!(t.exchange("ad").is_none());
}

#[test]
fn deleting_an_exchange_removes_its_bindings_both_ways() {
    let mut t = topology(&["a"]);
    let auto = ExchangeFlags {
        auto_delete: true,
        ..ExchangeFlags::default()
    };
    declare_with(
        &mut t,
        "src",
        ExchangeKind::Fanout,
        auto,
        FieldTable::default(),
    );
    declare(&mut t, "mid", ExchangeKind::Fanout);
    bind_x(&mut t, "src", "mid", "");
    bind_q(&mut t, "mid", "a", "");
    let gone = t.delete_exchange("mid");
    assert_eq!(gone, vec![Arc::<str>::from("mid"), Arc::<str>::from("src")]);
    declare(&mut t, "mid", ExchangeKind::Fanout);
    assert_eq!(t.exchange("mid").unwrap().binding_count(), 0);
}

#[test]
fn deleting_a_queue_removes_its_bindings() {
    let mut t = topology(&["a"]);
    declare(&mut t, "d", ExchangeKind::Direct);
    bind_q(&mut t, "d", "a", "k");
    t.remove_queue("a").unwrap();
    assert_eq!(t.exchange("d").unwrap().binding_count(), 0);
    t.add_queue(Arc::from("a"), "a").unwrap();
    assert!(route(&t, "d", "k").is_empty());
}

#[test]
fn binding_to_missing_exchange_is_refused() {
    let mut t = topology(&["a"]);
    declare(&mut t, "d", ExchangeKind::Direct);
    assert_eq!(
        t.bind(
            "nope",
            Dest::Queue("a"),
            Bytes::new(),
            FieldTable::default()
        ),
        Err(RouteError::NoSuchExchange("nope".into()))
    );
    assert_eq!(
        t.bind(
            "d",
            Dest::Exchange(Arc::from("nope")),
            Bytes::new(),
            FieldTable::default()
        ),
        Err(RouteError::NoSuchExchange("nope".into()))
    );
}
