//! The HTTP server: pages, server functions, health endpoints, request logging, graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, Request, StatusCode};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use leptos::config::LeptosOptions;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, handle_server_fns_with_context, LeptosRoutes};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::services::ServeDir;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};
use tracing::Level;

use crate::app::{shell, App};
use crate::auth::server::session_store::DbSessionStore;
use crate::auth::server::{handlers, middleware, SESSION_COOKIE};
use crate::config::Config;
use crate::db::{Db, DbError};
use crate::state::AppState;

pub mod flash;
mod prometheus;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Why the server could not start; each is one line naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("cannot set up the Stripe client: {0}")]
    Stripe(#[from] crate::stripe::StripeApiError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// The router with every route and layer, ready to serve.
pub fn router(state: AppState) -> Router {
    let routes = route_list();
    let context = {
        let state = state.clone();
        move || provide_context(state.clone())
    };
    let page_shell = {
        let options = state.leptos_options.clone();
        move || shell((*options).clone())
    };
    let sessions = SessionManagerLayer::new(DbSessionStore::new(state.db.clone()))
        .with_name(SESSION_COOKIE)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.config.is_https())
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(tower_sessions::cookie::time::Duration::seconds(
            state.config.auth.idle_timeout.as_secs() as i64,
        )));
    // Stripe's deliveries carry no cookies and need no session, login or browser checks: their
    // route joins after those layers (it is the busiest route, thousands of requests a second).
    let webhook = Router::new()
        .route(
            "/stripe/webhook",
            post(crate::webhooks::handler::receive).layer(axum::extract::DefaultBodyLimit::max(
                crate::webhooks::handler::MAX_BODY_BYTES,
            )),
        )
        .route_layer(from_fn(crate::observability::track_http));
    let bundle = bundle(&state.leptos_options);
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/login", post(handlers::login))
        .route("/logout", post(handlers::logout))
        .nest("/api/v1", crate::billing::api_v1::router())
        .route("/billing/portal", get(crate::billing::portal_link::open))
        .route("/export/{file}", get(crate::lists::export::export))
        .route("/metrics", get(prometheus::export))
        // Server functions answer POST only: none of them changes state on a GET.
        .route("/api/{*fn_name}", post(server_fn_handler))
        .leptos_routes_with_context(&state, routes, context.clone(), page_shell)
        .fallback(leptos_axum::file_and_error_handler_with_context::<AppState, _>(
            context, shell,
        ))
        .route_layer(from_fn(crate::observability::track_http))
        // Layers run outside-in from the bottom of this list: request id, logging, compression,
        // security headers, cross-site refusal, session, login requirement, a form's kept
        // message, then the route.
        .layer(from_fn(flash::take))
        .layer(from_fn(flash::keep))
        .layer(from_fn_with_state(state.clone(), middleware::require_login))
        .layer(sessions)
        .layer(from_fn_with_state(state.clone(), middleware::refuse_cross_site))
        .layer(from_fn(middleware::security_headers))
        .layer(from_fn_with_state(state.clone(), middleware::client_address))
        // The bundle: no session or login needed, served before any of that is looked up.
        .nest_service("/pkg", bundle)
        // Pages and JSON gzip-compressed when the browser accepts it (the bundle comes
        // precompressed and is left alone: it already has a Content-Encoding).
        .layer(CompressionLayer::new())
        .merge(webhook)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(|req: &Request<Body>| {
                            let request_id = req
                                .headers()
                                .get(&REQUEST_ID)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("-");
                            // The path only: query strings may carry ids a customer should not see in logs.
                            tracing::info_span!(
                                "http",
                                method = %req.method(),
                                path = %req.uri().path(),
                                request_id = %request_id,
                            )
                        })
                        .on_response(DefaultOnResponse::new().level(Level::INFO)),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
        .with_state(state)
}

/// The compiled bundle under `/pkg`: the precompressed `.br` or `.gz` file when the browser
/// accepts it (a release build made with `--precompress` has them), cached for good when its name
/// carries a content hash, revalidated otherwise.
fn bundle(options: &LeptosOptions) -> Router {
    let dir = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(from_fn(bundle_cache_headers))
        .layer(from_fn(middleware::security_headers))
}

async fn bundle_cache_headers(request: Request<Body>, next: axum::middleware::Next) -> Response {
    use axum::http::header::{HeaderValue, CACHE_CONTROL, VARY};
    let hashed = request
        .uri()
        .path()
        .rsplit('/')
        .next()
        .is_some_and(crate::site::is_hashed);
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let headers = response.headers_mut();
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static(if hashed {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            }),
        );
        headers.insert(VARY, HeaderValue::from_static("accept-encoding"));
    }
    response
}

/// The app's routes, generated once per process. Generating them renders the app with resource
/// loading switched off process-wide (leptos_server's global `SuppressResourceLoad`), so a page
/// rendering at that moment on another server in the same process would wait forever (leptos
/// issue #4773). Generating once, before any server can serve, avoids that window.
fn route_list() -> Vec<leptos_axum::AxumRouteListing> {
    static ROUTES: std::sync::OnceLock<Vec<leptos_axum::AxumRouteListing>> = std::sync::OnceLock::new();
    ROUTES.get_or_init(|| generate_route_list(App)).clone()
}

async fn server_fn_handler(State(state): State<AppState>, request: Request<Body>) -> impl IntoResponse {
    handle_server_fns_with_context(move || provide_context(state.clone()), request).await
}

/// Liveness: the process answers.
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// Readiness: the database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.db.readiness().await;
    let ready = readiness.is_ready();
    let body = Json(json!({
        "status": if ready { "ready" } else { "not_ready" },
        "database": {
            "backend": state.db.backend().as_str(),
            "reachable": readiness.database,
        },
        "migrations": {
            "applied": readiness.migrations_applied,
            "expected": readiness.migrations_expected,
        },
    }));
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// A server that is running in the background (used by `tally serve` and by the tests).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub db: Db,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight finish, then closes the database.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let result = match self.task.await {
            Ok(result) => result,
            Err(join) => Err(std::io::Error::other(join.to_string())),
        };
        self.db.close().await;
        result
    }

    /// Runs until `signal` resolves, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        tracing::info!("shutting down: finishing requests in flight");
        self.shutdown().await
    }
}

/// Connects to the database, applies migrations, binds `config.listen_addr` (port 0 picks a free
/// port) and serves in the background.
pub async fn start(config: Config, leptos_options: LeptosOptions) -> Result<RunningServer, StartError> {
    let stripe = crate::stripe::from_config_split(&config)?;
    start_with_stripe(config, leptos_options, stripe).await
}

/// As `start`, with the Stripe clients given (for admins, the worker and sync; for anonymous
/// visitors) instead of built from the configuration: how tests put their own `StripeApi` in.
pub async fn start_with_stripe(
    config: Config,
    leptos_options: LeptosOptions,
    (stripe, stripe_public): (crate::stripe::SharedApi, crate::stripe::SharedApi),
) -> Result<RunningServer, StartError> {
    let db = Db::connect_with(&config.database_url, config.sqlite_sync).await?;
    db.migrate().await?;
    crate::projection::prepare(&db, config.mrr_discounts).await?;
    // The running sums folded before the first request reads them (then every second).
    crate::revenue::sums::compact(&db).await?;
    let listener = TcpListener::bind(config.listen_addr)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen_addr,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.listen_addr,
        source,
    })?;
    let mut leptos_options = leptos_options;
    leptos_options.site_addr = addr;
    let events = Arc::new(tokio::sync::Notify::new());
    let worker = crate::webhooks::worker::Worker {
        db: db.clone(),
        wake: events.clone(),
        max_attempts: config.webhooks.max_attempts.unwrap_or(i64::MAX),
        retry_for_secs: config.webhooks.retry_for.as_secs() as i64,
        refetch: config.webhooks.refetch.then(|| stripe.clone()),
    };
    let fetch_with = config.stripe_key.is_some().then(|| stripe.clone());
    let link_secret = match &config.link_secret {
        Some(secret) => secret.clone(),
        None => crate::config::Secret::new(
            crate::db::settings::get_or_create(&db, "link_secret", || {
                format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple())
            })
            .await?,
        ),
    };
    let api_limiter = Arc::new(crate::state::KeyLimiter::new(config.api_rate_limit));
    let public_limiter = Arc::new(crate::state::KeyLimiter::per_window(
        config.public_rate_limit,
        std::time::Duration::from_secs(60),
    ));
    let inbox = Arc::new(crate::webhooks::inbox::GroupCommit::start(
        db.clone(),
        config.stripe_mode().map(|m| m.is_live()),
        events.clone(),
    ));
    let account_secrets = Arc::new(crate::webhooks::endpoints::AccountSecrets::new(
        db.clone(),
        config.secrets_key.clone(),
    ));
    let state = AppState {
        leptos_options: leptos_options.into(),
        config: Arc::new(config),
        db: db.clone(),
        events,
        stripe,
        link_secret: Arc::new(link_secret),
        api_limiter,
        public_limiter,
        stripe_public,
        account_secrets,
        inbox,
    };
    let (state_db, state_stripe, state_config, state_events) = (
        state.db.clone(),
        state.stripe.clone(),
        state.config.clone(),
        state.events.clone(),
    );
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let (tx, rx) = oneshot::channel::<()>();
    let cleanup = tokio::spawn(delete_expired_sessions(DbSessionStore::new(db.clone()), db.clone()));
    let run_worker = state_config.webhooks.worker;
    let fetches = tokio::spawn(crate::sync::fetches::run(db.clone(), fetch_with, state_config.clone()));
    let worker = tokio::spawn(async move {
        if run_worker {
            worker.run().await
        } else {
            tracing::info!("WEBHOOK_WORKER=off: events are stored here and applied by another instance");
        }
    });
    let environment_account = tokio::spawn(register_environment_account(
        state_db.clone(),
        state_stripe.clone(),
        state_config.stripe_mode().map(|m| m.is_live()),
    ));
    let reconcile = tokio::spawn(crate::sync::background::reconcile_on_schedule(
        crate::sync::background::JobContext {
            account: String::new(),
            db: state_db.clone(),
            stripe: state_stripe,
            config: state_config,
            events: state_events,
        },
    ));
    let task = tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        cleanup.abort();
        worker.abort();
        fetches.abort();
        reconcile.abort();
        environment_account.abort();
        result
    });
    Ok(RunningServer {
        addr,
        db,
        shutdown: Some(tx),
        task,
    })
}

/// Records the account of `STRIPE_SECRET_KEY` as the first account (`GET /v1/account`), so it has
/// an id and a name beside the accounts added later; tried again with growing pauses until Stripe
/// answers. Nothing else waits for it: that account's events need no id (they are its own).
async fn register_environment_account(db: Db, stripe: crate::stripe::SharedApi, livemode: Option<bool>) {
    let Some(livemode) = livemode else {
        return;
    };
    let mut pause = std::time::Duration::from_secs(30);
    loop {
        match crate::stripe::ops::retrieve_account(stripe.as_ref()).await {
            Ok(answer)
                if answer
                    .body
                    .get("id")
                    .and_then(|v| v.as_str())
                    .is_some_and(|id| id.starts_with("acct_")) =>
            {
                match crate::db::accounts::register_environment(&db, &answer.body, livemode).await {
                    Ok(account) => {
                        tracing::info!(account = %account.id, "the environment's Stripe account is registered");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "could not record the environment's Stripe account"),
                }
            }
            Ok(_) => tracing::warn!("Stripe's answer to GET /v1/account names no account"),
            Err(e) => tracing::warn!(
                kind = e.kind.as_str(),
                "could not ask Stripe which account the key belongs to"
            ),
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(3600));
    }
}

/// Removes expired sessions and login counters that no longer count every ten minutes (loading
/// a session already ignores it once expired; a stale counter already counts as zero).
async fn delete_expired_sessions(store: DbSessionStore, db: Db) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        every.tick().await;
        match store.delete_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "expired sessions removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove expired sessions"),
        }
        match crate::db::throttle::delete_stale(&db, crate::db::now_unix()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(deleted = n, "stale login counters removed"),
            Err(e) => tracing::warn!(error = %e, "could not remove stale login counters"),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed when this is called, not
/// when the future is first polled, so a signal that arrives during start-up is not lost.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(interrupt) => {},
                _ = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
