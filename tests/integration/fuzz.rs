//! Property test of the projection: valid events whose objects have odd shapes (fields missing,
//! null, of another type, huge, lists emptied, enormous metadata) go through the inbox and the
//! worker like any webhook. Nothing panics, and every event ends applied, ignored or failed with
//! a reason; on SQLite and on Postgres.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::Backend;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Map, Value};
use tally::projection::HANDLED_EVENT_TYPES;
use tally::webhooks::inbox::{self, IncomingEvent, Source};
use tally::webhooks::worker::Worker;

/// What happens to one field of the object.
#[derive(Clone, Debug)]
enum Change {
    Remove,
    Null,
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    EmptyList,
    EmptyObject,
    /// A list of one element of an odd kind.
    ListOf(Box<Change>),
    /// 100 KB of text.
    Huge,
    /// Metadata of 1,000 keys of 200 bytes each, on the object itself.
    HugeMetadata,
}

fn change() -> impl Strategy<Value = Change> {
    let leaf = prop_oneof![
        Just(Change::Remove),
        Just(Change::Null),
        prop_oneof![
            Just(String::new()),
            ".{0,12}",
            Just("nul\0inside".to_string()),
            "(cus|sub|price|prod|ch|in|pi)_[a-z0-9]{0,6}"
        ]
        .prop_map(Change::Text),
        prop_oneof![any::<i64>(), -3i64..3, Just(i64::MAX), Just(i64::MIN)].prop_map(Change::Int),
        any::<f64>().prop_map(Change::Float),
        any::<bool>().prop_map(Change::Bool),
        Just(Change::EmptyList),
        Just(Change::EmptyObject),
        Just(Change::Huge),
        Just(Change::HugeMetadata),
    ];
    leaf.prop_recursive(1, 2, 1, |inner| inner.prop_map(|c| Change::ListOf(Box::new(c))))
}

fn value_of(change: &Change) -> Option<Value> {
    Some(match change {
        Change::Remove | Change::HugeMetadata => return None,
        Change::Null => Value::Null,
        Change::Text(s) => json!(s),
        Change::Int(n) => json!(n),
        // Not finite: JSON has no such number; serde_json writes null.
        Change::Float(f) => json!(f),
        Change::Bool(b) => json!(b),
        Change::EmptyList => json!([]),
        Change::EmptyObject => json!({}),
        Change::ListOf(inner) => json!([value_of(inner).unwrap_or(Value::Null)]),
        Change::Huge => json!("x".repeat(100_000)),
    })
}

/// Every place in `value`, as a path of keys and indexes, parents before children.
fn paths(value: &Value, prefix: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                prefix.push(json!(k));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                prefix.push(json!(i));
                out.push(prefix.clone());
                paths(v, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn apply(object: &mut Value, depth: usize, at: &Index, change: &Change) {
    if let Change::HugeMetadata = change {
        let metadata: Map<String, Value> = (0..1_000)
            .map(|i| (format!("key_{i}"), json!("m".repeat(200))))
            .collect();
        object["metadata"] = Value::Object(metadata);
        return;
    }
    let mut all = Vec::new();
    paths(object, &mut Vec::new(), &mut all);
    // Shallow places more often: they are what the projection reads.
    all.retain(|p| p.len() <= depth);
    if all.is_empty() {
        return;
    }
    let path = &all[at.index(all.len())];
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut node = &mut *object;
    for step in parents {
        node = match step {
            Value::String(k) => &mut node[k.as_str()],
            _ => &mut node[step.as_u64().unwrap_or(0) as usize],
        };
    }
    match (node, last, value_of(change)) {
        (Value::Object(map), Value::String(k), Some(v)) => {
            map.insert(k.clone(), v);
        }
        (Value::Object(map), Value::String(k), None) => {
            map.remove(k);
        }
        (Value::Array(items), i, Some(v)) => items[i.as_u64().unwrap_or(0) as usize] = v,
        (Value::Array(items), i, None) => {
            items.remove(i.as_u64().unwrap_or(0) as usize);
        }
        _ => {}
    }
}

/// One delivered event: its type, how its object is changed, and its second (few distinct
/// seconds, so versions tie and go stale as they do in Stripe).
fn delivery() -> impl Strategy<Value = (&'static str, Vec<(usize, Index, Change)>, i64, u8)> {
    (
        select(HANDLED_EVENT_TYPES),
        proptest::collection::vec((1usize..6, any::<Index>(), change()), 0..5),
        prop_oneof![0i64..3, 0i64..100_000],
        // The fixture's object id, a second one, or one of its own: rows are shared and new.
        0u8..3,
    )
}

static NEXT_EVENT: AtomicUsize = AtomicUsize::new(0);

fn check(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (db, _test_db) = runtime.block_on(common::migrated_db(backend));
    let worker = Worker {
        db: db.clone(),
        wake: Arc::new(tokio::sync::Notify::new()),
        // A failure is final at once, so the test sees where each event ends.
        max_attempts: 1,
        retry_for_secs: 0,
        refetch: None,
    };
    let fixtures = common::fixtures();
    let mut runner = TestRunner::new(Config {
        cases: std::env::var("TALLY_FUZZ_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(120),
        failure_persistence: None,
        ..Config::default()
    });
    let outcome = runner.run(&proptest::collection::vec(delivery(), 1..6), |deliveries| {
        let mut ids = Vec::new();
        let mut events = Vec::new();
        for (event_type, changes, second, which_id) in &deliveries {
            let n = NEXT_EVENT.fetch_add(1, Ordering::SeqCst);
            let mut object = fixtures[common::fixture_for(event_type)].clone();
            let id = object["id"].as_str().unwrap_or_default().to_string();
            match which_id {
                0 => {}
                1 => object["id"] = json!(format!("{id}_2")),
                _ => object["id"] = json!(format!("{id}_{n}")),
            }
            for (depth, at, change) in changes {
                apply(&mut object, *depth, at, change);
            }
            let id = format!("evt_fuzz_{n}");
            let event = json!({
                "id": id, "object": "event", "type": event_type, "created": 1_767_225_600 + second,
                "livemode": false, "api_version": "2025-03-31.basil", "pending_webhooks": 1,
                "data": {"object": object}
            });
            let body = event.to_string();
            prop_assert!(body.len() < 1024 * 1024, "the handler would refuse it with 413");
            events.push(IncomingEvent::parse(&body).map_err(|e| TestCaseError::fail(format!("envelope: {e}")))?);
            ids.push(id);
        }
        let statuses = runtime.block_on(async {
            for event in &events {
                inbox::store(&db, event, Source::Webhook, None).await.unwrap();
            }
            // Everything stored is due now; the worker runs until nothing is left.
            while worker.run_once().await.expect("the database answers") > 0 {}
            let mut statuses = Vec::new();
            for id in &ids {
                let row: (String, Option<String>) =
                    sqlx::query_as("SELECT status, last_error FROM stripe_events WHERE id = $1")
                        .bind(id)
                        .fetch_one(db.reader())
                        .await
                        .unwrap();
                statuses.push((id.clone(), row));
            }
            statuses
        });
        for (id, (status, reason)) in statuses {
            match status.as_str() {
                "applied" => {}
                "ignored" | "failed" => prop_assert!(
                    reason.as_deref().is_some_and(|r| !r.trim().is_empty()),
                    "{id} {status} without a reason"
                ),
                other => prop_assert!(false, "{id} ended {other}"),
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
    // Whatever was thrown at it, the projection still takes a normal event afterwards.
    runtime.block_on(async {
        let normal = json!({
            "id": "evt_fuzz_after", "object": "event", "type": "customer.created", "created": 1_767_225_700,
            "livemode": false, "data": {"object": {"id": "cus_after", "object": "customer", "email": "after@example.com"}}
        });
        let event = IncomingEvent::parse(&normal.to_string()).unwrap();
        inbox::store(&db, &event, Source::Webhook, None).await.unwrap();
        while worker.run_once().await.unwrap() > 0 {}
        let email: String = sqlx::query_scalar("SELECT email FROM customers WHERE id = 'cus_after'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(email, "after@example.com");
    });
}

#[test]
fn odd_objects_end_applied_ignored_or_failed_with_a_reason_sqlite() {
    check(Backend::Sqlite);
}

#[test]
fn odd_objects_end_applied_ignored_or_failed_with_a_reason_postgres() {
    check(Backend::Postgres);
}
