//! Stripe's status and reason values as people read them: `needs_response` → "Needs response",
//! with a tone for the badge that shows them.

/// `past_due` → "Past due", `requested_by_customer` → "Requested by customer".
pub fn label(value: &str) -> String {
    let spaced = value.trim().replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// The badge tone of a status: `good`, `bad`, `wait` or `neutral` (CSS classes `tone-…`).
pub fn tone(value: &str) -> &'static str {
    match value {
        "succeeded" | "paid" | "active" | "won" | "applied" | "complete" | "converted" => "good",
        "failed"
        | "lost"
        | "past_due"
        | "unpaid"
        | "uncollectible"
        | "needs_response"
        | "warning_needs_response"
        | "incomplete_expired"
        | "canceled"
        | "deleted" => "bad",
        "pending"
        | "open"
        | "trialing"
        | "under_review"
        | "warning_under_review"
        | "incomplete"
        | "processing"
        | "requires_action"
        | "paused" => "wait",
        _ => "neutral",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_read_as_words() {
        assert_eq!(label("needs_response"), "Needs response");
        assert_eq!(label("requested_by_customer"), "Requested by customer");
        assert_eq!(label("active"), "Active");
        assert_eq!(label(""), "");
        assert_eq!(tone("needs_response"), "bad");
        assert_eq!(tone("succeeded"), "good");
        assert_eq!(tone("trialing"), "wait");
        assert_eq!(tone("something_new"), "neutral");
    }
}
