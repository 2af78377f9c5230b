//! The rules every `OutboxStore` keeps, checked the same way on each store
//! (memory, fjall, PostgreSQL). Each function takes an empty store.
#![allow(dead_code)] // each test binary uses a different part

use std::time::{Duration, SystemTime};

use syncmq::outbox::{OutboxCounts, OutboxStore};
use syncmq::{Error, Message};

fn msg(body: &str) -> Message {
    Message::new(body.as_bytes().to_vec())
        .with_key(format!("key-{body}"))
        .with_header("h", body)
}

fn counts(pending: u64, dispatched: u64, dead_letters: u64) -> OutboxCounts {
    OutboxCounts {
        pending,
        dispatched,
        dead_letters,
    }
}

/// Runs every check below on `store`, which must start empty.
pub fn check_all<S: OutboxStore>(store: &S) {
    pending_in_id_order_with_the_message_intact(store);
    dispatched_rows_leave_pending(store);
    failures_are_counted_and_dead_letters_step_aside(store);
    cleanup_removes_only_old_dispatched_rows(store);
    bad_arguments_are_errors(store);
    dead_letters_can_be_requeued_or_removed(store);
}

pub fn pending_in_id_order_with_the_message_intact<S: OutboxStore>(store: &S) {
    assert_eq!(store.counts().unwrap(), counts(0, 0, 0));
    let ids: Vec<u64> = (0..10)
        .map(|i| store.add(&msg(&format!("m{i}"))).unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase: {ids:?}");
    let pending = store.pending(4).unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), ids[..4]);
    let first = &pending[0];
    assert_eq!(first.message, msg("m0"));
    assert_eq!((first.attempts, first.last_error.as_deref()), (0, None));
    let age = SystemTime::now()
        .duration_since(first.created_at)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(60), "created just now: {age:?}");
    assert_eq!(store.pending(100).unwrap().len(), 10);
    store.mark_dispatched(&ids).unwrap();
    assert_eq!(store.counts().unwrap(), counts(0, 10, 0));
    store
        .remove_dispatched(SystemTime::now() + Duration::from_secs(3600), 100)
        .unwrap();
    assert_eq!(store.counts().unwrap(), counts(0, 0, 0));
}

pub fn dispatched_rows_leave_pending<S: OutboxStore>(store: &S) {
    let a = store.add(&msg("a")).unwrap();
    let b = store.add(&msg("b")).unwrap();
    let c = store.add(&msg("c")).unwrap();
    store.mark_dispatched(&[a, c]).unwrap();
    // Marking again, or an id that is not pending, changes nothing.
    store.mark_dispatched(&[a, u64::MAX]).unwrap();
    let pending = store.pending(10).unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [b]);
    assert_eq!(store.counts().unwrap(), counts(1, 2, 0));
    store.mark_dispatched(&[b]).unwrap();
    assert!(store.pending(10).unwrap().is_empty());
    store
        .remove_dispatched(SystemTime::now() + Duration::from_secs(3600), 100)
        .unwrap();
}

pub fn failures_are_counted_and_dead_letters_step_aside<S: OutboxStore>(store: &S) {
    let a = store.add(&msg("poison")).unwrap();
    let b = store.add(&msg("fine")).unwrap();
    assert_eq!(store.record_failure(a, "first").unwrap(), 1);
    assert_eq!(store.record_failure(a, "second").unwrap(), 2);
    let head = &store.pending(1).unwrap()[0];
    assert_eq!((head.id, head.attempts), (a, 2));
    assert_eq!(head.last_error.as_deref(), Some("second"));
    store.dead_letter(a).unwrap();
    assert_eq!(store.pending(10).unwrap()[0].id, b);
    let dead_letters = store.dead_letters(10).unwrap();
    assert_eq!(dead_letters.len(), 1);
    assert_eq!((dead_letters[0].id, dead_letters[0].attempts), (a, 2));
    assert_eq!(dead_letters[0].message, msg("poison"));
    assert_eq!(dead_letters[0].last_error.as_deref(), Some("second"));
    // A dead letter is no longer pending: it cannot fail or be dead-lettered again.
    assert!(matches!(
        store.record_failure(a, "x"),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.dead_letter(a),
        Err(Error::InvalidArgument { .. })
    ));
    // A row dead-lettered after a read handed it out is not dispatched.
    assert_eq!(store.pending(10).unwrap()[0].id, b);
    let c = store.add(&msg("late poison")).unwrap();
    assert_eq!(store.pending(10).unwrap().len(), 2);
    store.dead_letter(c).unwrap();
    store.mark_dispatched(&[c]).unwrap();
    assert_eq!(store.counts().unwrap(), counts(1, 0, 2));
    store.remove_dead_letter(c).unwrap();
    // Cleanup leaves dead letters alone.
    store.mark_dispatched(&[b]).unwrap();
    store
        .remove_dispatched(SystemTime::now() + Duration::from_secs(3600), 100)
        .unwrap();
    assert_eq!(store.counts().unwrap(), counts(0, 0, 1));
}

pub fn cleanup_removes_only_old_dispatched_rows<S: OutboxStore>(store: &S) {
    let before = store.counts().unwrap();
    let ids: Vec<u64> = (0..5)
        .map(|i| store.add(&msg(&format!("c{i}"))).unwrap())
        .collect();
    let kept = store.add(&msg("still pending")).unwrap();
    store.mark_dispatched(&ids).unwrap();
    // Nothing was dispatched an hour ago.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    assert_eq!(store.remove_dispatched(hour_ago, 100).unwrap(), 0);
    // Everything was dispatched before an hour from now; in batches.
    let later = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(store.remove_dispatched(later, 3).unwrap(), 3);
    assert_eq!(store.remove_dispatched(later, 3).unwrap(), 2);
    assert_eq!(store.remove_dispatched(later, 3).unwrap(), 0);
    let after = store.counts().unwrap();
    assert_eq!(after.pending, before.pending + 1);
    assert_eq!(after.dispatched, 0);
    assert_eq!(after.dead_letters, before.dead_letters);
    store.mark_dispatched(&[kept]).unwrap();
    store.remove_dispatched(later, 100).unwrap();
}

pub fn bad_arguments_are_errors<S: OutboxStore>(store: &S) {
    assert!(matches!(
        store.pending(0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.remove_dispatched(SystemTime::now(), 0),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.record_failure(u64::MAX, "x"),
        Err(Error::InvalidArgument { .. })
    ));
}

pub fn dead_letters_can_be_requeued_or_removed<S: OutboxStore>(store: &S) {
    let before = store.counts().unwrap();
    let a = store.add(&msg("second chance")).unwrap();
    let b = store.add(&msg("behind it")).unwrap();
    store.record_failure(a, "nope").unwrap();
    store.dead_letter(a).unwrap();
    // Not a dead letter: refused, nothing changes.
    assert!(matches!(
        store.requeue_dead_letter(b),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        store.remove_dead_letter(b),
        Err(Error::InvalidArgument { .. })
    ));
    let again = store.requeue_dead_letter(a).unwrap();
    assert!(again > b, "a new id at the end: {again} after {b}");
    let pending = store.pending(10).unwrap();
    assert_eq!(pending.iter().map(|r| r.id).collect::<Vec<_>>(), [b, again]);
    assert_eq!(pending[1].message, msg("second chance"));
    assert_eq!(pending[1].attempts, 0);
    assert!(store.dead_letters(100).unwrap().iter().all(|r| r.id != a));
    assert!(matches!(
        store.requeue_dead_letter(a),
        Err(Error::InvalidArgument { .. })
    ));
    store.dead_letter(again).unwrap();
    store.remove_dead_letter(again).unwrap();
    assert!(matches!(
        store.remove_dead_letter(again),
        Err(Error::InvalidArgument { .. })
    ));
    store.mark_dispatched(&[b]).unwrap();
    store
        .remove_dispatched(SystemTime::now() + Duration::from_secs(3600), 100)
        .unwrap();
    assert_eq!(store.counts().unwrap(), before);
}
