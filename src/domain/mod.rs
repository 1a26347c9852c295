//! Pure types and logic shared by the server and the browser.

pub mod admins;
pub mod api_key;
pub mod calendar;
pub mod lists;
pub mod metrics;
pub mod money;
pub mod resource;
pub mod status;
pub mod sync_report;
