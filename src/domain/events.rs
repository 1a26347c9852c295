//! Received Stripe events as the Webhooks page shows them.

use serde::{Deserialize, Serialize};

pub const PAGE_SIZE: i64 = 100;

/// One received event as the Webhooks page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub received_at: i64,
    pub status: String,
    pub attempts: i64,
    pub object_id: Option<String>,
    pub livemode: bool,
    pub mode_mismatch: bool,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventList {
    pub events: Vec<EventRow>,
    /// `before` for the next (older) page: "received_at:id".
    pub next_before: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDetail {
    pub event: EventRow,
    /// The payload, pretty-printed.
    pub payload: String,
}
