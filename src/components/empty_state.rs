use leptos::prelude::*;
use leptos_meta::Title;

/// A list page before its data has arrived: what will appear here and how to make it appear.
#[component]
pub fn NoDataYet(page: &'static str, heading: &'static str, explanation: &'static str) -> impl IntoView {
    view! {
        <Title text=page/>
        <div class="page-header">
            <h1>{page}</h1>
        </div>
        <section class="card empty-state">
            <h2>{heading}</h2>
            <p class="muted">{explanation}</p>
            <p>"Connect Stripe from the " <a href="/">"overview"</a> " to start receiving data."</p>
        </section>
    }
}
