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
