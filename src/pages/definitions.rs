//! `/definitions`: how each figure is computed — docs/metrics.md, rendered (headings with anchors,
//! paragraphs, lists, bold), so the page and the documentation cannot disagree.

use leptos::prelude::*;
use leptos_meta::Title;

const SOURCE: &str = include_str!("../../docs/metrics.md");

/// `**bold**` and `*italic*` into spans; everything else as text.
fn inline(text: &str) -> AnyView {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('*') {
        let bold = rest[start..].starts_with("**");
        let marker = if bold { "**" } else { "*" };
        let after = &rest[start + marker.len()..];
        let Some(end) = after.find(marker) else { break };
        parts.push(view! { {rest[..start].to_string()} }.into_any());
        let inner = after[..end].to_string();
        parts.push(if bold {
            view! { <strong>{inner}</strong> }.into_any()
        } else {
            view! { <em>{inner}</em> }.into_any()
        });
        rest = &after[end + marker.len()..];
    }
    parts.push(view! { {rest.replace('`', "")} }.into_any());
    parts.into_iter().collect_view().into_any()
}

#[component]
pub fn DefinitionsPage() -> impl IntoView {
    let mut blocks = Vec::new();
    for block in SOURCE.split("\n\n") {
        let block = block.trim();
        if let Some(h) = block.strip_prefix("# ") {
            blocks.push(view! { <div class="page-header"><h1>{h.to_string()}</h1></div> }.into_any());
        } else if let Some(h) = block.strip_prefix("## ") {
            let (title, id) = match h.split_once(" {#") {
                Some((t, id)) => (t.to_string(), id.trim_end_matches('}').to_string()),
                None => (h.to_string(), String::new()),
            };
            blocks.push(view! { <h2 id=id>{title}</h2> }.into_any());
        } else if block.starts_with("- ") {
            let items = block
                .split("\n- ")
                .map(|i| view! { <li>{inline(&i.trim_start_matches("- ").replace('\n', " "))}</li> })
                .collect_view();
            blocks.push(view! { <ul>{items}</ul> }.into_any());
        } else if !block.is_empty() {
            blocks.push(view! { <p>{inline(&block.replace('\n', " "))}</p> }.into_any());
        }
    }
    view! {
        <Title text="Metrics"/>
        <article class="card prose">{blocks}</article>
    }
}
