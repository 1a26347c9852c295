//! Who is signed in, for the page frame.

use leptos::prelude::*;

use crate::domain::admins::CurrentAdmin;

/// The signed-in admin, or `None` on public pages.
#[server(endpoint = "whoami")]
pub async fn whoami() -> Result<Option<CurrentAdmin>, ServerFnError> {
    Ok(crate::auth::server::current_admin())
}
