//! The topic trie and the headers matcher against naive reference matchers.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use smallvec::SmallVec;
use warren_router::{
    AMQPValue, Dest, ExchangeFlags, ExchangeKind, FieldTable, HeadersMatch, RouteInput, Topology,
    headers_match,
};

/// RabbitMQ's topic semantics, written as plainly as possible: recursion over word lists.
fn naive_topic(pattern: &[&[u8]], key: &[&[u8]]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((p, rest)) if *p == b"#" => {
            (0..=key.len()).any(|skip| naive_topic(rest, &key[skip..]))
        }
        Some((p, rest)) => match key.split_first() {
            None => false,
            Some((k, krest)) => (*p == b"*" || p == k) && naive_topic(rest, krest),
        },
    }
}

fn words(s: &[u8]) -> Vec<&[u8]> {
    if s.is_empty() {
        vec![]
    } else {
        s.split(|b| *b == b'.').collect()
    }
}

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("ab".to_string())
    ]
}

fn pattern_word() -> impl Strategy<Value = String> {
    prop_oneof![word(), Just("*".to_string()), Just("#".to_string())]
}

fn dotted(w: impl Strategy<Value = String>) -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        proptest::collection::vec(w, 1..6).prop_map(|ws| ws.join(".")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn topic_trie_agrees_with_naive_matcher(
        patterns in proptest::collection::vec(dotted(pattern_word()), 1..8),
        key in dotted(word()),
    ) {
        let mut t: Topology<usize> = Topology::new();
        t.declare_exchange(Arc::from("t"), ExchangeKind::Topic, ExchangeFlags::default(), FieldTable::default()).unwrap();
        for (i, p) in patterns.iter().enumerate() {
            t.add_queue(Arc::from(format!("q{i}")), i).unwrap();
            t.bind("t", Dest::Queue(i), Bytes::copy_from_slice(p.as_bytes()), FieldTable::default()).unwrap();
        }
        let mut out: SmallVec<[usize; 4]> = SmallVec::new();
        let none: Option<FieldTable> = None;
        t.route(&RouteInput { exchange: "t", routing_key: key.as_bytes(), extra_keys: &[], message: &none }, &mut out).unwrap();
        let mut got = out.to_vec();
        got.sort_unstable();
        let expected: Vec<usize> = patterns
            .iter()
            .enumerate()
            .filter(|(_, p)| naive_topic(&words(p.as_bytes()), &words(key.as_bytes())))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(got, expected, "patterns {:?} key {:?}", patterns, key);
    }

    #[test]
    fn topic_unbind_restores_routing(
        patterns in proptest::collection::vec(dotted(pattern_word()), 1..8),
        remove in proptest::collection::vec(any::<bool>(), 8),
        key in dotted(word()),
    ) {
        let mut t: Topology<usize> = Topology::new();
        t.declare_exchange(Arc::from("t"), ExchangeKind::Topic, ExchangeFlags::default(), FieldTable::default()).unwrap();
        for (i, p) in patterns.iter().enumerate() {
            t.add_queue(Arc::from(format!("q{i}")), i).unwrap();
            t.bind("t", Dest::Queue(i), Bytes::copy_from_slice(p.as_bytes()), FieldTable::default()).unwrap();
        }
        for (i, p) in patterns.iter().enumerate() {
            if remove[i] {
                t.unbind("t", &Dest::Queue(i), &Bytes::copy_from_slice(p.as_bytes()), &FieldTable::default()).unwrap();
            }
        }
        let mut out: SmallVec<[usize; 4]> = SmallVec::new();
        let none: Option<FieldTable> = None;
        t.route(&RouteInput { exchange: "t", routing_key: key.as_bytes(), extra_keys: &[], message: &none }, &mut out).unwrap();
        let mut got = out.to_vec();
        got.sort_unstable();
        let expected: Vec<usize> = patterns
            .iter()
            .enumerate()
            .filter(|(i, p)| !remove[*i] && naive_topic(&words(p.as_bytes()), &words(key.as_bytes())))
            .map(|(i, _)| i)
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn headers_matcher_agrees_with_naive_rule(
        pattern in proptest::collection::btree_map("[abx-]{1,3}", 0i32..3, 0..4),
        data in proptest::collection::btree_map("[abx-]{1,3}", 0i64..3, 0..4),
        any in any::<bool>(),
    ) {
        let mode = if any { HeadersMatch::Any } else { HeadersMatch::All };
        let pat: Vec<_> = pattern.iter().map(|(k, v)| (k.as_str().into(), AMQPValue::LongInt(*v))).collect();
        let mut table = FieldTable::default();
        for (k, v) in &data {
            table.insert(k.as_str().into(), AMQPValue::LongLongInt(*v));
        }
        let hit = |(k, v): (&String, &i32)| data.get(k).is_some_and(|d| *d == i64::from(*v));
        let expected = if any { pattern.iter().any(hit) } else { pattern.iter().all(hit) };
        prop_assert_eq!(headers_match(mode, &pat, &table), expected);
    }
}
