//! Calendar months in UTC, as the figures count them: a month's start, its number and its label.

pub const DAY: i64 = 86_400;

/// The start (Unix seconds, UTC) of the month containing `t`, and of the month `offset` months
/// later (negative: earlier).
pub fn month_start(t: i64, offset: i32) -> i64 {
    use chrono::{Datelike, TimeZone, Utc};
    let d = Utc.timestamp_opt(t, 0).single().unwrap_or_default();
    let total = d.year() * 12 + d.month0() as i32 + offset;
    let (y, m) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .map(|x| x.timestamp())
        .unwrap_or(0)
}

/// The month of a time (UTC) as one number: year × 12 + month − 1.
pub fn month_number(t: i64) -> i64 {
    use chrono::Datelike;
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| i64::from(d.year()) * 12 + i64::from(d.month0()))
        .unwrap_or(0)
}

/// `YYYY-MM` of a time.
pub fn month_label(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m").to_string())
        .unwrap_or_default()
}
