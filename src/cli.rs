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
#[command(
    name = "tally",
    version,
    about = "Billing dashboard for SaaS teams on Stripe"
)]
struct Cli {
    /// Runtime site settings (output name, site root, pkg dir).
    #[arg(
        long,
        global = true,
        env = "TALLY_SITE_CONFIG",
        default_value = "Leptos.toml"
    )]
    site_config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the dashboard and the Stripe webhook (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
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
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config, &cli.site_config).await,
            Command::Migrate => migrate(config).await,
        }
    })
}

async fn serve(config: Config, site_config: &std::path::Path) -> Result<(), String> {
    let site = crate::site::load(site_config, |name| std::env::var(name).ok())?;
    tracing::info!(config = ?config, site_root = %site.site_root, "starting Tally");
    if config.stripe_key.is_none() {
        tracing::warn!("STRIPE_SECRET_KEY is not set: Stripe actions are disabled until it is");
    }
    let running = server::start(config, site)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("listening on http://{}", running.addr);
    running
        .run_until(server::shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

async fn migrate(config: Config) -> Result<(), String> {
    let db = Db::connect(&config.database_url)
        .await
        .map_err(|e| e.to_string())?;
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
