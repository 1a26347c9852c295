use leptos::prelude::*;

use crate::components::empty_state::NoDataYet;

#[component]
pub fn SubscriptionsPage() -> impl IntoView {
    let explanation = "Every subscription Stripe reports shows up here by status (active, trialing, past due, canceled) with its plan and monthly value.";
    view! { <NoDataYet page="Subscriptions" heading="No subscriptions yet" explanation/> }
}
