//! Typed configuration, read once at start from the environment (and `.env` if present).
//!
//! Every value is validated here so that a mistake is reported as one line naming the variable,
//! before anything else starts. Secrets are wrapped in [`Secret`], whose `Debug` and `Display`
//! never show more than the key's public prefix.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

/// Stripe's API, used unless `STRIPE_API_BASE` says otherwise (tests point it at a loopback stand-in).
pub const DEFAULT_STRIPE_API_BASE: &str = "https://api.stripe.com";
/// Where the SQLite database lives when `DATABASE_URL` is not set.
pub const DEFAULT_SQLITE_PATH: &str = "data/tally.db";
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:3000";

/// A configuration value that must never reach a log line, a page or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the one place that needs it (an HTTP header, an HMAC key).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The non-secret prefix Stripe puts on its keys (`sk_test_`, `whsec_`, …), for display.
    fn public_prefix(&self) -> &str {
        const PREFIXES: [&str; 6] = ["sk_test_", "sk_live_", "rk_test_", "rk_live_", "whsec_", "pk_"];
        PREFIXES.iter().find(|p| self.0.starts_with(**p)).copied().unwrap_or("")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}[redacted]\"", self.public_prefix())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[redacted]", self.public_prefix())
    }
}

/// Test or live mode, derived from the secret key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StripeMode {
    Test,
    Live,
}

impl StripeMode {
    pub fn is_live(self) -> bool {
        self == StripeMode::Live
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StripeMode::Test => "test",
            StripeMode::Live => "live",
        }
    }
}

/// A validated Stripe secret (or restricted) key and the mode it implies.
#[derive(Clone, Debug)]
pub struct StripeKey {
    pub key: Secret,
    pub mode: StripeMode,
}

impl StripeKey {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        let mode = if value.starts_with("sk_test_") || value.starts_with("rk_test_") {
            StripeMode::Test
        } else if value.starts_with("sk_live_") || value.starts_with("rk_live_") {
            StripeMode::Live
        } else if value.starts_with("pk_") {
            return Err("is a publishable key (pk_…); Tally needs the secret key (sk_test_…, sk_live_…) or a restricted key (rk_…)".into());
        } else {
            return Err("must start with sk_test_, sk_live_ or rk_ (rk_test_/rk_live_)".into());
        };
        let prefix_len = 8;
        if value.len() <= prefix_len || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err("is not a complete Stripe key (letters, digits and _ after the prefix)".into());
        }
        Ok(Self {
            key: Secret::new(value),
            mode,
        })
    }
}

/// Which database a URL names; chosen at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database URL whose password (if any) is hidden in `Debug` and `Display`.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
    /// The file a SQLite URL names, so its directory can be created on first start.
    sqlite_file: Option<PathBuf>,
}

impl DatabaseUrl {
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            let parsed = Url::parse(value).map_err(|e| format!("is not a valid postgres URL ({e})"))?;
            if parsed.host_str().unwrap_or("").is_empty() {
                return Err("names no host (expected postgres://user:password@host:port/database)".into());
            }
            return Ok(Self {
                url: value.to_string(),
                backend: Backend::Postgres,
                sqlite_file: None,
            });
        }
        if let Some(rest) = value.strip_prefix("sqlite:") {
            let path = rest.trim_start_matches("//");
            let file = path.split('?').next().unwrap_or("");
            if file.is_empty() {
                return Err("names no file (expected sqlite://data/tally.db)".into());
            }
            if file.starts_with(":memory:") {
                return Err("names an in-memory database, which would lose everything at exit; name a file".into());
            }
            let sqlite_file = Some(PathBuf::from(file));
            // Create the file on first start unless the URL already says how to open it.
            let url = if value.contains("mode=") {
                value.to_string()
            } else if value.contains('?') {
                format!("{value}&mode=rwc")
            } else {
                format!("{value}?mode=rwc")
            };
            return Ok(Self {
                url,
                backend: Backend::Sqlite,
                sqlite_file,
            });
        }
        Err("must start with sqlite:// or postgres:// (for example sqlite://data/tally.db)".into())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The full URL, password included, for the driver only.
    pub fn expose(&self) -> &str {
        &self.url
    }

    pub fn sqlite_file(&self) -> Option<&PathBuf> {
        self.sqlite_file.as_ref()
    }

    /// The URL with any password replaced (in the user part, or a `password=`/`sslpassword=`
    /// parameter), safe for logs, error messages and the status page.
    pub fn redacted(&self) -> String {
        let Ok(mut url) = Url::parse(&self.url) else {
            return self.url.clone();
        };
        if url.password().is_some() {
            // Cannot fail for URLs with a host, which postgres URLs have (checked in parse).
            let _ = url.set_password(Some("[redacted]"));
        }
        let secret = |key: &str| matches!(key.to_ascii_lowercase().as_str(), "password" | "sslpassword");
        if url.query_pairs().any(|(k, _)| secret(&k)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(k, v)| {
                    let v = if secret(&k) {
                        "[redacted]".to_string()
                    } else {
                        v.into_owned()
                    };
                    (k.into_owned(), v)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        url.to_string()
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration. Its `Debug` output is safe to log.
#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: DatabaseUrl,
    /// `None`: Tally runs, and every Stripe action answers "Stripe is not configured".
    pub stripe_key: Option<StripeKey>,
    /// One or more signing secrets; several during a rotation.
    pub webhook_secrets: Vec<Secret>,
    /// Signs customers' billing-portal links (`LINK_SECRET`, at least 32 characters). When unset,
    /// a random one is generated once and kept in the database.
    pub link_secret: Option<Secret>,
    /// Seals the Stripe keys and webhook secrets of accounts added in Settings or with `tally
    /// accounts add` (`TALLY_SECRETS_KEY`, 64 hex characters). Without it such accounts cannot be
    /// added; the environment's account needs none.
    pub secrets_key: Option<crate::seal::SealKey>,
    pub stripe_api_base: Url,
    /// Requests per second Tally allows itself against Stripe's API (`STRIPE_MAX_REQUESTS_PER_SECOND`;
    /// default 20 in test mode and 80 in live mode, a little under Stripe's 25 and 100).
    pub stripe_rate_limit: u32,
    /// Retries of transient Stripe failures (`STRIPE_MAX_ATTEMPTS`, default 4;
    /// `STRIPE_RETRY_BASE_MS`, default 500, doubling with jitter up to 8 s).
    pub stripe_retry: RetryPolicy,
    pub public_base_url: Url,
    pub listen_addr: SocketAddr,
    pub log_format: LogFormat,
    pub auth: AuthSettings,
    pub webhooks: WebhookSettings,
    pub reconcile: ReconcileSettings,
    /// Requests per second each payments-API key may make (`API_RATE_LIMIT`, default 10).
    pub api_rate_limit: u32,
    /// Checkouts and checkout results a minute per client address (`PUBLIC_RATE_LIMIT`, default 20).
    pub public_rate_limit: u32,
    /// How long a page waits for figures being recomputed after a change before it shows the
    /// previous ones, at most 10 s old (`FIGURES_WAIT_MS`, default 20, so that with rendering a
    /// page stays within 30 ms; see db::cache).
    pub figures_wait: Duration,
    /// When set, `/metrics` answers only `Authorization: Bearer <token>` (`METRICS_TOKEN`).
    pub metrics_token: Option<Secret>,
    /// Which coupon durations reduce MRR (`MRR_DISCOUNTS`, default `forever`: Stripe Billing's
    /// default; `forever,repeating`, `forever,once` or `forever,repeating,once` follow Stripe's
    /// other settings). Changing it recomputes the MRR history at the next start.
    pub mrr_discounts: DiscountPolicy,
    /// The clock for sessions and login lockouts (the system's; tests move it forward).
    pub clock: crate::clock::Clock,
    /// Proxies whose `X-Forwarded-For` Tally believes (`TRUSTED_PROXIES`: addresses or CIDRs,
    /// comma-separated; none by default: the client is the socket's peer). See docs/deploy.md.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// How SQLite commits (`SQLITE_SYNCHRONOUS`: `full`, the default, survives power loss;
    /// `normal` may lose the last commits then). See docs/deploy.md.
    pub sqlite_sync: SqliteSync,
}

/// Scheduled reconciliation against Stripe's event list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileSettings {
    /// How often (`RECONCILE_INTERVAL`, default 1h; `off` disables the schedule).
    pub interval: Option<Duration>,
    /// How many days of events each run lists (`RECONCILE_DAYS`, 1–30, default 3).
    pub days: u32,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval: Some(Duration::from_secs(3600)),
            days: 3,
        }
    }
}

/// Webhook ingestion settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    /// How old a signature's timestamp may be (`STRIPE_WEBHOOK_TOLERANCE`, default 300s).
    pub tolerance: Duration,
    /// Attempts before an event is marked failed (`WEBHOOK_MAX_ATTEMPTS`; default: no cap, the
    /// event is retried for `retry_for`).
    pub max_attempts: Option<i64>,
    /// How long an event that fails to apply is retried, with delays growing from 2 s to an hour,
    /// before it is marked failed (`WEBHOOK_RETRY_FOR`, default 3d: as long as Stripe retries).
    pub retry_for: Duration,
    /// The overview warns when no event arrived for this long (`WEBHOOK_SILENCE_WARNING`, default 24h).
    pub silence_warning: Duration,
    /// Fetch each event's object from Stripe instead of trusting the payload (`WEBHOOK_REFETCH`).
    pub refetch: bool,
    /// Apply stored events in this process (`WEBHOOK_WORKER`, default on). Off: an ingest-only
    /// instance (another instance applies), or a benchmark measuring a backlog.
    pub worker: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            tolerance: Duration::from_secs(300),
            max_attempts: None,
            retry_for: Duration::from_secs(3 * 86_400),
            silence_warning: Duration::from_secs(86_400),
            refetch: false,
            worker: true,
        }
    }
}

/// Session lifetimes and login throttling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    /// A session unused for this long ends (`SESSION_IDLE_TIMEOUT`, default 30m).
    pub idle_timeout: Duration,
    /// A session ends this long after login, however active (`SESSION_ABSOLUTE_TIMEOUT`, default 12h).
    pub absolute_timeout: Duration,
    /// Failed logins allowed per account before a lockout (`LOGIN_MAX_FAILURES`, default 5); a
    /// client address gets four times as many.
    pub max_failures: u32,
    /// The first lockout (`LOGIN_LOCKOUT`, default 1m); each further failure doubles it, up to an hour.
    pub lockout: Duration,
    /// How long each login attempt waits before its check once its client address has failed
    /// four times `max_failures` in the window (`LOGIN_ADDRESS_DELAY_MS`, default 1000).
    pub address_delay: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 3600),
            max_failures: 5,
            lockout: Duration::from_secs(60),
            address_delay: Duration::from_millis(1000),
        }
    }
}

/// `90s`, `30m`, `12h`, `7d`, or a bare number of seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    let value = value.trim();
    let split = value.find(|c: char| !c.is_ascii_digit()).unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| "must be a duration such as 90s, 30m or 12h".to_string())?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err("must be a duration such as 90s, 30m or 12h".into()),
    };
    if secs == 0 {
        return Err("must be longer than zero".into());
    }
    Ok(Duration::from_secs(secs))
}

/// One configuration mistake, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment, after loading `.env` from the working directory if present.
    pub fn from_env() -> Result<Self, ConfigError> {
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => {
                return Err(ConfigError {
                    variable: ".env",
                    message: format!("could not be read: {e}"),
                })
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Builds the configuration from any source of variables (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let err = |variable: &'static str, message: String| ConfigError { variable, message };

        let database_url = match get("DATABASE_URL") {
            Some(v) => DatabaseUrl::parse(&v).map_err(|m| err("DATABASE_URL", m))?,
            None => {
                DatabaseUrl::parse(&format!("sqlite://{DEFAULT_SQLITE_PATH}")).map_err(|m| err("DATABASE_URL", m))?
            }
        };

        let stripe_key = get("STRIPE_SECRET_KEY")
            .map(|v| StripeKey::parse(&v).map_err(|m| err("STRIPE_SECRET_KEY", m)))
            .transpose()?;

        let webhook_secrets = match get("STRIPE_WEBHOOK_SECRET") {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with("whsec_") && s.len() > "whsec_".len() {
                        Ok(Secret::new(s))
                    } else {
                        Err(err(
                            "STRIPE_WEBHOOK_SECRET",
                            "must be one or more comma-separated secrets starting with whsec_".into(),
                        ))
                    }
                })
                .collect::<Result<_, _>>()?,
        };

        let stripe_api_base =
            parse_http_url(get("STRIPE_API_BASE"), DEFAULT_STRIPE_API_BASE).map_err(|m| err("STRIPE_API_BASE", m))?;
        let stripe_rate_limit = match get("STRIPE_MAX_REQUESTS_PER_SECOND") {
            Some(v) => v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                err(
                    "STRIPE_MAX_REQUESTS_PER_SECOND",
                    "must be a number of requests from 1 to 1000".into(),
                )
            })?,
            None if stripe_key.as_ref().is_some_and(|k| k.mode.is_live()) => 80,
            None => 20,
        };
        let mut stripe_retry = RetryPolicy::default();
        if let Some(v) = get("STRIPE_MAX_ATTEMPTS") {
            stripe_retry.max_attempts = v.parse().ok().filter(|n| (1..=10).contains(n)).ok_or_else(|| {
                err(
                    "STRIPE_MAX_ATTEMPTS",
                    "must be a number of attempts from 1 to 10".into(),
                )
            })?;
        }
        if let Some(v) = get("STRIPE_RETRY_BASE_MS") {
            let ms: u64 = v
                .parse()
                .ok()
                .filter(|n| (1..=60_000).contains(n))
                .ok_or_else(|| err("STRIPE_RETRY_BASE_MS", "must be milliseconds from 1 to 60000".into()))?;
            stripe_retry.base_delay = Duration::from_millis(ms);
        }

        let listen_addr: SocketAddr = get("LISTEN_ADDR")
            .unwrap_or_else(|| DEFAULT_LISTEN_ADDR.to_string())
            .parse()
            .map_err(|_| {
                err(
                    "LISTEN_ADDR",
                    "must be an address and port such as 127.0.0.1:3000".into(),
                )
            })?;

        let default_public = format!("http://{listen_addr}");
        let public_base_url =
            parse_http_url(get("PUBLIC_BASE_URL"), &default_public).map_err(|m| err("PUBLIC_BASE_URL", m))?;

        let log_format = match get("TALLY_LOG_FORMAT")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("text") | Some("pretty") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(_) => return Err(err("TALLY_LOG_FORMAT", "must be text or json".into())),
        };

        let defaults = AuthSettings::default();
        let duration = |variable: &'static str, default: Duration| match get(variable) {
            Some(v) => parse_duration(&v).map_err(|m| err(variable, m)),
            None => Ok(default),
        };
        let auth = AuthSettings {
            idle_timeout: duration("SESSION_IDLE_TIMEOUT", defaults.idle_timeout)?,
            absolute_timeout: duration("SESSION_ABSOLUTE_TIMEOUT", defaults.absolute_timeout)?,
            max_failures: match get("LOGIN_MAX_FAILURES") {
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| err("LOGIN_MAX_FAILURES", "must be a number from 1 to 1000".into()))?,
                None => defaults.max_failures,
            },
            lockout: duration("LOGIN_LOCKOUT", defaults.lockout)?,
            address_delay: match get("LOGIN_ADDRESS_DELAY_MS") {
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n| *n <= 60_000)
                    .map(Duration::from_millis)
                    .ok_or_else(|| {
                        err(
                            "LOGIN_ADDRESS_DELAY_MS",
                            "must be a number of milliseconds up to 60000".into(),
                        )
                    })?,
                None => defaults.address_delay,
            },
        };
        let trusted_proxies = match get("TRUSTED_PROXIES") {
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| {
                            err(
                                "TRUSTED_PROXIES",
                                format!("has {p:?}, which is not an address or a CIDR such as 10.0.0.0/8"),
                            )
                        })
                })
                .collect::<Result<Vec<_>, _>>()?,
            None => Vec::new(),
        };
        let hooks = WebhookSettings::default();
        let webhooks = WebhookSettings {
            tolerance: duration("STRIPE_WEBHOOK_TOLERANCE", hooks.tolerance)?,
            max_attempts: match get("WEBHOOK_MAX_ATTEMPTS") {
                Some(v) => Some(
                    v.parse()
                        .ok()
                        .filter(|n| (1..=10_000).contains(n))
                        .ok_or_else(|| err("WEBHOOK_MAX_ATTEMPTS", "must be a number from 1 to 10000".into()))?,
                ),
                None => hooks.max_attempts,
            },
            retry_for: duration("WEBHOOK_RETRY_FOR", hooks.retry_for)?,
            silence_warning: duration("WEBHOOK_SILENCE_WARNING", hooks.silence_warning)?,
            refetch: match get("WEBHOOK_REFETCH")
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None | Some("false") | Some("0") | Some("no") => false,
                Some("true") | Some("1") | Some("yes") => {
                    if stripe_key.is_none() {
                        return Err(err(
                            "WEBHOOK_REFETCH",
                            "needs STRIPE_SECRET_KEY to fetch objects from Stripe".into(),
                        ));
                    }
                    true
                }
                Some(_) => return Err(err("WEBHOOK_REFETCH", "must be true or false".into())),
            },
            worker: match get("WEBHOOK_WORKER").as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("on") | Some("true") | Some("1") => true,
                Some("off") | Some("false") | Some("0") => false,
                Some(_) => return Err(err("WEBHOOK_WORKER", "must be on or off".into())),
            },
        };

        let link_secret = match get("LINK_SECRET") {
            Some(v) if v.trim().len() >= 32 => Some(Secret::new(v.trim())),
            Some(_) => return Err(err("LINK_SECRET", "must be at least 32 characters".into())),
            None => None,
        };
        let secrets_key = match get("TALLY_SECRETS_KEY") {
            Some(v) => Some(crate::seal::SealKey::parse(&v).map_err(|m| err("TALLY_SECRETS_KEY", m))?),
            None => None,
        };
        let reconcile_defaults = ReconcileSettings::default();
        let reconcile = ReconcileSettings {
            interval: match get("RECONCILE_INTERVAL").as_deref().map(str::trim) {
                Some("off") | Some("0") => None,
                Some(_) => Some(duration("RECONCILE_INTERVAL", Duration::ZERO)?),
                None => reconcile_defaults.interval,
            },
            days: match get("RECONCILE_DAYS") {
                Some(v) => v
                    .parse()
                    .ok()
                    .filter(|n| (1..=30).contains(n))
                    .ok_or_else(|| err("RECONCILE_DAYS", "must be a number of days from 1 to 30".into()))?,
                None => reconcile_defaults.days,
            },
        };

        let api_rate_limit = match get("API_RATE_LIMIT") {
            Some(v) => v.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                err(
                    "API_RATE_LIMIT",
                    "must be a number of requests per second from 1 to 10000".into(),
                )
            })?,
            None => 10,
        };

        let public_rate_limit = match get("PUBLIC_RATE_LIMIT") {
            Some(v) => v.parse().ok().filter(|n| (1..=10_000).contains(n)).ok_or_else(|| {
                err(
                    "PUBLIC_RATE_LIMIT",
                    "must be a number of requests a minute from 1 to 10000".into(),
                )
            })?,
            None => 20,
        };

        let figures_wait = match get("FIGURES_WAIT_MS") {
            Some(v) => v
                .parse()
                .ok()
                .filter(|n| *n <= 600_000)
                .map(Duration::from_millis)
                .ok_or_else(|| {
                    err(
                        "FIGURES_WAIT_MS",
                        "must be a number of milliseconds up to 600000".into(),
                    )
                })?,
            None => Duration::from_millis(20),
        };

        let metrics_token = get("METRICS_TOKEN")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .map(Secret::new);

        let sqlite_sync = match get("SQLITE_SYNCHRONOUS") {
            Some(v) => {
                SqliteSync::parse(&v).ok_or_else(|| err("SQLITE_SYNCHRONOUS", "must be full or normal".into()))?
            }
            None => Default::default(),
        };
        let mrr_discounts = match get("MRR_DISCOUNTS") {
            Some(v) => DiscountPolicy::parse(&v).map_err(|m| err("MRR_DISCOUNTS", m))?,
            None => Default::default(),
        };

        Ok(Self {
            database_url,
            stripe_key,
            webhook_secrets,
            link_secret,
            secrets_key,
            stripe_api_base,
            stripe_rate_limit,
            stripe_retry,
            public_base_url,
            listen_addr,
            log_format,
            auth,
            webhooks,
            reconcile,
            api_rate_limit,
            public_rate_limit,
            figures_wait,
            metrics_token,
            mrr_discounts,
            clock: Default::default(),
            trusted_proxies,
            sqlite_sync,
        })
    }

    /// Cookies get the Secure flag when people reach Tally over https.
    pub fn is_https(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }

    pub fn stripe_mode(&self) -> Option<StripeMode> {
        self.stripe_key.as_ref().map(|k| k.mode)
    }
}

fn parse_http_url(value: Option<String>, default: &str) -> Result<Url, String> {
    let raw = value.unwrap_or_else(|| default.to_string());
    let url = Url::parse(&raw).map_err(|e| format!("is not a valid URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(url)
}

// Value types of settings that other modules act on (the Stripe transport, the database, MRR):
// defined here so configuration depends on nothing above it.

/// How often and how patiently transient failures are retried.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The first backoff; each retry doubles it, up to `max_delay`. The wait is drawn at random
    /// between half and all of it (jitter), so many clients do not retry in step.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first retry), given a random `unit` in [0, 1).
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let full = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1)))
            .min(self.max_delay);
        full.mul_f64(0.5 + unit.clamp(0.0, 1.0) / 2.0)
    }
}

/// How SQLite's writer commits (`SQLITE_SYNCHRONOUS`). In WAL mode `Full` syncs the log at every
/// commit, so a transaction Tally acknowledged (an event Stripe was told 200 for) survives a
/// power loss; `Normal` syncs only at checkpoints and can lose the last commits on power loss
/// (never on a crash of Tally alone). The inbox's group commit keeps `Full` cheap: one sync per
/// batch of events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSync {
    #[default]
    Full,
    Normal,
}

impl SqliteSync {
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "full" => Some(SqliteSync::Full),
            "normal" => Some(SqliteSync::Normal),
            _ => None,
        }
    }

    /// The statement that sets it on a connection.
    pub fn pragma(self) -> &'static str {
        match self {
            SqliteSync::Full => "PRAGMA synchronous = FULL",
            SqliteSync::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// Which coupon durations reduce MRR. Stripe Billing's default subtracts only *forever* coupons;
/// its settings can also subtract recurring (*repeating*) and one-time (*once*) discounts
/// (`MRR_DISCOUNTS`: `forever`, `forever,repeating`, `forever,once`, `forever,repeating,once`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiscountPolicy {
    pub repeating: bool,
    pub once: bool,
}

impl DiscountPolicy {
    /// A comma-separated list of durations; `forever` always counts and may be left out.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut policy = DiscountPolicy::default();
        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "forever" => {}
                "repeating" => policy.repeating = true,
                "once" => policy.once = true,
                "all" => {
                    policy.repeating = true;
                    policy.once = true;
                }
                other => {
                    return Err(format!(
                        "has an unknown coupon duration {other:?} (use forever, repeating, once, comma-separated)"
                    ))
                }
            }
        }
        Ok(policy)
    }

    pub fn as_str(self) -> &'static str {
        match (self.repeating, self.once) {
            (false, false) => "forever",
            (true, false) => "forever,repeating",
            (false, true) => "forever,once",
            (true, true) => "forever,repeating,once",
        }
    }

    /// Whether a coupon of this duration (`forever`, `repeating`, `once`) reduces MRR.
    pub fn counts(self, duration: &str) -> bool {
        match duration {
            "forever" => true,
            "repeating" => self.repeating,
            "once" => self.once,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_give_sqlite_under_data_and_no_stripe() {
        let c = config(&[]).unwrap();
        assert_eq!(c.database_url.backend(), Backend::Sqlite);
        assert_eq!(c.database_url.sqlite_file(), Some(&PathBuf::from("data/tally.db")));
        assert!(c.database_url.expose().ends_with("?mode=rwc"));
        assert!(c.stripe_key.is_none());
        assert!(c.webhook_secrets.is_empty());
        assert_eq!(c.stripe_api_base.as_str(), "https://api.stripe.com/");
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.public_base_url.as_str(), "http://127.0.0.1:3000/");
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn mode_follows_the_key() {
        let test = config(&[("STRIPE_SECRET_KEY", "sk_test_abc123")]).unwrap();
        assert_eq!(test.stripe_mode(), Some(StripeMode::Test));
        let live = config(&[("STRIPE_SECRET_KEY", "sk_live_abc123")]).unwrap();
        assert_eq!(live.stripe_mode(), Some(StripeMode::Live));
        let restricted = config(&[("STRIPE_SECRET_KEY", "rk_live_abc123")]).unwrap();
        assert_eq!(restricted.stripe_mode(), Some(StripeMode::Live));
    }

    #[test]
    fn malformed_keys_name_the_variable() {
        for bad in ["pk_test_abc", "sk_abc", "hello", "sk_test_", "sk_test_ab cd"] {
            let e = config(&[("STRIPE_SECRET_KEY", bad)]).unwrap_err();
            assert_eq!(e.variable, "STRIPE_SECRET_KEY", "{bad}");
            assert!(!e.to_string().contains(bad), "error must not echo the key: {e}");
        }
        let e = config(&[("STRIPE_WEBHOOK_SECRET", "whsec_ok,nope")]).unwrap_err();
        assert_eq!(e.variable, "STRIPE_WEBHOOK_SECRET");
    }

    #[test]
    fn several_webhook_secrets_for_rotation() {
        let c = config(&[("STRIPE_WEBHOOK_SECRET", " whsec_one , whsec_two ,")]).unwrap();
        let exposed: Vec<&str> = c.webhook_secrets.iter().map(Secret::expose).collect();
        assert_eq!(exposed, ["whsec_one", "whsec_two"]);
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let c = config(&[
            ("STRIPE_SECRET_KEY", "sk_live_verysecretvalue"),
            ("STRIPE_WEBHOOK_SECRET", "whsec_anothersecret"),
            ("DATABASE_URL", "postgres://tally:hunter2pass@db.example.com:5432/tally"),
        ])
        .unwrap();
        let shown = format!("{c:?}");
        for secret in ["verysecretvalue", "anothersecret", "hunter2pass"] {
            assert!(!shown.contains(secret), "{secret} leaked in {shown}");
        }
        assert!(shown.contains("sk_live_[redacted]"));
        assert!(shown.contains("db.example.com"));
        // A password given as a parameter is redacted too, in Debug and wherever redacted() is shown.
        let c = config(&[(
            "DATABASE_URL",
            "postgres://tally@db.example.com/tally?sslmode=require&password=paramsecret&sslpassword=keysecret",
        )])
        .unwrap();
        let shown = format!("{c:?} {}", c.database_url.redacted());
        assert!(
            !shown.contains("paramsecret") && !shown.contains("keysecret"),
            "{shown}"
        );
        assert!(c.database_url.redacted().contains("sslmode=require"));
        assert!(
            c.database_url.expose().contains("paramsecret"),
            "the real URL still connects"
        );
    }

    #[test]
    fn database_urls_are_checked() {
        assert_eq!(
            config(&[("DATABASE_URL", "mysql://x")]).unwrap_err().variable,
            "DATABASE_URL"
        );
        assert_eq!(
            config(&[("DATABASE_URL", "sqlite://")]).unwrap_err().variable,
            "DATABASE_URL"
        );
        let pg = config(&[("DATABASE_URL", "postgres://u@localhost/tally")]).unwrap();
        assert_eq!(pg.database_url.backend(), Backend::Postgres);
        let custom = config(&[("DATABASE_URL", "sqlite://x.db?mode=ro")]).unwrap();
        assert_eq!(custom.database_url.expose(), "sqlite://x.db?mode=ro");
    }

    #[test]
    fn durations_and_auth_settings() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(43_200)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("0s").is_err() && parse_duration("1w").is_err() && parse_duration("m").is_err());
        let c = config(&[("SESSION_IDLE_TIMEOUT", "5m"), ("LOGIN_MAX_FAILURES", "3")]).unwrap();
        assert_eq!(c.auth.idle_timeout, Duration::from_secs(300));
        assert_eq!(c.auth.absolute_timeout, Duration::from_secs(43_200));
        assert_eq!(c.auth.max_failures, 3);
        assert_eq!(
            config(&[("SESSION_ABSOLUTE_TIMEOUT", "soon")]).unwrap_err().variable,
            "SESSION_ABSOLUTE_TIMEOUT"
        );
        assert_eq!(
            config(&[("LOGIN_MAX_FAILURES", "0")]).unwrap_err().variable,
            "LOGIN_MAX_FAILURES"
        );
        assert!(!c.is_https());
        assert!(config(&[("PUBLIC_BASE_URL", "https://x.example")]).unwrap().is_https());
    }

    #[test]
    fn stripe_rate_limit_follows_the_mode() {
        assert_eq!(config(&[]).unwrap().stripe_rate_limit, 20);
        assert_eq!(
            config(&[("STRIPE_SECRET_KEY", "sk_live_abc")])
                .unwrap()
                .stripe_rate_limit,
            80
        );
        assert_eq!(
            config(&[("STRIPE_MAX_REQUESTS_PER_SECOND", "5")])
                .unwrap()
                .stripe_rate_limit,
            5
        );
        assert_eq!(
            config(&[("STRIPE_MAX_REQUESTS_PER_SECOND", "0")]).unwrap_err().variable,
            "STRIPE_MAX_REQUESTS_PER_SECOND"
        );
    }

    #[test]
    fn refetch_needs_a_key() {
        assert_eq!(
            config(&[("WEBHOOK_REFETCH", "true")]).unwrap_err().variable,
            "WEBHOOK_REFETCH"
        );
        let c = config(&[("WEBHOOK_REFETCH", "true"), ("STRIPE_SECRET_KEY", "sk_test_abc")]).unwrap();
        assert!(c.webhooks.refetch);
        assert!(!config(&[]).unwrap().webhooks.refetch);
        assert_eq!(
            config(&[("WEBHOOK_REFETCH", "maybe")]).unwrap_err().variable,
            "WEBHOOK_REFETCH"
        );
    }

    #[test]
    fn urls_and_addresses_are_checked() {
        assert_eq!(
            config(&[("STRIPE_API_BASE", "ftp://x")]).unwrap_err().variable,
            "STRIPE_API_BASE"
        );
        assert_eq!(
            config(&[("PUBLIC_BASE_URL", "not a url")]).unwrap_err().variable,
            "PUBLIC_BASE_URL"
        );
        assert_eq!(
            config(&[("LISTEN_ADDR", "localhost")]).unwrap_err().variable,
            "LISTEN_ADDR"
        );
        assert_eq!(
            config(&[("TALLY_LOG_FORMAT", "xml")]).unwrap_err().variable,
            "TALLY_LOG_FORMAT"
        );
        let c = config(&[("LISTEN_ADDR", "0.0.0.0:8080"), ("TALLY_LOG_FORMAT", "JSON")]).unwrap();
        assert_eq!(c.listen_addr.port(), 8080);
        assert_eq!(c.log_format, LogFormat::Json);
    }
}
