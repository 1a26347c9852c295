//! The command line: `tally [serve]`, `tally migrate`.
//!
//! Every failure at start becomes one line on stderr naming what is wrong, and exit code 1.

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
        /// On an empty database, create a demo owner and print its credentials once.
        #[arg(long)]
        demo: bool,
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
    },
    /// Create an admin. The password is read from standard input (or asked for on a terminal),
    /// never from the command line, where other users could see it.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "owner", value_parser = ["owner", "admin", "viewer"])]
        role: String,
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
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tally: {message}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let config = Config::from_env().map_err(|e| e.to_string())?;
    crate::telemetry::init(config.log_format)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve { demo: false }) {
            Command::Serve { demo } => serve(config, &cli.site_config, demo).await,
            Command::Migrate => migrate(config).await,
            Command::CreateAdmin { email, role } => create_admin(config, &email, &role).await,
            Command::Sync { since, only, restart } => sync(config, since, only, restart).await,
        }
    })
}

async fn serve(config: Config, site_config: &std::path::Path, demo: bool) -> Result<(), String> {
    let site = crate::site::load(site_config, |name| std::env::var(name).ok())?;
    if demo {
        create_demo_owner(&config).await?;
    }
    tracing::info!(config = ?config, site_root = %site.site_root, "starting Tally");
    if config.stripe_key.is_none() {
        tracing::warn!("STRIPE_SECRET_KEY is not set: Stripe actions are disabled until it is");
    }
    let running = server::start(config, site).await.map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{}", running.addr);
    running
        .run_until(server::shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), String> {
    let db = Db::connect(&config.database_url).await.map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
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
    let db = Db::connect(&config.database_url).await.map_err(|e| e.to_string())?;
    db.migrate().await.map_err(|e| e.to_string())?;
    Ok(db)
}

/// Reads a password: one line from standard input when it is not a terminal (scripts), else a
/// prompt that does not echo.
fn read_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal};
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
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn create_admin(config: Config, email: &str, role: &str) -> Result<(), String> {
    use crate::auth::{check_new_password, normalize_email, Role};
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
async fn create_demo_owner(config: &Config) -> Result<(), String> {
    const DEMO_EMAIL: &str = "demo@tally.local";
    let db = connect_migrated(config).await?;
    let existing = crate::db::admins::count(&db).await.map_err(|e| e.to_string())?;
    if existing == 0 {
        let password = uuid::Uuid::new_v4().simple().to_string()[..20].to_string();
        let hash = crate::auth::server::password::hash(password.clone())
            .await
            .map_err(|e| e.to_string())?;
        crate::db::admins::create(&db, DEMO_EMAIL, &hash, crate::auth::Role::Owner)
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

async fn sync(config: Config, since: Option<String>, only: Vec<String>, restart: bool) -> Result<(), String> {
    use crate::sync::{parse_resource, SyncOptions};
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
    let only = only
        .iter()
        .map(|name| parse_resource(name).ok_or_else(|| format!("--only: unknown type {name:?}")))
        .collect::<Result<Vec<_>, _>>()?;
    if config.stripe_key.is_none() {
        return Err("Stripe is not configured: set STRIPE_SECRET_KEY to run a backfill".into());
    }
    let stripe = crate::stripe::from_config(&config).map_err(|e| e.to_string())?;
    let db = connect_migrated(&config).await?;
    let options = SyncOptions { since, only, restart };
    let result = crate::sync::run(&db, stripe.as_ref(), &options, |p| {
        println!(
            "{:<18} {:>8} fetched {:>8} applied {:>6}/s{}",
            p.resource.table(),
            p.fetched,
            p.applied,
            p.rate,
            if p.done { "  done" } else { "" }
        );
    })
    .await;
    let outcome = if result.is_ok() { "success" } else { "failure" };
    let entry = crate::db::audit::NewEntry {
        action: "sync",
        outcome,
        detail: Some("from the command line".into()),
        ..Default::default()
    };
    if let Err(e) = crate::db::audit::record(&db, entry).await {
        tracing::warn!(error = %e, "could not record the sync in the audit log");
    }
    db.close().await;
    let summary = result.map_err(|e| format!("sync stopped: {e} (run tally sync again to resume)"))?;
    let total: i64 = summary.iter().map(|p| p.fetched).sum();
    println!("sync complete: {total} objects fetched");
    Ok(())
}
