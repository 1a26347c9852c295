use leptos::prelude::*;

use crate::components::empty_state::NoDataYet;

#[component]
pub fn CustomersPage() -> impl IntoView {
    let explanation = "Customers appear here as Stripe sends customer events or a backfill imports them: email, name, subscriptions, payments and lifetime value.";
    view! { <NoDataYet page="Customers" heading="No customers yet" explanation/> }
}
