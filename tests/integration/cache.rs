//! Cached figures: one computation per projection generation, shared by concurrent requests, and
//! computed again after any committed projection change. Computations wait on gates the test
//! opens, and the test polls for the state it needs (requests met at one computation), so nothing
//! depends on how fast the machine is.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally::db::cache::{self, Cached};
use tally::db::{Db, DbError};
use tokio::sync::Semaphore;

/// Polls `condition` until it holds (failing after 30 s: a hung test is a failure, not a wait).
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !condition() {
        assert!(std::time::Instant::now() < deadline, "never happened: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A computation that waits for the test to let it finish, one permit per computation.
async fn gate(g: &Semaphore) {
    g.acquire().await.expect("gate open").forget();
}

async fn bump(db: &Db) {
    let mut tx = db.begin().await.unwrap();
    cache::bump(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
}

both_backends!(
    concurrent_requests_share_one_computation_until_the_projection_changes,
    |backend| async move {
        static CACHE: Cached<i64> = Cached::new();
        let (db, _t) = common::migrated_db(backend).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Semaphore::new(0));
        let ask = |db: Db, runs: Arc<AtomicUsize>, open: Arc<Semaphore>| async move {
            CACHE
                .get(&db, "answer", || async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst) as i64;
                    gate(&open).await;
                    Ok::<_, DbError>(40 + n)
                })
                .await
                .unwrap()
        };
        // Eight viewers at once: all eight meet at one computation (seen while it is held), one
        // answer.
        let waiting: Vec<_> = (0..8)
            .map(|_| tokio::spawn(ask(db.clone(), runs.clone(), open.clone())))
            .collect();
        until("eight requests at one computation", || {
            CACHE.callers(&db, "answer") == 8
        })
        .await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        open.add_permits(1);
        for w in waiting {
            assert_eq!(*w.await.unwrap(), 40);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(*ask(db.clone(), runs.clone(), open.clone()).await, 40, "cached");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // A committed projection change makes the next request compute again.
        bump(&db).await;
        open.add_permits(1);
        assert_eq!(*ask(db.clone(), runs.clone(), open.clone()).await, 41);
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A rolled-back change does not.
        let mut tx = db.begin().await.unwrap();
        cache::bump(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(*ask(db.clone(), runs.clone(), open.clone()).await, 41);
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A failed computation is not cached: the next request tries again.
        let failed = CACHE
            .get(&db, "flaky", || async {
                Err::<i64, _>(DbError::Query(sqlx::Error::RowNotFound))
            })
            .await;
        assert!(failed.is_err());
        let again = CACHE.get(&db, "flaky", || async { Ok::<_, DbError>(7) }).await.unwrap();
        assert_eq!(*again, 7);
    }
);

both_backends!(
    a_bounded_wait_gives_the_previous_figures_while_new_ones_are_computed,
    |backend| async move {
        static CACHE: Cached<i64> = Cached::new();
        let (db, _t) = common::migrated_db(backend).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(Semaphore::new(0));
        // Each computation waits for the gate; requests wait at most 20 ms for it. A request that
        // waited for a held computation would never return: each is bounded by 30 s.
        let ask = |db: Db, runs: Arc<AtomicUsize>, open: Arc<Semaphore>| async move {
            let asked = CACHE.get_bounded(&db, "slow", 0, Duration::from_millis(20), move || async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) as i64;
                gate(&open).await;
                Ok::<_, DbError>(100 + n)
            });
            let (value, as_of) = tokio::time::timeout(Duration::from_secs(30), asked)
                .await
                .expect("the request did not wait for the held computation")
                .unwrap();
            (*value, as_of)
        };
        // Nothing earlier to show: the first request waits for the figures, however long.
        let first = tokio::spawn(ask(db.clone(), runs.clone(), open.clone()));
        until("the first computation started", || runs.load(Ordering::SeqCst) == 1).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!first.is_finished(), "answered before the figures existed");
        open.add_permits(1);
        assert_eq!(first.await.unwrap(), (100, None));

        // After a change: the previous figures, marked with their time, while the new
        // computation is held (so the request did not wait for it)…
        bump(&db).await;
        let before = tally::db::now_unix();
        let (value, as_of) = ask(db.clone(), runs.clone(), open.clone()).await;
        assert_eq!(value, 100);
        let as_of = as_of.expect("marked as previous figures");
        assert!(
            as_of <= before && before - as_of <= cache::MAX_STALE_SECS,
            "{as_of} {before}"
        );
        assert_eq!(runs.load(Ordering::SeqCst), 2, "the new figures are being computed");
        // …one computation for the change, however many requests come meanwhile…
        let (value, as_of) = ask(db.clone(), runs.clone(), open.clone()).await;
        assert_eq!((value, as_of.is_some()), (100, true), "still computing");
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        // …and the new figures for the requests after it finished.
        open.add_permits(1);
        let mut latest = (0, None);
        for _ in 0..6000 {
            latest = ask(db.clone(), runs.clone(), open.clone()).await;
            if latest.0 == 101 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(latest, (101, None));
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one computation per change");

        // Quick figures after a change: a second request while the first computes joins that
        // computation and gets current figures too (not the previous ones).
        let quick_runs = Arc::new(AtomicUsize::new(0));
        let quick = |db: Db, runs: Arc<AtomicUsize>, open: Arc<Semaphore>| async move {
            CACHE
                .get_bounded(&db, "quick", 0, Duration::from_secs(30), move || async move {
                    runs.fetch_add(1, Ordering::SeqCst);
                    gate(&open).await;
                    Ok::<_, DbError>(tally::db::now_unix())
                })
                .await
                .unwrap()
        };
        open.add_permits(1);
        quick(db.clone(), quick_runs.clone(), open.clone()).await;
        bump(&db).await;
        let a = tokio::spawn(quick(db.clone(), quick_runs.clone(), open.clone()));
        until("the first request's computation started", || {
            quick_runs.load(Ordering::SeqCst) == 2
        })
        .await;
        let b = tokio::spawn(quick(db.clone(), quick_runs.clone(), open.clone()));
        // The computation runs in a task of its own (one holder) and the first request (none
        // after it stopped at the stamp); the second request joins it.
        until("the second request joined the computation", || {
            CACHE.callers(&db, "quick") == 2
        })
        .await;
        open.add_permits(1);
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert_eq!((a.1, b.1), (None, None), "both current");
        assert!(Arc::ptr_eq(&a.0, &b.0), "one computation");
        assert_eq!(quick_runs.load(Ordering::SeqCst), 2);

        // A generous wait gives current figures right after a change.
        bump(&db).await;
        let (value, as_of) = CACHE
            .get_bounded(&db, "slow", 0, Duration::from_secs(30), || async {
                Ok::<_, DbError>(7)
            })
            .await
            .unwrap();
        assert_eq!((*value, as_of), (7, None));
    }
);

both_backends!(
    closed_month_figures_outlive_a_restart_until_their_counter_moves,
    |backend| async move {
        // Two caches stand for two processes (or one before and after a restart): the second
        // holds nothing in memory and finds what the first stored in the database.
        static BEFORE: Cached<Vec<i64>> = Cached::new();
        static AFTER: Cached<Vec<i64>> = Cached::new();
        let (db, _t) = common::migrated_db(backend).await;
        let computed = Arc::new(AtomicUsize::new(0));
        let compute = |value: Vec<i64>| {
            let computed = computed.clone();
            move || async move {
                computed.fetch_add(1, Ordering::SeqCst);
                Ok::<_, DbError>(value)
            }
        };
        let stamp = |n: i64| (n, 24, 0);
        let first = BEFORE
            .get_persisted(&db, "closed:usd", stamp(7), compute(vec![1, 2, 3]))
            .await
            .unwrap();
        assert_eq!((*first).clone(), vec![1, 2, 3]);
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        let after_restart = AFTER
            .get_persisted(&db, "closed:usd", stamp(7), compute(vec![9, 9, 9]))
            .await
            .unwrap();
        assert_eq!((*after_restart).clone(), vec![1, 2, 3], "read back, not recomputed");
        assert_eq!(computed.load(Ordering::SeqCst), 1);
        // The counter moved (history landed in a closed month): computed again, and stored.
        let moved = AFTER
            .get_persisted(&db, "closed:usd", stamp(8), compute(vec![4, 5, 6]))
            .await
            .unwrap();
        assert_eq!((*moved).clone(), vec![4, 5, 6]);
        assert_eq!(computed.load(Ordering::SeqCst), 2);
        static THIRD: Cached<Vec<i64>> = Cached::new();
        let again = THIRD
            .get_persisted(&db, "closed:usd", stamp(8), compute(vec![0]))
            .await
            .unwrap();
        assert_eq!((*again).clone(), vec![4, 5, 6]);
        // Another key is its own figure; a stored value that no longer reads as the type (a new
        // release changed it) is computed again rather than trusted.
        sqlx::query("UPDATE figure_cache SET value = '\"not a list\"' WHERE key = 'closed:usd'")
            .execute(db.writer())
            .await
            .unwrap();
        static FOURTH: Cached<Vec<i64>> = Cached::new();
        let unreadable = FOURTH
            .get_persisted(&db, "closed:usd", stamp(8), compute(vec![7]))
            .await
            .unwrap();
        assert_eq!((*unreadable).clone(), vec![7]);
        assert_eq!(computed.load(Ordering::SeqCst), 3);
        // A kept figure nobody refreshed for a week goes when another is written.
        sqlx::query("UPDATE figure_cache SET computed_at = 0 WHERE key = 'closed:usd'")
            .execute(db.writer())
            .await
            .unwrap();
        let other: i64 = cache::persisted(&db, "other", stamp(1), Duration::ZERO, || async {
            Ok::<_, DbError>(5i64)
        })
        .await
        .unwrap();
        assert_eq!(other, 5);
        let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM figure_cache ORDER BY key")
            .fetch_all(db.reader())
            .await
            .unwrap();
        assert_eq!(keys, vec!["other".to_string()]);
        // A figure kept at most once a minute: a new stamp within the minute is computed and
        // answered, but the stored row keeps the earlier one (a restart then computes once).
        let minute = Duration::from_secs(60);
        let n: i64 = cache::persisted(&db, "busy", stamp(1), minute, || async { Ok::<_, DbError>(1i64) })
            .await
            .unwrap();
        assert_eq!(n, 1);
        let n: i64 = cache::persisted(&db, "busy", stamp(2), minute, || async { Ok::<_, DbError>(2i64) })
            .await
            .unwrap();
        assert_eq!(n, 2, "the caller gets the new figure");
        let kept: String = sqlx::query_scalar("SELECT value FROM figure_cache WHERE key = 'busy'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(kept, "1", "not written again within the minute");
        let n: i64 = cache::persisted(&db, "busy", stamp(2), minute, || async { Ok::<_, DbError>(9i64) })
            .await
            .unwrap();
        assert_eq!(n, 9, "the stored stamp is older: computed, never the stale value");
    }
);
