//! Shown when a page cannot be rendered. Messages come from our own server functions, which log
//! the details and return only what an admin can act on.

use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn ErrorPage(errors: ArcRwSignal<Errors>) -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    }
    let messages = move || {
        errors
            .get()
            .into_iter()
            .map(|(_, e)| view! { <li>{clean_message(&e.to_string())}</li> })
            .collect_view()
    };
    view! {
        <Title text="Something went wrong"/>
        <section class="card error-page" role="alert">
            <h1>"Something went wrong"</h1>
            <p class="muted">"Tally could not show this page. Nothing was changed."</p>
            <ul class="error-list">{messages}</ul>
            <p>
                <a class="button" href="">"Try again"</a>
                " "
                <a class="button secondary" href="/">"Back to the overview"</a>
            </p>
        </section>
    }
}

/// Server function errors arrive as "error running server function: …"; keep only the message.
fn clean_message(raw: &str) -> String {
    super::notice::error_text(raw)
}
