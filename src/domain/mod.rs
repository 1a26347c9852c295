//! Pure types and logic shared by the server and the browser.

pub mod accounts;
pub mod admins;
pub mod api_keys;
pub mod audit;
pub mod calendar;
pub mod customers;
pub mod events;
pub mod lists;
pub mod money;
pub mod payments;
pub mod pricing;
pub mod resource;
pub mod revenue;
pub mod status;
pub mod sync_report;
pub mod system;
