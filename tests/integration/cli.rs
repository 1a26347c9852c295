//! The `tally` binary: start-up failures are one clear line and exit code 1; serve logs its
//! redacted config and stops cleanly on SIGTERM.

use crate::common::stripe::{Reply, Request, StandIn};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tally(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tally"));
    // A clean environment and working directory, so no developer .env leaks into the test.
    cmd.env_clear().current_dir(dir).args(args);
    cmd.env(
        "TALLY_SITE_CONFIG",
        Path::new(env!("CARGO_MANIFEST_DIR")).join("Leptos.toml"),
    );
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd
}

fn run(vars: &[(&str, &str)], args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    tally(dir.path(), vars, args).output().unwrap()
}

/// Exit code 1 and exactly one line on stderr, without a panic or backtrace.
fn assert_one_line_failure(out: &Output, must_contain: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line expected, got: {stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    for needle in must_contain {
        assert!(stderr.contains(needle), "{needle:?} not in {stderr:?}");
    }
    stderr
}

#[test]
fn bad_database_url_names_the_variable() {
    let out = run(&[("DATABASE_URL", "mysql://localhost/tally")], &["migrate"]);
    assert_one_line_failure(&out, &["DATABASE_URL", "sqlite://", "postgres://"]);
}

#[test]
fn unreachable_database_names_the_server_without_the_password() {
    let out = run(
        &[("DATABASE_URL", "postgres://tally:s3cretpw@127.0.0.1:1/tally")],
        &["migrate"],
    );
    let line = assert_one_line_failure(&out, &["cannot connect to the database", "127.0.0.1:1"]);
    assert!(!line.contains("s3cretpw"), "password leaked: {line}");
}

#[test]
fn malformed_keys_name_the_variable_and_hide_the_value() {
    let out = run(&[("STRIPE_SECRET_KEY", "pk_test_publishable123")], &[]);
    let line = assert_one_line_failure(&out, &["STRIPE_SECRET_KEY", "publishable"]);
    assert!(!line.contains("publishable123"));
    let out = run(&[("STRIPE_WEBHOOK_SECRET", "not-a-secret")], &[]);
    assert_one_line_failure(&out, &["STRIPE_WEBHOOK_SECRET", "whsec_"]);
}

#[test]
fn missing_site_config_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = tally(
        dir.path(),
        &[("DATABASE_URL", &db), ("TALLY_SITE_CONFIG", "/nonexistent/Leptos.toml")],
        &["serve"],
    )
    .output()
    .unwrap();
    assert_one_line_failure(&out, &["/nonexistent/Leptos.toml"]);
}

#[test]
fn busy_port_names_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = tally(dir.path(), &[("DATABASE_URL", &db), ("LISTEN_ADDR", &addr)], &["serve"])
        .output()
        .unwrap();
    assert_one_line_failure(&out, &["cannot listen on", &addr]);
}

#[test]
fn migrate_creates_the_default_sqlite_file_under_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = tally(dir.path(), &[], &["migrate"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let counts = stdout
        .trim()
        .strip_prefix("migrations applied on sqlite: ")
        .expect("summary line");
    let (applied, expected) = counts.split_once(" of ").expect("N of M");
    assert_eq!(applied, expected, "{stdout}");
    assert!(applied.parse::<u32>().unwrap() >= 2, "{stdout}");
    assert!(dir.path().join("data/tally.db").is_file());
}

#[test]
fn serve_logs_redacted_config_as_json_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let mut child = tally(
        dir.path(),
        &[
            ("DATABASE_URL", &db),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("TALLY_LOG_FORMAT", "json"),
            ("STRIPE_SECRET_KEY", "sk_test_51Topsecretkeyvalue"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_topsecretwebhook"),
        ],
        &["serve"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let started = Instant::now();
    while let Some(Ok(line)) = lines.next() {
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        seen.push(line.clone());
        if parsed["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("listening on"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "server did not start: {seen:?}"
        );
    }
    let all = seen.join("\n");
    assert!(
        all.contains("starting Tally") && all.contains("sk_test_[redacted]"),
        "{all}"
    );
    assert!(
        !all.contains("Topsecretkeyvalue") && !all.contains("topsecretwebhook"),
        "secret in logs: {all}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0), "clean exit after SIGTERM");
}

fn create_admin(dir: &Path, db: &str, email: &str, role: &str, password: &str) -> Output {
    use std::io::Write;
    let mut child = tally(
        dir,
        &[("DATABASE_URL", db)],
        &["create-admin", "--email", email, "--role", role],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn create_admin_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let out = create_admin(dir.path(), &db, "Ops@Example.com", "admin", "a long enough passphrase");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "created admin ops@example.com"
    );
    // The same email again is refused, in one line.
    let out = create_admin(dir.path(), &db, "ops@example.com", "viewer", "a long enough passphrase");
    assert_one_line_failure(&out, &["already exists"]);
    // Too short.
    let out = create_admin(dir.path(), &db, "short@example.com", "viewer", "short");
    assert_one_line_failure(&out, &["at least 12 characters"]);
    // No way to pass the password as an argument.
    let out = run(
        &[("DATABASE_URL", &db)],
        &["create-admin", "--email", "x@example.com", "--password", "secretsecret"],
    );
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_and_hashes_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let password = "Sup3r-secret passphrase";
    let out = create_admin(dir.path(), &db, "owner@example.com", "owner", password);
    assert!(out.status.success());
    let mut child = tally(
        dir.path(),
        &[
            ("DATABASE_URL", &db),
            ("LISTEN_ADDR", "127.0.0.1:0"),
            ("TALLY_LOG_FORMAT", "json"),
            ("RUST_LOG", "debug"),
        ],
        &["serve"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all.join("\n")
    });
    let addr = loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("server starts");
        let parsed: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if let Some(rest) = parsed["message"]
            .as_str()
            .and_then(|m| m.strip_prefix("listening on http://"))
        {
            break rest.to_string();
        }
    };
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for attempt in ["Wrong-guess passphrase", password] {
        let res = client
            .post(format!("http://{addr}/login"))
            .form(&[("email", "owner@example.com"), ("password", attempt)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 303);
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let stderr = child.wait_with_output().unwrap().stderr;
    let logs = reader.join().unwrap() + &String::from_utf8_lossy(&stderr);
    assert!(logs.contains("admin logged in"), "the login was logged: {logs}");
    for secret in [password, "Wrong-guess", "$argon2"] {
        assert!(!logs.contains(secret), "{secret} reached the logs");
    }
}

#[test]
fn sync_without_a_key_says_stripe_is_not_configured() {
    let out = run(&[], &["sync"]);
    assert_one_line_failure(&out, &["Stripe is not configured", "STRIPE_SECRET_KEY"]);
    let out = run(&[("STRIPE_SECRET_KEY", "sk_test_abc")], &["sync", "--only", "widgets"]);
    assert_one_line_failure(&out, &["--only", "widgets"]);
}

/// `tally sync`, then `tally drift`: exit 0 while the data match, 2 once a row differs (for cron).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_exits_with_2_when_local_data_differ_from_stripe() {
    let stand_in = StandIn::start(|r: Request| async move {
        let parts: Vec<&str> = r.path.trim_start_matches("/v1/").split('/').collect();
        match parts.as_slice() {
            ["customers", id] => {
                let found = customers().as_array().unwrap().iter().find(|c| c["id"] == *id).cloned();
                Reply::ok(found.unwrap_or_else(|| serde_json::json!({"id": id, "object": "customer", "deleted": true})))
            }
            // A restricted key without charge access.
            ["charges"] => Reply::error(
                403,
                "invalid_request_error",
                "The provided key 'rk_test_***abc' does not have the required permissions",
            ),
            ["customers"] => Reply::ok(serde_json::json!({"object": "list", "has_more": false, "data": customers()})),
            [_] => Reply::ok(serde_json::json!({"object": "list", "has_more": false, "data": []})),
            _ => Reply::status(404, serde_json::json!({})),
        }
    })
    .await;
    let base = stand_in.url.clone();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let vars = [
        ("DATABASE_URL", db.as_str()),
        ("STRIPE_SECRET_KEY", "sk_test_51cli"),
        ("STRIPE_API_BASE", base.as_str()),
    ];
    let exec = |args: &'static [&'static str]| {
        let cmd = tally(dir.path(), &vars, args);
        async move {
            tokio::task::spawn_blocking(move || {
                let mut cmd = cmd;
                cmd.output().unwrap()
            })
            .await
            .unwrap()
        }
    };
    let out = exec(&["sync", "--only", "customers"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("customers"),
        "progress is shown"
    );
    let out = exec(&["drift", "--only", "customers"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no drift"));

    set_email(&db, "typo@example.com").await;
    let out = exec(&["drift", "--only", "customers"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(
        stdout.contains("changed        customers cus_b email: tally typo@example.com / stripe b@example.com"),
        "{stdout}"
    );
    let out = exec(&["reconcile", "--days", "31"]).await;
    assert_one_line_failure(&out, &["--days", "30"]);

    // A key that may not read one type: the others finish, the run says partial (exit 3) and
    // names the type and the path, never Stripe's text (which quotes the key).
    let out = exec(&["sync"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("skipped charges:") && stdout.contains("GET /v1/charges"),
        "{stdout}"
    );
    assert!(stdout.contains("sync partial"), "{stdout}");
    assert!(!stdout.contains("rk_test"), "{stdout}");
    set_email(&db, "typo@example.com").await;
    let out = exec(&["drift"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "drift still wins over partial: {stdout}");
    assert!(
        stdout.contains("charges            skipped:") && stdout.contains("partial"),
        "{stdout}"
    );
    set_email(&db, "b@example.com").await;
    let out = exec(&["drift"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(stdout.contains("no drift in the types compared (partial"), "{stdout}");
}

/// Changes cus_b's email behind Tally's back (as a bug or a missed event would).
async fn set_email(db: &str, email: &str) {
    let pool = sqlx::SqlitePool::connect(db).await.unwrap();
    sqlx::query("UPDATE customers SET email = $1 WHERE id = 'cus_b'")
        .bind(email)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

fn customers() -> serde_json::Value {
    serde_json::json!([
        {"id": "cus_a", "object": "customer", "email": "a@example.com", "created": 1_700_000_000},
        {"id": "cus_b", "object": "customer", "email": "b@example.com", "created": 1_700_000_001}
    ])
}

fn accounts(dir: &Path, vars: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut all = vec!["accounts"];
    all.extend_from_slice(args);
    let mut child = tally(dir, vars, &all)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

/// `tally accounts add` reads the key from standard input, asks Stripe whose it is, and stores it
/// sealed; `list`, `rename`, `disable` and `enable` follow; without TALLY_SECRETS_KEY it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_added_with_the_key_on_stdin_and_listed() {
    let stripe = StandIn::start(|r: Request| async move {
        match (r.path.as_str(), r.header("authorization").as_deref()) {
            ("/v1/account", Some("Bearer sk_test_51secondaccount")) => Reply::ok(serde_json::json!({
                "id": "acct_second", "object": "account", "business_profile": {"name": "Acme EU"}})),
            ("/v1/account", _) => Reply::error(401, "invalid_request_error", "Invalid API Key provided: sk_test_***"),
            _ => Reply::not_found(),
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("t.db").display());
    let seal = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let vars = [
        ("DATABASE_URL", db.as_str()),
        ("STRIPE_API_BASE", stripe.url.as_str()),
        ("TALLY_SECRETS_KEY", seal),
    ];
    let out = accounts(dir.path(), &vars[..2], &["add"], "sk_test_51secondaccount\n");
    assert_one_line_failure(&out, &["TALLY_SECRETS_KEY is not set", "openssl rand -hex 32"]);
    let out = accounts(dir.path(), &vars, &["add"], "sk_test_51wrongkey\n");
    let stderr = assert_one_line_failure(&out, &["Stripe did not accept the key"]);
    assert!(!stderr.contains("sk_test_51wrongkey"), "{stderr}");
    let out = accounts(
        dir.path(),
        &vars,
        &["add", "--webhook-secret", "whsec_one", "--webhook-secret", "whsec_two"],
        "sk_test_51secondaccount\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "added acct_second (Acme EU), test mode, 2 webhook secret(s)"
    );
    let out = accounts(dir.path(), &vars, &["add"], "sk_test_51secondaccount\n");
    assert_one_line_failure(&out, &["acct_second is already known"]);
    let out = accounts(dir.path(), &vars, &["rename", "acct_second", "Europe"], "");
    assert!(out.status.success());
    let out = accounts(dir.path(), &vars, &["disable", "acct_second"], "");
    assert!(out.status.success());
    let out = accounts(dir.path(), &vars, &["list"], "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "acct_second\tEurope\tTest mode\tdirect\tdisabled"
    );
    let out = accounts(dir.path(), &vars, &["disable", "acct_nobody"], "");
    assert_one_line_failure(&out, &["no account acct_nobody"]);
    // Sealed at rest; audited without secrets.
    for file in ["t.db", "t.db-wal"] {
        let bytes = std::fs::read(dir.path().join(file)).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("sk_test_51secondaccount") && !text.contains("whsec_one"),
            "{file}"
        );
    }
    let db = tally::db::Db::connect(&tally::config::DatabaseUrl::parse(&db).unwrap())
        .await
        .unwrap();
    let actions: Vec<String> = sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert_eq!(actions, ["account.add", "account.rename", "account.disable"]);
}

/// A `tally sync` stopped midway, by a signal, then run again at once against a slow stand-in
/// (each page after 250 ms, 800 customers one a day, lists honouring `created` filters and
/// cursors). After SIGINT the process exits 130 and nothing is ever fetched twice; after SIGKILL
/// the rerun is not refused (the dead process's lock is free), and nothing the first run
/// committed is fetched again (only the pages in flight at the kill are). Either way the rerun
/// finishes with every customer stored and each counted once.
async fn stop_then_resume(backend: crate::common::Backend, signal: &str) {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    const CUSTOMERS: usize = 800;
    let customers: Arc<Vec<serde_json::Value>> = Arc::new(
        (0..CUSTOMERS)
            .map(|i| serde_json::json!({"id": format!("cus_p{i:04}"), "object": "customer", "created": 1_760_000_000 - i as i64 * 86_400}))
            .collect(),
    );
    // Which customers each run was sent.
    let sent: Arc<Mutex<Vec<HashMap<String, usize>>>> = Arc::new(Mutex::new(vec![HashMap::new()]));
    let stripe = StandIn::start({
        let sent = sent.clone();
        move |r: Request| {
            let (customers, sent) = (customers.clone(), sent.clone());
            async move {
                if r.path != "/v1/customers" {
                    return Reply::list(Vec::new(), false);
                }
                // Stripe's list answers take their time, so the signal arrives with pages in flight.
                tokio::time::sleep(Duration::from_millis(250)).await;
                let reply = crate::common::stripe::list_page(&customers, &r.query);
                let mut sent = sent.lock().unwrap();
                let run = sent.last_mut().unwrap();
                for o in reply.body["data"].as_array().into_iter().flatten() {
                    *run.entry(o["id"].as_str().unwrap().to_string()).or_default() += 1;
                }
                reply
            }
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let test_db = crate::common::TestDb::new(backend).await;
    let vars = [
        ("DATABASE_URL", test_db.url.as_str()),
        ("STRIPE_API_BASE", stripe.url.as_str()),
        ("STRIPE_SECRET_KEY", "sk_test_51stopandresume"),
    ];
    let child = tally(dir.path(), &vars, &["sync", "--only", "customers"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while stripe.calls("GET", "/v1/customers").len() < 3 {
        assert!(started.elapsed() < Duration::from_secs(60), "the sync never got going");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if signal == "INT" {
        assert_eq!(out.status.code(), Some(130), "{stderr}");
        assert!(stderr.contains("run tally sync again to resume"), "{stderr}");
    } else {
        assert_eq!(out.status.code(), None, "killed: {stderr}");
    }
    let db = tally::db::Db::connect(&tally::config::DatabaseUrl::parse(&test_db.url).unwrap())
        .await
        .unwrap();
    let committed: Vec<String> = sqlx::query_scalar("SELECT id FROM customers")
        .fetch_all(db.reader())
        .await
        .unwrap();
    assert!(
        committed.len() < CUSTOMERS,
        "it stopped early ({} stored)",
        committed.len()
    );
    sent.lock().unwrap().push(HashMap::new());
    // At once again: not refused (a killed run's lock died with it), resumes, finishes.
    let mut again = tally(dir.path(), &vars, &["sync", "--only", "customers"]);
    // Off the test's runtime thread, which serves the stand-in.
    let out = tokio::task::spawn_blocking(move || again.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("{CUSTOMERS} objects fetched")), "{stdout}");
    let sent = sent.lock().unwrap().clone();
    let (first, second) = (&sent[0], &sent[1]);
    let again: Vec<&String> = committed.iter().filter(|id| second.contains_key(*id)).collect();
    assert!(again.is_empty(), "committed by the first run, fetched again: {again:?}");
    let mut all: HashMap<&String, usize> = HashMap::new();
    for (id, n) in first.iter().chain(second) {
        *all.entry(id).or_default() += n;
    }
    assert_eq!(all.len(), CUSTOMERS, "every customer listed");
    let twice: Vec<_> = all.iter().filter(|(_, n)| **n > 1).map(|(id, _)| *id).collect();
    if signal == "INT" {
        assert!(twice.is_empty(), "fetched twice after a clean stop: {twice:?}");
    }
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM customers")
            .fetch_one(db.reader())
            .await
            .unwrap(),
        CUSTOMERS as i64
    );
    let runs: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT status, error FROM jobs ORDER BY started_at, status")
            .fetch_all(db.reader())
            .await
            .unwrap();
    let first_status = if signal == "INT" { "stopped" } else { "failed" };
    assert!(
        runs.iter().any(|(status, _)| status == first_status) && runs.iter().any(|(status, _)| status == "done"),
        "{runs:?}"
    );
    if signal == "KILL" {
        assert!(
            runs.iter()
                .any(|(_, e)| e.as_deref().is_some_and(|e| e.contains("killed or crashed"))),
            "{runs:?}"
        );
    }
    db.close().await;
}

both_backends!(
    a_sync_stopped_with_ctrl_c_resumes_without_fetching_anything_twice,
    |backend| async move { stop_then_resume(backend, "INT").await }
);

both_backends!(
    a_killed_sync_is_seen_dead_at_once_and_resumes_without_refetching_what_it_committed,
    |backend| async move { stop_then_resume(backend, "KILL").await }
);
