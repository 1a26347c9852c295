//! What an action said: a status line on success, an alert with the server's message on failure.

use leptos::prelude::*;

/// A server function's error as the admin should read it: the message alone, without the
/// "error running server function" prefix (messages themselves may contain colons).
pub fn error_text(raw: &str) -> String {
    for prefix in ["error running server function: ", "error running server function:"] {
        if let Some(rest) = raw.strip_prefix(prefix) {
            return rest.trim().to_string();
        }
    }
    raw.rsplit_once(": ").map(|(_, m)| m).unwrap_or(raw).to_string()
}

/// The outcome of the last submit of `action`: its error (the redirect after a form post
/// carries it in the URL), or the message it answered with (kept across that redirect in the
/// session, see `server::flash`).
pub fn action_outcome<T>(action: ServerAction<T>) -> Option<Result<String, String>>
where
    T: leptos::server_fn::ServerFn<Output = String, Error = ServerFnError> + Clone + Send + Sync + 'static,
{
    if let Some(result) = action.value().get() {
        return Some(result.map_err(|e| error_text(&e.to_string())));
    }
    #[cfg(feature = "ssr")]
    {
        kept_message(T::PATH).map(Ok)
    }
    #[cfg(not(feature = "ssr"))]
    None
}

/// A message from the server function at `path`, kept across the redirect after a form post for
/// the page the admin returns to (`server::flash` keeps it and puts it in that page's request).
#[cfg(feature = "ssr")]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub path: String,
    pub message: String,
}

/// During a page render: the kept message of the server function at `path`, if the last form
/// post went to it.
#[cfg(feature = "ssr")]
fn kept_message(path: &str) -> Option<String> {
    let parts = use_context::<axum::http::request::Parts>()?;
    parts
        .extensions
        .get::<Flash>()
        .filter(|f| f.path == path)
        .map(|f| f.message.clone())
}

/// The outcome of the last submit of `action`, whose server function answers with a message.
pub fn action_message<T>(action: ServerAction<T>) -> impl IntoView
where
    T: leptos::server_fn::ServerFn<Output = String, Error = ServerFnError> + Clone + Send + Sync + 'static,
{
    move || {
        action_outcome(action).map(|r| match r {
            Ok(msg) => view! { <p class="notice" role="status">{msg}</p> }.into_any(),
            Err(e) => view! { <p class="form-error" role="alert">{e}</p> }.into_any(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn keeps_colons_inside_the_message() {
        assert_eq!(
            error_text("error running server function: Stripe is not configured: set STRIPE_SECRET_KEY."),
            "Stripe is not configured: set STRIPE_SECRET_KEY."
        );
        assert_eq!(error_text("x: Wrong password."), "Wrong password.");
    }
}
