//! # rustiscsi
//!
//! A userspace iSCSI target: `rustiscsid` exports backstores (block devices, sparse files,
//! RAM) as SCSI disks over iSCSI (RFC 7143), and `rustiscsi` manages it.
//!
//! ## Design overview
//!
//! ```text
//!  TCP ─► server::connection ──► iscsi::wire (codec, digests)
//!              │                  iscsi::login (negotiation, pure)
//!              │                  iscsi::session (CmdSN window, R2T, Data-In split)
//!              ▼
//!          scsi::execute(nexus, cmd) ──► scsi::{spc,sbc} ──► backstore::Backstore
//!              ▲
//!  registry (targets, LUN maps, ACLs; swapped whole on reload) ◄── config (TOML, validated)
//! ```
//!
//! Command data lives in [`iobuf::IoBuf`] (aligned, pooled) from the socket to the
//! backstore and back, shared by every layer.
//!
//! Layer rules: `iscsi`, `scsi` and `backstore` never import `registry`, `server`, `config`,
//! `control` or `cli`; `iscsi` has no tokio. The server is the only module that opens sockets
//! or spawns tasks. SCSI conditions are never Rust errors: they are responses carrying sense.

pub mod backstore;
pub mod cli;
pub mod config;
pub mod control;
pub mod daemon_args;
pub mod iobuf;
pub mod iscsi;
pub mod registry;
pub mod scsi;
pub mod server;
