//! Cached figures: one computation per projection generation, shared by concurrent requests, and
//! computed again after any committed projection change.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally::db::cache::{self, Cached};
use tally::db::{Db, DbError};

both_backends!(
    concurrent_requests_share_one_computation_until_the_projection_changes,
    |backend| async move {
        static CACHE: Cached<i64> = Cached::new();
        let (db, _t) = common::migrated_db(backend).await;
        let runs = Arc::new(AtomicUsize::new(0));
        let ask = |db: Db, runs: Arc<AtomicUsize>| async move {
            CACHE
                .get(&db, "answer", || async {
                    let n = runs.fetch_add(1, Ordering::SeqCst) as i64;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok::<_, DbError>(40 + n)
                })
                .await
                .unwrap()
        };
        // Eight viewers at once: one computation, one answer.
        let waiting: Vec<_> = (0..8).map(|_| tokio::spawn(ask(db.clone(), runs.clone()))).collect();
        for w in waiting {
            assert_eq!(*w.await.unwrap(), 40);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(*ask(db.clone(), runs.clone()).await, 40, "cached");
        assert_eq!(runs.load(Ordering::SeqCst), 1);

        // A committed projection change makes the next request compute again.
        let mut tx = db.begin().await.unwrap();
        cache::bump(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(*ask(db.clone(), runs.clone()).await, 41);
        assert_eq!(runs.load(Ordering::SeqCst), 2);

        // A rolled-back change does not.
        let mut tx = db.begin().await.unwrap();
        cache::bump(&mut tx).await.unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(*ask(db.clone(), runs.clone()).await, 41);

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
        // Each computation takes 300 ms; requests wait at most 20 ms.
        let ask = |db: Db, runs: Arc<AtomicUsize>| async move {
            let started = std::time::Instant::now();
            let (value, as_of) = CACHE
                .get_bounded(&db, "slow", 0, Duration::from_millis(20), move || async move {
                    let n = runs.fetch_add(1, Ordering::SeqCst) as i64;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok::<_, DbError>(100 + n)
                })
                .await
                .unwrap();
            (*value, as_of, started.elapsed())
        };
        let bump = |db: Db| async move {
            let mut tx = db.begin().await.unwrap();
            cache::bump(&mut tx).await.unwrap();
            tx.commit().await.unwrap();
        };
        // Nothing earlier to show: the first request waits for the figures.
        let (value, as_of, took) = ask(db.clone(), runs.clone()).await;
        assert_eq!((value, as_of), (100, None));
        assert!(took >= Duration::from_millis(300), "{took:?}");

        // After a change: the previous figures at once, marked with their time…
        bump(db.clone()).await;
        let before = tally::db::now_unix();
        let (value, as_of, took) = ask(db.clone(), runs.clone()).await;
        assert_eq!(value, 100);
        let as_of = as_of.expect("marked as previous figures");
        assert!(
            as_of <= before && before - as_of <= cache::MAX_STALE_SECS,
            "{as_of} {before}"
        );
        assert!(
            took < Duration::from_millis(250),
            "did not wait for the computation: {took:?}"
        );
        // …while the new ones are computed once, in the background, for the next request.
        let (value, as_of, _) = ask(db.clone(), runs.clone()).await;
        assert_eq!((value, as_of.is_some()), (100, true), "still computing");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (value, as_of, took) = ask(db.clone(), runs.clone()).await;
        assert_eq!((value, as_of), (101, None));
        assert!(took < Duration::from_millis(250), "{took:?}");
        assert_eq!(runs.load(Ordering::SeqCst), 2, "one computation per change");

        // Quick figures after a change: a second request while the first computes joins that
        // computation and gets current figures too (not the previous ones).
        bump(db.clone()).await;
        let quick = |db: Db| async move {
            CACHE
                .get_bounded(&db, "quick", 0, Duration::from_millis(500), || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, DbError>(tally::db::now_unix())
                })
                .await
                .unwrap()
        };
        quick(db.clone()).await;
        bump(db.clone()).await;
        let (a, b) = tokio::join!(quick(db.clone()), async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            quick(db.clone()).await
        });
        assert_eq!((a.1, b.1), (None, None), "both current");
        assert!(Arc::ptr_eq(&a.0, &b.0), "one computation");

        // A generous wait gives current figures right after a change.
        bump(db.clone()).await;
        let (value, as_of) = CACHE
            .get_bounded(&db, "slow", 0, Duration::from_secs(30), || async {
                Ok::<_, DbError>(7)
            })
            .await
            .unwrap();
        assert_eq!((*value, as_of), (7, None));
    }
);
