//! The command line: `tally [serve]`, `migrate`, `create-admin`, `sync`, `reconcile`, `drift`.
//!
//! Every failure at start becomes one line on stderr naming what is wrong, and exit code 1.

pub mod bench;
pub mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::db::Db;
use crate::server;

#[derive(Debug, Parser)]
#[command(name = "tally", version, about = "Billing dashboard for SaaS teams on Stripe")]
struct Cli {
    /// Runtime site settings (output name, site root, pkg dir).
    #[arg(long, global = true, env = "TALLY_SITE_CONFIG", default_value = "Leptos.toml")]
    site_config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the dashboard and the Stripe webhook (the default).
    Serve {
        /// On an empty database, fill in the demo business and create a demo owner whose
        /// credentials are printed once.
        #[arg(long)]
        demo: bool,
    },
    /// Fill an empty database with a deterministic demo business (24 months of Stripe events).
    SeedDemo {
        /// How many customers.
        #[arg(long, default_value_t = 2000)]
        customers: usize,
        /// About how many subscriptions in all (more than customers: some take the add-on).
        #[arg(long)]
        subscriptions: Option<usize>,
        /// About how many charges in all (beyond the plans' own: one-off credit packs).
        #[arg(long)]
        charges: Option<usize>,
        /// Also a Stripe Connect account with this many customers of its own (0: none), so the
        /// account switcher has two accounts to show.
        #[arg(long, default_value_t = 0)]
        connected: usize,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Import existing Stripe data (a backfill). Resumes an unfinished run unless --restart.
    Sync {
        /// Only objects created on or after this day (YYYY-MM-DD, UTC).
        #[arg(long)]
        since: Option<String>,
        /// Only these types, comma-separated: products, prices, customers, subscriptions, invoices,
        /// payment_intents, charges, refunds, disputes, checkout_sessions.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Start over instead of resuming an unfinished run.
        #[arg(long)]
        restart: bool,
        /// The Stripe account (`acct_…`, as `tally accounts list` shows); the environment's by
        /// default.
        #[arg(long)]
        account: Option<String>,
        /// Pages fetched at once (1 to 200); by default half of STRIPE_MAX_REQUESTS_PER_SECOND,
        /// at least 4, enough to keep the rate limit busy while each list call takes up to half a
        /// second.
        #[arg(long)]
        concurrency: Option<usize>,
    },
    /// List Stripe's events of the last days and apply any that Tally missed.
    Reconcile {
        /// How many days back (1-30; default RECONCILE_DAYS, 3).
        #[arg(long)]
        days: Option<u32>,
        /// The Stripe account (`acct_…`, as `tally accounts list` shows); the environment's by
        /// default.
        #[arg(long)]
        account: Option<String>,
    },
    /// Compare local data with Stripe's, per type; exits with 2 when they differ (for cron).
    Drift {
        /// Only these types, comma-separated (as for sync).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// The Stripe account (`acct_…`, as `tally accounts list` shows); the environment's by
        /// default.
        #[arg(long)]
        account: Option<String>,
    },
    /// Load generators for the benchmarks (see docs/benchmarks.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// The Stripe accounts Tally knows (docs/accounts.md).
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Create an admin. The password is read from standard input (or asked for on a terminal),
    /// never from the command line, where other users could see it.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "owner", value_parser = ["owner", "admin", "viewer"])]
        role: String,
    },
}

#[derive(Debug, Subcommand)]
enum AccountsCommand {
    /// Add an account reached with its own secret or restricted key. The key is read from standard
    /// input (or asked for on a terminal), never from the command line; Tally asks Stripe which
    /// account it belongs to. Needs TALLY_SECRETS_KEY: the key and secrets are stored sealed.
    Add {
        /// A display name (default: the account's name at Stripe).
        #[arg(long)]
        name: Option<String>,
        /// The signing secret of this account's webhook endpoint (`whsec_…`); repeat for several.
        #[arg(long = "webhook-secret")]
        webhook_secrets: Vec<String>,
    },
    /// List the accounts: id, name, mode, how Tally reaches them, whether enabled.
    List,
    /// Disable an account: its webhook secrets verify nothing until it is enabled again.
    Disable { id: String },
    /// Enable a disabled account.
    Enable { id: String },
    /// Give an account another display name.
    Rename { id: String, name: String },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Post signed `customer.created` events to a running Tally and report acks/s and latency.
    Ingest {
        /// Several, comma-separated: every event is posted to each at once (duplicate deliveries).
        #[arg(long, default_value = "http://127.0.0.1:3000")]
        url: String,
        /// The server's STRIPE_WEBHOOK_SECRET.
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET")]
        secret: String,
        #[arg(long, default_value_t = 50_000)]
        events: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Events per second offered (default: as fast as they are acknowledged).
        #[arg(long)]
        rate: Option<u64>,
    },
    /// Log in and report p50/p95 per page.
    Pages {
        /// Several, comma-separated (servers over different datasets, the same account on
        /// each): their requests alternate, so their figures compare on a noisy machine.
        #[arg(long, value_delimiter = ',', default_value = "http://127.0.0.1:3000")]
        url: Vec<String>,
        #[arg(long)]
        email: String,
        /// Read from BENCH_PASSWORD.
        #[arg(long, env = "BENCH_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, default_value_t = 40)]
        requests: usize,
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "/,/customers,/subscriptions,/payments,/invoices,/revenue"
        )]
        pages: Vec<String>,
        /// Meanwhile, post this many signed events per second that change the data behind the
        /// pages (new charges and subscriptions of demo customers), so caches keep going stale.
        #[arg(long)]
        webhooks_per_sec: Option<u64>,
        /// Pause between two requests (a person clicking rather than a loop).
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// The webhook signing secret (for --webhooks-per-sec). Read from STRIPE_WEBHOOK_SECRET.
        #[arg(long, env = "STRIPE_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
    },
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(message) => {
            eprintln!("tally: {message}");
            ExitCode::from(1)
        }
    }
}

/// Exit code 0; 2 for `tally drift` when it found drift; 3 (`PARTIAL`) for `sync`, `reconcile` and
/// `drift` when types the Stripe key may not read were skipped; errors exit 1.
fn run(cli: Cli) -> Result<u8, String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    crate::telemetry::init(config.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve { demo: false }) {
            Command::Serve { demo } => serve(config, &cli.site_config, demo).await.map(|_| 0),
            Command::Migrate => migrate(config).await.map(|_| 0),
            Command::SeedDemo {
                customers,
                subscriptions,
                charges,
                connected,
            } => seed_demo(&config, customers, subscriptions, charges, connected)
                .await
                .map(|_| 0),
            Command::CreateAdmin { email, role } => create_admin(config, &email, &role).await.map(|_| 0),
            Command::Accounts(command) => accounts(config, command).await.map(|_| 0),
            Command::Sync {
                since,
                only,
                restart,
                account,
                concurrency,
            } => sync(config, since, only, restart, account, concurrency).await,
            Command::Reconcile { days, account } => reconcile(config, days, account).await,
            Command::Drift { only, account } => drift(config, only, account).await,
            Command::Bench(BenchCommand::Ingest {
                url,
                secret,
                events,
                concurrency,
                rate,
            }) => {
                let options = bench::IngestOptions {
                    url,
                    secret,
                    events,
                    concurrency: concurrency.max(1),
                    rate,
                };
                bench::ingest(options).await.map(|_| 0)
            }
            Command::Bench(BenchCommand::Pages {
                url,
                email,
                password,
                requests,
                pages,
                webhooks_per_sec,
                interval_ms,
                secret,
            }) => {
                let live = match (webhooks_per_sec, secret) {
                    (Some(rate), Some(secret)) => Some((rate.max(1), secret)),
                    (Some(_), None) => return Err("--webhooks-per-sec needs --secret".to_string()),
                    _ => None,
                };
                if live.is_some() && url.len() > 1 {
                    return Err("--webhooks-per-sec takes one --url".to_string());
                }
                let interval = std::time::Duration::from_millis(interval_ms);
                bench::pages(&url, &email, &password, requests.max(1), &pages, live, interval)
                    .await
                    .map(|_| 0)
            }
        }
    })
}

async fn serve(config: Config, site_config: &std::path::Path, demo: bool) -> Result<(), String> {
    // Signal handlers first: a SIGTERM that arrives while starting (or right after "listening")
    // stops Tally gracefully instead of killing it.
    let shutdown = server::shutdown_signal();
    let site = crate::site::load(site_config, |name| std::env::var(name).ok())?;
    if demo {
        seed_demo(&config, 2000, None, None, 150).await?;
        create_demo_owner(&config).await?;
    }
    tracing::info!(config = ?config, site_root = %site.site_root, "starting Tally");
    if config.stripe_key.is_none() {
        tracing::warn!("STRIPE_SECRET_KEY is not set: Stripe actions are disabled until it is");
    }
    let running = server::start(config, site).await.map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{}", running.addr);
    running
        .run_until(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), String> {
    let db = Db::connect_with(&config.database_url, config.sqlite_sync)
        .await
        .map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    // Derived data a migration cannot compute in SQL: stored MRR movements (once).
    crate::projection::movements::ensure_built(&db)
        .await
        .map_err(|e| e.to_string())?;
    let readiness = db.readiness().await;
    db.close().await;
    println!(
        "migrations applied on {}: {} of {}",
        config.database_url.backend().as_str(),
        readiness.migrations_applied,
        readiness.migrations_expected
    );
    Ok(())
}

async fn connect_migrated(config: &Config) -> Result<Db, String> {
    let db = Db::connect_with(&config.database_url, config.sqlite_sync)
        .await
        .map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    crate::projection::prepare(&db, config.mrr_discounts)
        .await
        .map_err(|e| e.to_string())?;
    Ok(db)
}

/// Reads a password: one line from standard input when it is not a terminal (scripts), else a
/// prompt that does not echo.
fn read_password() -> Result<String, String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let first = rpassword::prompt_password("Password (12 characters or more): ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let again = rpassword::prompt_password("Same password again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        Ok(first)
    } else {
        stdin_line("the password")
    }
}

/// One line from standard input, without its line ending.
fn stdin_line(what: &str) -> Result<String, String> {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read {what} from standard input: {e}"))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads a Stripe key: one line from standard input when it is not a terminal, else a prompt
/// that does not echo.
fn read_stripe_key() -> Result<String, String> {
    use std::io::IsTerminal;
    let key = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Secret or restricted key (sk_… or rk_…): ")
            .map_err(|e| format!("cannot read the key: {e}"))?
    } else {
        stdin_line("the key")?
    };
    Ok(key.trim().to_string())
}

async fn accounts(config: Config, command: AccountsCommand) -> Result<(), String> {
    let db = connect_migrated(&config).await?;
    let result = accounts_with(&config, &db, command).await;
    db.close().await;
    result
}

async fn accounts_with(config: &Config, db: &Db, command: AccountsCommand) -> Result<(), String> {
    use crate::db::accounts;
    let audit = |action: &'static str, target: &str, detail: String| crate::db::audit::NewEntry {
        action,
        target: Some(target.to_string()),
        outcome: "success",
        detail: Some(format!("{detail}, from the command line")),
        ..Default::default()
    };
    match command {
        AccountsCommand::Add { name, webhook_secrets } => {
            if config.secrets_key.is_none() {
                return Err(crate::accounts::AddAccountError::NoSecretsKey.to_string());
            }
            let key = read_stripe_key()?;
            let request = crate::accounts::AddAccount {
                secret_key: &key,
                name: name.as_deref(),
                webhook_secrets,
                source: "cli",
            };
            let account = crate::accounts::add(db, config, request)
                .await
                .map_err(|e| e.to_string())?;
            let mode = if account.livemode == Some(true) { "live" } else { "test" };
            let detail = format!("{} webhook secret(s), {mode}", account.webhook_secrets);
            crate::db::audit::record(db, audit("account.add", &account.id, detail))
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "added {} ({}), {mode} mode, {} webhook secret(s)",
                account.id, account.name, account.webhook_secrets
            );
        }
        AccountsCommand::List => {
            let all = accounts::list(db).await.map_err(|e| e.to_string())?;
            if all.is_empty() {
                println!("no accounts yet (the environment's key is registered when the server first reaches Stripe)");
            }
            for a in all {
                println!(
                    "{}\t{}\t{}\t{}{}\t{}",
                    a.id,
                    a.name,
                    a.mode_label(),
                    a.kind.as_str(),
                    a.platform_id.map(|p| format!(" of {p}")).unwrap_or_default(),
                    if a.disabled { "disabled" } else { "enabled" }
                );
            }
        }
        AccountsCommand::Disable { id } | AccountsCommand::Enable { id } if !id.starts_with("acct_") => {
            return Err(format!("{id:?} is not an account id (acct_…)"));
        }
        AccountsCommand::Disable { id } => {
            if !accounts::set_disabled(db, &id, true).await.map_err(|e| e.to_string())? {
                return Err(format!("no account {id} (see tally accounts list)"));
            }
            crate::db::audit::record(db, audit("account.disable", &id, "disabled".into()))
                .await
                .map_err(|e| e.to_string())?;
            println!("disabled {id}");
        }
        AccountsCommand::Enable { id } => {
            if !accounts::set_disabled(db, &id, false)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no account {id} (see tally accounts list)"));
            }
            crate::db::audit::record(db, audit("account.enable", &id, "enabled".into()))
                .await
                .map_err(|e| e.to_string())?;
            println!("enabled {id}");
        }
        AccountsCommand::Rename { id, name } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                return Err("the name must have 1 to 100 characters".into());
            }
            if !accounts::rename(db, &id, name).await.map_err(|e| e.to_string())? {
                return Err(format!("no account {id} (see tally accounts list)"));
            }
            crate::db::audit::record(db, audit("account.rename", &id, format!("named {name:?}")))
                .await
                .map_err(|e| e.to_string())?;
            println!("renamed {id} to {name}");
        }
    }
    Ok(())
}

async fn create_admin(config: Config, email: &str, role: &str) -> Result<(), String> {
    use crate::domain::admins::{check_new_password, normalize_email, Role};
    let email = normalize_email(email).map_err(|m| format!("--email: {m}"))?;
    let role = Role::parse(role).ok_or("--role must be owner, admin or viewer")?;
    let password = read_password()?;
    check_new_password(&password)?;
    let hash = crate::auth::server::password::hash(password)
        .await
        .map_err(|e| e.to_string())?;
    let db = connect_migrated(&config).await?;
    let created = crate::db::admins::create(&db, &email, &hash, role)
        .await
        .map_err(|e| e.to_string());
    if let Ok(id) = created {
        let entry = crate::db::audit::NewEntry {
            action: "admin.create",
            target: Some(format!("admin:{id}")),
            outcome: "success",
            detail: Some(format!("role {role}, from the command line")),
            ..Default::default()
        };
        crate::db::audit::record(&db, entry).await.map_err(|e| e.to_string())?;
    }
    db.close().await;
    created?;
    println!("created {role} {email}");
    Ok(())
}

/// On an empty database, an owner with a random password, printed once, so a first run can log in.
async fn seed_demo(
    config: &Config,
    customers: usize,
    subscriptions: Option<usize>,
    charges: Option<usize>,
    connected: usize,
) -> Result<(), String> {
    if !(1..=200_000).contains(&customers) {
        return Err("--customers must be from 1 to 200000".into());
    }
    if connected > 200_000 {
        return Err("--connected must be at most 200000".into());
    }
    if subscriptions.is_some_and(|s| s > customers * 3) || charges.is_some_and(|c| c > customers * 60) {
        return Err("--subscriptions can be at most 3 per customer, --charges at most 60 per customer".into());
    }
    let db = connect_migrated(config).await?;
    let started = std::time::Instant::now();
    let now = crate::db::now_unix();
    let profile = demo::Profile::sized(customers, subscriptions, charges, now);
    if subscriptions.is_some() || charges.is_some() {
        println!(
            "demo data: {:.0}% of customers take the add-on, {:.2} credit packs a month",
            profile.addons * 100.0,
            profile.topups
        );
    }
    let verbose = customers > 10_000;
    let seeded = demo::seed_with(&db, customers, profile, now, |done, events| {
        if verbose {
            println!(
                "  {done} customers, {events} events applied ({:.0}s)",
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await
    .map_err(|e| format!("could not seed the demo data: {e}"))?;
    let count = |table: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(db.reader())
                .await
                .unwrap_or(0)
        }
    };
    match seeded {
        demo::Seeded::AlreadyHasData => println!("demo data: skipped, the database already has customers"),
        demo::Seeded::Events(n) => println!(
            "demo data: {customers} customers, {} subscriptions, {} charges, {n} Stripe events applied in {:.1}s",
            count("subscriptions").await,
            count("charges").await,
            started.elapsed().as_secs_f64()
        ),
    }
    if connected > 0 && matches!(seeded, demo::Seeded::Events(_)) {
        let n = demo::seed_connected(&db, connected, now)
            .await
            .map_err(|e| format!("could not seed the demo's connected account: {e}"))?;
        println!(
            "demo data: connected account {} ({}) with {connected} customers, {n} Stripe events applied",
            demo::CONNECTED_NAME,
            demo::CONNECTED
        );
    }
    db.close().await;
    Ok(())
}

async fn create_demo_owner(config: &Config) -> Result<(), String> {
    const DEMO_EMAIL: &str = "demo@tally.local";
    let db = connect_migrated(config).await?;
    let existing = crate::db::admins::count(&db).await.map_err(|e| e.to_string())?;
    if existing == 0 {
        let password = uuid::Uuid::new_v4().simple().to_string()[..20].to_string();
        let hash = crate::auth::server::password::hash(password.clone())
            .await
            .map_err(|e| e.to_string())?;
        crate::db::admins::create(&db, DEMO_EMAIL, &hash, crate::domain::admins::Role::Owner)
            .await
            .map_err(|e| e.to_string())?;
        println!();
        println!("  Demo owner created. Log in at {} with", config.public_base_url);
        println!("    email:    {DEMO_EMAIL}");
        println!("    password: {password}");
        println!("  This password is shown only once. Add your own admins in Settings → Admins.");
        println!();
    }
    db.close().await;
    Ok(())
}

fn parse_types(only: &[String]) -> Result<Vec<crate::domain::resource::Resource>, String> {
    only.iter()
        .map(|name| crate::sync::parse_resource(name).ok_or_else(|| format!("--only: unknown type {name:?}")))
        .collect()
}

/// The database and the Stripe client for a job run from the command line.
async fn job_context(
    config: Config,
    what: &str,
    account: Option<String>,
) -> Result<crate::sync::background::JobContext, String> {
    if let Some(id) = account.filter(|a| !a.trim().is_empty()) {
        let db = connect_migrated(&config).await?;
        let key = crate::db::accounts::storage_key(&db, id.trim())
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no Stripe account {id} in Tally (tally accounts list shows them)"))?;
        if key != crate::domain::accounts::ENVIRONMENT {
            let client = crate::accounts::client(&db, &config, &key)
                .await
                .map_err(|e| format!("cannot act for {id}: {e}"))?;
            return Ok(crate::sync::background::JobContext {
                db,
                account: key,
                stripe: client,
                config: std::sync::Arc::new(config),
                events: Default::default(),
            });
        }
        db.close().await;
    }
    if config.stripe_key.is_none() {
        return Err(format!("Stripe is not configured: set STRIPE_SECRET_KEY to run {what}"));
    }
    let stripe = crate::stripe::for_jobs(&config).map_err(|e| e.to_string())?;
    let db = connect_migrated(&config).await?;
    Ok(crate::sync::background::JobContext {
        account: String::new(),
        db,
        stripe,
        config: std::sync::Arc::new(config),
        events: Default::default(),
    })
}

async fn audit_cli(db: &Db, action: &'static str, ok: bool) {
    let entry = crate::db::audit::NewEntry {
        action,
        outcome: if ok { "success" } else { "failure" },
        detail: Some("from the command line".into()),
        ..Default::default()
    };
    if let Err(e) = crate::db::audit::record(db, entry).await {
        tracing::warn!(error = %e, "could not record the run in the audit log");
    }
}

/// One progress line per type: a bar when an earlier run tells how many objects to expect.
fn progress_line(p: &crate::sync::Progress, expected: i64) -> String {
    const WIDTH: usize = 24;
    let bar = if p.done {
        "#".repeat(WIDTH)
    } else if expected > 0 {
        let filled = ((p.fetched.min(expected) * WIDTH as i64) / expected) as usize;
        format!("{}{}", "#".repeat(filled), ".".repeat(WIDTH - filled))
    } else {
        format!("{:.<WIDTH$}", "?")
    };
    let eta = match (p.done, expected > p.fetched && p.rate > 0) {
        (true, _) if p.skipped.is_some() => "skipped".to_string(),
        (true, _) => "done".to_string(),
        (false, true) => format!("ETA {}s", (expected - p.fetched) / p.rate),
        (false, false) => "ETA ?".to_string(),
    };
    let at_once = if p.in_flight > 1 {
        format!(" ({} slices at once)", p.in_flight)
    } else {
        String::new()
    };
    format!(
        "{:<18} [{bar}] {:>8} fetched {:>8} applied {:>6} pages {:>6}/s  {eta}{at_once}",
        p.resource.table(),
        p.fetched,
        p.applied,
        p.pages,
        p.rate
    )
}

/// The run's request rate against the limit, above the types' lines.
fn rate_line(p: &crate::sync::Progress, limit: u32) -> String {
    format!(
        "requests to Stripe: {:.1}/s of {limit}/s allowed (STRIPE_MAX_REQUESTS_PER_SECOND)",
        p.requests_per_sec
    )
}

async fn sync(
    config: Config,
    since: Option<String>,
    only: Vec<String>,
    restart: bool,
    account: Option<String>,
    concurrency: Option<usize>,
) -> Result<u8, String> {
    use std::io::{IsTerminal, Write};
    if concurrency.is_some_and(|n| !(1..=200).contains(&n)) {
        return Err("--concurrency must be a number of pages from 1 to 200".into());
    }

    use crate::sync::SyncOptions;
    let since = match since {
        None => None,
        Some(day) => Some(
            chrono::NaiveDate::parse_from_str(day.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc().timestamp())
                .ok_or("--since must be a date such as 2024-01-31")?,
        ),
    };
    let only = parse_types(&only)?;
    let ctx = job_context(config, "a backfill", account).await?;
    // What Tally already holds is the best guess at what Stripe will list.
    let mut expected = std::collections::HashMap::new();
    for resource in crate::sync::ORDER {
        let known: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM {} WHERE account_id = $1",
            resource.table()
        ))
        .bind(&ctx.account)
        .fetch_one(ctx.db.reader())
        .await
        .unwrap_or(0);
        expected.insert(resource, known);
    }
    let terminal = std::io::stderr().is_terminal();
    let limit = ctx.stripe.rate_limit().unwrap_or(ctx.config.stripe_rate_limit);
    // SIGINT (Ctrl-C) or SIGTERM: no next page; the pages in flight are applied and the run is
    // marked stopped, so running `tally sync` again resumes where it stopped.
    let stop = crate::sync::Stop::default();
    let stopping = {
        let stop = stop.clone();
        tokio::spawn(async move {
            crate::server::shutdown_signal().await;
            eprintln!("\nstopping: the pages in flight are applied, then the sync stops");
            stop.request();
        })
    };
    let options = SyncOptions {
        since,
        only,
        restart,
        stop,
        concurrency,
        // The job runs for its context's account (background::execute sets it).
        ..Default::default()
    };
    let job = crate::sync::background::Job::Sync(options);
    // On a terminal, one line per type (types run several at a time), redrawn in place: the
    // cursor goes back up over the block drawn last time.
    let mut lines: std::collections::BTreeMap<usize, String> = Default::default();
    let mut drawn = 0usize;
    let result = crate::sync::background::run_with(&ctx, job, crate::sync::jobs::Trigger::Cli, |p| {
        let line = progress_line(p, expected.get(&p.resource).copied().unwrap_or(0));
        if terminal {
            let at = crate::sync::ORDER.iter().position(|r| *r == p.resource).unwrap_or(0);
            lines.insert(at, line);
            let mut block = if drawn > 0 {
                format!("\x1b[{drawn}A")
            } else {
                String::new()
            };
            block.push_str("\r\x1b[2K");
            block.push_str(&rate_line(p, limit));
            block.push('\n');
            for l in lines.values() {
                block.push_str("\r\x1b[2K");
                block.push_str(l);
                block.push('\n');
            }
            drawn = lines.len() + 1;
            eprint!("{block}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("{line}");
        }
    })
    .await;
    stopping.abort();
    audit_cli(&ctx.db, "sync", result.is_ok()).await;
    ctx.db.close().await;
    if matches!(
        result,
        Err(crate::sync::background::JobError::Failed(
            crate::sync::SyncError::Stopped
        ))
    ) {
        eprintln!("sync stopped: what was fetched is saved; run tally sync again to resume where it stopped");
        return Ok(STOPPED);
    }
    let outcome = result.map_err(|e| match e {
        crate::sync::background::JobError::AlreadyRunning(_) => e.to_string(),
        e => format!("sync stopped: {e} (run tally sync again to resume)"),
    })?;
    let total: i64 = outcome.summary["types"]
        .as_array()
        .map(|types| types.iter().filter_map(|t| t["fetched"].as_i64()).sum())
        .unwrap_or(0);
    if outcome.partial {
        for t in outcome.summary["types"].as_array().into_iter().flatten() {
            if let Some(why) = t["skipped"].as_str() {
                println!("skipped {}: {why}", t["resource"].as_str().unwrap_or("?"));
            }
        }
        println!("sync partial: {total} objects fetched; the types above were skipped");
        return Ok(PARTIAL);
    }
    println!("sync complete: {total} objects fetched");
    Ok(0)
}

/// Exit code of a `sync` stopped by SIGINT or SIGTERM (as a shell reports Ctrl-C): it resumes.
const STOPPED: u8 = 130;

/// Exit code of `sync`, `reconcile` and `drift` (without drift) when types the key may not read
/// were skipped and the rest finished.
pub const PARTIAL: u8 = 3;

async fn reconcile(config: Config, days: Option<u32>, account: Option<String>) -> Result<u8, String> {
    let days = days.unwrap_or(config.reconcile.days);
    if !(1..=crate::sync::reconcile::MAX_DAYS).contains(&days) {
        return Err("--days must be from 1 to 30 (Stripe keeps events for 30 days)".into());
    }
    let ctx = job_context(config, "a reconciliation", account).await?;
    let job = crate::sync::background::Job::Reconcile { days };
    let result = crate::sync::background::run(&ctx, job, crate::sync::jobs::Trigger::Cli).await;
    audit_cli(&ctx.db, "reconcile", result.is_ok()).await;
    let outcome = result.map_err(|e| format!("reconciliation stopped: {e}"));
    let applied = if outcome.is_ok() {
        // Apply what was found now, rather than waiting for a server's worker.
        apply_pending(&ctx).await
    } else {
        Ok(0)
    };
    ctx.db.close().await;
    let outcome = outcome?;
    if let Some(why) = outcome.summary["skipped"].as_str() {
        println!("reconciliation partial: events skipped: {why}");
        return Ok(PARTIAL);
    }
    println!(
        "reconciliation over {} days: {} events listed, {} missing (stored; {} applied now); {} failed events retried",
        days,
        outcome.summary["listed"].as_i64().unwrap_or(0),
        outcome.summary["missing"].as_i64().unwrap_or(0),
        applied?,
        outcome.summary["retried_failed"].as_i64().unwrap_or(0),
    );
    Ok(0)
}

/// Runs the webhook worker until the inbox has nothing due.
async fn apply_pending(ctx: &crate::sync::background::JobContext) -> Result<usize, String> {
    let worker = crate::webhooks::worker::Worker {
        db: ctx.db.clone(),
        wake: ctx.events.clone(),
        max_attempts: ctx.config.webhooks.max_attempts.unwrap_or(i64::MAX),
        retry_for_secs: ctx.config.webhooks.retry_for.as_secs() as i64,
        refetch: ctx.config.webhooks.refetch.then(|| ctx.stripe.clone()),
    };
    let mut total = 0;
    loop {
        let n = worker.run_once().await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}

async fn drift(config: Config, only: Vec<String>, account: Option<String>) -> Result<u8, String> {
    let only = parse_types(&only)?;
    let ctx = job_context(config, "a drift check", account).await?;
    let job = crate::sync::background::Job::Drift { only };
    let result = crate::sync::background::run(&ctx, job, crate::sync::jobs::Trigger::Cli).await;
    audit_cli(&ctx.db, "drift", result.is_ok()).await;
    ctx.db.close().await;
    let outcome = result.map_err(|e| format!("drift check stopped: {e}"))?;
    let report: crate::domain::sync_report::DriftReport =
        serde_json::from_value(outcome.summary).map_err(|e| format!("unreadable drift report: {e}"))?;
    println!(
        "{:<18} {:>9} {:>9} {:>8} {:>9} {:>8}",
        "type", "stripe", "tally", "missing", "not-there", "changed"
    );
    for t in &report.types {
        match &t.skipped {
            Some(why) => println!("{:<18} skipped: {why}", t.resource),
            None => println!(
                "{:<18} {:>9} {:>9} {:>8} {:>9} {:>8}",
                t.resource, t.at_stripe, t.here, t.missing_here, t.not_at_stripe, t.changed
            ),
        }
    }
    for d in &report.differences {
        use crate::domain::sync_report::DiffKind;
        match d.kind {
            DiffKind::MissingHere => println!("missing here   {} {}", d.resource, d.id),
            DiffKind::NotAtStripe => println!("not at Stripe  {} {}", d.resource, d.id),
            DiffKind::Changed => println!(
                "changed        {} {} {}: tally {} / stripe {}",
                d.resource,
                d.id,
                d.field.as_deref().unwrap_or("?"),
                d.here.as_deref().unwrap_or("null"),
                d.stripe.as_deref().unwrap_or("null")
            ),
        }
    }
    let partial = if report.partial() {
        " (partial: skipped types were not compared)"
    } else {
        ""
    };
    if report.has_drift() {
        println!("drift: {} differences{partial}", report.total_differences);
        Ok(2)
    } else if report.partial() {
        println!("no drift in the types compared{partial}");
        Ok(PARTIAL)
    } else {
        println!("no drift");
        Ok(0)
    }
}
