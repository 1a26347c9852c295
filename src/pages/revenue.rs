use leptos::prelude::*;

use crate::components::empty_state::NoDataYet;

#[component]
pub fn RevenuePage() -> impl IntoView {
    let explanation = "MRR, ARR, churn and revenue per month are computed from your subscriptions and invoices once they have arrived from Stripe.";
    view! { <NoDataYet page="Revenue" heading="No revenue data yet" explanation/> }
}
