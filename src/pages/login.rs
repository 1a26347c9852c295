//! The login page: a plain form posted to `/login`, so it works with JavaScript off.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

fn message(error: Option<&str>, retry: Option<&str>) -> Option<String> {
    match error? {
        "invalid" => Some("Email or password is incorrect.".into()),
        "locked" => {
            let minutes = retry.and_then(|r| r.parse::<i64>().ok()).unwrap_or(1);
            Some(format!(
                "Too many failed attempts. Try again in {minutes} minute{}.",
                if minutes == 1 { "" } else { "s" }
            ))
        }
        "unavailable" => Some("Tally could not reach its database. Try again in a moment.".into()),
        _ => None,
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let query = use_query_map();
    let params = query.get_untracked();
    let error = message(params.get("error").as_deref(), params.get("retry").as_deref());
    let logged_out = params.get("logged_out").is_some();
    let next = params.get("next").unwrap_or_default();
    view! {
        <Title text="Log in"/>
        <section class="card auth-card">
            <h1>"Log in to Tally"</h1>
            {logged_out.then(|| view! { <p class="notice">"You have logged out."</p> })}
            {error.map(|e| view! { <p class="form-error" role="alert">{e}</p> })}
            <form method="post" action="/login" class="stack">
                <input type="hidden" name="next" value=next/>
                <label>
                    "Email"
                    <input type="email" name="email" autocomplete="username" required autofocus/>
                </label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <button type="submit" class="button">"Log in"</button>
            </form>
        </section>
    }
}
