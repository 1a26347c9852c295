//! Logging: `RUST_LOG` filtering; human-readable lines by default, JSON with `TALLY_LOG_FORMAT=json`.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

const DEFAULT_FILTER: &str = "info,sqlx=warn,tower_http=info";

/// Installs the global subscriber. Fails with a one-line reason when `RUST_LOG` cannot be parsed.
pub fn init(format: LogFormat) -> Result<(), String> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => {
            EnvFilter::try_new(&spec).map_err(|e| format!("RUST_LOG is not a valid log filter: {e}"))?
        }
        _ => EnvFilter::new(DEFAULT_FILTER),
    };
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_target(false)).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().flatten_event(true)).try_init(),
    };
    // A subscriber already installed (tests start several apps in one process) is fine.
    let _ = result;
    Ok(())
}
