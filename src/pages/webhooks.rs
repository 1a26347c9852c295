use leptos::prelude::*;

use crate::components::empty_state::NoDataYet;

#[component]
pub fn WebhooksPage() -> impl IntoView {
    let explanation = "Every event Stripe sends is stored here with its processing status, so nothing is lost and failures can be retried.";
    view! { <NoDataYet page="Webhooks" heading="No events received yet" explanation/> }
}
