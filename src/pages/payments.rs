use leptos::prelude::*;

use crate::components::empty_state::NoDataYet;

#[component]
pub fn PaymentsPage() -> impl IntoView {
    let explanation = "Charges, refunds and disputes appear here as they happen, with failed payments that need follow-up at the top.";
    view! { <NoDataYet page="Payments" heading="No payments yet" explanation/> }
}
