//! Server side of authentication: password hashing, the session store, login/logout handlers,
//! the middleware that guards pages and server functions, and role checks.

pub mod device;
pub mod guard;
pub mod handlers;
pub mod middleware;
pub mod password;
pub mod session_store;

pub use guard::{account_scope, current_admin, require_account, require_role, resolve_scope, RequestInfo, ScopeError};

/// Session key holding the signed-in admin.
pub const SESSION_KEY: &str = "auth";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tally_session";

/// What the session remembers about a login.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SessionAuth {
    pub admin_id: i64,
    /// When the admin logged in (Unix milliseconds): the absolute timeout counts from here.
    pub login_at_ms: i64,
    /// Last time the idle timer was pushed forward (Unix milliseconds).
    pub seen_at_ms: i64,
}
