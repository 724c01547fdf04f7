//! The segment log against a model, on a simulated disk that loses unsynced writes on
//! "power loss" (and sometimes keeps a random subset of them, with holes): every message
//! that was synced and not removed must come back, intact; nothing else may appear.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;
use warren_store::Message;
use warren_store::segment::{Location, Recovered, Recovery, SegmentLog, SimStorage};

fn message(id: u64, size: usize) -> Message {
    Message {
        exchange: Bytes::from_static(b"ex"),
        routing_key: Bytes::from(format!("rk-{id}")),
        properties: Bytes::from_static(&[0x10, 0, 2]),
        body: Bytes::from(vec![(id % 251) as u8; size]).into(),
        persistent: true,
        priority: 0,
        expiration: None,
    }
}

/// Open the log and page every recovered message in, as a queue kept in memory would.
fn open_all(
    disk: &SimStorage,
    label: &str,
    segment_bytes: u64,
) -> (SegmentLog<SimStorage>, Vec<Recovered>, Recovery) {
    let (mut log, mut recovery) = SegmentLog::open(disk.clone(), label, segment_bytes).unwrap();
    let mut problems = Vec::new();
    let messages = log
        .page_in_all(&mut recovery.backlog, &mut problems)
        .unwrap();
    recovery.problems.extend(problems);
    (log, messages, recovery)
}

#[derive(Debug, Clone)]
enum Op {
    Publish(usize),
    Remove(usize),
    Deliver(usize),
    Sync,
    /// Power loss; `Some(seed)` keeps a pseudo-random subset of unsynced writes.
    Crash(Option<u64>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..3000).prop_map(Op::Publish),
        3 => any::<usize>().prop_map(Op::Remove),
        1 => any::<usize>().prop_map(Op::Deliver),
        3 => Just(Op::Sync),
        1 => proptest::option::of(any::<u64>()).prop_map(Op::Crash),
    ]
}

#[derive(Debug, Default)]
struct Model {
    /// Every message ever appended, by id, with its body size.
    published: BTreeMap<u64, usize>,
    /// Appended and covered by a completed sync: must survive unless removed.
    confirmed: BTreeSet<u64>,
    /// Appended but not yet synced.
    unconfirmed: BTreeSet<u64>,
    /// Removed by us (the removal may or may not survive a crash).
    removed: BTreeSet<u64>,
    /// Live (not removed) and where.
    live: BTreeMap<u64, Location>,
}

fn check(recovered: &[Recovered], model: &Model) -> Result<(), TestCaseError> {
    let ids: BTreeSet<u64> = recovered.iter().map(|r| r.stored.id).collect();
    for id in &model.confirmed {
        if !model.removed.contains(id) {
            prop_assert!(ids.contains(id), "confirmed message {} lost", id);
        }
    }
    for r in recovered {
        let size = model.published.get(&r.stored.id).copied();
        prop_assert!(size.is_some(), "phantom message {}", r.stored.id);
        prop_assert_eq!(
            &r.stored.message,
            &message(r.stored.id, size.unwrap_or(0)),
            "message {} corrupt",
            r.stored.id
        );
    }
    let in_order: Vec<u64> = recovered.iter().map(|r| r.stored.id).collect();
    let sorted: Vec<u64> = ids.iter().copied().collect();
    prop_assert_eq!(in_order, sorted, "recovered out of order");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn power_loss_never_loses_synced_messages(ops in proptest::collection::vec(op(), 1..120)) {
        let disk = SimStorage::new();
        let (mut log, recovery) = SegmentLog::open(disk.clone(), "q", 16 * 1024).unwrap();
        prop_assert!(recovery.backlog.is_empty());
        let mut model = Model::default();
        let mut next_id = 0u64;
        for op in ops {
            match op {
                Op::Publish(size) => {
                    let id = next_id;
                    next_id += 1;
                    let loc = log.append(id, 0, None, &message(id, size)).unwrap();
                    model.published.insert(id, size);
                    model.unconfirmed.insert(id);
                    model.live.insert(id, loc);
                }
                Op::Remove(i) => {
                    if !model.live.is_empty() {
                        let (&id, &loc) = model.live.iter().nth(i % model.live.len()).unwrap();
                        log.removed(loc, id).unwrap();
                        model.live.remove(&id);
                        model.removed.insert(id);
                    }
                }
                Op::Deliver(i) => {
                    if !model.live.is_empty() {
                        let (&id, &loc) = model.live.iter().nth(i % model.live.len()).unwrap();
                        log.delivered(loc, id);
                    }
                }
                Op::Sync => {
                    log.sync().unwrap();
                    model.confirmed.append(&mut model.unconfirmed);
                }
                Op::Crash(seed) => {
                    drop(log);
                    match seed {
                        None => disk.crash(None),
                        Some(seed) => disk.crash(Some(&move |name: &str, i: usize| {
                            let h = name.bytes().fold(seed ^ i as u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                            h % 3 != 0
                        })),
                    }
                    let (reopened, messages, recovery) = open_all(&disk, "q", 16 * 1024);
                    prop_assert!(recovery.next_id >= messages.last().map_or(0, |m| m.stored.id + 1));
                    check(&messages, &model)?;
                    // What survived is the new truth: unconfirmed messages may or may not be there.
                    model.unconfirmed.clear();
                    model.live = messages.iter().map(|r| (r.stored.id, r.location)).collect();
                    for id in model.live.keys() {
                        model.removed.remove(id);
                        model.confirmed.insert(*id);
                    }
                    next_id = next_id.max(model.live.keys().next_back().map_or(0, |m| m + 1));
                    log = reopened;
                }
            }
        }
    }
}

#[test]
fn draining_reclaims_segments() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 4096).unwrap();
    let locs: Vec<Location> = (0..100)
        .map(|id| log.append(id, 0, None, &message(id, 500)).unwrap())
        .collect();
    log.sync().unwrap();
    assert!(log.segment_count() > 5);
    for (id, loc) in locs.into_iter().enumerate() {
        log.removed(loc, id as u64).unwrap();
    }
    log.sync().unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "only the segment being written stays"
    );
    drop(log);
    let (_, recovery) = SegmentLog::open(disk, "q", 4096).unwrap();
    assert!(recovery.backlog.is_empty());
}

#[test]
fn delivered_messages_come_back_flagged() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 1 << 20).unwrap();
    let a = log.append(0, 0, None, &message(0, 10)).unwrap();
    log.append(1, 0, Some(99), &message(1, 10)).unwrap();
    log.delivered(a, 0);
    log.sync().unwrap();
    drop(log);
    let (_, messages, _) = open_all(&disk, "q", 1 << 20);
    let flags: Vec<(u64, bool, Option<u64>)> = messages
        .iter()
        .map(|r| (r.stored.id, r.delivered, r.stored.expires_unix_ms))
        .collect();
    assert_eq!(flags, vec![(0, true, None), (1, false, Some(99))]);
}

#[test]
fn corruption_is_reported_and_skipped_never_a_panic() {
    for offset in [0usize, 3, 7, 30, 200, 515] {
        let disk = SimStorage::new();
        let (mut log, _) = SegmentLog::open(disk.clone(), "orders", 1 << 20).unwrap();
        for id in 0..4 {
            log.append(id, 0, None, &message(id, 100)).unwrap();
        }
        log.sync().unwrap();
        drop(log);
        disk.corrupt("0000000000.msg", offset);
        let (_, messages, recovery) = open_all(&disk, "orders", 1 << 20);
        assert!(
            !recovery.problems.is_empty(),
            "offset {offset}: damage not reported"
        );
        assert!(
            recovery.problems[0].contains("queue orders"),
            "{:?}",
            recovery.problems
        );
        assert!(messages.len() < 4);
    }
    // A truncated tail loses only the torn record.
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 1 << 20).unwrap();
    for id in 0..3 {
        log.append(id, 0, None, &message(id, 100)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let size = disk.size("0000000000.msg").unwrap();
    disk.truncate("0000000000.msg", size - 10);
    let (_, messages, recovery) = open_all(&disk, "q", 1 << 20);
    assert_eq!(messages.len(), 2);
    assert!(recovery.problems[0].contains("torn"));
}

#[test]
fn a_failed_sync_is_reported() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 1 << 20).unwrap();
    log.append(0, 0, None, &message(0, 10)).unwrap();
    disk.fail_next_syncs(1);
    assert!(log.sync().is_err());
}

fn transient(id: u64, size: usize) -> Message {
    Message {
        persistent: false,
        ..message(id, size)
    }
}

/// A big backlog is counted from segment summaries without reading the segments, and
/// paged in in order, in chunks, with transient records (dead after a restart) and
/// removed messages skipped and delivered ones flagged.
#[test]
fn recovery_counts_from_summaries_and_pages_in_lazily() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 8 * 1024).unwrap();
    let mut locs = Vec::new();
    for id in 0..400u64 {
        let m = if id % 10 == 9 {
            transient(id, 300)
        } else {
            message(id, 300)
        };
        locs.push(log.append(id, 0, None, &m).unwrap());
    }
    // Remove a few from the first segment, deliver one from a later one.
    for id in [0u64, 1, 2] {
        log.removed(locs[id as usize], id).unwrap();
    }
    log.delivered(locs[200], 200);
    log.sync().unwrap();
    drop(log);
    let sums = disk_names(&disk)
        .iter()
        .filter(|n| n.ends_with(".sum"))
        .count();
    assert!(sums > 5, "sealed segments have summaries ({sums})");

    let (mut log, mut recovery) = SegmentLog::open(disk.clone(), "q", 8 * 1024).unwrap();
    let expected: Vec<u64> = (3..400).filter(|id| id % 10 != 9).collect();
    assert_eq!(recovery.backlog.len(), expected.len() as u64);
    assert_eq!(recovery.backlog.bytes(), expected.len() as u64 * 300);
    assert_eq!(recovery.next_id, 400);
    let mut got = Vec::new();
    let mut problems = Vec::new();
    let mut chunks = 0;
    while !recovery.backlog.is_empty() {
        let before = got.len();
        log.page_in(&mut recovery.backlog, 2000, &mut got, &mut problems)
            .unwrap();
        assert!(got.len() > before, "every page-in makes progress");
        chunks += 1;
    }
    assert!(chunks > 10, "paged in small chunks ({chunks})");
    assert!(problems.is_empty(), "{problems:?}");
    let ids: Vec<u64> = got.iter().map(|r| r.stored.id).collect();
    assert_eq!(ids, expected);
    let delivered: Vec<u64> = got
        .iter()
        .filter(|r| r.delivered)
        .map(|r| r.stored.id)
        .collect();
    assert_eq!(delivered, vec![200]);
    assert_eq!(recovery.backlog.bytes(), 0);
}

/// Messages larger than a page-in read still come in whole.
#[test]
fn large_messages_page_in_whole() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 1 << 20).unwrap();
    for id in 0..3u64 {
        log.append(id, 0, None, &message(id, 200_000)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let (mut log, mut recovery) = SegmentLog::open(disk, "q", 1 << 20).unwrap();
    let mut got = Vec::new();
    let mut problems = Vec::new();
    log.page_in(&mut recovery.backlog, 1, &mut got, &mut problems)
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].stored.message, message(0, 200_000));
    let rest = log
        .page_in_all(&mut recovery.backlog, &mut problems)
        .unwrap();
    assert_eq!(rest.len(), 2);
    assert!(problems.is_empty());
}

/// Damage inside a segment counted from its summary is found when paging in: reported
/// with the queue's name, the rest of that segment skipped, the next segments served.
#[test]
fn damage_behind_a_summary_is_reported_at_page_in() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "orders", 4096).unwrap();
    for id in 0..40u64 {
        log.append(id, 0, None, &message(id, 500)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    disk.corrupt("0000000000.msg", 1200);
    let (mut log, mut recovery) = SegmentLog::open(disk, "orders", 4096).unwrap();
    assert_eq!(recovery.backlog.len(), 40, "counted from summaries");
    let mut problems = Vec::new();
    let got = log
        .page_in_all(&mut recovery.backlog, &mut problems)
        .unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("queue orders") && problems[0].contains("segment 0"));
    assert!(got.len() < 40 && got.len() >= 30, "{}", got.len());
    assert!(got.windows(2).all(|w| w[0].stored.id < w[1].stored.id));
}

fn disk_names(disk: &SimStorage) -> Vec<String> {
    use warren_store::segment::Storage;
    disk.list().unwrap()
}

/// After a torn ack record, later acks still count at the next recovery.
#[test]
fn acks_after_a_torn_ack_record_are_not_lost() {
    let disk = SimStorage::new();
    let (mut log, _) = SegmentLog::open(disk.clone(), "q", 1 << 20).unwrap();
    let locs: Vec<Location> = (0..4)
        .map(|id| log.append(id, 0, None, &message(id, 10)).unwrap())
        .collect();
    log.removed(locs[0], 0).unwrap();
    log.sync().unwrap();
    drop(log);
    let size = disk.size("0000000000.ack").unwrap();
    disk.truncate("0000000000.ack", size - 3);
    let (mut log, messages, recovery) = open_all(&disk, "q", 1 << 20);
    assert_eq!(
        messages.len(),
        4,
        "the torn removal is lost: message 0 is back"
    );
    assert!(recovery.problems[0].contains("torn"));
    log.removed(locs[1], 1).unwrap();
    log.sync().unwrap();
    drop(log);
    let (_, messages, recovery) = open_all(&disk, "q", 1 << 20);
    let ids: Vec<u64> = messages.iter().map(|m| m.stored.id).collect();
    assert_eq!(ids, vec![0, 2, 3], "{:?}", recovery.problems);
}
