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
