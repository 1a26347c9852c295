//! Acknowledged means stored: the `tally` server is killed with SIGKILL while several connections
//! deliver signed events, started again on the same database, and every event Stripe was told 200
//! for is there and applied exactly once; on SQLite and on Postgres.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, TestDb};
use serde_json::json;

const SECRET: &str = "whsec_crash_test_secret";
/// Each subscription is worth this much MRR (cents), so the movements' sum counts applications.
const MRR: i64 = 2_000;

/// `tally serve` on a random loopback port; returns the child and the address it listens on.
fn serve(db_url: &str, dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tally"))
        .env_clear()
        .current_dir(dir)
        .env(
            "TALLY_SITE_CONFIG",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("Leptos.toml"),
        )
        .env("DATABASE_URL", db_url)
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("STRIPE_WEBHOOK_SECRET", SECRET)
        .env("TALLY_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tally serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
        for line in lines.by_ref() {
            let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if let Some(addr) = parsed["message"]
                .as_str()
                .and_then(|m| m.strip_prefix("listening on http://"))
            {
                let _ = tx.send(addr.to_string());
                break;
            }
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(120))
        .expect("tally serve starts listening");
    (child, addr)
}

fn subscription_created(n: usize, created: i64) -> Vec<u8> {
    json!({
        "id": format!("evt_crash_{n}"), "object": "event", "type": "customer.subscription.created",
        "created": created, "livemode": false, "api_version": "2025-03-31.basil", "pending_webhooks": 1,
        "data": {"object": {
            "id": format!("sub_crash_{n}"), "object": "subscription", "customer": format!("cus_crash_{n}"),
            "status": "active", "currency": "usd", "cancel_at_period_end": false, "created": created,
            "items": {"object": "list", "has_more": false, "data": [{
                "id": format!("si_crash_{n}"), "object": "subscription_item", "quantity": 1,
                "price": {"id": "price_crash", "object": "price", "unit_amount": MRR, "currency": "usd",
                          "product": "prod_crash", "recurring": {"interval": "month", "interval_count": 1,
                          "usage_type": "licensed"}},
                "current_period_start": created, "current_period_end": created + 2_592_000}]}
        }}
    })
    .to_string()
    .into_bytes()
}

both_backends!(
    every_acknowledged_event_survives_a_sigkill_and_is_applied_once,
    |backend: Backend| async move {
        let test_db = TestDb::new(backend).await;
        let dir = tempfile::tempdir().unwrap();
        let (mut child, addr) = serve(&test_db.url, dir.path());

        // Four connections deliver events until the server dies under them; the kill comes once
        // 150 have been acknowledged, while the others are in flight and the worker is applying.
        const SENDERS: usize = 4;
        const PER_SENDER: usize = 2_000;
        let acked = Arc::new(Mutex::new(BTreeSet::new()));
        let acked_count = Arc::new(AtomicUsize::new(0));
        let created = tally::db::now_unix();
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let (acked, acked_count, addr) = (acked.clone(), acked_count.clone(), addr.clone());
            senders.push(tokio::spawn(async move {
                // One client per sender: its own keep-alive connection.
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                for i in 0..PER_SENDER {
                    let n = s * PER_SENDER + i;
                    let body = subscription_created(n, created);
                    let header = tally::webhooks::signature::sign(&body, SECRET, tally::db::now_unix());
                    let sent = client
                        .post(format!("http://{addr}/stripe/webhook"))
                        .header("content-type", "application/json")
                        .header("stripe-signature", header)
                        .body(body)
                        .send()
                        .await;
                    match sent {
                        Ok(res) if res.status() == 200 => {
                            acked.lock().unwrap().insert(n);
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(res) => panic!("a live server refused event {n}: {}", res.status()),
                        // The server was killed: this event's outcome is unknown (Stripe retries).
                        Err(_) => return,
                    }
                }
            }));
        }
        while acked_count.load(Ordering::SeqCst) < 150 {
            assert!(
                !senders.iter().all(|s| s.is_finished()),
                "the senders stopped before the kill"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
        child.wait().unwrap();
        for sender in senders {
            sender.await.expect("a sender panicked");
        }
        let acked: BTreeSet<usize> = acked.lock().unwrap().clone();
        assert!(
            acked.len() >= 150 && acked.len() < SENDERS * PER_SENDER,
            "{}",
            acked.len()
        );

        // Started again on the same database: the worker finishes what was stored.
        let (mut child, _addr) = serve(&test_db.url, dir.path());
        let db = tally::db::Db::connect(&common::config_with(&test_db, &[]).database_url)
            .await
            .unwrap();
        let mut waited = 0;
        while common::scalar::<i64>(
            &db,
            "SELECT CAST(COUNT(*) AS BIGINT) FROM stripe_events WHERE status <> 'applied'",
        )
        .await
            > 0
        {
            waited += 1;
            assert!(waited < 1_200, "events still not applied a minute after the restart");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();

        // Every acknowledged event is stored, once, and applied.
        let stored: BTreeSet<usize> = sqlx::query_scalar::<_, String>("SELECT id FROM stripe_events")
            .fetch_all(db.reader())
            .await
            .unwrap()
            .iter()
            .map(|id| id.strip_prefix("evt_crash_").unwrap().parse().unwrap())
            .collect();
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
        // Stored events beyond the acknowledged ones are those whose answer the kill cut off.
        let stored_count = stored.len() as i64;
        assert!(
            stored_count <= acked.len() as i64 + SENDERS as i64,
            "{stored_count} stored, {} acknowledged",
            acked.len()
        );
        // Applied once each: one subscription row and one "new" movement of MRR per stored event.
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT CAST(COUNT(*) AS BIGINT) FROM subscriptions").await,
            stored_count
        );
        assert_eq!(
            common::scalar::<i64>(
                &db,
                "SELECT CAST(COUNT(*) AS BIGINT) FROM mrr_movements WHERE kind = 'new'"
            )
            .await,
            stored_count
        );
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT CAST(COALESCE(SUM(delta), 0) AS BIGINT) FROM mrr_movements").await,
            stored_count * MRR
        );
        assert_eq!(
            common::scalar::<i64>(&db, "SELECT CAST(COALESCE(SUM(mrr), 0) AS BIGINT) FROM subscriptions").await,
            stored_count * MRR
        );
    }
);
