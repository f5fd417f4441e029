//! The iSCSI fabric (RFC 7143), sans-IO: wire codec, login negotiation, discovery.
//! No tokio and no sockets here; the server feeds bytes in and sends what comes out.

pub mod login;
pub mod serial;
pub mod wire;
