//! The dashboard on demo data: the overview's figures agree with each other and with the rows,
//! lists filter from the URL and page without gaps, CSV exports stream the same rows.

use crate::common;

use common::{Backend, TestApp};
use serde_json::Value;
use tally::cli::demo;

async fn seeded(backend: Backend, customers: usize) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let seeded = demo::seed(app.db(), customers, tally::db::now_unix()).await.unwrap();
    assert!(
        matches!(seeded, demo::Seeded::Events(n) if n > customers * 3),
        "{seeded:?}"
    );
    app
}

async fn overview(app: &TestApp, currency: &str) -> Value {
    app.json(&app.client, "metrics/overview", &[("currency", currency)])
        .await
}

both_backends!(demo_data_gives_a_consistent_overview, |backend| async move {
    let app = seeded(backend, 200).await;
    // Seeding again leaves a database with data alone.
    assert_eq!(
        demo::seed(app.db(), 200, tally::db::now_unix()).await.unwrap(),
        demo::Seeded::AlreadyHasData
    );
    assert_eq!(app.scalar::<i64>("SELECT COUNT(*) FROM customers").await, 200);
    for currency in ["usd", "jpy"] {
        let o = overview(&app, currency).await;
        assert_eq!(o["currency"], currency);
        let k = &o["kpis"];
        let mrr = k["mrr"].as_i64().unwrap();
        // The KPI (current rows) equals the sum of all movements (history) and the last month-end.
        let months = o["mrr_months"].as_array().unwrap();
        assert_eq!(months.len(), 24);
        assert_eq!(months.last().unwrap()["mrr"].as_i64().unwrap(), mrr, "{currency}");
        let rows_mrr = sqlx::query_scalar::<_, i64>(
            "SELECT CAST(COALESCE(SUM(mrr), 0) AS BIGINT) FROM subscriptions WHERE currency = $1 AND status IN ('active', 'past_due')",
        )
        .bind(currency)
        .fetch_one(app.db().reader())
        .await
        .unwrap();
        assert_eq!(rows_mrr, mrr);
        assert!(mrr > 0, "the demo business earns in {currency}");
        assert_eq!(k["arr"].as_i64().unwrap(), mrr * 12);
        let net = k["gross_30d"].as_i64().unwrap()
            - k["refunds_30d"].as_i64().unwrap()
            - k["disputes_lost_30d"].as_i64().unwrap();
        assert_eq!(k["net_revenue_30d"].as_i64().unwrap(), net);
    }
    let o = overview(&app, "usd").await;
    assert_eq!(o["currencies"][0], "usd", "USD is the main currency of the demo");
    // The variety the demo promises.
    for (sql, what) in [
        (
            "SELECT COUNT(*) FROM subscriptions WHERE status = 'canceled'",
            "cancellations",
        ),
        (
            "SELECT COUNT(*) FROM subscriptions WHERE trial_end IS NOT NULL",
            "trials",
        ),
        ("SELECT COUNT(*) FROM subscriptions WHERE currency = 'jpy'", "JPY"),
        (
            "SELECT COUNT(*) FROM charges WHERE status = 'failed'",
            "failed payments",
        ),
        ("SELECT COUNT(*) FROM refunds", "refunds"),
        (
            "SELECT COUNT(*) FROM prices WHERE recurring_interval = 'year'",
            "yearly plans",
        ),
        (
            "SELECT COUNT(*) FROM stripe_events WHERE source = 'demo' AND status = 'applied'",
            "events in the inbox",
        ),
    ] {
        assert!(app.scalar::<i64>(sql).await > 0, "no {what} in the demo");
    }
    let kinds: Vec<String> = tally::revenue::movements(app.db(), "usd")
        .await
        .unwrap()
        .iter()
        .map(|m| m.kind.as_str().to_string())
        .collect();
    for kind in ["new", "expansion", "contraction", "churn"] {
        assert!(kinds.iter().any(|k| k == kind), "no {kind} movement");
    }
    // The page renders the figures and the charts, readable without JavaScript.
    let html = app.get("/?currency=usd").await.text().await.unwrap();
    let mrr = tally::domain::money::format(o["kpis"]["mrr"].as_i64().unwrap(), "usd");
    assert!(html.contains(&mrr), "MRR {mrr} on the page");
    for chart in [
        "MRR",
        "MRR movements",
        "Revenue",
        "Active subscribers",
        "Failed-payment rate",
    ] {
        assert!(html.contains(&format!("data-chart=\"{chart}\"")), "chart {chart}");
    }
    assert!(html.contains("<svg") && html.contains("<title>") && html.contains("Show as a table"));
    assert!(html.contains("href=\"/definitions#mrr\""));
    // The main figures lead with their change: MRR against 30 days ago, from the movements.
    let k = &o["kpis"];
    let (now_mrr, before) = (k["mrr"].as_i64().unwrap(), k["mrr_30d_ago"].as_i64().unwrap());
    let delta = now_mrr - before;
    assert!(before > 0, "the demo had MRR 30 days ago");
    let bp = (2 * delta.abs() * 10_000 + before) / (2 * before);
    let sign = if delta > 0 {
        "+"
    } else if delta < 0 {
        "-"
    } else {
        ""
    };
    let expected = format!(
        "{}{} ({sign}{}) vs 30 days ago",
        if delta > 0 { "+" } else { "" },
        tally::domain::money::format(delta, "usd"),
        tally::domain::revenue::percent(Some(bp))
    );
    assert!(html.contains(&expected), "{expected}");
    assert!(html.contains("class=\"sparkline\""));
    let html = app.get("/?currency=jpy").await.text().await.unwrap();
    assert!(html.contains('¥') && !html.contains("¥0.00"));
    let definitions = app.get("/definitions").await.text().await.unwrap();
    assert!(definitions.contains("id=\"revenue-churn\"") && definitions.contains("Reactivation"));
    app.server.shutdown().await.unwrap();
});

both_backends!(lists_filter_page_and_export, |backend| async move {
    let app = seeded(backend, 150).await;
    // Filters in the URL.
    let failed = app.get("/payments?status=failed").await.text().await.unwrap();
    let failed_count = app
        .scalar::<i64>("SELECT COUNT(*) FROM charges WHERE status = 'failed'")
        .await;
    assert!(failed_count > 0);
    // Totals of the whole filtered list, per currency: count and amount.
    let per_currency: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT currency, CAST(COUNT(*) AS BIGINT), CAST(SUM(amount) AS BIGINT) FROM charges WHERE status = 'failed' GROUP BY currency",
    )
    .fetch_all(app.db().reader())
    .await
    .unwrap();
    for (currency, n, sum) in per_currency {
        let expected = format!(
            "{} {} · {}",
            tally::domain::money::count(n),
            currency.to_uppercase(),
            tally::domain::money::format(sum, &currency)
        );
        assert!(failed.contains(&expected), "totals {expected} missing");
    }
    let body = &failed[failed.find("<tbody").expect("a table")..];
    assert!(
        body.contains(">Failed<") && !body.contains(">Succeeded<"),
        "only failed payments"
    );
    let jpy = app
        .get("/subscriptions?status=all&currency=jpy")
        .await
        .text()
        .await
        .unwrap();
    assert!(jpy.contains(">¥") && !jpy.contains(">$"), "JPY only");

    // Keyset paging: two pages, no overlap, newest first.
    let page = |q: &str| {
        let q = q.to_string();
        let client = app.client.clone();
        let url = app.url("/api/lists/page");
        async move {
            let res = client
                .post(url)
                .form(&[("list", "payments"), ("query", q.as_str())])
                .send()
                .await
                .unwrap();
            res.json::<Value>().await.unwrap()
        }
    };
    let first = page("status=all").await;
    assert_eq!(first["rows"].as_array().unwrap().len(), 50);
    let after = first["next"].as_str().unwrap().to_string();
    let second = page(&format!("status=all&after={after}")).await;
    let ids = |v: &Value| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[1]["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let (a, b) = (ids(&first), ids(&second));
    assert!(a.iter().all(|id| !b.contains(id)), "pages do not overlap");
    let dates = |v: &Value| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r[0]["text"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    let all_dates: Vec<String> = dates(&first).into_iter().chain(dates(&second)).collect();
    assert!(all_dates.windows(2).all(|w| w[0] >= w[1]), "newest first across pages");
    let bad = app
        .client
        .post(app.url("/api/lists/page"))
        .form(&[("list", "payments"), ("query", "status=bogus")])
        .send()
        .await
        .unwrap();
    assert!(bad.text().await.unwrap().contains("Unknown status"));

    // Search by email.
    let email: String = sqlx::query_scalar("SELECT email FROM customers ORDER BY id LIMIT 1")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    let found = page(&format!("status=all&q={}", email.split('@').next().unwrap())).await;
    assert!(!found["rows"].as_array().unwrap().is_empty());

    // CSV: the same filter, every row, streamed.
    let res = app.get("/export/payments.csv?status=failed").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("tally-payments-"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(
        lines[0],
        "\"Date\",\"Payment\",\"Customer\",\"Status\",\"Amount\",\"Refunded\",\"Failure\",\"Currency\",\"Stripe account\""
    );
    assert_eq!(lines.len() as i64 - 1, failed_count);
    assert!(lines[1..].iter().all(|l| l.contains("\"failed\"")));
    let all_csv = app
        .get("/export/subscriptions.csv?status=all")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        all_csv.trim_end().split("\r\n").count() as i64 - 1,
        app.scalar::<i64>("SELECT COUNT(*) FROM subscriptions").await,
        "more rows than a page"
    );
    // Compressed for a browser that accepts gzip, the same file once decoded (the stream ends
    // cleanly under the compressing layer).
    let gzipped = app
        .client
        .get(app.url("/export/subscriptions.csv?status=all"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(gzipped.headers()["content-encoding"], "gzip");
    let mut decoded = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&gzipped.bytes().await.unwrap()[..]),
        &mut decoded,
    )
    .unwrap();
    assert_eq!(decoded, all_csv);
    let moves = app
        .get("/export/movements.csv?currency=usd&kind=churn")
        .await
        .text()
        .await
        .unwrap();
    assert!(moves.lines().skip(1).all(|l| l.contains("\"churn\"")) && moves.lines().count() > 1);
    // Every export needs a login; a logged-in viewer gets each.
    app.create_admin("viewer@example.com", tally::domain::admins::Role::Viewer)
        .await;
    let viewer = app.logged_in("viewer@example.com").await;
    for list in [
        "customers",
        "subscriptions",
        "payments",
        "invoices",
        "refunds",
        "disputes",
        "movements",
    ] {
        let url = app.url(&format!("/export/{list}.csv?currency=usd"));
        let anonymous = common::browser().get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 303, "{list}");
        assert!(
            anonymous.headers()["location"].to_str().unwrap().starts_with("/login"),
            "{list}"
        );
        let res = viewer.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200, "{list}");
        assert!(
            res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"),
            "{list}"
        );
    }

    // Movements page filters by kind.
    let churn = app.get("/revenue?currency=usd&kind=churn").await.text().await.unwrap();
    assert!(churn.contains("movement churn") && !churn.contains("movement new"));
    app.server.shutdown().await.unwrap();
});

/// The movements as the whole history replayed in Stripe's order, one state per subscription and
/// per customer: what the stored, per-customer rebuilt movements must equal.
async fn replayed_movements(app: &TestApp, currency: &str) -> Vec<(String, String, i64, String, String, i64, i64)> {
    use sqlx::Row;
    use std::collections::HashMap;
    let rows = sqlx::query(
        "SELECT subscription_id, at, event_id, COALESCE(customer_id, subscription_id) AS customer, mrr \
         FROM subscription_mrr WHERE currency = $1 ORDER BY at, event_id, subscription_id",
    )
    .bind(currency)
    .fetch_all(app.db().reader())
    .await
    .unwrap();
    let mut subs: HashMap<String, i64> = HashMap::new();
    let mut customers: HashMap<String, (i64, bool)> = HashMap::new();
    let mut out = Vec::new();
    for r in rows {
        let sub: String = r.get("subscription_id");
        let customer: String = r.get("customer");
        let mrr: i64 = r.get("mrr");
        let delta = mrr - subs.insert(sub.clone(), mrr).unwrap_or(0);
        if delta == 0 {
            continue;
        }
        let state = customers.entry(customer.clone()).or_insert((0, false));
        let (before, after) = (state.0, state.0 + delta);
        let kind = match () {
            _ if before == 0 && after > 0 && state.1 => "reactivation",
            _ if before == 0 && after > 0 => "new",
            _ if before > 0 && after <= 0 => "churn",
            _ if delta > 0 => "expansion",
            _ => "contraction",
        };
        *state = (after, state.1 || after > 0);
        out.push((
            sub,
            customer,
            r.get("at"),
            r.get("event_id"),
            kind.to_string(),
            delta,
            mrr,
        ));
    }
    out
}

both_backends!(stored_movements_equal_a_replay_of_the_history, |backend| async move {
    let app = seeded(backend, 150).await;
    let as_tuples = |moves: Vec<tally::domain::revenue::Movement>| -> Vec<_> {
        moves
            .into_iter()
            .map(|m| {
                let kind = m.kind.as_str().to_string();
                (
                    m.subscription_id,
                    m.customer_id,
                    m.at,
                    m.event_id,
                    kind,
                    m.delta,
                    m.mrr_after,
                )
            })
            .collect()
    };
    for currency in ["usd", "jpy"] {
        let stored = as_tuples(tally::revenue::movements(app.db(), currency).await.unwrap());
        let replayed = replayed_movements(&app, currency).await;
        assert!(replayed.len() > 10, "{currency}: {} movements", replayed.len());
        assert_eq!(stored, replayed, "{currency}");
    }
    // Walking the list newest first, a page of 7 at a time, gives every movement once.
    use tally::revenue::movements::{page_after, Filter};
    let mut walked = Vec::new();
    let mut cursor = None;
    loop {
        let page = page_after(app.db(), "usd", &Filter::default(), cursor.as_ref(), 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some((last.at, last.event_id.clone(), last.subscription_id.clone()));
        walked.extend(page);
    }
    walked.reverse();
    assert_eq!(as_tuples(walked), replayed_movements(&app, "usd").await);
    // The CSV export (pages of 2,000) has one line per movement.
    let csv = app
        .get("/export/movements.csv?currency=usd")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        csv.trim_end().split("\r\n").count() - 1,
        replayed_movements(&app, "usd").await.len()
    );
    // Built again from scratch (what a database from before the table gets at startup): the same.
    // The figures, not the time they were computed at (a second may pass).
    let figures = |mut o: Value| {
        o.as_object_mut().map(|m| m.remove("now"));
        o
    };
    let overview_before = figures(overview(&app, "usd").await);
    for sql in [
        "DELETE FROM mrr_movements",
        "DELETE FROM settings WHERE key = 'mrr_movements_built'",
    ] {
        sqlx::query(sql).execute(app.db().writer()).await.unwrap();
    }
    tally::projection::movements::ensure_built(app.db()).await.unwrap();
    let rebuilt = as_tuples(tally::revenue::movements(app.db(), "usd").await.unwrap());
    assert_eq!(rebuilt, replayed_movements(&app, "usd").await);
    assert_eq!(figures(overview(&app, "usd").await), overview_before);
    app.server.shutdown().await.unwrap();
});

/// The figures' stale path over HTTP with the production wait (FIGURES_WAIT_MS 20): after a change,
/// while the new figures cannot be computed (the test holds a lock on the tables they read), the
/// overview answers at once with the previous figures, marked with their time (the API and the
/// page); once the lock is
/// gone, the new figures come. Postgres only: a lock that stops readers is what makes the
/// computation wait without a timing (SQLite's readers never wait for a writer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_previous_figures_while_new_ones_wait_with_the_production_wait() {
    use tally::projection::{self, Version};
    let app = TestApp::spawn_with(Backend::Postgres, &[("FIGURES_WAIT_MS", "20")]).await;
    let subscription = |id: &str, amount: i64| {
        serde_json::json!({"id": id, "object": "subscription", "customer": format!("cus_{id}"), "status": "active",
            "currency": "usd", "items": {"object": "list", "has_more": false, "data": [{"id": format!("si_{id}"),
            "quantity": 1, "price": {"id": "price_m", "unit_amount": amount, "currency": "usd",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}}]}})
    };
    let apply = |object: Value, n: i64| {
        let db = app.db().clone();
        async move {
            let mut tx = db.begin().await.unwrap();
            let version = Version {
                at: tally::db::now_unix() - 100 + n,
                event_id: format!("evt_stale_{n}"),
            };
            projection::apply_event(&mut tx, "customer.subscription.created", &object, &version)
                .await
                .unwrap();
            tally::db::cache::bump(&mut tx).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    apply(subscription("sub_one", 1000), 1).await;
    // Nothing earlier to show: the first request waits for its figures.
    let first = overview(&app, "usd").await;
    assert_eq!(
        (first["kpis"]["mrr"].as_i64(), first["as_of"].is_null()),
        (Some(1000), true),
        "{first}"
    );

    // The page (the default currency's figures, kept apart) has shown figures too.
    let page = app.get("/").await.text().await.unwrap();
    assert!(!page.contains("newer figures are being computed"));

    apply(subscription("sub_two", 2500), 2).await;
    let mut lock = app.db().begin().await.unwrap();
    sqlx::query("LOCK TABLE mrr_movements IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    // Bounded, so that a request waiting for the held computation fails the test.
    let bounded = std::time::Duration::from_secs(30);
    let held = tokio::time::timeout(bounded, overview(&app, "usd"))
        .await
        .expect("the overview waited for the held computation");
    assert_eq!(held["kpis"]["mrr"].as_i64(), Some(1000), "the previous figures: {held}");
    assert!(held["as_of"].as_i64().is_some(), "marked with their time: {held}");
    let page = tokio::time::timeout(bounded, app.get("/"))
        .await
        .expect("the page waited for the held computation")
        .text()
        .await
        .unwrap();
    assert!(page.contains("newer figures are being computed"), "the page says so");
    lock.commit().await.unwrap();

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let o = overview(&app, "usd").await;
        if o["kpis"]["mrr"].as_i64() == Some(3500) {
            assert!(o["as_of"].is_null(), "current figures are not marked: {o}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new figures never came: {o}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.server.shutdown().await.unwrap();
}
