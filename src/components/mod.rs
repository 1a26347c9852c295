//! Building blocks shared by pages.

pub mod chart;
pub mod empty_state;
pub mod error_page;
pub mod layout;
pub mod list_view;
pub mod notice;
pub mod query;
pub mod settings_tabs;
pub mod table;
pub mod time;
