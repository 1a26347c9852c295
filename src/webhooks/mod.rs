//! Stripe → Tally, the receiving half: verify (`signature`), store durably (`inbox`), acknowledge
//! (`handler`), then apply asynchronously (`worker`) through the projection (`crate::projection`).

pub mod endpoints;
pub mod handler;
pub mod inbox;
pub mod signature;
pub mod worker;
