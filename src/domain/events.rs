//! Received Stripe events as the Webhooks page shows them.

use serde::{Deserialize, Serialize};

/// Where a stored event is: waiting to be applied, being applied (the one-by-one path's lease),
/// applied, ignored (not something Tally projects, or not this account's), or given up after its
/// retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    Pending,
    Processing,
    Applied,
    Ignored,
    Failed,
}

impl EventStatus {
    pub const ALL: [EventStatus; 5] = [
        EventStatus::Pending,
        EventStatus::Processing,
        EventStatus::Applied,
        EventStatus::Ignored,
        EventStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Processing => "processing",
            EventStatus::Applied => "applied",
            EventStatus::Ignored => "ignored",
            EventStatus::Failed => "failed",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        EventStatus::ALL.into_iter().find(|s| s.as_str() == value)
    }

    /// Whether an admin may send the event through the worker again: replay what was applied or
    /// ignored, retry what failed (waiting ones are on their way already).
    pub fn can_requeue(self) -> bool {
        matches!(self, EventStatus::Applied | EventStatus::Ignored | EventStatus::Failed)
    }
}

pub const PAGE_SIZE: i64 = 100;

/// One received event as the Webhooks page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRow {
    pub id: String,
    pub event_type: String,
    pub created: i64,
    pub received_at: i64,
    pub status: EventStatus,
    /// The account it is filed under, when not the environment's (docs/accounts.md).
    #[serde(default)]
    pub account_id: Option<String>,
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

impl std::fmt::Display for EventStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_what_they_write() {
        for status in EventStatus::ALL {
            assert_eq!(EventStatus::parse(status.as_str()), Some(status));
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{}\"", status.as_str())
            );
        }
        assert_eq!(EventStatus::parse("done"), None);
        assert!(EventStatus::Failed.can_requeue() && !EventStatus::Pending.can_requeue());
    }
}
