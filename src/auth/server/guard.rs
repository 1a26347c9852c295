//! Role checks for server functions and pages. The middleware has already put the signed-in
//! admin (if any) into the request's extensions; these read it back through Leptos's context.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::StatusCode;
use leptos::prelude::{use_context, ServerFnError};
use leptos_axum::ResponseOptions;

use crate::auth::{CurrentAdmin, Role};

/// Where a request came from, for the audit log.
#[derive(Clone, Debug, Default)]
pub struct RequestInfo {
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

impl RequestInfo {
    pub fn from_parts(extensions: &axum::http::Extensions, headers: &axum::http::HeaderMap) -> Self {
        Self {
            client_addr: extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
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
