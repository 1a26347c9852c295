//! Admin accounts, sessions, roles, throttling, CSRF defence and the audit log, on both databases.

use crate::common;

use std::time::Duration;

use common::{browser, Backend, TestApp, OWNER_EMAIL, PASSWORD};
use tally::domain::admins::Role;

fn session_cookie(res: &reqwest::Response) -> Option<String> {
    res.headers().get_all("set-cookie").iter().find_map(|v| {
        let v = v.to_str().ok()?;
        v.strip_prefix("tally_session=")
            .map(|rest| rest.split(';').next().unwrap_or("").to_string())
    })
}

fn set_cookie_header(res: &reqwest::Response) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("tally_session="))
        .expect("session cookie set")
        .to_string()
}

/// A request carrying only this session cookie (no cookie jar).
async fn get_with_cookie(app: &TestApp, path: &str, session: &str) -> reqwest::Response {
    browser()
        .get(app.url(path))
        .header("cookie", format!("tally_session={session}"))
        .send()
        .await
        .unwrap()
}

fn location(res: &reqwest::Response) -> &str {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

both_backends!(anonymous_visitors_are_sent_to_login, |backend| async move {
    let app = TestApp::spawn_anonymous(backend, &[]).await;
    let res = app
        .client
        .get(app.url("/customers?status=active"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(&res), "/login?next=%2Fcustomers%3Fstatus%3Dactive");
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(location(&res), "/login");
    // Server functions answer 401 instead of redirecting.
    let res = app.call(&app.client, "system_status", &[]).await;
    assert_eq!(res.status(), 401);
    // Public paths stay reachable.
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    let login = app.client.get(app.url("/login")).send().await.unwrap();
    assert_eq!(login.status(), 200);
    let html = login.text().await.unwrap();
    assert!(
        html.contains(r#"<form method="post" action="/login""#),
        "plain form that works without JS"
    );
    assert!(!html.contains(">Customers</a>"), "no navigation before login");
    app.server.shutdown().await.unwrap();
});

both_backends!(login_lands_on_next_and_only_on_this_site, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = browser();
    let res = client
        .post(app.url("/login"))
        .form(&[
            ("email", OWNER_EMAIL),
            ("password", PASSWORD),
            ("next", "/settings?x=1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res), "/settings?x=1");
    let res = client
        .post(app.url("/login"))
        .form(&[
            ("email", "  Owner@Example.com "),
            ("password", PASSWORD),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        location(&res),
        "/",
        "emails are case-insensitive; foreign next is dropped"
    );
    let page = client.get(app.url("/")).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(OWNER_EMAIL) && page.contains("Log out"));
    // What browsers normalise into another host never comes back in Location (a tab or newline
    // is dropped, a backslash is a slash): every answer stays on this site.
    for next in [
        "/\t/evil.example",
        "/\n/evil.example",
        "/\\evil.example",
        "/.//evil.example",
        "/%09/evil.example",
    ] {
        let res = browser()
            .post(app.url("/login"))
            .form(&[("email", OWNER_EMAIL), ("password", PASSWORD), ("next", next)])
            .send()
            .await
            .unwrap();
        let to = location(&res);
        let landed = reqwest::Url::parse(&app.base).unwrap().join(to).unwrap();
        assert_eq!(landed.host_str(), Some("127.0.0.1"), "{next:?} -> {to:?}");
        assert!(!to.contains('\t') && !to.starts_with("//"), "{next:?} -> {to:?}");
    }
    app.server.shutdown().await.unwrap();
});

both_backends!(
    a_session_id_from_before_login_is_useless_after_it,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let client = browser();
        let first = app.login(&client, OWNER_EMAIL, PASSWORD).await;
        let before = session_cookie(&first).expect("cookie after first login");
        assert_eq!(get_with_cookie(&app, "/", &before).await.status(), 200);
        // Logging in again (as after a planted or reused cookie) issues a new id and retires the old one.
        let second = app.login(&client, OWNER_EMAIL, PASSWORD).await;
        let after = session_cookie(&second).expect("cookie after second login");
        assert_ne!(before, after);
        let res = get_with_cookie(&app, "/", &before).await;
        assert_eq!(res.status(), 303, "the old id no longer signs anyone in");
        assert_eq!(get_with_cookie(&app, "/", &after).await.status(), 200);
        // A made-up id is ignored, and login replaces it.
        let planted = browser()
            .post(app.url("/login"))
            .header("cookie", "tally_session=AAAAAAAAAAAAAAAAAAAAAA")
            .form(&[("email", OWNER_EMAIL), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_ne!(session_cookie(&planted).unwrap(), "AAAAAAAAAAAAAAAAAAAAAA");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(logout_kills_the_session_on_the_server, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = browser();
    let cookie = session_cookie(&app.login(&client, OWNER_EMAIL, PASSWORD).await).unwrap();
    let res = client.post(app.url("/logout")).send().await.unwrap();
    assert_eq!(location(&res), "/login?logged_out=1");
    // Replaying the copied cookie does not work: the record is gone, not just the browser's cookie.
    assert_eq!(get_with_cookie(&app, "/", &cookie).await.status(), 303);
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE id = $1")
        .bind(&cookie)
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert_eq!(rows, 0);
    app.server.shutdown().await.unwrap();
});

both_backends!(idle_sessions_expire_and_activity_keeps_them, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("SESSION_IDLE_TIMEOUT", "30m")]).await;
    // Active: a request every 20 minutes for an hour keeps the session past its 30-minute idle
    // limit (the app's clock moves; nothing sleeps).
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(app.get("/").await.status(), 200);
    }
    // Idle for longer than the limit: gone, and gone for good.
    app.clock.advance(Duration::from_secs(31 * 60));
    assert_eq!(app.get("/").await.status(), 303);
    app.clock.advance(Duration::from_secs(0));
    assert_eq!(app.get("/").await.status(), 303);
    app.server.shutdown().await.unwrap();
});

both_backends!(absolute_timeout_ends_even_an_active_session, |backend| async move {
    let app = TestApp::spawn_with(
        backend,
        &[("SESSION_ABSOLUTE_TIMEOUT", "12h"), ("SESSION_IDLE_TIMEOUT", "8h")],
    )
    .await;
    assert_eq!(app.get("/").await.status(), 200);
    app.clock.advance(Duration::from_secs(7 * 3600));
    assert_eq!(app.get("/").await.status(), 200, "active and within 12 hours");
    app.clock.advance(Duration::from_secs(5 * 3600 + 60));
    assert_eq!(app.get("/").await.status(), 303, "12 hours after login, active or not");
    app.server.shutdown().await.unwrap();
});

both_backends!(lockout_engages_and_releases, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "2s")]).await;
    let client = browser();
    for _ in 0..3 {
        let res = app.login(&client, OWNER_EMAIL, "wrong password here").await;
        assert!(location(&res).starts_with("/login?error=invalid"), "{}", location(&res));
    }
    // Locked: even the right password is refused, with a message that says when to retry.
    let res = app.login(&client, OWNER_EMAIL, PASSWORD).await;
    assert!(location(&res).starts_with("/login?error=locked"), "{}", location(&res));
    assert!(location(&res).contains("retry=1"));
    let page = client
        .get(app.url(location(&res)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Too many failed attempts. Try again in 1 minute."));
    app.clock.advance(Duration::from_millis(2300));
    let res = app.login(&client, OWNER_EMAIL, PASSWORD).await;
    assert_eq!(location(&res), "/", "the lockout released");
    let lockouts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'login.lockout'")
        .fetch_one(app.db().reader())
        .await
        .unwrap();
    assert!(lockouts >= 1);
    app.server.shutdown().await.unwrap();
});

both_backends!(unknown_email_and_wrong_password_look_the_same, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let client = browser();
    let unknown = app.login(&client, "nobody@example.com", PASSWORD).await;
    let wrong = app.login(&client, OWNER_EMAIL, "not the password").await;
    assert_eq!(location(&unknown), location(&wrong));
    assert_eq!(location(&unknown), "/login?error=invalid");
    let page = client
        .get(app.url("/login?error=invalid"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("Email or password is incorrect."));
    app.server.shutdown().await.unwrap();
});

both_backends!(cross_site_state_changes_are_refused, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let form = [
        ("email", "mallory@example.com"),
        ("password", "a long enough password"),
        ("role", "owner"),
    ];
    // A sibling subdomain (same-site, another origin) and an opaque origin (a sandboxed frame,
    // a data: URL: `Origin: null`) are other origins too.
    for (header, value) in [
        ("sec-fetch-site", "cross-site"),
        ("sec-fetch-site", "same-site"),
        ("origin", "https://evil.example"),
        ("origin", "null"),
    ] {
        let res = app
            .client
            .post(app.url("/api/admins/create"))
            .header(header, value)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{header}: {value}");
        let res = app
            .client
            .post(app.url("/logout"))
            .header(header, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    let count = tally::db::admins::count(app.db()).await.unwrap();
    assert_eq!(count, 1, "nothing was created");
    // The same request from this site goes through.
    let res = app
        .client
        .post(app.url("/api/admins/create"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", app.base.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // State-changing server functions do not answer GET.
    assert_eq!(
        app.client
            .get(app.url("/api/admins/create"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    app.server.shutdown().await.unwrap();
});

both_backends!(roles_are_checked_on_the_server, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.create_admin("viewer@example.com", Role::Viewer).await;
    app.create_admin("admin@example.com", Role::Admin).await;
    let form = [
        ("email", "new@example.com"),
        ("password", "a long enough password"),
        ("role", "viewer"),
    ];
    for email in ["viewer@example.com", "admin@example.com"] {
        let client = app.logged_in(email).await;
        let res = app.call(&client, "admins/create", &form).await;
        assert_eq!(res.status(), 403, "{email} must not manage admins");
        assert!(res.text().await.unwrap().contains("needs the owner role"));
        // Everyone signed in may read.
        assert_eq!(app.call(&client, "system_status", &[]).await.status(), 200);
    }
    // The audit log is for admins and owners, not viewers; the tabs say so too.
    let viewer = app.logged_in("viewer@example.com").await;
    let viewer_settings = viewer
        .get(app.url("/settings"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !viewer_settings.contains(r#"href="/settings/admins""#)
            && !viewer_settings.contains(r#"href="/settings/audit""#)
    );
    let owner_settings = app.get("/settings").await.text().await.unwrap();
    assert!(
        owner_settings.contains(r#"href="/settings/admins""#) && owner_settings.contains(r#"href="/settings/audit""#)
    );
    assert_eq!(app.call(&viewer, "audit/list", &[]).await.status(), 403);
    let admin = app.logged_in("admin@example.com").await;
    assert_eq!(app.call(&admin, "audit/list", &[]).await.status(), 200);
    assert_eq!(app.call(&app.client, "admins/create", &form).await.status(), 200);
    app.server.shutdown().await.unwrap();
});

both_backends!(cookie_flags_follow_the_public_url, |backend: Backend| async move {
    let app = TestApp::spawn(backend).await;
    let cookie = set_cookie_header(&app.login(&browser(), OWNER_EMAIL, PASSWORD).await);
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag ({cookie})");
    app.server.shutdown().await.unwrap();

    let app = TestApp::spawn_with(backend, &[("PUBLIC_BASE_URL", "https://billing.example.com")]).await;
    let cookie = set_cookie_header(&app.login(&browser(), OWNER_EMAIL, PASSWORD).await);
    assert!(cookie.contains("Secure") && cookie.contains("HttpOnly"), "{cookie}");
    app.server.shutdown().await.unwrap();
});

both_backends!(the_last_owner_stays, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let me = tally::db::admins::credentials_by_email(app.db(), OWNER_EMAIL)
        .await
        .unwrap()
        .unwrap()
        .admin
        .id;
    let id = me.to_string();
    let res = app
        .call(&app.client, "admins/role", &[("id", &id), ("role", "admin")])
        .await;
    assert_eq!(res.status(), 500);
    assert!(res.text().await.unwrap().contains("at least one active owner"));
    let res = app
        .call(&app.client, "admins/disabled", &[("id", &id), ("disabled", "true")])
        .await;
    assert!(res.text().await.unwrap().contains("at least one active owner"));
    // With a second owner, the first may step down.
    app.create_admin("second@example.com", Role::Owner).await;
    let res = app
        .call(&app.client, "admins/role", &[("id", &id), ("role", "admin")])
        .await;
    assert_eq!(res.status(), 200);
    let row = tally::db::admins::find(app.db(), me).await.unwrap().unwrap();
    assert_eq!(row.role, Role::Admin);
    app.server.shutdown().await.unwrap();
});

both_backends!(disabling_an_admin_ends_their_sessions, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let viewer_id = app.create_admin("viewer@example.com", Role::Viewer).await;
    let viewer = app.logged_in("viewer@example.com").await;
    assert_eq!(viewer.get(app.url("/")).send().await.unwrap().status(), 200);
    let res = app
        .call(
            &app.client,
            "admins/disabled",
            &[("id", &viewer_id.to_string()), ("disabled", "true")],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(viewer.get(app.url("/")).send().await.unwrap().status(), 303);
    let res = app.login(&browser(), "viewer@example.com", PASSWORD).await;
    assert_eq!(location(&res), "/login?error=invalid");
    app.server.shutdown().await.unwrap();
});

both_backends!(password_reset_and_hash_upgrade, |backend| async move {
    let app = TestApp::spawn(backend).await;
    // An account hashed with older, weaker parameters is upgraded at its next login.
    let weak = tally::auth::server::password::hash_with_params(PASSWORD, 8 * 1024, 1);
    let id = tally::db::admins::create(app.db(), "old@example.com", &weak, Role::Admin)
        .await
        .unwrap();
    app.logged_in("old@example.com").await;
    let stored = tally::db::admins::credentials_by_email(app.db(), "old@example.com")
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
        "{}",
        stored.password_hash
    );
    // Owners reset passwords; too-short ones are refused with a clear message.
    let res = app
        .call(
            &app.client,
            "admins/password",
            &[("id", &id.to_string()), ("password", "short")],
        )
        .await;
    assert!(res.text().await.unwrap().contains("at least 12 characters"));
    // The admin is signed in somewhere when the owner resets the password…
    let elsewhere = app.logged_in("old@example.com").await;
    assert_eq!(elsewhere.get(app.url("/")).send().await.unwrap().status(), 200);
    app.clock.advance(std::time::Duration::from_millis(5));
    let res = app
        .call(
            &app.client,
            "admins/password",
            &[("id", &id.to_string()), ("password", "a brand new passphrase")],
        )
        .await;
    assert_eq!(res.status(), 200);
    // …and that session is over; the owner's own session is not.
    assert_eq!(elsewhere.get(app.url("/")).send().await.unwrap().status(), 303);
    assert_eq!(app.get("/").await.status(), 200);
    let res = app.login(&browser(), "old@example.com", "a brand new passphrase").await;
    assert_eq!(location(&res), "/");
    app.server.shutdown().await.unwrap();
});

both_backends!(audit_log_records_and_filters, |backend| async move {
    let app = TestApp::spawn(backend).await;
    app.login(&browser(), OWNER_EMAIL, "a wrong password").await;
    let form = [
        ("email", "new@example.com"),
        ("password", "a long enough password"),
        ("role", "viewer"),
    ];
    assert_eq!(app.call(&app.client, "admins/create", &form).await.status(), 200);
    let res = app
        .client
        .post(app.url("/logout"))
        .header("x-request-id", "req-logout-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);

    let rows: Vec<(String, String, Option<String>, Option<String>)> = {
        use sqlx::Row;
        sqlx::query("SELECT action, outcome, admin_email, request_id FROM audit_log ORDER BY id")
            .fetch_all(app.db().reader())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.get("action"),
                    r.get("outcome"),
                    r.get("admin_email"),
                    r.get("request_id"),
                )
            })
            .collect()
    };
    let summary: Vec<(&str, &str)> = rows.iter().map(|(a, o, _, _)| (a.as_str(), o.as_str())).collect();
    assert_eq!(
        summary,
        [
            ("login", "success"),
            ("login", "failure"),
            ("admin.create", "success"),
            ("logout", "success")
        ]
    );
    assert!(rows
        .iter()
        .all(|(_, _, email, _)| email.as_deref() == Some(OWNER_EMAIL)));
    assert_eq!(rows[3].3.as_deref(), Some("req-logout-1"), "request ids are kept");

    // The audit page's server function filters by action.
    let client = app.logged_in(OWNER_EMAIL).await;
    let res = app.call(&client, "audit/list", &[("action", "admin.create")]).await;
    let page: serde_json::Value = res.json().await.unwrap();
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["target"], format!("admin:{}", 2));
    let res = app.call(&client, "audit/list", &[("from", "yesterday")]).await;
    assert!(res.text().await.unwrap().contains("must look like 2026-01-31"));
    app.server.shutdown().await.unwrap();
});

both_backends!(pages_carry_security_headers_with_a_nonce, |backend| async move {
    let app = TestApp::spawn(backend).await;
    let res = app.get("/").await;
    let headers = res.headers().clone();
    let html = res.text().await.unwrap();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "strict-origin-when-cross-origin");
    let csp = headers["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("'wasm-unsafe-eval'"),
        "{csp}"
    );
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("nonce in CSP");
    assert!(
        html.contains(&format!("nonce=\"{nonce}\"")),
        "the hydration script carries the CSP nonce"
    );
    // Each response gets its own nonce.
    let again = app.get("/").await.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_ne!(csp, again);
    // Non-page responses get a locked-down policy.
    let res = app.get("/healthz").await;
    assert!(res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .starts_with("default-src 'none'"));
    app.server.shutdown().await.unwrap();
});

both_backends!(a_successful_login_clears_the_accounts_failures, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60s")]).await;
    let client = browser();
    let fail = || async {
        let res = app.login(&client, OWNER_EMAIL, "wrong password here").await;
        location(&res).to_string()
    };
    for _ in 0..2 {
        assert!(fail().await.starts_with("/login?error=invalid"));
    }
    assert_eq!(location(&app.login(&client, OWNER_EMAIL, PASSWORD).await), "/");
    // Counting starts again after the success: two more failures are not a lockout…
    for _ in 0..2 {
        let at = fail().await;
        assert!(at.starts_with("/login?error=invalid"), "{at}");
    }
    // …and the third in a row is.
    assert!(fail().await.starts_with("/login?error=invalid"));
    let res = app.login(&client, OWNER_EMAIL, PASSWORD).await;
    assert!(location(&res).starts_with("/login?error=locked"), "{}", location(&res));
    app.server.shutdown().await.unwrap();
});

both_backends!(
    an_address_guessing_at_many_accounts_is_slowed_but_never_keeps_the_owner_out,
    |backend| async move {
        let app = TestApp::spawn_with(
            backend,
            &[
                ("LOGIN_MAX_FAILURES", "3"),
                ("LOGIN_LOCKOUT", "60s"),
                ("LOGIN_ADDRESS_DELAY_MS", "50"),
            ],
        )
        .await;
        // Twenty wrong guesses from this address (four times the per-account limit is twelve), each
        // at another made-up account: as a stranger behind the same NAT as the owner would.
        for i in 0..20 {
            let res = app
                .login(&browser(), &format!("guess{i}@example.com"), "wrong password here")
                .await;
            assert!(
                location(&res).starts_with("/login?error=invalid"),
                "guess {i}: {}",
                location(&res)
            );
        }
        let slowed: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND detail LIKE '%address over its limit: slowed%'",
        )
        .fetch_one(app.db().reader())
        .await
        .unwrap();
        assert_eq!(slowed, 8, "guesses past the address's limit are slowed down");
        // The owner, from the same address in a browser that never signed in: straight in.
        let res = app.login(&browser(), OWNER_EMAIL, PASSWORD).await;
        assert_eq!(location(&res), "/");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    a_browser_that_signed_in_before_is_not_locked_out_by_strangers,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60s")]).await;
        // The owner's browser signed in before (TestApp's client) and so holds a device cookie.
        let owner = &app.client;
        assert_eq!(app.get("/").await.status(), 200);
        // A stranger locks the account with guesses.
        let stranger = browser();
        for _ in 0..3 {
            app.login(&stranger, OWNER_EMAIL, "wrong password here").await;
        }
        let res = app.login(&stranger, OWNER_EMAIL, PASSWORD).await;
        assert!(location(&res).starts_with("/login?error=locked"), "{}", location(&res));
        // The owner's browser still gets in, and its own failures count on its own cookie…
        assert_eq!(location(&app.login(owner, OWNER_EMAIL, PASSWORD).await), "/");
        for _ in 0..3 {
            let res = app.login(owner, OWNER_EMAIL, "wrong password here").await;
            assert!(location(&res).starts_with("/login?error=invalid"), "{}", location(&res));
        }
        // …so a stolen cookie gets no more guesses than anyone else.
        let res = app.login(owner, OWNER_EMAIL, PASSWORD).await;
        assert!(location(&res).starts_with("/login?error=locked"), "{}", location(&res));
        // A forged cookie is a stranger's.
        let res = browser()
            .post(app.url("/login"))
            .header(
                "cookie",
                format!("tally_device=1.{}.{}", "a".repeat(32), "b".repeat(64)),
            )
            .form(&[("email", OWNER_EMAIL), ("password", PASSWORD), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert!(location(&res).starts_with("/login?error=locked"), "{}", location(&res));
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(
    parallel_guesses_get_no_more_checks_than_the_limit,
    |backend| async move {
        let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "3"), ("LOGIN_LOCKOUT", "60s")]).await;
        let guesses: Vec<_> = (0..20)
            .map(|_| {
                let (url, client) = (app.url("/login"), browser());
                tokio::spawn(async move {
                    client
                        .post(url)
                        .form(&[
                            ("email", OWNER_EMAIL),
                            ("password", "wrong password here"),
                            ("next", "/"),
                        ])
                        .send()
                        .await
                        .unwrap()
                })
            })
            .collect();
        for g in guesses {
            let res = g.await.unwrap();
            let to = location(&res);
            assert!(
                to.starts_with("/login?error=invalid") || to.starts_with("/login?error=locked"),
                "{to}"
            );
        }
        // Each checked guess is audited as a failure; the others were refused unchecked.
        let checked: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'login' AND outcome = 'failure'")
                .fetch_one(app.db().reader())
                .await
                .unwrap();
        assert!((1..=3).contains(&checked), "{checked} password checks for a limit of 3");
        app.server.shutdown().await.unwrap();
    }
);

both_backends!(concurrent_failures_are_counted_exactly, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "1000")]).await;
    let guesses: Vec<_> = (0..24)
        .map(|_| {
            let (url, client) = (app.url("/login"), browser());
            tokio::spawn(async move {
                client
                    .post(url)
                    .form(&[
                        ("email", "nobody@example.com"),
                        ("password", "wrong password here"),
                        ("next", "/"),
                    ])
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    for g in guesses {
        g.await.unwrap();
    }
    let counts: Vec<i64> = sqlx::query_scalar("SELECT failures FROM login_throttle ORDER BY key")
        .fetch_all(app.db().reader())
        .await
        .unwrap();
    // One account key and one address key, 24 each: no update lost.
    assert_eq!(counts, vec![24, 24]);
    app.server.shutdown().await.unwrap();
});

both_backends!(what_an_attempt_stores_and_logs_is_bounded, |backend| async move {
    let app = TestApp::spawn_with(backend, &[("LOGIN_MAX_FAILURES", "1000")]).await;
    let huge = format!("{}@example.com", "a".repeat(1_000_000));
    let password_in_the_email_field = "Tr0ub4dor&3-secret";
    for typed in [huge.as_str(), password_in_the_email_field] {
        let res = app.login(&browser(), typed, "wrong password here").await;
        assert!(location(&res).starts_with("/login?error=invalid"));
    }
    let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM login_throttle")
        .fetch_all(app.db().reader())
        .await
        .unwrap();
    assert!(keys.iter().all(|k| k.len() <= 80), "{keys:?}");
    let rows: Vec<(Option<String>, Option<String>)> =
        sqlx::query_as("SELECT admin_email, detail FROM audit_log WHERE action = 'login' AND outcome = 'failure'")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
    assert_eq!(rows.len(), 2);
    for (email, detail) in rows {
        assert_eq!(email, None, "neither was an email address to record");
        assert_eq!(detail.as_deref(), Some("not an email address"));
    }
    let all: Vec<String> =
        sqlx::query_scalar("SELECT COALESCE(detail, '') || COALESCE(admin_email, '') FROM audit_log")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
    assert!(
        !all.iter().any(|t| t.contains("Tr0ub4dor")),
        "the typed text is not kept"
    );
    app.server.shutdown().await.unwrap();
});

both_backends!(
    the_client_address_is_the_peer_unless_it_is_a_trusted_proxy,
    |backend| async move {
        for (trusted, expected) in [(None, "127.0.0.1"), (Some("127.0.0.1/32"), "198.51.100.7")] {
            let mut extra = vec![("LOGIN_MAX_FAILURES", "1000")];
            if let Some(t) = trusted {
                extra.push(("TRUSTED_PROXIES", t));
            }
            let app = TestApp::spawn_with(backend, &extra).await;
            browser()
                .post(app.url("/login"))
                .header("x-forwarded-for", "6.6.6.6, 198.51.100.7")
                .form(&[
                    ("email", "x@example.com"),
                    ("password", "wrong password here"),
                    ("next", "/"),
                ])
                .send()
                .await
                .unwrap();
            let addr: Option<String> =
                sqlx::query_scalar("SELECT client_addr FROM audit_log WHERE action = 'login' AND outcome = 'failure'")
                    .fetch_one(app.db().reader())
                    .await
                    .unwrap();
            assert_eq!(addr.as_deref(), Some(expected), "TRUSTED_PROXIES {trusted:?}");
            let keys: Vec<String> = sqlx::query_scalar("SELECT key FROM login_throttle WHERE key LIKE 'address:%'")
                .fetch_all(app.db().reader())
                .await
                .unwrap();
            assert_eq!(keys, vec![format!("address:{expected}")]);
            app.server.shutdown().await.unwrap();
        }
    }
);

both_backends!(
    two_owners_demoting_each_other_at_once_leave_one_owner,
    |backend| async move {
        use tally::db::admins;
        let (db, _t) = common::migrated_db(backend).await;
        let a = admins::create(&db, "a@example.com", "x", Role::Owner).await.unwrap();
        let b = admins::create(&db, "b@example.com", "x", Role::Owner).await.unwrap();
        for round in 0..10 {
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
            let demote = |id: i64| {
                let (db, barrier) = (db.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    admins::update_access(&db, id, Some(Role::Admin), None).await
                })
            };
            let (ra, rb) = (demote(a), demote(b));
            let (ra, rb) = (ra.await.unwrap(), rb.await.unwrap());
            let refused = [&ra, &rb]
                .iter()
                .filter(|r| matches!(r, Err(admins::AdminChangeError::LastOwner)))
                .count();
            assert_eq!(
                (refused, ra.is_ok() || rb.is_ok()),
                (1, true),
                "round {round}: {ra:?} {rb:?}"
            );
            let owners: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM admins WHERE role = 'owner' AND disabled = 0")
                .fetch_one(db.reader())
                .await
                .unwrap();
            assert_eq!(owners, 1, "round {round}");
            for id in [a, b] {
                admins::update_access(&db, id, Some(Role::Owner), None).await.unwrap();
            }
        }
    }
);
