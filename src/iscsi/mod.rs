//! The iSCSI fabric (RFC 7143), sans-IO: wire codec, login negotiation, discovery.
//! No tokio and no sockets here; the server feeds bytes in and sends what comes out.
//! [`session`] is the full feature phase as a state machine; the server drives it.

pub mod login;
pub mod serial;
pub mod session;
pub mod wire;
