//! Payments, invoices, refunds and disputes: one list each, under one section.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use crate::components::list_view::ListView;

#[component]
fn MoneyTabs() -> impl IntoView {
    view! {
        <nav class="tabs section-tabs" aria-label="Money">
            <A href="/payments" exact=true>"Payments"</A>
            <A href="/invoices">"Invoices"</A>
            <A href="/refunds">"Refunds"</A>
            <A href="/disputes">"Disputes"</A>
        </nav>
    }
}

#[component]
pub fn PaymentsPage() -> impl IntoView {
    view! {
        <Title text="Payments"/>
        <div class="page-header"><h1>"Payments"</h1></div>
        <MoneyTabs/>
        <ListView list="payments" tabs=&[
            ("succeeded", "Succeeded"),
            ("failed", "Failed"),
            ("refunded", "Refunded"),
            ("disputed", "Disputed"),
        ]/>
    }
}

#[component]
pub fn InvoicesPage() -> impl IntoView {
    view! {
        <Title text="Invoices"/>
        <div class="page-header"><h1>"Invoices"</h1></div>
        <MoneyTabs/>
        <ListView list="invoices" tabs=&[
            ("paid", "Paid"),
            ("failed", "Failed, needing follow-up"),
            ("open", "Open"),
            ("void", "Void"),
            ("uncollectible", "Uncollectible"),
        ]/>
    }
}

#[component]
pub fn RefundsPage() -> impl IntoView {
    view! {
        <Title text="Refunds"/>
        <div class="page-header"><h1>"Refunds"</h1></div>
        <MoneyTabs/>
        <ListView list="refunds" tabs=&[
            ("succeeded", "Succeeded"),
            ("pending", "Pending"),
            ("failed", "Failed"),
            ("counted", "Succeeded or pending"),
        ]/>
    }
}

#[component]
pub fn DisputesPage() -> impl IntoView {
    view! {
        <Title text="Disputes"/>
        <div class="page-header"><h1>"Disputes"</h1></div>
        <MoneyTabs/>
        <p class="muted">"Open disputes need evidence before their due date: they are listed soonest deadline first, with the days left to respond."</p>
        <ListView list="disputes" tabs=&[("open", "Open"), ("needs_response", "Needs response"), ("won", "Won"), ("lost", "Lost")]/>
    }
}
