//! Several Stripe accounts: the registry (secrets sealed at rest), the environment's account
//! registered from `GET /v1/account`, deliveries verified with any enabled account's secret and
//! filed under it, Connect accounts registered on first sight and kept current.

use crate::common;

use common::stripe::{Reply, Request, StandIn};
use common::{Backend, TestApp};
use serde_json::{json, Value};
use tally::db::accounts::{self, NewDirect};
use tally::domain::accounts::AccountKind;

const SECRET: &str = "whsec_environment";
const OTHER_SECRET: &str = "whsec_second_account";
const SEAL: &str = "8f3c2a1b4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

/// Stripe answering `GET /v1/account` for the environment's key.
async fn stripe() -> StandIn {
    StandIn::start(|r: Request| async move {
        match r.path.as_str() {
            "/v1/account" => Reply::ok(json!({"id": "acct_env", "object": "account",
                "settings": {"dashboard": {"display_name": "Acme US"}}})),
            "/v1/refunds" if r.method == "POST" => Reply::ok(json!({"id": "re_conn1", "object": "refund",
                "charge": r.form.get("charge"), "amount": r.form.get("amount").and_then(|a| a.parse::<i64>().ok()),
                "currency": "usd", "status": "succeeded", "created": tally::db::now_unix()})),
            _ => Reply::not_found(),
        }
    })
    .await
}

async fn spawn(backend: Backend, stripe: &StandIn) -> TestApp {
    TestApp::spawn_with(
        backend,
        &[
            ("STRIPE_WEBHOOK_SECRET", SECRET),
            ("STRIPE_SECRET_KEY", "sk_test_51environment"),
            ("STRIPE_API_BASE", &stripe.url),
            ("TALLY_SECRETS_KEY", SEAL),
            ("RECONCILE_INTERVAL", "off"),
        ],
    )
    .await
}

fn seal() -> tally::seal::SealKey {
    tally::seal::SealKey::parse(SEAL).unwrap()
}

async fn add_second(app: &TestApp) {
    let raw = json!({"id": "acct_second", "object": "account"});
    accounts::add_direct(
        app.db(),
        &seal(),
        &NewDirect {
            id: "acct_second",
            name: "Acme EU",
            livemode: false,
            source: "settings",
            secret_key: "sk_test_51secondaccount",
            webhook_secrets: &[OTHER_SECRET.to_string()],
            raw: &raw,
        },
    )
    .await
    .unwrap();
}

fn customer_created(id: &str, customer: &str, account: Option<&str>) -> Value {
    let mut event = json!({"id": id, "object": "event", "type": "customer.created", "created": tally::db::now_unix(),
        "livemode": false, "data": {"object": {"id": customer, "object": "customer", "email": "a@example.com"}}});
    if let Some(account) = account {
        event["account"] = json!(account);
    }
    event
}

/// (status, account_id, last_error) of a stored event.
async fn filed(app: &TestApp, id: &str) -> (String, Option<String>, Option<String>) {
    sqlx::query_as("SELECT status, account_id, last_error FROM stripe_events WHERE id = $1")
        .bind(id)
        .fetch_one(app.db().reader())
        .await
        .unwrap()
}

async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("timed out waiting until {what}");
}

both_backends!(
    the_environments_account_is_registered_from_stripe,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        wait_until("the environment's account is registered", async || {
            accounts::get(app.db(), "acct_env").await.unwrap().is_some()
        })
        .await;
        let account = accounts::get(app.db(), "acct_env").await.unwrap().unwrap();
        assert_eq!(account.name, "Acme US");
        assert_eq!(
            (account.kind, account.source.as_str()),
            (AccountKind::Direct, "environment")
        );
        assert_eq!(account.livemode, Some(false));
        assert!(
            !account.has_secret_key,
            "the environment's key stays in the environment"
        );
        assert_eq!(stripe.calls("GET", "/v1/account").len(), 1);
    }
);

both_backends!(
    secrets_are_sealed_at_rest_and_bound_to_their_account,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        let (key, secrets): (String, String) =
            sqlx::query_as("SELECT secret_key, webhook_secrets FROM stripe_accounts WHERE id = 'acct_second'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
        assert!(key.starts_with("v1:") && !key.contains("sk_test") && !secrets.contains("whsec"));
        assert_eq!(
            accounts::secret_key(app.db(), &seal(), "acct_second")
                .await
                .unwrap()
                .as_deref(),
            Some("sk_test_51secondaccount")
        );
        // Copied onto another row, the sealed key does not open.
        let raw = json!({"id": "acct_third"});
        accounts::add_direct(
            app.db(),
            &seal(),
            &NewDirect {
                id: "acct_third",
                name: "Third",
                livemode: false,
                source: "settings",
                secret_key: "sk_test_51third",
                webhook_secrets: &[],
                raw: &raw,
            },
        )
        .await
        .unwrap();
        sqlx::query("UPDATE stripe_accounts SET secret_key = $1 WHERE id = 'acct_third'")
            .bind(&key)
            .execute(app.db().writer())
            .await
            .unwrap();
        assert_eq!(
            accounts::secret_key(app.db(), &seal(), "acct_third").await.unwrap(),
            None
        );
        // Adding a known account again is refused and changes nothing.
        let again = accounts::add_direct(
            app.db(),
            &seal(),
            &NewDirect {
                id: "acct_second",
                name: "Other",
                livemode: true,
                source: "cli",
                secret_key: "sk_live_51x",
                webhook_secrets: &[],
                raw: &raw,
            },
        )
        .await;
        assert!(matches!(again, Err(accounts::AddError::Exists(_))));
        let second = accounts::get(app.db(), "acct_second").await.unwrap().unwrap();
        assert_eq!((second.name.as_str(), second.webhook_secrets), ("Acme EU", 1));
    }
);

both_backends!(
    a_delivery_is_filed_under_the_account_whose_secret_verifies_it,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        // The environment's secret: the first account's event, applied.
        let own = customer_created("evt_own", "cus_own", None);
        assert_eq!(app.post_webhook(SECRET, &own).await.status(), 200);
        // The second account's secret: stored under it, applied to its own rows.
        let other = customer_created("evt_other", "cus_other", None);
        assert_eq!(app.post_webhook(OTHER_SECRET, &other).await.status(), 200);
        // A secret nobody configured: refused.
        let stranger = customer_created("evt_stranger", "cus_stranger", None);
        assert_eq!(app.post_webhook("whsec_nobody", &stranger).await.status(), 400);
        wait_until("the first account's event is applied", async || {
            app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE id = 'cus_own'")
                .await
                == 1
        })
        .await;
        assert_eq!(filed(&app, "evt_own").await.1, None);
        wait_until("the second account's event is applied", async || {
            filed(&app, "evt_other").await.0 == "applied"
        })
        .await;
        let (_, account, note) = filed(&app, "evt_other").await;
        assert_eq!((account.as_deref(), note), (Some("acct_second"), None));
        let owners = "SELECT account_id FROM customers WHERE id IN ('cus_own', 'cus_other') ORDER BY id";
        assert_eq!(
            sqlx::query_scalar::<_, String>(owners)
                .fetch_all(app.db().reader())
                .await
                .unwrap(),
            ["acct_second", ""]
        );
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_stranger'")
                .await,
            0
        );
        // The Webhooks page says which account an event is filed under.
        let detail = app.json(&app.client, "webhooks/get", &[("id", "evt_other")]).await;
        assert_eq!(detail["event"]["account_id"], "acct_second");
        let detail = app.json(&app.client, "webhooks/get", &[("id", "evt_own")]).await;
        assert_eq!(detail["event"]["account_id"], Value::Null);
        let page = app.html(&app.client, "/webhooks/evt_other").await;
        assert!(page.contains("href=\"/settings/accounts#acct_second\""), "{page}");
        // Replayed from the Webhooks page, it lands in the second account's rows again.
        let res = app.call(&app.client, "webhooks/requeue", &[("id", "evt_other")]).await;
        assert_eq!(res.status(), 200);
        let sql =
            "SELECT COUNT(*) FROM stripe_events WHERE id = 'evt_other' AND status NOT IN ('pending', 'processing')";
        wait_until("the replayed event is processed", async || {
            app.scalar::<i64>(sql).await == 1
        })
        .await;
        let (status, _, _) = filed(&app, "evt_other").await;
        assert_eq!(status.as_str(), "applied");
        let sql = "SELECT COUNT(*) FROM customers WHERE id = 'cus_other' AND account_id = 'acct_second'";
        assert_eq!(
            app.scalar::<i64>(sql).await,
            1,
            "a replayed event of another account left its account's rows"
        );
        // Disabled, its secret verifies nothing once the secrets are read again (at most 5 s:
        // the command line that disables it is another process).
        assert!(accounts::set_disabled(app.db(), "acct_second", true).await.unwrap());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let mut n = 0;
        loop {
            n += 1;
            let id = format!("evt_other_later_{n}");
            let status = app
                .post_webhook(OTHER_SECRET, &customer_created(&id, "cus_other2", None))
                .await
                .status();
            if status == 400 {
                let sql = format!("SELECT COUNT(*) FROM stripe_events WHERE id = '{id}'");
                assert_eq!(app.scalar::<i64>(&sql).await, 0);
                break;
            }
            assert_eq!(status, 200);
            assert!(
                std::time::Instant::now() < deadline,
                "the disabled account's secret still verifies"
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
);

both_backends!(
    a_connect_event_registers_its_account_and_account_updated_keeps_it_current,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        let event = customer_created("evt_connect", "cus_connect", Some("acct_conn"));
        assert_eq!(app.post_webhook(SECRET, &event).await.status(), 200);
        let account = accounts::get(app.db(), "acct_conn").await.unwrap().unwrap();
        assert_eq!(
            (account.kind, account.name.as_str()),
            (AccountKind::Connected, "acct_conn")
        );
        assert_eq!(account.platform_id, None, "received on the environment's endpoint");
        // Filed under the connected account and applied to its rows.
        wait_until("the Connect event is applied", async || {
            filed(&app, "evt_connect").await.0 == "applied"
        })
        .await;
        assert_eq!(filed(&app, "evt_connect").await.1.as_deref(), Some("acct_conn"));
        // Its own account.updated names it.
        let updated = json!({"id": "evt_conn_upd", "object": "event", "type": "account.updated", "account": "acct_conn",
            "created": tally::db::now_unix(), "livemode": false,
            "data": {"object": {"id": "acct_conn", "object": "account", "business_profile": {"name": "Seller One"}}}});
        assert_eq!(app.post_webhook(SECRET, &updated).await.status(), 200);
        let account = accounts::get(app.db(), "acct_conn").await.unwrap().unwrap();
        assert_eq!(account.name, "Seller One");
        let renamed_at_stripe = json!({"id": "evt_conn_upd1", "object": "event", "type": "account.updated", "account": "acct_conn",
            "created": tally::db::now_unix(), "livemode": false,
            "data": {"object": {"id": "acct_conn", "object": "account", "settings": {"dashboard": {"display_name": "Seller Uno"}}}}});
        assert_eq!(app.post_webhook(SECRET, &renamed_at_stripe).await.status(), 200);
        assert_eq!(
            accounts::get(app.db(), "acct_conn").await.unwrap().unwrap().name,
            "Seller Uno"
        );
        // A name an owner gave is kept.
        assert!(accounts::rename(app.db(), "acct_conn", "Seller (ours)").await.unwrap());
        let again = json!({"id": "evt_conn_upd2", "object": "event", "type": "account.updated", "account": "acct_conn",
            "created": tally::db::now_unix(), "livemode": false,
            "data": {"object": {"id": "acct_conn", "object": "account", "business_profile": {"name": "Seller Renamed"}}}});
        assert_eq!(app.post_webhook(SECRET, &again).await.status(), 200);
        assert_eq!(
            accounts::get(app.db(), "acct_conn").await.unwrap().unwrap().name,
            "Seller (ours)"
        );
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE account_id = 'acct_conn'")
                .await,
            1,
            "the connected account's customer is its own row"
        );
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE account_id = ''")
                .await,
            0,
            "nothing of it landed in the platform's rows"
        );
    }
);

/// Stripe answering `GET /v1/account` for the environment's key and for a second account's key.
async fn two_keys_stripe() -> StandIn {
    StandIn::start(|r: Request| async move {
        match (r.path.as_str(), r.header("authorization").as_deref()) {
            ("/v1/account", Some("Bearer sk_test_51secondaccount")) => {
                Reply::ok(json!({"id": "acct_second", "object": "account", "business_profile": {"name": "Acme EU"}}))
            }
            ("/v1/account", Some("Bearer sk_test_51environment")) => {
                Reply::ok(json!({"id": "acct_env", "object": "account"}))
            }
            ("/v1/account", _) => Reply::error(
                401,
                "invalid_request_error",
                "Invalid API Key provided: sk_test_****oops",
            ),
            _ => Reply::not_found(),
        }
    })
    .await
}

both_backends!(
    owners_add_rename_and_disable_accounts_in_settings,
    |backend| async move {
        let stripe = two_keys_stripe().await;
        let app = spawn(backend, &stripe).await;
        let add = [
            ("name", ""),
            ("secret_key", "sk_test_51secondaccount"),
            ("webhook_secrets", &format!("{OTHER_SECRET}, whsec_spare")),
        ];
        // Admins see the page, and may not add.
        app.create_admin("admin@example.com", tally::domain::admins::Role::Admin)
            .await;
        let admin = app.logged_in("admin@example.com").await;
        assert_eq!(app.call(&admin, "accounts/add", &add).await.status(), 403);
        let listed = app.json(&admin, "accounts/list", &[]).await;
        assert_eq!(listed["can_manage"], false);
        // A key Stripe refuses: a message that says so, without the key.
        let res = app
            .call(
                &app.client,
                "accounts/add",
                &[("name", ""), ("secret_key", "sk_test_51oops"), ("webhook_secrets", "")],
            )
            .await;
        let text = res.text().await.unwrap();
        assert!(
            text.contains("Stripe did not accept the key") && !text.contains("sk_test_51oops"),
            "{text}"
        );
        let res = app
            .call(
                &app.client,
                "accounts/add",
                &[
                    ("name", ""),
                    ("secret_key", "sk_test_51secondaccount"),
                    ("webhook_secrets", "nope"),
                ],
            )
            .await;
        assert!(res.text().await.unwrap().contains("starts with whsec_"));
        // The owner adds it.
        let res = app.call(&app.client, "accounts/add", &add).await;
        assert_eq!(res.status(), 200);
        let message: String = res.json().await.unwrap();
        assert_eq!(
            message,
            "Added Acme EU (acct_second, test mode). Point its webhook endpoint at this Tally; its events are filed under it."
        );
        let page = app.html(&app.client, "/settings/accounts").await;
        assert!(page.contains("Acme EU") && page.contains("acct_second"));
        assert!(!page.contains("sk_test_51secondaccount") && !page.contains(OTHER_SECRET));
        let listed = app.json(&app.client, "accounts/list", &[]).await;
        let second = listed["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == "acct_second")
            .cloned()
            .unwrap();
        assert_eq!(
            (second["webhook_secrets"].as_i64(), second["source"].as_str()),
            (Some(2), Some("settings"))
        );
        // Its deliveries are filed under it at once.
        let event = customer_created("evt_after_add", "cus_x", None);
        assert_eq!(app.post_webhook(OTHER_SECRET, &event).await.status(), 200);
        assert_eq!(filed(&app, "evt_after_add").await.1.as_deref(), Some("acct_second"));
        // Renamed, then disabled: refused at once (this process forgets the secrets it read).
        let res = app
            .call(
                &app.client,
                "accounts/rename",
                &[("id", "acct_second"), ("name", "Europe")],
            )
            .await;
        assert_eq!(res.status(), 200);
        let res = app
            .call(
                &app.client,
                "accounts/disabled",
                &[("id", "acct_second"), ("disabled", "true")],
            )
            .await;
        assert_eq!(res.status(), 200);
        let event = customer_created("evt_after_disable", "cus_y", None);
        assert_eq!(app.post_webhook(OTHER_SECRET, &event).await.status(), 400);
        let actions: Vec<String> =
            sqlx::query_scalar("SELECT action FROM audit_log WHERE action LIKE 'account.%' ORDER BY id")
                .fetch_all(app.db().reader())
                .await
                .unwrap();
        assert_eq!(actions, ["account.add", "account.rename", "account.disable"]);
        let details: Vec<Option<String>> = sqlx::query_scalar("SELECT detail FROM audit_log")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
        assert!(details
            .iter()
            .flatten()
            .all(|d| !d.contains("sk_test") && !d.contains("whsec")));
    }
);

// The client Tally uses for an account: a direct account's own key and no `Stripe-Account`; a
// connected account's platform key (here the environment's) with `Stripe-Account`. Checked from
// Settings, with what Stripe answers asserted at the stand-in.
both_backends!(
    calls_for_a_connected_account_carry_stripe_account,
    |backend| async move {
        let stripe = StandIn::start(|r: Request| async move {
            let auth = r.header("authorization").unwrap_or_default();
            match (r.path.as_str(), auth.as_str(), r.header("stripe-account").as_deref()) {
                ("/v1/account", "Bearer sk_test_51environment", Some("acct_conn")) => Reply::ok(
                    json!({"id": "acct_conn", "object": "account", "livemode": false, "business_profile": {"name": "Seller One"}}),
                ),
                ("/v1/account", "Bearer sk_test_51environment", None) => Reply::ok(json!({"id": "acct_env", "object": "account"})),
                ("/v1/account", "Bearer sk_test_51secondaccount", None) => {
                    Reply::ok(json!({"id": "acct_second", "object": "account"}))
                }
                _ => Reply::error(401, "invalid_request_error", "Invalid API Key provided"),
            }
        })
        .await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        let event = customer_created("evt_connect", "cus_connect", Some("acct_conn"));
        assert_eq!(app.post_webhook(SECRET, &event).await.status(), 200);
        let res = app.call(&app.client, "accounts/check", &[("id", "acct_conn")]).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let res = app.call(&app.client, "accounts/check", &[("id", "acct_second")]).await;
        assert_eq!(res.status(), 200, "{:?}", res.text().await);
        let connected: Vec<Request> = stripe
            .calls("GET", "/v1/account")
            .into_iter()
            .filter(|r| r.header("stripe-account").is_some())
            .collect();
        assert_eq!(connected.len(), 1);
        assert_eq!(connected[0].header("stripe-account").as_deref(), Some("acct_conn"));
        assert_eq!(
            connected[0].header("authorization").as_deref(),
            Some("Bearer sk_test_51environment")
        );
        let second: Vec<Request> = stripe
            .calls("GET", "/v1/account")
            .into_iter()
            .filter(|r| r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount"))
            .collect();
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].header("stripe-account"), None);
        // What Stripe said names the connected account.
        assert_eq!(
            accounts::get(app.db(), "acct_conn").await.unwrap().unwrap().name,
            "Seller One"
        );
        // A disabled account is not called for.
        assert!(accounts::set_disabled(app.db(), "acct_second", true).await.unwrap());
        let res = app.call(&app.client, "accounts/check", &[("id", "acct_second")]).await;
        assert!(res.text().await.unwrap().contains("disabled"));
        let with_second_key = stripe
            .requests()
            .iter()
            .filter(|r| r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount"))
            .count();
        assert_eq!(with_second_key, 1, "a disabled account's key was used");
    }
);

/// An event of `account` (`None`: the environment's) about `object`.
fn event(id: &str, event_type: &str, object: Value) -> Value {
    json!({"id": id, "object": "event", "type": event_type, "created": tally::db::now_unix(),
        "livemode": false, "data": {"object": object}})
}

fn subscription(id: &str, customer: &str, unit_amount: i64) -> Value {
    let now = tally::db::now_unix();
    json!({"id": id, "object": "subscription", "customer": customer, "status": "active", "currency": "usd",
        "created": now - 3600, "start_date": now - 3600, "current_period_start": now - 3600,
        "current_period_end": now + 29 * 86_400,
        "items": {"object": "list", "has_more": false, "data": [{"id": format!("si_{id}"), "object": "subscription_item",
            "quantity": 1, "price": {"id": format!("price_{id}"), "object": "price", "currency": "usd",
            "unit_amount": unit_amount, "recurring": {"interval": "month", "interval_count": 1}}}]}})
}

fn charge(id: &str, customer: &str, amount: i64) -> Value {
    json!({"id": id, "object": "charge", "customer": customer, "amount": amount, "amount_captured": amount,
        "amount_refunded": 0, "currency": "usd", "status": "succeeded", "captured": true, "paid": true,
        "created": tally::db::now_unix() - 60, "refunds": {"object": "list", "data": [], "has_more": false}})
}

async fn all_applied(app: &TestApp, n: i64) {
    wait_until("every event is applied", async || {
        app.scalar::<i64>("SELECT COUNT(*) FROM stripe_events WHERE status = 'applied'")
            .await
            == n
    })
    .await;
}

/// Two businesses, one per account, their deliveries interleaved (the environment's account, the
/// second, the environment's…): customers cus_a / cus_b, subscriptions of 1,000 and 3,000 a
/// month, charges of 5,000 and 2,000; returns once all six are applied.
async fn two_businesses(app: &TestApp) {
    let deliveries = [
        (
            SECRET,
            event(
                "evt_a1",
                "customer.created",
                json!({"id": "cus_a", "object": "customer", "currency": "usd"}),
            ),
        ),
        (
            OTHER_SECRET,
            event(
                "evt_b1",
                "customer.created",
                json!({"id": "cus_b", "object": "customer", "currency": "usd"}),
            ),
        ),
        (
            SECRET,
            event(
                "evt_a2",
                "customer.subscription.created",
                subscription("sub_a", "cus_a", 1_000),
            ),
        ),
        (
            OTHER_SECRET,
            event(
                "evt_b2",
                "customer.subscription.created",
                subscription("sub_b", "cus_b", 3_000),
            ),
        ),
        (
            SECRET,
            event("evt_a3", "charge.succeeded", charge("ch_a", "cus_a", 5_000)),
        ),
        (
            OTHER_SECRET,
            event("evt_b3", "charge.succeeded", charge("ch_b", "cus_b", 2_000)),
        ),
    ];
    for (secret, body) in &deliveries {
        assert_eq!(app.post_webhook(secret, body).await.status(), 200);
    }
    all_applied(app, 6).await;
}

/// The overview's figures for `account` (`None`: every account) as `client` sees them.
async fn kpis(app: &TestApp, client: &reqwest::Client, account: Option<&str>) -> Value {
    let mut form = vec![("currency", "usd")];
    if let Some(account) = account {
        form.push(("account", account));
    }
    app.json(client, "metrics/overview", &form).await["kpis"].clone()
}

both_backends!(
    two_accounts_events_interleaved_land_in_their_own_rows_and_figures,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        wait_until("the environment's account is registered", async || {
            accounts::get(app.db(), "acct_env").await.unwrap().is_some()
        })
        .await;
        two_businesses(&app).await;
        for (table, id, account) in [
            ("customers", "cus_a", ""),
            ("subscriptions", "sub_a", ""),
            ("charges", "ch_a", ""),
            ("customers", "cus_b", "acct_second"),
            ("subscriptions", "sub_b", "acct_second"),
            ("charges", "ch_b", "acct_second"),
        ] {
            let sql = format!("SELECT account_id FROM {table} WHERE id = '{id}'");
            assert_eq!(app.scalar::<String>(&sql).await, account, "{table} {id}");
        }
        let movements =
            "SELECT COUNT(*) FROM mrr_movements WHERE account_id = 'acct_second' AND subscription_id = 'sub_b'";
        assert_eq!(
            app.scalar::<i64>(movements).await,
            1,
            "the second account's MRR movement is its own"
        );
        // Each account's figures, by its id or `main` for the environment's, and the roll-up.
        let first = kpis(&app, &app.client, Some("acct_env")).await;
        assert_eq!(kpis(&app, &app.client, Some("main")).await["mrr"], first["mrr"]);
        let second = kpis(&app, &app.client, Some("acct_second")).await;
        let all = kpis(&app, &app.client, None).await;
        for (figure, one, two) in [
            ("mrr", 1_000, 3_000),
            ("active_subscriptions", 1, 1),
            ("active_customers", 1, 1),
            ("gross_30d", 5_000, 2_000),
            ("new_mrr_this_month", 1_000, 3_000),
        ] {
            assert_eq!(
                (first[figure].as_i64(), second[figure].as_i64()),
                (Some(one), Some(two)),
                "{figure}"
            );
            assert_eq!(
                all[figure].as_i64(),
                Some(one + two),
                "the roll-up of {figure} is the sum of the accounts"
            );
        }
        // Lists: the account's own rows, with totals from the running sums.
        let list = |account: &'static str| {
            let app = &app;
            async move {
                app.json(
                    &app.client,
                    "lists/page",
                    &[("list", "customers"), ("query", &format!("account={account}"))],
                )
                .await
            }
        };
        let second_list = list("acct_second").await;
        let text = second_list.to_string();
        assert!(text.contains("cus_b") && !text.contains("cus_a"), "{text}");
        assert_eq!(second_list["totals"][0]["count"], 1);
        let all_list = app
            .json(&app.client, "lists/page", &[("list", "payments"), ("query", "")])
            .await;
        assert_eq!(all_list["totals"][0]["count"], 2);
        assert_eq!(all_list["totals"][0]["sum"], 7_000);
        // The export names each row's account.
        let csv = app
            .client
            .get(app.url("/export/payments.csv?account=all"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(csv.lines().next().unwrap().ends_with("\"Stripe account\""), "{csv}");
        assert!(
            csv.lines()
                .any(|l| l.contains("ch_b") && l.ends_with("\"acct_second\"")),
            "{csv}"
        );
        assert!(
            csv.lines().any(|l| l.contains("ch_a") && l.ends_with("\"acct_env\"")),
            "{csv}"
        );
        // An event of the second account about the first account's customer changes nothing of it.
        let forged = event(
            "evt_b4",
            "customer.updated",
            json!({"id": "cus_a", "object": "customer", "currency": "usd", "email": "taken@example.com"}),
        );
        assert_eq!(app.post_webhook(OTHER_SECRET, &forged).await.status(), 200);
        wait_until("the forged event is processed", async || {
            filed(&app, "evt_b4").await.0 != "pending"
        })
        .await;
        let (status, _, note) = filed(&app, "evt_b4").await;
        assert_eq!(
            (status.as_str(), note.as_deref()),
            ("ignored", Some(tally::projection::OTHER_ACCOUNTS_OBJECT))
        );
        let sql = "SELECT COUNT(*) FROM customers WHERE id = 'cus_a' AND account_id = '' AND email IS NULL";
        assert_eq!(
            app.scalar::<i64>(sql).await,
            1,
            "another account's event changed the first account's customer"
        );
        // Nor its subscription (applied one by one, with MRR history): the row, its history
        // and the first account's MRR stay as they were.
        let mut forged = event(
            "evt_b5",
            "customer.subscription.updated",
            subscription("sub_a", "cus_a", 9_000),
        );
        forged["created"] = json!(tally::db::now_unix() + 5);
        assert_eq!(app.post_webhook(OTHER_SECRET, &forged).await.status(), 200);
        wait_until("the forged subscription event is processed", async || {
            filed(&app, "evt_b5").await.0 != "pending"
        })
        .await;
        let (status, _, note) = filed(&app, "evt_b5").await;
        assert_eq!(
            (status.as_str(), note.as_deref()),
            ("ignored", Some(tally::projection::OTHER_ACCOUNTS_OBJECT))
        );
        let sql = "SELECT COUNT(*) FROM subscription_mrr WHERE event_id = 'evt_b5'";
        assert_eq!(
            app.scalar::<i64>(sql).await,
            0,
            "the other account's event entered the MRR history"
        );
        assert_eq!(kpis(&app, &app.client, Some("main")).await["mrr"], 1_000);
        // An account Tally does not know: 404, not every account.
        let res = app
            .call(&app.client, "metrics/overview", &[("account", "acct_nobody")])
            .await;
        assert_eq!(res.status(), 404);
    }
);

both_backends!(
    a_refund_of_a_connected_accounts_charge_is_sent_with_stripe_account,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        let mut delivery = event("evt_conn_ch", "charge.succeeded", charge("ch_conn", "cus_conn", 4_000));
        delivery["account"] = json!("acct_conn");
        assert_eq!(app.post_webhook(SECRET, &delivery).await.status(), 200);
        all_applied(&app, 1).await;
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM charges WHERE id = 'ch_conn'")
                .await,
            "acct_conn"
        );
        let res = app
            .call(
                &app.client,
                "billing/refund",
                &[
                    ("charge_id", "ch_conn"),
                    ("amount", "15.00"),
                    ("idempotency_key", "connrefund01"),
                ],
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        let sent = stripe.calls("POST", "/v1/refunds");
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].form["charge"], "ch_conn");
        assert_eq!(sent[0].form["amount"], "1500");
        assert_eq!(
            sent[0].header("stripe-account").as_deref(),
            Some("acct_conn"),
            "sent on behalf of the connected account"
        );
        assert_eq!(
            sent[0].header("authorization").as_deref(),
            Some("Bearer sk_test_51environment"),
            "with the platform's key"
        );
        // What Stripe returned is the connected account's row.
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM refunds WHERE id = 're_conn1'")
                .await,
            "acct_conn"
        );
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM refund_requests WHERE idempotency_key = 'connrefund01'")
                .await,
            "acct_conn"
        );
        // The audit entry names the account the refund was made in.
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM audit_log WHERE action = 'payment.refund'")
                .await,
            "acct_conn"
        );
    }
);

both_backends!(
    an_admin_limited_to_one_account_gets_403_for_another,
    |backend| async move {
        use tally::domain::admins::Role;
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        wait_until("the environment's account is registered", async || {
            accounts::get(app.db(), "acct_env").await.unwrap().is_some()
        })
        .await;
        two_businesses(&app).await;
        let id = app.create_admin("eu@example.com", Role::Admin).await;
        accounts::set_limits(app.db(), id, &["acct_second".to_string()])
            .await
            .unwrap();
        let eu = app.logged_in("eu@example.com").await;
        // Their accounts: every figure is the second account's, whatever they ask for.
        assert_eq!(kpis(&app, &eu, None).await["mrr"], 3_000);
        assert_eq!(kpis(&app, &eu, Some("acct_second")).await["mrr"], 3_000);
        // Another account's pages and server functions: 403.
        for account in ["acct_env", "main"] {
            let res = app.call(&eu, "metrics/overview", &[("account", account)]).await;
            assert_eq!(res.status(), 403, "overview of {account}");
            let res = app.call(&eu, "metrics/movements", &[("account", account)]).await;
            assert_eq!(res.status(), 403, "movements of {account}");
            let res = app
                .call(
                    &eu,
                    "lists/page",
                    &[("list", "payments"), ("query", &format!("account={account}"))],
                )
                .await;
            assert_eq!(res.status(), 403, "payments of {account}");
            let res = app.call(&eu, "webhooks/list", &[("account", account)]).await;
            assert_eq!(res.status(), 403, "events of {account}");
        }
        assert_eq!(app.call(&eu, "customers/get", &[("id", "cus_a")]).await.status(), 403);
        assert_eq!(app.call(&eu, "billing/payment", &[("id", "ch_a")]).await.status(), 403);
        assert_eq!(app.call(&eu, "webhooks/get", &[("id", "evt_a1")]).await.status(), 403);
        assert_eq!(
            app.call(&eu, "webhooks/requeue", &[("id", "evt_a1")]).await.status(),
            403
        );
        assert_eq!(
            app.call(&eu, "stripe-sync/overview", &[("account", "main")])
                .await
                .status(),
            403
        );
        assert_eq!(
            app.call(&eu, "stripe-sync/start", &[("account", "main")])
                .await
                .status(),
            403
        );
        let res = app
            .call(
                &eu,
                "billing/refund",
                &[
                    ("charge_id", "ch_a"),
                    ("amount", "1.00"),
                    ("idempotency_key", "limited0001"),
                ],
            )
            .await;
        assert_eq!(res.status(), 403);
        let res = app
            .call(
                &eu,
                "billing/subscription",
                &[
                    ("subscription_id", "sub_a"),
                    ("action", "cancel_now"),
                    ("token", "limited0001"),
                ],
            )
            .await;
        assert_eq!(res.status(), 403);
        assert!(stripe.calls("POST", "/v1/refunds").is_empty() && stripe.count("/v1/subscriptions") == 0);
        let res = eu
            .get(app.url("/export/payments.csv?account=main"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        // Lists without an account show theirs only.
        let list = app
            .json(&eu, "lists/page", &[("list", "subscriptions"), ("query", "")])
            .await
            .to_string();
        assert!(list.contains("sub_b") && !list.contains("sub_a"), "{list}");
        let events = app.json(&eu, "webhooks/list", &[]).await.to_string();
        assert!(events.contains("evt_b2") && !events.contains("evt_a1"), "{events}");
        // The owner sees both.
        assert_eq!(kpis(&app, &app.client, None).await["mrr"], 4_000);
    }
);

both_backends!(owners_limit_admins_to_accounts_in_settings, |backend| async move {
    use tally::domain::admins::Role;
    let stripe = stripe().await;
    let app = spawn(backend, &stripe).await;
    add_second(&app).await;
    wait_until("the environment's account is registered", async || {
        accounts::get(app.db(), "acct_env").await.unwrap().is_some()
    })
    .await;
    let id = app.create_admin("viewer@example.com", Role::Viewer).await;
    let owner_id = app.create_admin("owner2@example.com", Role::Owner).await;
    let limit = |id: i64, accounts: &'static str| {
        let app = &app;
        async move {
            app.call(
                &app.client,
                "admins/accounts",
                &[("id", &id.to_string()), ("accounts", accounts)],
            )
            .await
        }
    };
    let res = limit(id, "acct_second, acct_env").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        accounts::limits(app.db(), id).await.unwrap(),
        ["", "acct_second"],
        "the environment's account is kept as ''"
    );
    let admins = app.json(&app.client, "admins/list", &[]).await;
    let listed = admins.as_array().unwrap().iter().find(|a| a["id"] == id).unwrap();
    assert_eq!(listed["accounts"], json!(["acct_env", "acct_second"]));
    // Unknown accounts and owners are refused with a message; nothing changes.
    let res = limit(id, "acct_nobody").await;
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("knows no Stripe account"));
    assert_eq!(accounts::limits(app.db(), id).await.unwrap().len(), 2);
    let res = limit(owner_id, "acct_second").await;
    assert!(res.text().await.unwrap().contains("Owners see every Stripe account"));
    assert!(accounts::limits(app.db(), owner_id).await.unwrap().is_empty());
    // Only owners may limit.
    let viewer = app.logged_in("viewer@example.com").await;
    let res = app
        .call(&viewer, "admins/accounts", &[("id", &id.to_string()), ("accounts", "")])
        .await;
    assert_eq!(res.status(), 403);
    // Empty: every account again; audited.
    assert_eq!(limit(id, "").await.status(), 200);
    assert!(accounts::limits(app.db(), id).await.unwrap().is_empty());
    let audited = "SELECT COUNT(*) FROM audit_log WHERE action = 'admin.accounts' AND outcome = 'success'";
    assert_eq!(app.scalar::<i64>(audited).await, 2);
});

both_backends!(
    the_connect_list_shows_each_connected_accounts_volume_mrr_and_fees,
    |backend| async move {
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        let connect = |mut e: Value| {
            e["account"] = json!("acct_seller");
            e
        };
        let deliveries = [
            connect(event(
                "evt_s1",
                "customer.subscription.created",
                subscription("sub_s", "cus_s", 2_500),
            )),
            connect(event("evt_s2", "charge.succeeded", charge("ch_s1", "cus_s", 10_000))),
            connect(event("evt_s3", "charge.succeeded", charge("ch_s2", "cus_s", 5_000))),
            // The platform's own: the fee it took from the seller, a part refunded.
            event(
                "evt_fee",
                "application_fee.created",
                json!({"id": "fee_1", "object": "application_fee",
                "account": "acct_seller", "charge": "ch_s1", "amount": 1_000, "amount_refunded": 200,
                "currency": "usd", "refunded": false, "created": tally::db::now_unix() - 30, "livemode": false}),
            ),
            // The platform's own payment is not the seller's volume.
            event("evt_p1", "charge.succeeded", charge("ch_p", "cus_p", 99_000)),
        ];
        for body in &deliveries {
            assert_eq!(app.post_webhook(SECRET, body).await.status(), 200);
        }
        all_applied(&app, 5).await;
        assert_eq!(
            app.scalar::<String>("SELECT connected_account_id FROM application_fees WHERE id = 'fee_1'")
                .await,
            "acct_seller"
        );
        let list = app.json(&app.client, "accounts/connected", &[]).await;
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list[0]["id"], "acct_seller");
        assert_eq!(
            list[0]["figures"],
            json!([{"currency": "usd", "volume_30d": 15_000, "mrr": 2_500, "fees_30d": 800}])
        );
        // The list links to the account's own pages.
        let page = app.html(&app.client, "/settings/accounts").await;
        assert!(page.contains("href=\"/?account=acct_seller\""), "{page}");
        assert!(
            page.contains("$150.00") && page.contains("$25.00") && page.contains("$8.00"),
            "{page}"
        );
    }
);

both_backends!(
    the_demo_adds_a_connected_account_whose_figures_add_up_with_the_main_one,
    |backend| async move {
        use tally::cli::demo;
        let stripe = stripe().await;
        let app = spawn(backend, &stripe).await;
        wait_until("the environment's account is registered", async || {
            accounts::get(app.db(), "acct_env").await.unwrap().is_some()
        })
        .await;
        let now = tally::db::now_unix();
        demo::seed(app.db(), 60, now).await.unwrap();
        let stored = demo::seed_connected(app.db(), 30, now).await.unwrap();
        assert!(stored > 100, "{stored} events");
        let account = accounts::get(app.db(), demo::CONNECTED).await.unwrap().unwrap();
        assert_eq!(
            (account.kind, account.name.as_str()),
            (AccountKind::Connected, demo::CONNECTED_NAME)
        );
        // Its own rows: no id is shared with the main account, every event applied.
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM customers WHERE account_id = ''")
                .await,
            60
        );
        let sql = format!(
            "SELECT COUNT(*) FROM customers WHERE account_id = '{}'",
            demo::CONNECTED
        );
        assert_eq!(app.scalar::<i64>(&sql).await, 30);
        let sql = "SELECT COUNT(*) FROM stripe_events WHERE source = 'demo' AND status <> 'applied'";
        assert_eq!(app.scalar::<i64>(sql).await, 0);
        // Per currency, every account's figures add up to the roll-up.
        for currency in ["usd", "jpy"] {
            let figures = |account: Option<&'static str>| {
                let app = &app;
                async move {
                    let mut form = vec![("currency", currency)];
                    if let Some(account) = account {
                        form.push(("account", account));
                    }
                    let overview = app.json(&app.client, "metrics/overview", &form).await;
                    // An account without data in this currency shows another: it counts 0 here.
                    if overview["currency"] == currency {
                        overview["kpis"].clone()
                    } else {
                        Value::Null
                    }
                }
            };
            let (main, connected, all) = (
                figures(Some("main")).await,
                figures(Some(demo::CONNECTED)).await,
                figures(None).await,
            );
            for figure in [
                "mrr",
                "active_subscriptions",
                "active_customers",
                "gross_30d",
                "refunds_30d",
                "churned_mrr_30d",
                "net_revenue_30d",
            ] {
                let (a, b, sum) = (
                    main[figure].as_i64().unwrap_or(0),
                    connected[figure].as_i64().unwrap_or(0),
                    all[figure].as_i64().unwrap_or(0),
                );
                assert_eq!(a + b, sum, "{currency} {figure}: {a} + {b}");
            }
            if currency == "usd" {
                assert!(
                    connected["mrr"].as_i64().unwrap_or(0) > 0,
                    "the connected account has MRR in usd"
                );
            }
        }
        // The pricing page sells the environment's catalogue only (Checkout uses its key): each
        // plan once, though the connected account has products of the same names.
        let pricing = app.json(&app.client, "public/pricing", &[]).await.to_string();
        assert!(
            pricing.contains("prod_demo_starter") && !pricing.contains("prod_demc_"),
            "{pricing}"
        );
        // The switcher lists both.
        let menu = app.json(&app.client, "accounts/menu", &[]).await.to_string();
        assert!(menu.contains("acct_env") && menu.contains(demo::CONNECTED), "{menu}");
    }
);

both_backends!(
    a_backfill_and_drift_check_for_another_account_use_its_key_and_only_its_rows,
    |backend| async move {
        use tally::sync::background::{self, Job, JobContext};
        let stripe = StandIn::start(|r: Request| async move {
            let second = r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount");
            match (r.path.as_str(), second) {
                ("/v1/account", false) => Reply::ok(json!({"id": "acct_env", "object": "account"})),
                ("/v1/customers", true) => Reply::list(
                    vec![json!({"id": "cus_sec1", "object": "customer", "email": "eu@example.com", "created": 1_700_000_000})],
                    false,
                ),
                ("/v1/customers", false) => Reply::list(
                    vec![json!({"id": "cus_env1", "object": "customer", "email": "us@example.com", "created": 1_700_000_000})],
                    false,
                ),
                _ => Reply::not_found(),
            }
        })
        .await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        // The environment's own customer, from a webhook.
        let own = event(
            "evt_env1",
            "customer.created",
            json!({"id": "cus_env0", "object": "customer", "created": 1_700_000_000}),
        );
        assert_eq!(app.post_webhook(SECRET, &own).await.status(), 200);
        all_applied(&app, 1).await;
        let config = common::config_with(
            &app.db,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_51environment"),
                ("STRIPE_API_BASE", &stripe.url),
                ("TALLY_SECRETS_KEY", SEAL),
            ],
        );
        let client = tally::accounts::client(app.db(), &config, "acct_second").await.unwrap();
        // One client per account: its requests share one rate-limit budget.
        let again = tally::accounts::client(app.db(), &config, "acct_second").await.unwrap();
        assert!(std::sync::Arc::ptr_eq(&client, &again));
        let ctx = JobContext {
            db: app.db().clone(),
            account: "acct_second".to_string(),
            stripe: client,
            config: std::sync::Arc::new(config),
            events: Default::default(),
        };
        let job = Job::Sync(tally::sync::SyncOptions {
            only: vec![tally::domain::resource::Resource::Customer],
            ..Default::default()
        });
        background::run(&ctx, job, tally::sync::jobs::Trigger::Cli)
            .await
            .unwrap();
        let lists = stripe.calls("GET", "/v1/customers");
        assert_eq!(lists.len(), 1);
        assert_eq!(
            lists[0].header("authorization").as_deref(),
            Some("Bearer sk_test_51secondaccount")
        );
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM customers WHERE id = 'cus_sec1'")
                .await,
            "acct_second"
        );
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM sync_state WHERE account_id = 'acct_second'")
                .await,
            1
        );
        assert_eq!(
            app.scalar::<i64>("SELECT COUNT(*) FROM sync_state WHERE account_id = ''")
                .await,
            0
        );
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM jobs WHERE kind = 'sync'")
                .await,
            "acct_second"
        );
        // Its drift check compares its own rows only: the environment's customer is not "missing".
        let report = background::run(
            &ctx,
            Job::Drift {
                only: vec![tally::domain::resource::Resource::Customer],
            },
            tally::sync::jobs::Trigger::Cli,
        )
        .await
        .unwrap();
        assert!(!report.drift, "{}", report.summary);
        // A drift check of the environment's account does not see the second account's customer
        // (it compares cus_env0 and cus_env1, Stripe's list for its key).
        let env_config = common::config_with(
            &app.db,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_51environment"),
                ("STRIPE_API_BASE", &stripe.url),
            ],
        );
        let env_client = tally::stripe::from_config(&env_config).unwrap();
        let only = [tally::domain::resource::Resource::Customer];
        let env = tally::sync::drift::run(app.db(), env_client.as_ref(), &only, |_| {})
            .await
            .unwrap();
        let text = serde_json::to_string(&env).unwrap();
        assert!(!text.contains("cus_sec1") && text.contains("cus_env0"), "{text}");
    }
);

both_backends!(
    the_sync_page_runs_a_backfill_for_the_account_picked_in_the_menu,
    |backend| async move {
        let stripe = StandIn::start(|r: Request| async move {
            let second = r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount");
            match (r.path.as_str(), second) {
                ("/v1/account", false) => Reply::ok(json!({"id": "acct_env", "object": "account"})),
                ("/v1/customers", true) => Reply::list(
                    vec![json!({"id": "cus_page1", "object": "customer", "created": 1_700_000_000})],
                    false,
                ),
                (p, _) if p.starts_with("/v1/") && r.method == "GET" => Reply::list(Vec::new(), false),
                _ => Reply::not_found(),
            }
        })
        .await;
        let app = spawn(backend, &stripe).await;
        add_second(&app).await;
        let page = app
            .json(&app.client, "stripe-sync/overview", &[("account", "acct_second")])
            .await;
        assert_eq!(
            (page["account"].as_str(), page["account_name"].as_str()),
            (Some("acct_second"), Some("Acme EU"))
        );
        assert_eq!(page["stripe_configured"], true);
        let res = app
            .call(
                &app.client,
                "stripe-sync/start",
                &[("types", "customers"), ("account", "acct_second")],
            )
            .await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
        wait_until("the account's backfill is done", async || {
            app.scalar::<i64>("SELECT COUNT(*) FROM jobs WHERE account_id = 'acct_second' AND status = 'done'")
                .await
                == 1
        })
        .await;
        assert_eq!(
            app.scalar::<String>("SELECT account_id FROM customers WHERE id = 'cus_page1'")
                .await,
            "acct_second"
        );
        assert!(stripe
            .calls("GET", "/v1/customers")
            .iter()
            .all(|r| r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount")));
        // The page for that account shows its run; the environment's shows none.
        let page = app
            .json(&app.client, "stripe-sync/overview", &[("account", "acct_second")])
            .await;
        assert_eq!(page["last_sync"]["status"], "done");
        let main = app.json(&app.client, "stripe-sync/overview", &[]).await;
        assert_eq!(main["last_sync"], Value::Null);
        assert_eq!(main["account"], "acct_env");
    }
);

both_backends!(another_accounts_pricing_page_sells_with_its_key, |backend| async move {
    let stripe = StandIn::start(|r: Request| async move {
            let second = r.header("authorization").as_deref() == Some("Bearer sk_test_51secondaccount");
            match (r.method.as_str(), r.path.as_str(), second) {
                ("GET", "/v1/account", false) => Reply::ok(json!({"id": "acct_env", "object": "account"})),
                ("POST", "/v1/checkout/sessions", true) => Reply::ok(json!({"id": "cs_test_second", "object": "checkout.session",
                    "url": "https://checkout.stripe.test/c/cs_test_second", "status": "open", "payment_status": "unpaid",
                    "mode": "subscription", "created": tally::db::now_unix()})),
                ("GET", "/v1/checkout/sessions/cs_test_second", true) => Reply::ok(json!({"id": "cs_test_second",
                    "object": "checkout.session", "status": "complete", "payment_status": "paid", "mode": "subscription",
                    "amount_total": 4_900, "currency": "eur", "created": tally::db::now_unix()})),
                _ => Reply::not_found(),
            }
        })
        .await;
    let app = spawn(backend, &stripe).await;
    add_second(&app).await;
    let now = tally::db::now_unix();
    let product = event(
        "evt_prod",
        "product.created",
        json!({"id": "prod_eu", "object": "product", "name": "EU Plan",
            "active": true, "created": now - 100}),
    );
    let price = event(
        "evt_price",
        "price.created",
        json!({"id": "price_eu", "object": "price", "product": "prod_eu",
            "active": true, "currency": "eur", "unit_amount": 4_900, "type": "recurring", "created": now - 100,
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}}),
    );
    for body in [&product, &price] {
        assert_eq!(app.post_webhook(OTHER_SECRET, body).await.status(), 200);
    }
    all_applied(&app, 2).await;
    let visitor = common::browser();
    let call = |endpoint: &'static str, form: Vec<(&'static str, String)>| {
        let (app, visitor) = (&app, &visitor);
        async move {
            visitor
                .post(app.url(&format!("/api/{endpoint}")))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    // The environment's pricing page does not offer it; the account's own page does.
    let main: Value = call("public/pricing", vec![]).await.json().await.unwrap();
    assert!(!main.to_string().contains("price_eu"), "{main}");
    let eu: Value = call("public/pricing", vec![("account", "acct_second".into())])
        .await
        .json()
        .await
        .unwrap();
    assert!(eu.to_string().contains("price_eu"), "{eu}");
    assert_eq!(eu["account"], "acct_second");
    let token = eu["token"].as_str().unwrap().to_string();
    // Checkout with the environment's page: not for sale there.
    let res = call(
        "public/checkout",
        vec![("price_id", "price_eu".into()), ("token", token.clone())],
    )
    .await;
    assert_ne!(res.status(), 200);
    assert!(stripe.calls("POST", "/v1/checkout/sessions").is_empty());
    // From its own page: the session is made with its key, and comes back to its own page.
    let res = call(
        "public/checkout",
        vec![
            ("price_id", "price_eu".into()),
            ("token", token),
            ("account", "acct_second".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let made = stripe.calls("POST", "/v1/checkout/sessions");
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0].header("authorization").as_deref(),
        Some("Bearer sk_test_51secondaccount")
    );
    assert!(
        made[0].form["success_url"].ends_with("&account=acct_second"),
        "{:?}",
        made[0].form
    );
    assert_eq!(
        app.scalar::<String>("SELECT account_id FROM checkout_sessions WHERE id = 'cs_test_second'")
            .await,
        "acct_second"
    );
    let outcome: Value = call(
        "public/checkout-result",
        vec![
            ("session_id", "cs_test_second".into()),
            ("account", "acct_second".into()),
        ],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(outcome["state"], "paid", "{outcome}");
    // Connected and unknown accounts do not sell here.
    let mut connect = event(
        "evt_c",
        "customer.created",
        json!({"id": "cus_c", "object": "customer"}),
    );
    connect["account"] = json!("acct_conn");
    assert_eq!(app.post_webhook(SECRET, &connect).await.status(), 200);
    for account in ["acct_conn", "acct_nobody"] {
        let res = call("public/pricing", vec![("account", account.into())]).await;
        assert_eq!(res.status(), 404, "{account}");
    }
});

both_backends!(
    an_object_two_accounts_name_in_one_batch_stays_with_the_first,
    |backend| async move {
        use tally::webhooks::inbox::{self, IncomingEvent, Source};
        let (db, _keep) = common::migrated_db(backend).await;
        let now = tally::db::now_unix();
        // Both stored before the worker runs, so they are claimed in one batch.
        let own = json!({"id": "evt_own", "object": "event", "type": "customer.created", "created": now, "livemode": false,
            "data": {"object": {"id": "cus_1", "object": "customer", "email": "own@example.com"}}});
        let theirs = json!({"id": "evt_theirs", "object": "event", "type": "customer.updated", "created": now + 1,
            "livemode": false, "account": "acct_1Other",
            "data": {"object": {"id": "cus_1", "object": "customer", "email": "theirs@example.com"}}});
        for event in [&own, &theirs] {
            let parsed = IncomingEvent::parse(&event.to_string()).unwrap();
            inbox::store(&db, &parsed, Source::Webhook, None).await.unwrap();
        }
        let worker = tally::webhooks::worker::Worker {
            db: db.clone(),
            wake: Default::default(),
            max_attempts: 3,
            retry_for_secs: 3600,
            refetch: None,
        };
        while worker.run_once().await.unwrap() > 0 {}
        let row: (String, String) = sqlx::query_as("SELECT account_id, email FROM customers WHERE id = 'cus_1'")
            .fetch_one(db.reader())
            .await
            .unwrap();
        assert_eq!(
            row,
            (String::new(), "own@example.com".to_string()),
            "the first account's row stands"
        );
        let status: (String, Option<String>) =
            sqlx::query_as("SELECT status, last_error FROM stripe_events WHERE id = 'evt_theirs'")
                .fetch_one(db.reader())
                .await
                .unwrap();
        assert_eq!(
            (status.0.as_str(), status.1.as_deref()),
            ("ignored", Some(tally::projection::OTHER_ACCOUNTS_OBJECT))
        );
    }
);
