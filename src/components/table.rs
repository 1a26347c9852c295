//! Tables: a header row and the rows given as children, scrolling sideways on narrow screens.

use leptos::prelude::*;

#[component]
pub fn DataTable(
    headers: &'static [&'static str],
    /// Extra classes on the table (tests and styles select by them).
    #[prop(optional)]
    class: &'static str,
    /// Indexes of columns holding amounts, aligned right.
    #[prop(optional)]
    numeric: &'static [usize],
    children: Children,
) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class=format!("table {class}")>
                <thead>
                    <tr>
                        {headers
                            .iter()
                            .enumerate()
                            .map(|(i, h)| view! { <th class:num=numeric.contains(&i)>{*h}</th> })
                            .collect_view()}
                    </tr>
                </thead>
                <tbody>{children()}</tbody>
            </table>
        </div>
    }
}

/// A card with a heading and a table of rows, or "None." when there are none.
#[component]
pub fn TableCard(
    title: &'static str,
    headers: &'static [&'static str],
    #[prop(optional)] numeric: &'static [usize],
    /// Extra classes on the table: `cards` stacks rows as cards on a phone (its cells then need
    /// `data-label`).
    #[prop(optional)]
    class: &'static str,
    empty: bool,
    children: Children,
) -> impl IntoView {
    view! {
        <section class="card">
            <h2>{title}</h2>
            {if empty {
                view! { <p class="muted">"None."</p> }.into_any()
            } else {
                view! { <DataTable headers numeric class>{children()}</DataTable> }.into_any()
            }}
        </section>
    }
}
