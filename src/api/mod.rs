//! Server functions, grouped by the page that calls them. Each is thin: read state, check input,
//! call a service, map errors to messages an admin can act on.

pub mod system;
