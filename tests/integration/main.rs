//! All integration tests in one binary: one link instead of one per file keeps the shared target
//! dir small (CI machines have limited disk) and the build fast on 2 cores.

#[macro_use]
mod common;

mod accounts;
mod app;
mod architecture;
mod assets;
mod auth;
mod billing;
mod cache;
mod cli;
mod coupons;
mod crash;
mod customers;
mod dashboard;
mod drilldown;
mod forms;
mod fuzz;
mod leptos_config;
mod metrics;
mod ordering;
mod scale;
mod stripe_client;
mod stripe_sync_page;
mod sums;
mod sync;
mod webhooks;
