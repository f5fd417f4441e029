//! The management API of the daemon: a versioned JSON-lines protocol over a Unix socket.
//!
//! - [`api`]: the wire types (requests, responses, errors, status/session/stats/plan data);
//! - [`mod@plan`]: what applying a new configuration changes (pure);
//! - [`server`]: the daemon side ([`server::ControlBackend`], [`server::serve`]);
//! - [`client`]: the CLI side (one request, one response);
//! - [`atomic`]: atomic file replacement with rotated backups (`saveconfig`).

pub mod api;
pub mod atomic;
pub mod client;
pub mod plan;
pub mod server;

pub use plan::plan;
