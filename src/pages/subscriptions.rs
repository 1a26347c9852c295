//! Subscriptions by status, with their MRR.

use leptos::prelude::*;
use leptos_meta::Title;

use crate::components::list_view::ListView;

#[component]
pub fn SubscriptionsPage() -> impl IntoView {
    view! {
        <Title text="Subscriptions"/>
        <div class="page-header"><h1>"Subscriptions"</h1></div>
        <ListView list="subscriptions" tabs=&[
            ("active", "Active"),
            ("trialing", "Trialing"),
            ("past_due", "Past due"),
            ("canceled", "Canceled"),
            ("incomplete", "Incomplete"),
            ("trial_ended", "Trial ended"),
        ]/>
    }
}
