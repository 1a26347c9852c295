//! Times are Stripe's Unix seconds, shown in UTC.

/// `2026-11-23 16:50 UTC`; an out-of-range value is shown as the raw number rather than a panic.
pub fn format_utc(unix_seconds: i64) -> String {
    match chrono::DateTime::from_timestamp(unix_seconds, 0) {
        Some(t) => t.format("%Y-%m-%d %H:%M UTC").to_string(),
        None => format!("@{unix_seconds}"),
    }
}

/// A link's window as people read it: `since` and `through` are Unix seconds as in the URL
/// (`since` excluded, `through` included): "after 2026-10-31 12:00 UTC, up to 2026-11-30 12:00 UTC".
pub fn window_text(since: &str, through: &str) -> String {
    let at = |t: &str| t.trim().parse::<i64>().ok().map(format_utc);
    match (at(since), at(through)) {
        (Some(a), Some(b)) => format!("after {a}, up to {b}"),
        (Some(a), None) => format!("after {a}"),
        (None, Some(b)) => format!("up to {b}"),
        (None, None) => "any time".to_string(),
    }
}

/// `16:50:07 UTC`.
pub fn format_clock(unix_seconds: i64) -> String {
    match chrono::DateTime::from_timestamp(unix_seconds, 0) {
        Some(t) => t.format("%H:%M:%S UTC").to_string(),
        None => format!("@{unix_seconds}"),
    }
}

/// Says that figures are the previous ones (from `as_of`) while newer ones are computed.
pub fn stale_note(as_of: Option<i64>) -> Option<leptos::prelude::AnyView> {
    use leptos::prelude::*;
    as_of.map(|at| {
        view! {
            <span class="stale muted" data-test="as-of" role="status">
                {format!("As of {}: newer figures are being computed; reload in a moment.", format_clock(at))}
            </span>
        }
        .into_any()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_read_in_utc() {
        assert_eq!(
            super::window_text("1767225600", "1769903999"),
            "after 2026-01-01 00:00 UTC, up to 2026-01-31 23:59 UTC"
        );
        assert_eq!(super::window_text("", "1767225600"), "up to 2026-01-01 00:00 UTC");
        assert_eq!(super::window_text("x", ""), "any time");
    }

    #[test]
    fn formats_in_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_utc(1_795_453_800), "2026-11-23 17:10 UTC");
        assert_eq!(format_utc(i64::MAX), format!("@{}", i64::MAX));
    }
}
