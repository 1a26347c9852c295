//! Role checks for server functions and pages. The middleware has already put the signed-in
//! admin (if any) into the request's extensions; these read it back through Leptos's context.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::StatusCode;
use leptos::prelude::{use_context, ServerFnError};
use leptos_axum::ResponseOptions;

use crate::domain::admins::{CurrentAdmin, Role};

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

/// The client's address as Tally believes it (`client_address`), set on each request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// Who sent a request: the socket's peer, unless the peer is a trusted proxy; then the
/// right-most `X-Forwarded-For` entry that is not a trusted proxy (entries left of it were
/// written by the client, who can write anything). All entries trusted: the left-most one.
pub fn client_address(
    peer: std::net::IpAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let entries: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for entry in entries.iter().rev() {
        // An entry that is not an address ends the walk: the hop right of it is the client.
        let Some(ip) = parse_forwarded(entry) else { break };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

/// An `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_forwarded(entry: &str) -> Option<std::net::IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    entry.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

impl RequestInfo {
    pub fn from_parts(extensions: &axum::http::Extensions, headers: &axum::http::HeaderMap) -> Self {
        Self {
            client_addr: extensions.get::<ClientAddr>().map(|c| c.0.to_string()).or_else(|| {
                extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string())
            }),
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        }
    }

    /// The current request's origin, inside a server function or a page render.
    pub fn current() -> Self {
        use_context::<Parts>()
            .map(|p| Self::from_parts(&p.extensions, &p.headers))
            .unwrap_or_default()
    }
}

/// The admin making the current request, if signed in.
pub fn current_admin() -> Option<CurrentAdmin> {
    use_context::<Parts>().and_then(|p| p.extensions.get::<CurrentAdmin>().cloned())
}

fn set_status(status: StatusCode) {
    if let Some(response) = use_context::<ResponseOptions>() {
        response.set_status(status);
    }
}

/// The signed-in admin if their role allows `required`; otherwise 401 or 403 with a message.
pub fn require_role(required: Role) -> Result<CurrentAdmin, ServerFnError> {
    match current_admin() {
        None => {
            set_status(StatusCode::UNAUTHORIZED);
            Err(ServerFnError::new("Your session has ended. Log in again."))
        }
        Some(admin) if admin.role.allows(required) => Ok(admin),
        Some(_) => {
            set_status(StatusCode::FORBIDDEN);
            Err(ServerFnError::new(format!(
                "This needs the {required} role. Ask an owner for access."
            )))
        }
    }
}

/// Why `?account=` was refused.
#[derive(Debug)]
pub enum ScopeError {
    /// `me` may not see that account (403).
    Forbidden,
    /// Tally knows no such account (404).
    Unknown,
    Db(crate::db::DbError),
}

impl ScopeError {
    pub fn status(&self) -> StatusCode {
        match self {
            ScopeError::Forbidden => StatusCode::FORBIDDEN,
            ScopeError::Unknown => StatusCode::NOT_FOUND,
            ScopeError::Db(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// What the admin reads (a database error's detail goes to the log).
    pub fn message(&self) -> &'static str {
        match self {
            ScopeError::Forbidden => "You do not have access to this Stripe account. Ask an owner for access.",
            ScopeError::Unknown => {
                "No such Stripe account in Tally. Pick one in the account menu, or add it in Settings → Stripe accounts."
            }
            ScopeError::Db(e) => {
                tracing::error!(error = %e, "reading the Stripe accounts failed");
                "The database did not answer; try again in a moment."
            }
        }
    }
}

/// The accounts a read by `me` covers: `account` as `?account=` gives it (`acct_…`, `main` for the
/// environment's account, `all` or nothing for every account `me` may see). Owners see every
/// account; an admin or viewer limited to some accounts sees those (403 for another).
pub async fn resolve_scope(
    db: &crate::db::Db,
    me: &CurrentAdmin,
    account: Option<&str>,
) -> Result<crate::domain::accounts::Scope, ScopeError> {
    use crate::domain::accounts::{Scope, ALL_PARAM};
    let limits = if me.role == Role::Owner {
        Vec::new()
    } else {
        crate::db::accounts::limits(db, me.id).await.map_err(ScopeError::Db)?
    };
    let allowed = if limits.is_empty() {
        Scope::All
    } else {
        Scope::only(limits)
    };
    let wanted = account.map(str::trim).filter(|a| !a.is_empty() && *a != ALL_PARAM);
    let Some(wanted) = wanted else {
        return Ok(allowed);
    };
    match crate::db::accounts::storage_key(db, wanted)
        .await
        .map_err(ScopeError::Db)?
    {
        Some(key) if allowed.covers(&key) => Ok(Scope::only([key])),
        Some(_) => Err(ScopeError::Forbidden),
        None => Err(ScopeError::Unknown),
    }
}

/// `resolve_scope` for a server function: the error sets the response's status.
pub async fn account_scope(
    db: &crate::db::Db,
    me: &CurrentAdmin,
    account: Option<&str>,
) -> Result<crate::domain::accounts::Scope, ServerFnError> {
    resolve_scope(db, me, account).await.map_err(|e| {
        set_status(e.status());
        ServerFnError::new(e.message())
    })
}

/// Whether `me` may act on rows of account `account` (a storage key): owners always; others when
/// they are not limited, or limited to it. Otherwise the 403 error to return.
pub async fn require_account(db: &crate::db::Db, me: &CurrentAdmin, account: &str) -> Result<(), ServerFnError> {
    if account_scope(db, me, None).await?.covers(account) {
        Ok(())
    } else {
        Err(forbidden_account())
    }
}

fn forbidden_account() -> ServerFnError {
    set_status(StatusCode::FORBIDDEN);
    ServerFnError::new(ScopeError::Forbidden.message())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xff(values: &[&str]) -> axum::http::HeaderMap {
        let mut h = axum::http::HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_client_is_the_right_most_untrusted_hop() {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        // A peer that is not a proxy: its header is ignored, whatever it says.
        assert_eq!(
            client_address(ip("203.0.113.9"), &xff(&["1.1.1.1"]), &trusted),
            ip("203.0.113.9")
        );
        // Behind the proxy: the right-most entry not of a proxy; what the client wrote left of it
        // does not count.
        assert_eq!(
            client_address(ip("10.0.0.2"), &xff(&["6.6.6.6, 198.51.100.7, 10.0.0.5"]), &trusted),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), &xff(&["6.6.6.6", "198.51.100.7:4431"]), &trusted),
            ip("198.51.100.7")
        );
        // No header: the proxy itself. Garbage ends the walk at the last proxy.
        assert_eq!(client_address(ip("10.0.0.2"), &xff(&[]), &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_address(ip("10.0.0.2"), &xff(&["6.6.6.6, nonsense, 10.0.0.9"]), &trusted),
            ip("10.0.0.9")
        );
        assert_eq!(
            client_address(ip("::1"), &xff(&["[2001:db8::1]:443"]), &trusted),
            ip("2001:db8::1")
        );
        // Nothing trusted: the peer, always.
        assert_eq!(client_address(ip("10.0.0.2"), &xff(&["1.1.1.1"]), &[]), ip("10.0.0.2"));
    }
}
