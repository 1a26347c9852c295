//! Stripe → Tally: verify (`signature`), store durably (`inbox`), acknowledge (`handler`), then apply
//! asynchronously (`worker`) through one projector per resource (`projection`).

pub mod handler;
pub mod inbox;
pub mod projection;
pub mod signature;
pub mod worker;
