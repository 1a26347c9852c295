//! A list page's rows as the pages show them (computed on the server by `crate::lists`).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cell {
    /// As shown.
    pub text: String,
    /// For CSV: plain decimals, ISO times.
    pub raw: String,
    pub href: Option<String>,
    pub numeric: bool,
    /// Shown as a status badge of this tone (`good`, `bad`, `wait`, `neutral`).
    #[serde(default)]
    pub badge: Option<String>,
    /// A time ("2026-11-09 11:26 UTC"): it may break between the date and the time, nowhere else.
    #[serde(default)]
    pub time: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Total {
    pub currency: String,
    pub count: i64,
    /// The sum of the list's amount column, formatted (per currency).
    pub amount: Option<String>,
    /// The same sum in minor units of `currency` (0 for a list without an amount).
    #[serde(default)]
    pub sum: i64,
    /// What the amount is, when a tab adds up another column than the list's usual one.
    #[serde(default)]
    pub measure: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListResult {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// `after` for the next page.
    pub next: Option<String>,
    pub totals: Vec<Total>,
    /// Set when the totals are the previous ones (from this time) while new ones are computed.
    pub totals_as_of: Option<i64>,
    pub tabs: Vec<String>,
    pub sorts: Vec<String>,
}

/// `month|1|2|Pro` (a subscription's largest item: interval, interval count, items, product
/// name, packed by the lists' SQL) → "Pro · monthly + 1 more item".
pub fn plan(packed: &str) -> String {
    let mut parts = packed.splitn(4, '|');
    let (interval, every, items, name) = (
        parts.next().unwrap_or_default(),
        parts.next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(1),
        parts.next().and_then(|n| n.parse::<i64>().ok()).unwrap_or(1),
        parts.next().unwrap_or_default(),
    );
    let period = match (interval, every) {
        ("", _) => String::new(),
        ("day", 1) => "daily".into(),
        (i, 1) => format!("{i}ly"),
        (i, n) => format!("every {n} {i}s"),
    };
    let mut out = [name, period.as_str()]
        .into_iter()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    if items > 1 {
        let more = items - 1;
        out.push_str(&format!(" + {more} more item{}", if more == 1 { "" } else { "s" }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_read_as_name_interval_and_items() {
        assert_eq!(plan("month|1|1|Pro"), "Pro · monthly");
        assert_eq!(plan("year|1|2|Pro"), "Pro · yearly + 1 more item");
        assert_eq!(plan("month|3|4|Team"), "Team · every 3 months + 3 more items");
        assert_eq!(plan("day|1|1|Metered"), "Metered · daily");
        assert_eq!(plan("|1|1|prod_1"), "prod_1");
        assert_eq!(plan("month|1|1|A|B plan"), "A|B plan · monthly");
        assert_eq!(plan(""), "");
    }
}
