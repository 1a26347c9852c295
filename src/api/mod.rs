//! Server functions, grouped by the page that calls them. Each is thin: check the caller's role,
//! check input, call a service, map errors to messages an admin can act on.

pub mod admins;
pub mod audit;
pub mod auth;
pub mod system;

/// A message for an error that must not reach the page (details go to the log).
#[cfg(feature = "ssr")]
pub(crate) fn internal(context: &str, error: impl std::fmt::Display) -> leptos::prelude::ServerFnError {
    tracing::error!(error = %error, "{context}");
    leptos::prelude::ServerFnError::new("The database did not answer; try again in a moment.")
}
