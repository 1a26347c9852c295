//! The audit log as pages show it.

use serde::{Deserialize, Serialize};

pub const PAGE_SIZE: i64 = 100;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub entries: Vec<AuditRow>,
    pub actions: Vec<String>,
    /// Pass as `before` to get the next (older) page.
    pub next_before: Option<i64>,
}

/// One audit entry as pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: i64,
    pub admin_email: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<String>,
}
