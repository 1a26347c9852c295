//! Billing flows against a Stripe stand-in on loopback: the exact parameters and idempotency keys
//! Tally sends for Checkout, the portal, refunds and subscription changes; what customers and
//! admins see; and that a double-submitted refund reaches Stripe once.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use common::stripe::{Reply, Request, StandIn};
use common::{Backend, TestApp};
use serde_json::{json, Value};
use tally::domain::resource::Resource;

type Log = StandIn;

/// Answers like Stripe for the calls Tally makes; replays the first answer for a repeated
/// idempotency key, as Stripe does.
async fn stand_in() -> (String, Log) {
    let base = Arc::new(Mutex::new(String::new()));
    let base_for_handler = base.clone();
    let stripe = StandIn::replaying(move |r: Request| {
        let base = base_for_handler.clone();
        async move {
            let (method, path, form, n) = (&r.method, &r.path, &r.form, r.n);
            let base = base.lock().unwrap().clone();
            let created = tally::db::now_unix();
            let (status, reply) = match (method.as_str(), path.as_str()) {
                ("POST", "/v1/checkout/sessions") => (StatusCode::OK, json!({
                    "id": format!("cs_test_{n}"), "object": "checkout.session", "status": "open", "payment_status": "unpaid",
                    "mode": form.get("mode"), "url": format!("{base}/pay/cs_test_{n}"), "created": created, "livemode": false,
                    "amount_total": 2000, "currency": "usd"
                })),
                // Made by another Tally or by hand (no reference of this Tally), or two days ago.
                ("GET", p) if p == "/v1/checkout/sessions/cs_test_old" || p == "/v1/checkout/sessions/cs_test_foreign" => (StatusCode::OK, json!({
                    "id": &p["/v1/checkout/sessions/".len()..], "object": "checkout.session", "status": "complete", "payment_status": "paid",
                    "metadata": if p.ends_with("foreign") { json!({}) } else { json!({"tally_reference": "0123456789abcdef0123456789abcdef"}) },
                    "mode": "subscription", "amount_total": 2000, "currency": "usd", "customer": "cus_new", "livemode": false,
                    "customer_details": {"email": "buyer@example.com"}, "created": if p.ends_with("old") { created - 2 * 86_400 } else { created }
                })),
                ("GET", "/v1/checkout/sessions/cs_test_paid") => (StatusCode::OK, json!({
                    "id": "cs_test_paid", "object": "checkout.session", "status": "complete", "payment_status": "paid",
                    "metadata": {"tally_reference": "0123456789abcdef0123456789abcdef"},
                    "mode": "subscription", "amount_total": 2000, "currency": "usd", "customer": "cus_new", "livemode": false,
                    "customer_details": {"email": "buyer@example.com"}, "created": created,
                    "line_items": {"object": "list", "has_more": false, "data": [{"id": "li_1", "object": "item", "description": "Pro", "amount_total": 2000, "currency": "usd", "price": {"id": "price_pro_month"}}]},
                    "subscription": {"id": "sub_new", "object": "subscription", "status": "active", "customer": "cus_new", "currency": "usd", "created": created,
                        "items": {"object": "list", "has_more": false, "data": [{"id": "si_new", "object": "subscription_item", "quantity": 1,
                            "price": {"id": "price_pro_month", "object": "price", "currency": "usd", "unit_amount": 2000, "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}}]}}
                })),
                ("GET", "/v1/checkout/sessions/cs_test_async") => (StatusCode::OK, json!({
                    "id": "cs_test_async", "object": "checkout.session", "status": "complete", "payment_status": "unpaid",
                    "mode": "payment", "amount_total": 150000, "currency": "jpy", "customer": null, "livemode": false, "created": created,
                    "customer_details": {"email": "bank@example.com"}
                })),
                // The buyer came back without finishing, too late, or for a plan with a free trial.
                ("GET", "/v1/checkout/sessions/cs_test_open") => (StatusCode::OK, json!({
                    "id": "cs_test_open", "object": "checkout.session", "status": "open", "payment_status": "unpaid",
                    "mode": "subscription", "amount_total": 2000, "currency": "usd", "customer": null, "livemode": false, "created": created
                })),
                ("GET", "/v1/checkout/sessions/cs_test_expired") => (StatusCode::OK, json!({
                    "id": "cs_test_expired", "object": "checkout.session", "status": "expired", "payment_status": "unpaid",
                    "mode": "payment", "amount_total": 2000, "currency": "usd", "customer": null, "livemode": false, "created": created
                })),
                ("GET", "/v1/checkout/sessions/cs_test_trial") => (StatusCode::OK, json!({
                    "id": "cs_test_trial", "object": "checkout.session", "status": "complete", "payment_status": "no_payment_required",
                    "mode": "subscription", "amount_total": 0, "currency": "usd", "customer": "cus_trial", "livemode": false, "created": created,
                    "subscription": {"id": "sub_trial", "object": "subscription", "status": "trialing", "customer": "cus_trial", "currency": "usd", "created": created,
                        "items": {"object": "list", "has_more": false, "data": []}}
                })),
                ("GET", p) if p.starts_with("/v1/checkout/sessions/") => (StatusCode::NOT_FOUND, json!({
                    "error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such checkout.session: secret detail"}
                })),
                ("POST", "/v1/billing_portal/sessions") => (StatusCode::OK, json!({
                    "id": "bps_1", "object": "billing_portal.session", "url": format!("{base}/portal/{}", form.get("customer").cloned().unwrap_or_default())
                })),
                ("POST", "/v1/refunds") if form.get("amount").map(String::as_str) == Some("1234") => (StatusCode::BAD_REQUEST, json!({
                    "error": {"type": "invalid_request_error", "param": "amount", "message": "Refund amount is greater than unrefunded amount on charge."}
                })),
                ("POST", "/v1/refunds") => (StatusCode::OK, json!({
                    "id": format!("re_{n}"), "object": "refund", "status": "pending", "charge": form.get("charge"),
                    "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok()), "currency": "usd", "created": created,
                    "reason": form.get("reason")
                })),
                ("POST", p) if p.starts_with("/v1/subscriptions/") => (StatusCode::OK, json!({
                    "id": &p["/v1/subscriptions/".len()..], "object": "subscription", "status": "active", "customer": "cus_sub",
                    "currency": "usd", "created": 1_700_000_000,
                    "cancel_at_period_end": form.get("cancel_at_period_end").map(|v| v == "true"),
                    "items": {"object": "list", "has_more": false, "data": []}
                })),
                ("DELETE", p) if p.starts_with("/v1/subscriptions/") => (StatusCode::OK, json!({
                    "id": &p["/v1/subscriptions/".len()..], "object": "subscription", "status": "canceled", "customer": "cus_sub",
                    "currency": "usd", "created": 1_700_000_000, "canceled_at": created, "ended_at": created,
                    "items": {"object": "list", "has_more": false, "data": []}
                })),
                ("POST", "/v1/customers") => (StatusCode::OK, json!({
                    "id": format!("cus_api{n}"), "object": "customer", "email": form.get("email"), "name": form.get("name"), "created": created, "livemode": false
                })),
                ("POST", "/v1/payment_intents") => (StatusCode::OK, json!({
                    "id": format!("pi_{n}"), "object": "payment_intent", "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok()),
                    "currency": form.get("currency"), "customer": form.get("customer"), "status": "requires_payment_method",
                    "client_secret": format!("pi_{n}_secret_abc"), "created": created, "livemode": false
                })),
                ("POST", "/v1/ephemeral_keys") => (StatusCode::OK, json!({"id": "ephkey_1", "object": "ephemeral_key", "secret": "ek_test_secret"})),
                ("POST", "/v1/subscriptions") => (StatusCode::OK, json!({
                    "id": format!("sub_api{n}"), "object": "subscription", "status": "incomplete", "customer": form.get("customer"),
                    "currency": "usd", "created": created, "items": {"object": "list", "has_more": false, "data": []},
                    "latest_invoice": {"id": "in_1", "object": "invoice", "confirmation_secret": {"client_secret": "pi_x_secret_sub", "type": "payment_intent"}}
                })),
                _ => (StatusCode::NOT_FOUND, json!({"error": {"type": "invalid_request_error", "message": "unknown stand-in route"}})),
            };
            Reply::status(status.as_u16(), reply).header("request-id", "req_standin")
        }
    })
    .await;
    *base.lock().unwrap() = stripe.url.clone();
    (stripe.url.clone(), stripe)
}

const WEBHOOK_SECRET: &str = "whsec_billingtests";

async fn spawn(backend: Backend, base: &str, extra: &[(&str, &str)]) -> TestApp {
    let mut vars = vec![
        ("STRIPE_SECRET_KEY", "sk_test_51billing"),
        ("STRIPE_API_BASE", base),
        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("PUBLIC_BASE_URL", "http://tally.test"),
        ("STRIPE_RETRY_BASE_MS", "5"),
    ];
    vars.extend_from_slice(extra);
    TestApp::spawn_with(backend, &vars).await
}

async fn seed(app: &TestApp, resource: Resource, object: Value) {
    tally::billing::project(app.db(), "", resource, &object, 1_700_000_000)
        .await
        .unwrap();
}

async fn seed_catalogue(app: &TestApp) {
    seed(app, Resource::Product, json!({"id": "prod_pro", "object": "product", "name": "Pro", "active": true, "description": "For growing teams"})).await;
    seed(
        app,
        Resource::Product,
        json!({"id": "prod_old", "object": "product", "name": "Legacy", "active": false}),
    )
    .await;
    for (id, product, amount, currency, interval) in [
        ("price_pro_month", "prod_pro", 2000, "usd", Some("month")),
        ("price_pro_year", "prod_pro", 20000, "usd", Some("year")),
        ("price_pro_jpy", "prod_pro", 3000, "jpy", Some("month")),
        ("price_setup", "prod_pro", 9900, "usd", None),
        ("price_old", "prod_old", 500, "usd", Some("month")),
    ] {
        let recurring = interval.map(|i| json!({"interval": i, "interval_count": 1, "usage_type": "licensed"}));
        seed(app, Resource::Price, json!({"id": id, "object": "price", "product": product, "active": true, "currency": currency,
            "unit_amount": amount, "type": if recurring.is_some() { "recurring" } else { "one_time" }, "recurring": recurring})).await;
    }
}

/// A form submitted by a browser with JavaScript off (it accepts HTML, so redirects are real).
async fn form_post(
    app: &TestApp,
    client: &reqwest::Client,
    endpoint: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    app.post_form_from(client, "/", endpoint, form).await
}

/// The body of a page fetched by `client`.
async fn page_text(client: &reqwest::Client, url: String) -> String {
    client.get(url).send().await.unwrap().text().await.unwrap()
}

fn calls(log: &Log, method: &str, path: &str) -> Vec<Request> {
    log.calls(method, path)
}

both_backends!(
    pricing_lists_active_plans_and_checkout_sends_the_exact_session,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        seed_catalogue(&app).await;
        let visitor = common::browser();
        let html = page_text(&visitor, app.url("/pricing")).await;
        assert!(html.contains("Pro") && html.contains("For growing teams"), "{html}");
        assert!(
            html.contains("$20.00") && html.contains("¥3,000") && html.contains("$99.00"),
            "monthly prices and one-time"
        );
        assert!(!html.contains("$200.00"), "yearly prices wait for the switch");
        assert!(!html.contains("Legacy"), "inactive products are hidden");
        assert!(html.contains("href=\"/pricing?interval=year\""));
        let yearly = page_text(&visitor, app.url("/pricing?interval=year")).await;
        assert!(yearly.contains("$200.00") && !yearly.contains("$20.00"));

        // Choosing a plan with JavaScript off: a form post, answered with a redirect to Checkout.
        let token = "0123456789abcdef0123456789abcdef";
        let res = form_post(
            &app,
            &visitor,
            "public/checkout",
            &[("price_id", "price_pro_month"), ("token", token)],
        )
        .await;
        assert_eq!(res.status(), 302, "{:?}", res.text().await);
        let location = res.headers()["location"].to_str().unwrap().to_string();
        assert!(location.starts_with(&format!("{base}/pay/cs_test_")), "{location}");
        let sent = calls(&log, "POST", "/v1/checkout/sessions");
        assert_eq!(sent.len(), 1);
        let f = &sent[0].form;
        assert_eq!(f["mode"], "subscription");
        assert_eq!(f["line_items[0][price]"], "price_pro_month");
        assert_eq!(f["line_items[0][quantity]"], "1");
        assert_eq!(
            f["success_url"],
            "http://tally.test/checkout/success?session_id={CHECKOUT_SESSION_ID}"
        );
        assert_eq!(f["cancel_url"], "http://tally.test/checkout/cancel");
        assert_eq!(f["client_reference_id"], token);
        assert_eq!(f["metadata[tally_price]"], "price_pro_month");
        assert_eq!(f["metadata[tally_source]"], "pricing");
        assert_eq!(
            sent[0].idempotency_key().as_deref(),
            Some(format!("tally-checkout-{token}-price_pro_month").as_str())
        );
        assert_eq!(
            sent[0].header("stripe-version").as_deref(),
            Some(tally::stripe::API_VERSION)
        );
        // A double click sends the same key; a one-time price uses payment mode.
        form_post(
            &app,
            &visitor,
            "public/checkout",
            &[("price_id", "price_pro_month"), ("token", token)],
        )
        .await;
        form_post(
            &app,
            &visitor,
            "public/checkout",
            &[("price_id", "price_setup"), ("token", token)],
        )
        .await;
        let sent = calls(&log, "POST", "/v1/checkout/sessions");
        assert_eq!(sent[1].idempotency_key(), sent[0].idempotency_key());
        assert_eq!(sent[2].form["mode"], "payment");
        // What the pricing page does not offer never reaches Stripe: an unknown price, an active
        // price of an archived product, a metered price, a tiered price without a unit amount.
        seed(
            &app,
            Resource::Price,
            json!({"id": "price_metered", "object": "price", "product": "prod_pro", "active": true,
            "currency": "usd", "unit_amount": 3, "type": "recurring",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "metered"}}),
        )
        .await;
        seed(
            &app,
            Resource::Price,
            json!({"id": "price_tiered", "object": "price", "product": "prod_pro", "active": true,
            "currency": "usd", "unit_amount": null, "billing_scheme": "tiered", "type": "recurring",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}),
        )
        .await;
        let pricing = visitor
            .get(app.url("/pricing"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for price in ["price_old_gone", "price_old", "price_metered", "price_tiered"] {
            assert!(!pricing.contains(price), "{price} is not on the pricing page");
            let res = visitor
                .post(app.url("/api/public/checkout"))
                .header("accept", "application/json")
                .form(&[("price_id", price), ("token", token)])
                .send()
                .await
                .unwrap();
            assert!(!res.status().is_success(), "{price}");
            assert!(res.text().await.unwrap().contains("not available"), "{price}");
        }
        assert_eq!(calls(&log, "POST", "/v1/checkout/sessions").len(), 3);
        // The CSP lets the pricing form lead to Stripe's hosted pages.
        let page = visitor.get(app.url("/pricing")).send().await.unwrap();
        let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
        assert!(
            csp.contains("form-action 'self' https://checkout.stripe.com https://billing.stripe.com"),
            "{csp}"
        );
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    the_success_page_tells_the_truth_and_links_to_a_signed_portal,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        let visitor = common::browser();
        let html = page_text(&visitor, app.url("/checkout/success?session_id=cs_test_paid")).await;
        assert!(html.contains("Thank you, you are all set"), "{html}");
        assert!(
            html.contains("$20.00")
                && html.contains("buyer@example.com")
                && html.contains(">Pro<")
                && html.contains(">active<")
        );
        // What it retrieved went through the projection, before any webhook.
        let status: String = sqlx::query_scalar("SELECT status FROM subscriptions WHERE id = 'sub_new'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(status, "active");
        let session: (String, String) =
            sqlx::query_as("SELECT status, payment_status FROM checkout_sessions WHERE id = 'cs_test_paid'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
        assert_eq!(session, ("complete".to_string(), "paid".to_string()));
        let retrieve = calls(&log, "GET", "/v1/checkout/sessions/cs_test_paid");
        assert_eq!(retrieve.len(), 1);

        // Paid by bank transfer, not yet settled; zero-decimal currency.
        let html = page_text(&visitor, app.url("/checkout/success?session_id=cs_test_async")).await;
        assert!(
            html.contains("Your payment is processing") && html.contains("¥150,000"),
            "{html}"
        );
        // Not finished, expired, or nothing to pay (a trial): each says what happened, and only a
        // finished checkout says thank you.
        for (id, state, says) in [
            ("cs_test_open", "open", "Your checkout is not finished"),
            ("cs_test_expired", "expired", "This checkout has expired"),
            ("cs_test_trial", "paid", "Thank you, you are all set"),
        ] {
            let html = page_text(&visitor, app.url(&format!("/checkout/success?session_id={id}"))).await;
            assert!(
                html.contains(&format!("data-state=\"{state}\"")) && html.contains(says),
                "{id}: {html}"
            );
            if state != "paid" {
                assert!(
                    html.contains("No payment was taken") && !html.contains("Thank you"),
                    "{id}"
                );
            }
        }
        let trial: String = sqlx::query_scalar("SELECT status FROM subscriptions WHERE id = 'sub_trial'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(trial, "trialing");
        // Unknown and malformed ids: a friendly page, never Stripe's text.
        for id in ["cs_test_unknown", "not-an-id", "cs_../../x"] {
            let html = page_text(&visitor, app.url(&format!("/checkout/success?session_id={id}"))).await;
            assert!(html.contains("We could not find this checkout"), "{id}: {html}");
            assert!(!html.contains("secret detail"));
        }
        assert_eq!(
            log.requests()
                .iter()
                .filter(|s| s.path.starts_with("/v1/checkout/sessions/"))
                .count(),
            6,
            "malformed ids never reach Stripe"
        );
        let cancel = page_text(&visitor, app.url("/checkout/cancel")).await;
        assert!(cancel.contains("No payment was taken") && cancel.contains("href=\"/pricing\""));

        // A session this Tally did not make, or one two days old: the outcome, nothing personal.
        for id in ["cs_test_foreign", "cs_test_old"] {
            let html = page_text(&visitor, app.url(&format!("/checkout/success?session_id={id}"))).await;
            assert!(
                html.contains("Thank you, you are all set") && html.contains("$20.00"),
                "{id}: {html}"
            );
            assert!(
                !html.contains("buyer@example.com") && !html.contains("/billing/portal?"),
                "{id}: {html}"
            );
        }

        // The signed portal link from the success page works without an account…
        let html = page_text(&visitor, app.url("/checkout/success?session_id=cs_test_paid")).await;
        let start = html.find("/billing/portal?").unwrap();
        let link = html[start..html[start..].find('"').unwrap() + start].replace("&amp;", "&");
        let res = visitor.get(app.url(&link)).send().await.unwrap();
        assert_eq!(res.status(), 303, "{link}");
        assert_eq!(res.headers()["location"], format!("{base}/portal/cus_new").as_str());
        let portal = calls(&log, "POST", "/v1/billing_portal/sessions");
        assert_eq!(portal[0].form["customer"], "cus_new");
        assert_eq!(portal[0].form["return_url"], "http://tally.test/pricing");
        // …and a forged, altered or expired one gets 403.
        let forged = link.replace("cus_new", "cus_other");
        assert_eq!(visitor.get(app.url(&forged)).send().await.unwrap().status(), 403);
        let flipped = if link.ends_with('0') { '1' } else { '0' };
        let tampered = format!("{}{flipped}", &link[..link.len() - 1]);
        assert_eq!(visitor.get(app.url(&tampered)).send().await.unwrap().status(), 403);
        let secret: String = sqlx::query_scalar("SELECT value FROM settings WHERE key = 'link_secret'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        let past = tally::db::now_unix() - 10;
        let expired = format!(
            "/billing/portal?customer=cus_new&expires={past}&signature={}",
            tally::billing::portal_link::sign(&secret, "cus_new", past)
        );
        let res = visitor.get(app.url(&expired)).send().await.unwrap();
        assert_eq!(res.status(), 403);
        assert!(res.text().await.unwrap().contains("expired"));
        assert_eq!(calls(&log, "POST", "/v1/billing_portal/sessions").len(), 1);
        app.server.shutdown().await.unwrap();
    }
);

async fn seed_charge(app: &TestApp) {
    seed(
        app,
        Resource::Customer,
        json!({"id": "cus_pay", "object": "customer", "email": "payer@example.com", "created": 1_700_000_000}),
    )
    .await;
    seed(app, Resource::Charge, json!({"id": "ch_1", "object": "charge", "amount": 5000, "amount_captured": 5000, "amount_refunded": 0,
        "currency": "usd", "status": "succeeded", "paid": true, "captured": true, "customer": "cus_pay", "created": 1_700_000_100,
        "refunds": {"object": "list", "data": [], "has_more": false}})).await;
}

both_backends!(
    refunds_are_checked_sent_once_audited_and_follow_their_webhooks,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        seed_charge(&app).await;
        let page = app.get("/payments/ch_1").await.text().await.unwrap();
        assert!(
            page.contains("$50.00")
                && page.contains("placeholder=\"50.00\"")
                && page.contains("all that remains: $50.00"),
            "the form offers all that is refundable, without filling it in"
        );
        let form = [
            ("charge_id", "ch_1"),
            ("amount", "20.00"),
            ("reason", "requested_by_customer"),
            ("note", "goodwill after outage"),
            ("idempotency_key", "form0001key"),
        ];
        let first = form_post(&app, &app.client, "billing/refund", &form).await;
        assert_eq!(first.status(), 302, "a plain form post returns to the page");
        let again = form_post(&app, &app.client, "billing/refund", &form).await;
        assert_eq!(again.status(), 302);
        let sent = calls(&log, "POST", "/v1/refunds");
        assert_eq!(sent.len(), 1, "a double submit calls Stripe once");
        assert_eq!(sent[0].form["charge"], "ch_1");
        assert_eq!(sent[0].form["amount"], "2000");
        assert_eq!(sent[0].form["reason"], "requested_by_customer");
        assert_eq!(sent[0].form["metadata[tally_admin]"], common::OWNER_EMAIL);
        assert!(
            !sent[0].form.values().any(|v| v.contains("goodwill")),
            "the internal note stays internal"
        );
        assert_eq!(
            sent[0].idempotency_key().as_deref(),
            Some("tally-refund-ch_1-form0001key-2000")
        );
        let refund_id: String = sqlx::query_scalar("SELECT id FROM refunds WHERE charge_id = 'ch_1'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        let audit: (String, String) =
            sqlx::query_as("SELECT target, detail FROM audit_log WHERE action = 'payment.refund'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
        assert_eq!(audit.0, "ch_1");
        assert!(
            audit.1.contains(&refund_id)
                && audit.1.contains("tally-refund-ch_1-form0001key-2000")
                && audit.1.contains("req_standin")
                && audit.1.contains("$20.00"),
            "{}",
            audit.1
        );
        let page = app.get("/payments/ch_1").await.text().await.unwrap();
        assert!(
            page.contains(&refund_id) && page.contains(">Pending<") && page.contains("goodwill after outage"),
            "{page}"
        );
        assert!(
            page.contains("placeholder=\"30.00\""),
            "the pending refund is no longer refundable"
        );

        // More than remains: a clear message, nothing sent.
        let too_much = [
            ("charge_id", "ch_1"),
            ("amount", "30.01"),
            ("reason", ""),
            ("note", ""),
            ("idempotency_key", "form0002key"),
        ];
        let res = app
            .client
            .post(app.url("/api/billing/refund"))
            .header("accept", "application/json")
            .form(&too_much)
            .send()
            .await
            .unwrap();
        let text = res.text().await.unwrap();
        assert!(text.contains("At most $30.00 can be refunded"), "{text}");
        let bad = [
            ("charge_id", "ch_1"),
            ("amount", "1.234"),
            ("reason", ""),
            ("note", ""),
            ("idempotency_key", "form0003key"),
        ];
        let text = app
            .client
            .post(app.url("/api/billing/refund"))
            .header("accept", "application/json")
            .form(&bad)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("USD has 2 decimals at most"), "{text}");
        // Stripe refuses: its reason reaches the admin, and the same form may be corrected and resent.
        let refused = [
            ("charge_id", "ch_1"),
            ("amount", "12.34"),
            ("reason", ""),
            ("note", ""),
            ("idempotency_key", "form0004key"),
        ];
        let text = app
            .client
            .post(app.url("/api/billing/refund"))
            .header("accept", "application/json")
            .form(&refused)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(text.contains("greater than unrefunded amount"), "{text}");
        let corrected = [
            ("charge_id", "ch_1"),
            ("amount", "10"),
            ("reason", ""),
            ("note", ""),
            ("idempotency_key", "form0004key"),
        ];
        form_post(&app, &app.client, "billing/refund", &corrected).await;
        let sent = calls(&log, "POST", "/v1/refunds");
        assert_eq!(sent.len(), 3);
        assert_eq!(
            sent[2].idempotency_key().as_deref(),
            Some("tally-refund-ch_1-form0004key-1000")
        );
        assert_eq!(
            calls(&log, "POST", "/v1/refunds")
                .iter()
                .filter(|s| s.form.get("amount").map(String::as_str) == Some("3001"))
                .count(),
            0
        );

        // A viewer may not refund.
        app.create_admin("viewer@example.com", tally::domain::admins::Role::Viewer)
            .await;
        let viewer = app.logged_in("viewer@example.com").await;
        let res = app
            .call(
                &viewer,
                "billing/refund",
                &[
                    ("charge_id", "ch_1"),
                    ("amount", "1"),
                    ("idempotency_key", "form0005key"),
                ],
            )
            .await;
        assert_eq!(res.status(), 403);

        // The refund settles when its webhook arrives.
        let event = json!({"id": "evt_refund_ok", "object": "event", "type": "refund.updated", "created": tally::db::now_unix() + 1,
        "livemode": false, "data": {"object": {"id": refund_id, "object": "refund", "status": "succeeded", "charge": "ch_1",
        "amount": 2000, "currency": "usd", "created": 1_700_000_200}}});
        let res = common::post_webhook(
            &common::browser(),
            &app.base,
            WEBHOOK_SECRET,
            event.to_string().into_bytes(),
        )
        .await;
        assert_eq!(res.status(), 200);
        let mut settled = false;
        for _ in 0..100 {
            let status: String = sqlx::query_scalar("SELECT status FROM refunds WHERE id = $1")
                .bind(&refund_id)
                .fetch_one(app.db().reader())
                .await
                .unwrap();
            if status == "succeeded" {
                settled = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        }
        assert!(settled, "the refund webhook was applied");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(admins_open_portals_and_change_subscriptions, |backend| async move {
    let (base, log) = stand_in().await;
    let app = spawn(backend, &base, &[]).await;
    seed(
        &app,
        Resource::Customer,
        json!({"id": "cus_sub", "object": "customer", "email": "sub@example.com", "created": 1_700_000_000}),
    )
    .await;
    seed(&app, Resource::Subscription, json!({"id": "sub_1", "object": "subscription", "status": "active", "customer": "cus_sub",
        "currency": "usd", "created": 1_700_000_000, "cancel_at_period_end": false, "items": {"object": "list", "data": [], "has_more": false}})).await;
    let page = app.get("/customers/cus_sub").await.text().await.unwrap();
    assert!(
        page.contains("Open billing portal") && page.contains("Cancel at period end") && page.contains("Cancel now")
    );
    let res = form_post(&app, &app.client, "billing/portal", &[("customer_id", "cus_sub")]).await;
    assert_eq!(res.status(), 302);
    assert_eq!(res.headers()["location"], format!("{base}/portal/cus_sub").as_str());
    let portal = calls(&log, "POST", "/v1/billing_portal/sessions");
    assert_eq!(portal[0].form["return_url"], "http://tally.test/customers/cus_sub");

    let token = "tok12345abc";
    app.call(
        &app.client,
        "billing/subscription",
        &[
            ("subscription_id", "sub_1"),
            ("action", "cancel_at_period_end"),
            ("token", token),
        ],
    )
    .await;
    let flag: i64 = sqlx::query_scalar("SELECT cancel_at_period_end FROM subscriptions WHERE id = 'sub_1'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(flag, 1, "what Stripe returned is applied at once");
    app.call(
        &app.client,
        "billing/subscription",
        &[("subscription_id", "sub_1"), ("action", "resume"), ("token", token)],
    )
    .await;
    app.call(
        &app.client,
        "billing/subscription",
        &[("subscription_id", "sub_1"), ("action", "cancel_now"), ("token", token)],
    )
    .await;
    let updates = calls(&log, "POST", "/v1/subscriptions/sub_1");
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].form["cancel_at_period_end"], "true");
    assert_eq!(
        updates[0].idempotency_key().as_deref(),
        Some("tally-sub-sub_1-cancel_at_period_end-tok12345abc")
    );
    assert_eq!(updates[1].form["cancel_at_period_end"], "false");
    let cancel = calls(&log, "DELETE", "/v1/subscriptions/sub_1");
    assert_eq!(cancel.len(), 1);
    // Stripe ignores idempotency keys on DELETE (cancelling twice is harmless), so none is sent.
    assert_eq!(cancel[0].idempotency_key(), None);
    let status: String = sqlx::query_scalar("SELECT status FROM subscriptions WHERE id = 'sub_1'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(status, "canceled");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE action IN ('billing.portal', 'subscription.change') ORDER BY id",
    )
    .fetch_all(app.db().reader())
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "billing.portal",
            "subscription.change",
            "subscription.change",
            "subscription.change"
        ]
    );
    app.create_admin("viewer@example.com", tally::domain::admins::Role::Viewer)
        .await;
    let viewer = app.logged_in("viewer@example.com").await;
    assert_eq!(
        app.call(
            &viewer,
            "billing/subscription",
            &[("subscription_id", "sub_1"), ("action", "resume"), ("token", token)]
        )
        .await
        .status(),
        403
    );
    assert_eq!(
        app.call(&viewer, "billing/portal", &[("customer_id", "cus_sub")])
            .await
            .status(),
        403
    );
    app.server.shutdown().await.unwrap();
});

async fn api(app: &TestApp, key: &str, path: &str, body: Value, idempotency: Option<&str>) -> (u16, Value) {
    let mut req = common::browser().post(app.url(path)).bearer_auth(key).json(&body);
    if let Some(k) = idempotency {
        req = req.header("idempotency-key", k);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

both_backends!(
    the_payments_api_validates_passes_keys_through_and_rate_limits,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[("API_RATE_LIMIT", "50")]).await;
        seed_catalogue(&app).await;
        let res = form_post(&app, &app.client, "api-keys/create", &[("name", "iOS app")]).await;
        assert_eq!(res.status(), 302);
        let res = app
            .client
            .post(app.url("/api/api-keys/create"))
            .header("accept", "application/json")
            .form(&[("name", "backend")])
            .send()
            .await
            .unwrap();
        let key: String = res.json().await.unwrap();
        assert!(key.starts_with("tly_") && key.len() > 30);
        let stored: Vec<String> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
        assert!(stored.iter().all(|h| !h.contains(&key[4..])), "only a hash is stored");

        // Without a key, or with a wrong one: 401 in Stripe's error shape.
        let (status, body) = api(
            &app,
            "tly_wrong",
            "/api/v1/customers",
            json!({"email": "a@example.com"}),
            None,
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["type"], "authentication_error");

        let (status, body) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"email": "new@example.com", "name": "New"}),
            Some("cust-1"),
        )
        .await;
        assert_eq!((status, body["created"].clone()), (201, json!(true)), "{body}");
        let id = body["customer_id"].as_str().unwrap().to_string();
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"email": "NEW@example.com"}),
            None,
        )
        .await;
        assert_eq!(
            (status, body["customer_id"].as_str()),
            (200, Some(id.as_str())),
            "a known email returns its customer"
        );
        let created = calls(&log, "POST", "/v1/customers");
        assert_eq!(created.len(), 1);
        assert_eq!(
            created[0].idempotency_key().as_deref(),
            Some("cust-1"),
            "Idempotency-Key is passed through"
        );
        assert_eq!(
            (created[0].form["email"].as_str(), created[0].form["name"].as_str()),
            ("new@example.com", "New")
        );
        let (status, body) = api(&app, &key, "/api/v1/customers", json!({"email": "nope"}), None).await;
        assert_eq!((status, body["error"]["param"].as_str()), (400, Some("email")));

        // PaymentIntents: validated before Stripe is called.
        for (payload, param) in [
            (json!({"amount": 10, "currency": "usd"}), "amount"),
            (json!({"amount": 100_000_000, "currency": "usd"}), "amount"),
            (json!({"amount": "100", "currency": "usd"}), "amount"),
            (json!({"amount": 1000, "currency": "xyz"}), "currency"),
            (
                json!({"amount": 1000, "currency": "usd", "metadata": {"a[b]": "x"}}),
                "metadata",
            ),
            (
                json!({"amount": 1000, "currency": "usd", "customer": id}),
                "stripe_version",
            ),
            (
                json!({"amount": 1000, "currency": "usd", "customer": "x&y"}),
                "customer",
            ),
        ] {
            let (status, body) = api(&app, &key, "/api/v1/payment-intents", payload.clone(), None).await;
            assert_eq!(
                (status, body["error"]["param"].as_str()),
                (400, Some(param)),
                "{payload}: {body}"
            );
            assert_eq!(body["error"]["type"], "invalid_request_error");
        }
        assert!(calls(&log, "POST", "/v1/payment_intents").is_empty());
        let (status, body) = api(
        &app,
        &key,
        "/api/v1/payment-intents",
        json!({"amount": 1999, "currency": "USD", "customer": id, "metadata": {"order": "42"}, "stripe_version": "2024-06-20"}),
        Some("pi-order-42"),
    )
    .await;
        assert_eq!(status, 201, "{body}");
        assert!(body["client_secret"].as_str().unwrap().contains("_secret_"));
        assert_eq!(body["ephemeral_key"], "ek_test_secret");
        assert_eq!(body["customer"], id.as_str());
        let pi = calls(&log, "POST", "/v1/payment_intents");
        assert_eq!(pi[0].form["amount"], "1999");
        assert_eq!(pi[0].form["currency"], "usd");
        assert_eq!(pi[0].form["customer"], id.as_str());
        assert_eq!(pi[0].form["metadata[order]"], "42");
        assert_eq!(pi[0].form["automatic_payment_methods[enabled]"], "true");
        assert_eq!(pi[0].idempotency_key().as_deref(), Some("pi-order-42"));
        let ek = calls(&log, "POST", "/v1/ephemeral_keys");
        assert_eq!(ek[0].form["customer"], id.as_str());
        assert_eq!(
            ek[0].header("stripe-version").as_deref(),
            Some("2024-06-20"),
            "the ephemeral key uses the SDK's API version"
        );
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/payment-intents",
            json!({"amount": 500, "currency": "jpy"}),
            None,
        )
        .await;
        assert_eq!((status, body["ephemeral_key"].clone()), (201, Value::Null));

        // Subscriptions: default_incomplete, with the first invoice's client secret.
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/subscriptions",
            json!({"customer_id": id, "price_id": "price_pro_month"}),
            None,
        )
        .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["client_secret"], "pi_x_secret_sub");
        let sub = calls(&log, "POST", "/v1/subscriptions");
        assert_eq!(sub[0].form["customer"], id.as_str());
        assert_eq!(sub[0].form["items[0][price]"], "price_pro_month");
        assert_eq!(sub[0].form["payment_behavior"], "default_incomplete");
        assert_eq!(sub[0].form["expand[0]"], "latest_invoice.confirmation_secret");
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/subscriptions",
            json!({"customer_id": id, "price_id": "price_setup"}),
            None,
        )
        .await;
        assert_eq!(
            (status, body["error"]["param"].as_str()),
            (400, Some("price_id")),
            "one-time prices are refused"
        );

        let doc: Value = common::browser()
            .get(app.url("/api/v1/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(doc["paths"]["/api/v1/payment-intents"]["post"].is_object());

        // Revoked keys stop working at once.
        let key_id: String = sqlx::query_scalar("SELECT id FROM api_keys WHERE name = 'backend'")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        app.call(&app.client, "api-keys/revoke", &[("id", &key_id)]).await;
        let (status, _) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"email": "new@example.com"}),
            None,
        )
        .await;
        assert_eq!(status, 401);
        app.server.shutdown().await.unwrap();
    }
);

#[tokio::test]
async fn the_payments_api_rate_limits_per_key() {
    let (base, _log) = stand_in().await;
    let app = spawn(Backend::Sqlite, &base, &[("API_RATE_LIMIT", "3")]).await;
    let res = app
        .client
        .post(app.url("/api/api-keys/create"))
        .header("accept", "application/json")
        .form(&[("name", "k")])
        .send()
        .await
        .unwrap();
    let key: String = res.json().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            api(
                &app,
                &key,
                "/api/v1/customers",
                json!({"email": "same@example.com"}),
                None,
            )
            .await,
        );
    }
    let limited = statuses.iter().filter(|(s, _)| *s == 429).count();
    assert!(limited >= 2, "{statuses:?}");
    let (_, body) = statuses.iter().find(|(s, _)| *s == 429).unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    app.server.shutdown().await.unwrap();
}

both_backends!(
    refund_forms_submitted_at_once_never_ask_for_more_than_remains,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        seed_charge(&app).await;
        // Eight admins' forms for 30.00 each (other keys) on one 50.00 payment, all at once.
        let submits = (0..8).map(|i| {
            let (client, url) = (app.client.clone(), app.url("/api/billing/refund"));
            async move {
                let key = format!("raceform{i:04}");
                let form = [
                    ("charge_id", "ch_1"),
                    ("amount", "30.00"),
                    ("reason", ""),
                    ("note", ""),
                    ("idempotency_key", key.as_str()),
                ];
                let res = client
                    .post(url)
                    .header("accept", "application/json")
                    .form(&form)
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }
        });
        let answers = futures_util::future::join_all(submits).await;
        let sent = calls(&log, "POST", "/v1/refunds");
        assert_eq!(sent.len(), 1, "only one 30.00 refund fits in 50.00: {answers:?}");
        assert_eq!(sent[0].form["amount"], "3000");
        let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
        assert_eq!(accepted, 1, "{answers:?}");
        assert!(
            answers
                .iter()
                .filter(|(status, _)| *status != 200)
                .all(|(_, text)| text.contains("At most $20.00 can be refunded")),
            "the others are told what remains: {answers:?}"
        );
        let requested: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM refund_requests")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(requested, 3000);
        app.server.shutdown().await.unwrap();
    }
);

/// A Stripe whose refunds endpoint fails as networks and Stripe do: an answer lost after the
/// refund was made, or requests that never get through. Keeps the refunds it made, replays a
/// key's first answer (as Stripe does) and lists a charge's refunds.
#[derive(Clone, Default)]
struct FlakyRefunds {
    made: Arc<Mutex<Vec<Value>>>,
    replies: Arc<Mutex<HashMap<String, (StatusCode, Value)>>>,
    keys: Arc<Mutex<Vec<String>>>,
    /// Requests refused unprocessed (500) before any gets through.
    drop_next: Arc<std::sync::atomic::AtomicUsize>,
    /// Make the refund, then answer 500.
    lose_answer: Arc<std::sync::atomic::AtomicBool>,
    /// Listing fails (Stripe unreachable).
    list_fails: Arc<std::sync::atomic::AtomicBool>,
}

impl FlakyRefunds {
    async fn start(&self) -> String {
        use std::sync::atomic::Ordering::SeqCst;
        let this = self.clone();
        let stripe = StandIn::start(move |r: Request| {
            let this = this.clone();
            async move {
                let fail = json!({"error": {"type": "api_error", "message": "stand-in failure"}});
                let key = r.idempotency_key();
                let (status, body) = match (r.method.as_str(), r.path.as_str()) {
                    ("GET", "/v1/refunds") => {
                        if this.list_fails.load(SeqCst) {
                            return Reply::status(500, fail);
                        }
                        let data = this.made.lock().unwrap().clone();
                        (StatusCode::OK, json!({"object": "list", "has_more": false, "data": data}))
                    }
                    ("POST", "/v1/refunds") => {
                        let key = key.unwrap_or_default();
                        this.keys.lock().unwrap().push(key.clone());
                        if let Some((status, reply)) = this.replies.lock().unwrap().get(&key).cloned() {
                            return Reply::status(status.as_u16(), reply);
                        }
                        if this.drop_next.load(SeqCst) > 0 {
                            this.drop_next.fetch_sub(1, SeqCst);
                            return Reply::status(500, fail);
                        }
                        let form = &r.form;
                        let refund = json!({"id": format!("re_flaky{}", this.made.lock().unwrap().len()), "object": "refund",
                            "status": "succeeded", "charge": form.get("charge"), "currency": "usd", "created": tally::db::now_unix(),
                            "amount": form.get("amount").and_then(|a| a.parse::<i64>().ok()),
                            "metadata": {"tally_refund_key": form.get("metadata[tally_refund_key]")}});
                        this.made.lock().unwrap().push(refund.clone());
                        let answer = if this.lose_answer.load(SeqCst) {
                            (StatusCode::INTERNAL_SERVER_ERROR, fail)
                        } else {
                            (StatusCode::OK, refund)
                        };
                        this.replies.lock().unwrap().insert(key, answer.clone());
                        answer
                    }
                    _ => (StatusCode::NOT_FOUND, json!({"error": {"type": "invalid_request_error"}})),
                };
                Reply::status(status.as_u16(), body)
            }
        })
        .await;
        stripe.url
    }
}

both_backends!(
    a_refund_stripe_did_not_confirm_keeps_counting_and_is_not_offered_again,
    |backend| async move {
        let stripe = FlakyRefunds::default();
        stripe.lose_answer.store(true, std::sync::atomic::Ordering::SeqCst);
        stripe.list_fails.store(true, std::sync::atomic::Ordering::SeqCst);
        let base = stripe.start().await;
        let app = spawn(backend, &base, &[]).await;
        seed_charge(&app).await;
        let res = app
            .call(
                &app.client,
                "billing/refund",
                &[
                    ("charge_id", "ch_1"),
                    ("amount", "20.00"),
                    ("reason", ""),
                    ("note", ""),
                    ("idempotency_key", "lostform001"),
                ],
            )
            .await;
        let text = res.text().await.unwrap();
        assert!(text.contains("did not confirm this refund"), "{text}");
        let status: String =
            sqlx::query_scalar("SELECT status FROM refund_requests WHERE idempotency_key = 'lostform001'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
        assert_eq!(status, "unknown");
        // The page says so, and offers only what is surely left.
        let page = app.get("/payments/ch_1").await.text().await.unwrap();
        assert!(
            page.contains("Refund outcome being checked") && page.contains("$20.00: Stripe did not confirm it"),
            "{page}"
        );
        assert!(page.contains("all that remains: $30.00"), "{page}");
        // A new form for the whole amount is refused: the 20.00 may have been refunded.
        let res = app
            .call(
                &app.client,
                "billing/refund",
                &[
                    ("charge_id", "ch_1"),
                    ("amount", "50.00"),
                    ("reason", ""),
                    ("note", ""),
                    ("idempotency_key", "lostform002"),
                ],
            )
            .await;
        assert!(res.text().await.unwrap().contains("At most $30.00 can be refunded"));
        // Every attempt Stripe saw carried the one key: one refund at most.
        let keys = stripe.keys.lock().unwrap().clone();
        assert!(!keys.is_empty() && keys.iter().all(|k| *k == keys[0]), "{keys:?}");
        assert_eq!(stripe.made.lock().unwrap().len(), 1);
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    refunds_of_unknown_outcome_are_settled_without_a_second_refund,
    |backend| async move {
        use std::sync::atomic::Ordering::SeqCst;
        use tally::billing::refunds::{self, RefundError, RefundForm};
        let stripe = FlakyRefunds::default();
        let base = stripe.start().await;
        let (db, api, _t) = common::db_with_stripe_and(backend, &base, &[("STRIPE_RETRY_BASE_MS", "5")]).await;
        tally::billing::project(
            &db,
            "",
            Resource::Charge,
            &json!({"id": "ch_1", "object": "charge", "amount": 9000,
            "amount_captured": 9000, "amount_refunded": 0, "currency": "usd", "status": "succeeded", "captured": true,
            "created": 1_700_000_100, "refunds": {"object": "list", "data": [], "has_more": false}}),
            1_700_000_000,
        )
        .await
        .unwrap();
        let form = |key: &str, amount: &str| RefundForm {
            charge_id: "ch_1".into(),
            amount: Some(amount.into()),
            idempotency_key: key.into(),
            ..Default::default()
        };
        let later = tally::db::now_unix() + 10;
        let status = |key: &'static str| {
            let db = db.clone();
            async move {
                sqlx::query_scalar::<_, String>("SELECT status FROM refund_requests WHERE idempotency_key = $1")
                    .bind(key)
                    .fetch_one(db.reader())
                    .await
                    .unwrap()
            }
        };

        // The refund was made, its answer lost: found in the charge's refunds, not made again.
        stripe.lose_answer.store(true, SeqCst);
        let e = refunds::refund(&db, api.as_ref(), "owner@example.com", 1, &form("lostanswer1", "10.00")).await;
        assert!(matches!(e, Err(RefundError::OutcomeUnknown(_))), "{e:?}");
        stripe.lose_answer.store(false, SeqCst);
        assert_eq!(refunds::settle_unknown(&db, api.as_ref(), later).await.unwrap(), 1);
        assert_eq!(status("lostanswer1").await, "sent");
        assert_eq!(stripe.made.lock().unwrap().len(), 1, "no second refund");

        // The request never got through: sent again with the same key, made once.
        stripe.drop_next.store(100, SeqCst);
        let e = refunds::refund(&db, api.as_ref(), "owner@example.com", 1, &form("neverthere1", "20.00")).await;
        assert!(matches!(e, Err(RefundError::OutcomeUnknown(_))), "{e:?}");
        stripe.drop_next.store(0, SeqCst);
        let first_key = stripe.keys.lock().unwrap().last().cloned().unwrap();
        refunds::settle_unknown(&db, api.as_ref(), later).await.unwrap();
        assert_eq!(status("neverthere1").await, "sent");
        assert_eq!(
            stripe.keys.lock().unwrap().last().cloned().unwrap(),
            first_key,
            "the same key again"
        );
        assert_eq!(stripe.made.lock().unwrap().len(), 2);

        // Interrupted between sending and recording (a crash): settled the same way.
        sqlx::query(
            "INSERT INTO refund_requests (idempotency_key, charge_id, amount, currency, admin_id, admin_email, status, created_at) \
             VALUES ('crashed0001', 'ch_1', 500, 'usd', 1, 'owner@example.com', 'sending', $1)",
        )
        .bind(tally::db::now_unix() - 120)
        .execute(db.writer())
        .await
        .unwrap();
        refunds::settle_unknown(&db, api.as_ref(), tally::db::now_unix())
            .await
            .unwrap();
        assert_eq!(status("crashed0001").await, "sent");
        assert_eq!(stripe.made.lock().unwrap().len(), 3);

        // All three are refunds Tally knows, and nothing more remains refundable than is true.
        let r = refunds::refundable(&db, "ch_1").await.unwrap().unwrap();
        assert_eq!((r.refunded, r.in_flight, r.remaining), (3500, 0, 5500));
        // A form's key stands for its own payment only.
        let other = RefundForm {
            charge_id: "ch_other".into(),
            ..form("lostanswer1", "1.00")
        };
        let e = refunds::refund(&db, api.as_ref(), "owner@example.com", 1, &other).await;
        assert!(
            matches!(e, Err(RefundError::Invalid(ref m)) if m.contains("expired")),
            "{e:?}"
        );
    }
);

both_backends!(anonymous_checkout_calls_are_limited_per_address, |backend| async move {
    let (base, log) = stand_in().await;
    let app = spawn(
        backend,
        &base,
        &[("PUBLIC_RATE_LIMIT", "3"), ("TRUSTED_PROXIES", "127.0.0.1/32")],
    )
    .await;
    let ask = |address: &'static str| {
        let url = app.url("/api/public/checkout-result");
        async move {
            let res = common::browser()
                .post(url)
                .header("accept", "application/json")
                .header("x-forwarded-for", address)
                .form(&[("session_id", "cs_test_paid")])
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    for _ in 0..3 {
        assert_eq!(ask("198.51.100.1").await.0, 200);
    }
    let (status, text) = ask("198.51.100.1").await;
    assert_eq!(status, 429, "{text}");
    assert!(text.contains("Too many requests from your network"), "{text}");
    // Another address has its own budget; Stripe saw only the calls that were allowed.
    assert_eq!(ask("198.51.100.2").await.0, 200);
    assert_eq!(calls(&log, "GET", "/v1/checkout/sessions/cs_test_paid").len(), 4);
    app.server.shutdown().await.unwrap();
});

// Anonymous checkouts have their own quarter of the Stripe request budget: with visitors queued
// for it, an admin's call goes to Stripe at once instead of after them, and visitors who waited
// too long get a clear answer.
both_backends!(admins_never_queue_behind_anonymous_stripe_calls, |backend| async move {
    let (base, log) = stand_in().await;
    // 4 requests a second: 3 for admins and the worker, 1 for visitors.
    let app = spawn(
        backend,
        &base,
        &[
            ("STRIPE_MAX_REQUESTS_PER_SECOND", "4"),
            ("PUBLIC_RATE_LIMIT", "1000"),
            ("TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    seed(
        &app,
        Resource::Customer,
        json!({"id": "cus_sub", "object": "customer", "email": "sub@example.com", "created": 1_700_000_000}),
    )
    .await;
    let visitors: Vec<_> = (0..10)
        .map(|i| {
            let url = app.url("/api/public/checkout-result");
            tokio::spawn(async move {
                let res = common::browser()
                    .post(url)
                    .header("accept", "application/json")
                    .header("x-forwarded-for", format!("198.51.100.{}", i + 1))
                    .form(&[("session_id", "cs_test_paid")])
                    .send()
                    .await
                    .unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            })
        })
        .collect();
    let anonymous = |log: &Log| calls(log, "GET", "/v1/checkout/sessions/cs_test_paid").len();
    while anonymous(&log) == 0 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let res = form_post(&app, &app.client, "billing/portal", &[("customer_id", "cus_sub")]).await;
    assert_eq!(res.status(), 302);
    let order: Vec<String> = log
        .requests()
        .iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect();
    let portal_at = order
        .iter()
        .position(|s| s == "POST /v1/billing_portal/sessions")
        .unwrap();
    let before = order[..portal_at]
        .iter()
        .filter(|s| s.ends_with("cs_test_paid"))
        .count();
    // One visitor's call a second: the admin's went out while most visitors were still waiting
    // (behind them it would have been eleventh). Three allows for a slow machine.
    assert!(
        before <= 3,
        "the admin's call waited behind {before} anonymous calls: {order:?}"
    );
    let mut answered = 0;
    for visitor in visitors {
        let (status, text) = visitor.await.unwrap();
        if status == 200 {
            answered += 1;
        } else {
            // Waiting for the visitors' budget is bounded (5 s), with an answer that says what
            // to do, and a status that says to retry.
            assert_eq!(status, 503, "{text}");
            assert!(text.contains("It is safe to reload this page in a minute"), "{text}");
        }
    }
    assert!(answered >= 1 && answered == anonymous(&log), "{answered}");
    app.server.shutdown().await.unwrap();
});

both_backends!(
    a_payments_api_key_acts_only_for_its_own_customers,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        let res = app
            .client
            .post(app.url("/api/api-keys/create"))
            .header("accept", "application/json")
            .form(&[("name", "mobile backend")])
            .send()
            .await
            .unwrap();
        let key: String = res.json().await.unwrap();
        // A customer Tally knows from elsewhere (the dashboard, webhooks), not from this key.
        seed(&app, Resource::Customer, json!({"id": "cus_elsewhere", "object": "customer", "email": "known@example.com", "created": 1_700_000_000})).await;
        // Looking it up by email finds nothing of this key's: a new customer is made, and nobody learns
        // that the email is already a customer.
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"email": "known@example.com"}),
            None,
        )
        .await;
        assert_eq!((status, body["created"].clone()), (201, json!(true)), "{body}");
        assert_ne!(body["customer_id"], "cus_elsewhere");
        // No ephemeral key (nor PaymentIntent) for a customer the key was not given.
        let intent =
            json!({"amount": 1000, "currency": "usd", "customer": "cus_elsewhere", "stripe_version": "2024-06-20"});
        let intents_before = calls(&log, "POST", "/v1/payment_intents").len();
        let (status, body) = api(&app, &key, "/api/v1/payment-intents", intent.clone(), None).await;
        assert_eq!(
            (status, body["error"]["type"].as_str()),
            (403, Some("permission_error")),
            "{body}"
        );
        assert_eq!(calls(&log, "POST", "/v1/payment_intents").len(), intents_before);
        assert!(calls(&log, "POST", "/v1/ephemeral_keys").is_empty());
        // Nor a subscription billed to it.
        let subscription = json!({"customer_id": "cus_elsewhere", "price_id": "price_pro_month"});
        let (status, body) = api(&app, &key, "/api/v1/subscriptions", subscription.clone(), None).await;
        assert_eq!(
            (status, body["error"]["type"].as_str(), body["error"]["param"].as_str()),
            (403, Some("permission_error"), Some("customer_id")),
            "{body}"
        );
        assert!(calls(&log, "POST", "/v1/subscriptions").is_empty());
        // The operator's backend names it explicitly: from then on the key may act for it.
        let (status, body) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"customer_id": "cus_elsewhere"}),
            None,
        )
        .await;
        assert_eq!(
            (status, body["customer_id"].as_str()),
            (200, Some("cus_elsewhere")),
            "{body}"
        );
        let (status, body) = api(&app, &key, "/api/v1/payment-intents", intent, None).await;
        assert_eq!(
            (status, body["ephemeral_key"].as_str()),
            (201, Some("ek_test_secret")),
            "{body}"
        );
        let (status, body) = api(&app, &key, "/api/v1/subscriptions", subscription, None).await;
        assert_eq!(status, 201, "{body}");
        let (status, _) = api(
            &app,
            &key,
            "/api/v1/customers",
            json!({"customer_id": "cus_nobody"}),
            None,
        )
        .await;
        assert_eq!(status, 404);
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    refunds_and_cancellations_ask_first_and_say_what_will_happen,
    |backend| async move {
        let (base, log) = stand_in().await;
        let app = spawn(backend, &base, &[]).await;
        seed_charge(&app).await;
        seed(
            &app,
            Resource::Product,
            json!({"id": "prod_pro", "object": "product", "name": "Pro", "active": true}),
        )
        .await;
        seed(&app, Resource::Subscription, json!({"id": "sub_c", "object": "subscription", "status": "active", "customer": "cus_pay",
        "currency": "usd", "created": 1_700_000_000, "current_period_end": 1_900_000_000, "cancel_at_period_end": false,
        "items": {"object": "list", "has_more": false, "data": [{"id": "si_c", "object": "subscription_item", "quantity": 1,
            "price": {"id": "price_c", "object": "price", "product": "prod_pro", "unit_amount": 4900, "currency": "usd",
                "type": "recurring", "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}}]}})).await;

        // Refund: the first step only asks; the review says what will happen and carries the key.
        let page = app.get("/payments/ch_1").await.text().await.unwrap();
        assert!(page.contains("Review refund…") && !page.contains("data-test=\"confirm-refund\""));
        let key = "0123456789abcdef0123456789abcdef";
        let review = app
            .get(&format!(
                "/payments/ch_1?review=refund&key={key}&amount=12.5&reason=duplicate"
            ))
            .await
            .text()
            .await
            .unwrap();
        assert!(review.contains("data-test=\"confirm-refund\""), "{review}");
        assert!(
            review.contains("Refund $12.50 of $50.00 to payer@example.com?"),
            "who and how much"
        );
        assert!(review.contains("Reason: duplicate.") && review.contains("cannot be undone"));
        assert!(review.contains(&format!("name=\"idempotency_key\" value=\"{key}\"")));
        assert!(review.contains("name=\"amount\" value=\"12.50\""));
        assert!(review.contains("Yes, refund $12.50"));
        assert!(calls(&log, "POST", "/v1/refunds").is_empty(), "reviewing sends nothing");
        // A wrong amount says what to fix and offers no confirmation.
        for (amount, says) in [
            ("80", "At most $50.00 remains to refund."),
            ("abc", ""),
            ("0", "more than zero"),
        ] {
            let page = app
                .get(&format!("/payments/ch_1?review=refund&key={key}&amount={amount}"))
                .await
                .text()
                .await
                .unwrap();
            assert!(!page.contains("data-test=\"confirm-refund\""), "{amount}");
            assert!(page.contains("class=\"form-error\""), "{amount}");
            assert!(page.contains(says), "{amount}: {says}");
        }
        // Empty: all that remains.
        let all = app
            .get(&format!("/payments/ch_1?review=refund&key={key}&amount="))
            .await
            .text()
            .await
            .unwrap();
        assert!(all.contains("Refund the whole payment to payer@example.com?"), "{all}");

        // Cancelling: links that ask first; the confirmation names plan, customer, MRR and date.
        let page = app.get("/customers/cus_pay").await.text().await.unwrap();
        assert!(
            page.contains("Pro · monthly") && page.contains("$49.00"),
            "plan and MRR before the id"
        );
        assert!(page.contains("href=\"/customers/cus_pay?confirm=cancel_now&amp;subscription=sub_c#confirm\""));
        assert!(
            !page.contains("name=\"action\" value=\"cancel_now\""),
            "no one-click cancel"
        );
        let confirm = app
            .get("/customers/cus_pay?confirm=cancel_now&subscription=sub_c")
            .await
            .text()
            .await
            .unwrap();
        assert!(
            confirm.contains("Cancel Pro · monthly for payer@example.com now?"),
            "{confirm}"
        );
        assert!(confirm.contains("MRR falls by $49.00 today") && confirm.contains("2030-03-17 17:46 UTC"));
        assert!(confirm.contains("name=\"action\" value=\"cancel_now\"") && confirm.contains("Keep the subscription"));
        let later = app
            .get("/customers/cus_pay?confirm=cancel_at_period_end&subscription=sub_c")
            .await
            .text()
            .await
            .unwrap();
        assert!(later.contains("at the end of its period?") && later.contains("You can resume it until then."));
        assert!(
            calls(&log, "POST", "/v1/subscriptions/sub_c").is_empty()
                && calls(&log, "DELETE", "/v1/subscriptions/sub_c").is_empty()
        );
        // The confirmation's form posts as before, without JavaScript.
        let token = "tok12345abc";
        let res = form_post(
            &app,
            &app.client,
            "billing/subscription",
            &[("subscription_id", "sub_c"), ("action", "cancel_now"), ("token", token)],
        )
        .await;
        assert_eq!(res.status(), 302);
        assert_eq!(calls(&log, "DELETE", "/v1/subscriptions/sub_c").len(), 1);
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    without_a_stripe_key_stripe_actions_are_disabled_with_the_reason,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        seed_charge(&app).await;
        seed(&app, Resource::Subscription, json!({"id": "sub_k", "object": "subscription", "status": "active", "customer": "cus_pay",
        "currency": "usd", "created": 1_700_000_000, "cancel_at_period_end": false, "items": {"object": "list", "data": [], "has_more": false}})).await;
        for path in ["/payments/ch_1", "/customers/cus_pay"] {
            let page = app.get(path).await.text().await.unwrap();
            assert!(page.contains("data-test=\"stripe-unavailable\""), "{path}");
            assert!(page.contains("STRIPE_SECRET_KEY"), "{path}: the reason");
            assert!(page.contains("disabled"), "{path}: the actions are disabled");
            assert!(
                !page.contains("Review refund…") && !page.contains("?confirm=cancel_now"),
                "{path}"
            );
        }
        app.server.shutdown().await.unwrap();
    }
);

// Anonymous visitors' Checkout calls and admins' actions go through separate Stripe clients (so a
// crowd on the pricing page cannot use up the admins' request budget): each client is given its
// own stand-in here, and each stand-in sees only its side's calls.
both_backends!(
    visitors_and_admins_reach_stripe_through_their_own_clients,
    |backend| async move {
        let (admin_base, admins) = stand_in().await;
        let (public_base, visitors) = stand_in().await;
        let client = |base: &str| -> tally::stripe::SharedApi {
            let retry = tally::config::RetryPolicy::default();
            let timeouts = tally::stripe::Timeouts::default();
            std::sync::Arc::new(tally::stripe::Transport::new("sk_test_51billing", base, 20, retry, timeouts).unwrap())
        };
        let vars = [
            ("STRIPE_SECRET_KEY", "sk_test_51billing"),
            ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET),
            ("PUBLIC_BASE_URL", "http://tally.test"),
        ];
        let app = TestApp::spawn_with_stripe(backend, &vars, |_| (client(&admin_base), client(&public_base))).await;
        seed_catalogue(&app).await;
        seed_charge(&app).await;
        let visitor = common::browser();
        let token = "0123456789abcdef0123456789abcdef";
        let res = form_post(
            &app,
            &visitor,
            "public/checkout",
            &[("price_id", "price_pro_month"), ("token", token)],
        )
        .await;
        assert_eq!(res.status(), 302);
        let refund = [
            ("charge_id", "ch_1"),
            ("amount", "5.00"),
            ("reason", "requested_by_customer"),
            ("note", ""),
            ("idempotency_key", "formclientskey01"),
        ];
        let res = form_post(&app, &app.client, "billing/refund", &refund).await;
        assert_eq!(res.status(), 302);
        assert_eq!(calls(&visitors, "POST", "/v1/checkout/sessions").len(), 1);
        assert_eq!(calls(&admins, "POST", "/v1/refunds").len(), 1);
        assert!(
            calls(&admins, "POST", "/v1/checkout/sessions").is_empty(),
            "a visitor's checkout used the admins' client"
        );
        assert!(
            calls(&visitors, "POST", "/v1/refunds").is_empty(),
            "an admin's refund used the visitors' client"
        );
    }
);
