//! Cached figures: one computation per projection generation, shared by concurrent requests, and
//! computed again after any committed projection change.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tally::db::cache::{self, Cached};
use tally::db::{Db, DbError};

async fn fresh_db(backend: common::Backend) -> (Db, common::TestDb) {
    let test_db = common::TestDb::new(backend).await;
    let config = common::config_with(&test_db, &[]);
    let db = Db::connect(&config.database_url).await.unwrap();
    db.migrate().await.unwrap();
    (db, test_db)
}

both_backends!(
    concurrent_requests_share_one_computation_until_the_projection_changes,
    |backend| async move {
        static CACHE: Cached<i64> = Cached::new();
        let (db, _t) = fresh_db(backend).await;
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
