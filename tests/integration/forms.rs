//! Forms without JavaScript: pages are server-rendered and only small islands hydrate, so every
//! form posts to its server function and is sent back to its page. What the action said must
//! be on that page: the success message (kept in the session for one page load) or the error.

use crate::common::*;

/// Posts the new-key form from the API keys page as the owner; returns where the answer redirects.
async fn create_key(app: &TestApp, name: &str) -> String {
    let res = app
        .post_form_from(&app.client, "/settings/api-keys", "api-keys/create", &[("name", name)])
        .await;
    assert_eq!(res.status(), 302);
    res.headers()["location"].to_str().unwrap().to_string()
}

async fn page(app: &TestApp, client: &reqwest::Client, path: &str) -> String {
    app.html(client, path).await
}

/// The text of the element marked `data-test="new-key"`.
fn shown_key(html: &str) -> Option<String> {
    let marker = html.find("data-test=\"new-key\"")?;
    let start = marker + html[marker..].find('>')? + 1;
    let end = html[start..].find('<')?;
    Some(html[start..start + end].to_string())
}

both_backends!(
    a_new_api_key_is_shown_once_on_the_page_the_form_returns_to,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let location = create_key(&app, "iOS app").await;
        assert!(
            location.starts_with(&app.url("/settings/api-keys")),
            "back to the form's page: {location}"
        );

        let html = page(&app, &app.client, "/settings/api-keys").await;
        let key = shown_key(&html).expect("the new key is on the page after the redirect");
        assert!(key.starts_with("tly_") && key.len() > 30, "{key}");
        // The key shown is the key created: the payments API takes it (a wrong key gets 401).
        let status = |key: String| {
            let url = app.url("/api/v1/customers");
            async move {
                let res = reqwest::Client::new()
                    .post(url)
                    .bearer_auth(key)
                    .form(&[("email", "a@example.com")])
                    .send()
                    .await
                    .unwrap();
                res.status().as_u16()
            }
        };
        assert_eq!(status(format!("{key}x")).await, 401);
        assert_ne!(status(key.clone()).await, 401, "the key shown is accepted");

        // Once: a reload no longer shows it, and nothing about it is left in the session.
        let again = page(&app, &app.client, "/settings/api-keys").await;
        assert_eq!(shown_key(&again), None);
        assert!(!again.contains(&key));
        let sessions: Vec<String> = sqlx::query_scalar("SELECT data FROM sessions")
            .fetch_all(app.db().reader())
            .await
            .unwrap();
        assert!(
            sessions.iter().all(|d| !d.contains(&key[4..])),
            "the key does not stay in the session store"
        );
    }
);

both_backends!(
    a_message_reaches_only_the_page_of_its_own_action_and_only_that_browser,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        app.create_admin("second@example.com", tally::domain::admins::Role::Owner)
            .await;
        let other = app.logged_in("second@example.com").await;
        create_key(&app, "backend").await;
        // The other owner's next page shows nothing.
        let theirs = page(&app, &other, "/settings/api-keys").await;
        assert_eq!(shown_key(&theirs), None);
        // The revoke message's slot on the same page stays empty: only the create message shows.
        let ours = page(&app, &app.client, "/settings/api-keys").await;
        assert!(shown_key(&ours).is_some());
        assert!(!ours.contains("The key is revoked"));
    }
);

both_backends!(
    an_answer_read_by_script_is_not_shown_again_on_the_next_page,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let res = app
            .client
            .post(app.url("/api/api-keys/create"))
            .header("accept", "application/json")
            .header("referer", app.url("/settings/api-keys"))
            .form(&[("name", "script")])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let key: String = res.json().await.unwrap();
        let html = page(&app, &app.client, "/settings/api-keys").await;
        assert_eq!(shown_key(&html), None);
        assert!(!html.contains(&key));
    }
);

both_backends!(
    a_refused_form_shows_its_error_on_the_page_it_returns_to,
    |backend| async move {
        let app = TestApp::spawn(backend).await;
        let location = create_key(&app, "   ").await;
        assert!(location.contains("__err="), "{location}");
        let path = location.strip_prefix(&app.base).unwrap();
        let html = page(&app, &app.client, path).await;
        assert!(html.contains("role=\"alert\""), "the error is an alert");
        assert!(
            html.contains("Give the key a name of 1 to 80 characters"),
            "the server's message is shown"
        );
        assert_eq!(shown_key(&html), None);
        // Nothing was created.
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(app.db().reader())
            .await
            .unwrap();
        assert_eq!(keys, 0);
    }
);
