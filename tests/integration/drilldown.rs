//! Every figure on the overview opens exactly the rows that add up to it: the same currency and
//! the same period. The test reads the overview as a browser gets it, follows each figure's link
//! (and the links of its parts) to the list or movements it names, and checks the figure against
//! those rows' totals.

use crate::common;

use common::TestApp;
use serde_json::Value;
use tally::cli::demo;
use tally::domain::money::{count, format};
use tally::domain::revenue::percent;

/// `&amp;` and friends back to text.
fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
}

/// Tags removed, entities decoded, spaces collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for ch in html.chars() {
        match ch {
            '<' => inside = true,
            '>' => inside = false,
            _ if !inside => out.push(ch),
            _ => {}
        }
    }
    unescape(&out)
        .replace("<!>", "")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// One KPI card as rendered: its value, its rows link, its notes' text and its parts' links.
#[derive(Debug)]
struct Card {
    value: String,
    rows: Option<String>,
    note: String,
    parts: Vec<(String, String, String)>,
}

fn card(html: &str, kpi: &str) -> Card {
    let start = html
        .find(&format!("data-kpi=\"{kpi}\""))
        .unwrap_or_else(|| panic!("no KPI {kpi} on the overview"));
    let rest = &html[start..];
    let end = rest[1..]
        .find("data-kpi=")
        .map(|i| i + 1)
        .or_else(|| rest.find("</section>"))
        .unwrap_or(rest.len());
    let block = &rest[..end];
    let value_at = block
        .find("class=\"kpi-value\"")
        .unwrap_or_else(|| panic!("no value in {block}"));
    let value_tag = &block[block[..value_at].rfind('<').unwrap()..];
    let close = value_tag.find('>').unwrap();
    let rows = value_tag[..close]
        .split("href=\"")
        .nth(1)
        .map(|h| unescape(h.split('"').next().unwrap()));
    let value_end = value_tag.find("</").unwrap();
    let value = text(&value_tag[close + 1..value_end]);
    let note = block
        .split("class=\"kpi-note muted small\">")
        .skip(1)
        .map(|n| text(n.split("</div>").next().unwrap()))
        .collect::<Vec<_>>()
        .join(" | ");
    let parts = block
        .split("data-part=\"")
        .skip(1)
        .map(|p| {
            let name = p.split('"').next().unwrap().to_string();
            let href = unescape(p.split("href=\"").nth(1).unwrap().split('"').next().unwrap());
            let label = text(&p[p.find('>').unwrap() + 1..p.find("</a>").unwrap()]);
            (name, href, label)
        })
        .collect();
    Card {
        value,
        rows,
        note,
        parts,
    }
}

/// Each chart's linked points: (chart, [(href, accessible label "Mar 26 · New: $12.00")]).
fn chart_marks(html: &str) -> Vec<(String, Vec<(String, String)>)> {
    html.split("data-chart=\"")
        .skip(1)
        .map(|part| {
            let name = part.split('"').next().unwrap().to_string();
            let figure = part.split("</figure>").next().unwrap();
            let marks = figure
                .match_indices("class=\"mark\"")
                .filter_map(|(at, _)| {
                    let open = figure[..at].rfind('<').unwrap();
                    let tag = &figure[open..at + figure[at..].find('>').unwrap()];
                    if !tag.starts_with("<a") {
                        return None;
                    }
                    let attr = |name: &str| {
                        tag.split(&format!("{name}=\""))
                            .nth(1)
                            .map(|v| unescape(v.split('"').next().unwrap()))
                    };
                    Some((attr("href")?, attr("aria-label")?))
                })
                .collect();
            (name, marks)
        })
        .collect()
}

/// What a link's rows add up to, in `currency`: (rows, sum in minor units).
async fn rows_of(app: &TestApp, href: &str, currency: &str) -> (i64, i64) {
    let (path, query) = href.split_once('?').unwrap_or((href, ""));
    let q: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    assert_eq!(q.get("currency").map(String::as_str), Some(currency), "{href}");
    if path == "/revenue" {
        let get = |k: &str| q.get(k).cloned().unwrap_or_default();
        let (kind, month, since, through) = (get("kind"), get("month"), get("since"), get("through"));
        let res = app
            .call(
                &app.client,
                "metrics/movements",
                &[
                    ("currency", currency),
                    ("kind", &kind),
                    ("month", &month),
                    ("since", &since),
                    ("through", &through),
                ],
            )
            .await;
        assert_eq!(res.status(), 200, "{href}");
        let list: Value = res.json().await.unwrap();
        return (list["count"].as_i64().unwrap(), list["total"].as_i64().unwrap());
    }
    let list = path.trim_start_matches('/');
    let res = app
        .call(&app.client, "lists/page", &[("list", list), ("query", query)])
        .await;
    assert_eq!(res.status(), 200, "{href}");
    let page: Value = res.json().await.unwrap();
    let totals = page["totals"].as_array().unwrap();
    assert!(totals.len() <= 1, "{href}: one currency, got {totals:?}");
    totals.first().map_or((0, 0), |t| {
        assert_eq!(t["currency"], currency, "{href}");
        (t["count"].as_i64().unwrap(), t["sum"].as_i64().unwrap())
    })
}

/// `round(num / den)` half up, as the KPIs round.
fn ratio(num: i64, den: i64) -> i64 {
    (2 * num + den) / (2 * den)
}

both_backends!(every_kpi_opens_the_rows_that_add_up_to_it, |backend| async move {
    let app = TestApp::spawn(backend).await;
    demo::seed(app.db(), 200, tally::db::now_unix()).await.unwrap();
    for currency in ["usd", "jpy"] {
        let html = app.get(&format!("/?currency={currency}")).await.text().await.unwrap();
        let m = |v: i64| format(v, currency);
        let rows = |kpi: &str| {
            let c = card(&html, kpi);
            let href = c.rows.clone().unwrap_or_else(|| panic!("{kpi} links to no rows"));
            (c, href)
        };

        let (c, href) = rows("mrr");
        let (n, mrr) = rows_of(&app, &href, currency).await;
        assert_eq!(c.value, m(mrr), "MRR against {href}");
        assert!(mrr > 0 && n > 0, "{currency}: the demo earns");
        let (c, href) = rows("arr");
        assert_eq!(
            c.value,
            m(12 * rows_of(&app, &href, currency).await.1),
            "ARR is 12 × {href}"
        );
        let (c, href) = rows("active-subscriptions");
        assert_eq!(c.value, count(rows_of(&app, &href, currency).await.0), "{href}");

        let (c, href) = rows("active-customers");
        let (customers, customers_mrr) = rows_of(&app, &href, currency).await;
        assert_eq!(c.value, count(customers), "active customers against {href}");
        assert_eq!(customers_mrr, mrr, "the paying customers' MRR is the MRR");
        let (c, href) = rows("arpu");
        let (n, sum) = rows_of(&app, &href, currency).await;
        assert_eq!(c.value, m(ratio(sum, n)), "ARPU is the MRR per row of {href}");

        let (c, href) = rows("new-mrr");
        assert_eq!(c.value, m(rows_of(&app, &href, currency).await.1), "{href}");

        let (c, href) = rows("churned-mrr");
        assert!(
            href.contains("since=") && href.contains("through="),
            "{href}: the 30 days"
        );
        let (churned, churn_delta) = rows_of(&app, &href, currency).await;
        assert_eq!(c.value, m(-churn_delta), "churned MRR against {href}");
        let (c, customers_href) = rows("churned-customers");
        assert_eq!(customers_href, href);
        assert_eq!(c.value, count(churned), "one churn movement per churned customer");
        assert_eq!(c.note, format!("{} MRR lost", m(-churn_delta)));
        let (c, href) = rows("customer-churn");
        assert_eq!(rows_of(&app, &href, currency).await.0, churned, "{href}");
        assert!(c.note.starts_with(&format!("{} of ", count(churned))), "{}", c.note);
        let (c, href) = rows("revenue-churn");
        let lost = -rows_of(&app, &href, currency).await.1;
        assert!(
            c.note.starts_with(&format!("{} lost of ", m(lost))),
            "{} against {href}",
            c.note
        );
        assert!(lost >= -churn_delta, "churn and contraction together");

        // Net revenue: its three parts, each opening its own rows.
        let c = card(&html, "net-revenue");
        let mut net = 0;
        for (part, label_end, sign) in [
            ("gross", " gross", 1),
            ("refunds", " refunds", -1),
            ("disputes", " disputes lost", -1),
        ] {
            let (_, href, label) = c
                .parts
                .iter()
                .find(|(p, _, _)| p == part)
                .unwrap_or_else(|| panic!("no {part}"));
            let (_, sum) = rows_of(&app, href, currency).await;
            assert!(
                href.contains("since=") && href.contains("through="),
                "{href}: the 30 days"
            );
            assert_eq!(*label, format!("{}{label_end}", m(sum)), "{part} against {href}");
            net += sign * sum;
        }
        assert_eq!(c.value, m(net), "net revenue = gross − refunds − disputes lost");
        assert_eq!(
            c.rows.as_deref(),
            Some(c.parts[0].1.as_str()),
            "the figure opens its payments"
        );

        let (c, href) = rows("failed-payments");
        let (n, owed) = rows_of(&app, &href, currency).await;
        assert_eq!(c.value, count(n), "{href}");
        assert_eq!(c.note, format!("{} still owed", m(owed)), "{href}");
        let (c, href) = rows("trials");
        assert_eq!(c.value, count(rows_of(&app, &href, currency).await.0), "{href}");

        let (c, href) = rows("trial-conversion");
        let (ended, _) = rows_of(&app, &href, currency).await;
        let (_, converted_href, converted_label) = &c.parts[0];
        let (converted, _) = rows_of(&app, converted_href, currency).await;
        assert_eq!(*converted_label, count(converted), "{converted_href}");
        assert!(
            c.note
                .ends_with(&format!(" of {} trials ended in 30 days converted", count(ended))),
            "{}",
            c.note
        );
        let expected = (ended > 0).then(|| ratio(converted * 10_000, ended));
        assert_eq!(c.value, percent(expected), "{href}");

        // LTV is a ratio with no rows of its own: it shows its inputs instead of a list.
        let c = card(&html, "ltv");
        assert_eq!(c.rows, None);
        assert!(c.note.starts_with("ARPU "), "{}", c.note);

        // Every chart point with rows opens the rows that add up to it.
        let mut checked = 0;
        for (chart, marks) in chart_marks(&html) {
            for (href, label) in marks {
                let shown = label.rsplit(": ").next().unwrap().to_string();
                let (rows, sum) = rows_of(&app, &href, currency).await;
                match chart.as_str() {
                    "MRR" | "MRR movements" | "Revenue" => assert_eq!(shown, m(sum), "{chart}: {label} against {href}"),
                    "Failed-payment rate" => {
                        assert!(href.contains("status=failed"), "{href}");
                        let (all, _) = rows_of(&app, &href.replace("status=failed", "status=all"), currency).await;
                        let rate = if all > 0 { ratio(rows * 10_000, all) } else { 0 };
                        assert_eq!(shown, percent(Some(rate)), "{label}: {rows} of {all} payments");
                    }
                    other => panic!("{other} has links"),
                }
                checked += 1;
            }
        }
        assert!(checked > 24 * 3, "{checked} chart points checked");

        if currency == "usd" {
            // The demo's last 30 days have each kind of row, so every check above compared
            // something.
            assert!(
                churned > 0 && lost > 0 && ended > 0,
                "churn {churned}, lost {lost}, trials {ended}"
            );
        }
    }
    app.server.shutdown().await.unwrap();
});

both_backends!(
    a_window_filters_lists_and_movements_and_bad_windows_are_refused,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let now = tally::db::now_unix();
        demo::seed(app.db(), 60, now).await.unwrap();
        let all: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM charges WHERE currency = 'usd'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        let since = now - 10 * 86_400;
        let expected: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM charges WHERE currency = 'usd' AND created > $1 AND created <= $2",
        )
        .bind(since)
        .bind(now)
        .fetch_one(app.db().reader())
        .await
        .unwrap();
        assert!(expected > 0 && expected < all, "{expected} of {all}");
        let href = format!("/payments?status=all&currency=usd&since={since}&through={now}");
        assert_eq!(rows_of(&app, &href, "usd").await.0, expected);
        // The page says which window it shows and how to leave it.
        let html = app.get(&href).await.text().await.unwrap();
        assert!(html.contains("data-test=\"list-window\""), "the window is shown");
        assert!(html.contains("Show every date"));
        for bad in ["since=yesterday", "on=nope&since=1", "through=1.5"] {
            let res = app
                .call(&app.client, "lists/page", &[("list", "payments"), ("query", bad)])
                .await;
            assert_eq!(res.status(), 500, "{bad}");
            let body = res.text().await.unwrap();
            assert!(
                body.contains("Unix seconds") || body.contains("Cannot filter"),
                "{bad}: {body}"
            );
        }
        let res = app
            .call(
                &app.client,
                "metrics/movements",
                &[("currency", "usd"), ("since", "soon")],
            )
            .await;
        assert!(res.text().await.unwrap().contains("Unix seconds"));
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    the_revenue_page_pages_through_every_movement_with_totals_and_a_monthly_roll_up,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        demo::seed(app.db(), 150, tally::db::now_unix()).await.unwrap();
        let call = |after: String, kind: &'static str, month: String| {
            let app = &app;
            async move {
                let res = app
                    .call(
                        &app.client,
                        "metrics/movements",
                        &[
                            ("currency", "usd"),
                            ("kind", kind),
                            ("month", &month),
                            ("after", &after),
                        ],
                    )
                    .await;
                assert_eq!(res.status(), 200);
                res.json::<Value>().await.unwrap()
            }
        };
        // Every movement once, a page at a time, newest first; each page's total is its rows' sum.
        let first = call(String::new(), "", String::new()).await;
        let (count, total) = (first["count"].as_i64().unwrap(), first["total"].as_i64().unwrap());
        assert!(count > 100, "{count} movements: more than a page");
        let (mut seen, mut sum, mut page, mut last_at) = (0i64, 0i64, first, i64::MAX);
        loop {
            let rows = page["movements"].as_array().unwrap();
            assert!(rows.len() <= 100);
            let deltas: i64 = rows.iter().map(|r| r["movement"]["delta"].as_i64().unwrap()).sum();
            assert_eq!(page["shown_total"].as_i64().unwrap(), deltas);
            for r in rows {
                let at = r["movement"]["at"].as_i64().unwrap();
                assert!(at <= last_at, "newest first");
                last_at = at;
            }
            seen += rows.len() as i64;
            sum += deltas;
            match page["next"].as_str() {
                Some(after) => page = call(after.to_string(), "", String::new()).await,
                None => break,
            }
        }
        assert_eq!(
            (seen, sum),
            (count, total),
            "the pages hold every matching movement once"
        );
        let wrong = app
            .call(
                &app.client,
                "metrics/movements",
                &[("currency", "usd"), ("after", "nonsense")],
            )
            .await;
        assert!(wrong.text().await.unwrap().contains("page link is broken"));
        // The roll-up: each month's bar is that month's movements of its kind.
        let months = page["months"].as_array().unwrap().clone();
        assert_eq!(months.len(), 24);
        let mut compared = 0;
        for p in months.iter().rev().take(6) {
            let month = p["month"].as_str().unwrap().to_string();
            let churn = call(String::new(), "churn", month.clone()).await;
            assert_eq!(
                p["churn"].as_i64().unwrap(),
                churn["total"].as_i64().unwrap(),
                "{month}"
            );
            let new = call(String::new(), "new", month.clone()).await;
            assert_eq!(p["new"].as_i64().unwrap(), new["total"].as_i64().unwrap(), "{month}");
            compared += (churn["count"].as_i64().unwrap() + new["count"].as_i64().unwrap() > 0) as i32;
        }
        assert!(compared > 0, "some month had movements");
        // The page shows both totals and a link to older movements; the month picker lists months.
        let html = app.get("/revenue?currency=usd").await.text().await.unwrap();
        assert!(html.contains("data-test=\"movement-page\"") && html.contains("Older movements"));
        assert!(html.contains("data-chart=\"Movements per month\""));
        assert!(html.contains("Every month") && !html.contains("type=\"month\""));
        app.server.shutdown().await.unwrap();
    }
);
