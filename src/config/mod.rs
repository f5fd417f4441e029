//! The typed TOML configuration (the source of truth on disk).
//!
//! Data only: parsing, defaults and validation. The registry turns a [`ValidatedConfig`]
//! into running targets. Every key is `snake_case`; unknown keys are errors.
//!
//! [`parse`] / [`load`] check everything that can be checked without touching the
//! filesystem (names, references, ranges, the demo-mode security rule) and report
//! `file:line: key.path: message`; [`to_toml`] writes a model back out.
//!
//! ```toml
//! [daemon]
//! portals = ["0.0.0.0:3260"]
//! state_dir = "/var/lib/rustiscsi"
//!
//! [backstores.vm1]
//! kind = "fileio"
//! path = "/srv/iscsi/vm1.img"
//! size = "100G"
//!
//! [targets."iqn.2026-11.org.example.nas:storage"]
//! luns = [{ lun = 0, backstore = "vm1" }]
//!
//! [targets."iqn.2026-11.org.example.nas:storage".acls."iqn.2005-03.org.open-iscsi:client1"]
//! mapped_luns = [{ lun = 0 }]
//! chap = { user = "client1", password_file = "/run/credentials/rustiscsi.service/client1" }
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backstore::{BackstoreKind, CacheMode};

mod size;
pub use size::Size;

/// The whole configuration file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Daemon-wide settings.
    #[serde(default)]
    pub daemon: Daemon,
    /// iSCSI negotiation limits the target offers.
    #[serde(default)]
    pub iscsi: IscsiLimits,
    /// Discovery (SendTargets) session authentication.
    #[serde(default)]
    pub discovery: Discovery,
    /// Storage objects by name.
    #[serde(default)]
    pub backstores: BTreeMap<String, BackstoreConfig>,
    /// Targets by IQN.
    #[serde(default)]
    pub targets: BTreeMap<String, TargetConfig>,
}

/// `[daemon]`: listeners, state, control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Daemon {
    /// Listening portals (`IP:port`; IPv6 as `[::]:3260`).
    pub portals: Vec<SocketAddr>,
    /// Where stable LUN identities (serial, NAA) are kept.
    pub state_dir: PathBuf,
    /// Unix socket of the management API (root only).
    pub control_socket: PathBuf,
    /// Permit `demo_mode` targets on portals that are not loopback (logs a warning).
    pub allow_demo_mode_on_network: bool,
    /// Upper bound on connections of normal sessions (full feature phase). Logins beyond
    /// it are refused with "out of resources".
    pub max_connections: u32,
    /// Connections still in the login phase, counted apart from sessions; when all are
    /// taken, the oldest is closed to admit a new one, so idle TCP connections cannot
    /// lock out real logins.
    pub max_login_connections: u32,
    /// Discovery sessions, counted apart from normal sessions; when all are taken, the
    /// oldest is closed to admit a new one.
    pub max_discovery_sessions: u32,
    /// A connection that has not finished login within this many seconds is closed.
    pub login_timeout_secs: u32,
    /// Once a PDU has started to arrive, all of it must arrive within this many seconds
    /// or the connection is closed (a stalled or trickling peer).
    pub pdu_timeout_secs: u32,
    /// A connection whose sends make no progress for this many seconds is closed (a peer
    /// that stopped reading, a zero window); also its TCP user timeout.
    pub send_timeout_secs: u32,
    /// TCP keepalive: idle seconds before the first probe (then every 10 s, 3 probes);
    /// 0 turns keepalive off. Finds an initiator that vanished without a RST.
    pub tcp_keepalive_secs: u32,
    /// Memory for command data buffers (write data being collected, read data waiting to
    /// be sent) of all sessions together. Commands wait for it; nothing fails.
    pub buffer_memory: Size,
    /// The same budget for one session (at most `buffer_memory`).
    pub session_buffer_memory: Size,
    /// Seconds of silence after which the target pings the initiator (NOP-In); 0 = never.
    pub nop_interval_secs: u32,
    /// Seconds to wait for the ping's answer before the connection is dropped.
    pub nop_timeout_secs: u32,
    /// Failed authentications per source address per minute before logins are refused.
    pub auth_failures_per_minute: u32,
    /// Prometheus text endpoint (`IP:port`), off when absent.
    pub metrics_listen: Option<SocketAddr>,
    /// Set by the NixOS module: `saveconfig` refuses and names this option instead.
    pub managed_by: Option<String>,
}

impl Default for Daemon {
    fn default() -> Self {
        Self {
            portals: vec![SocketAddr::from(([127, 0, 0, 1], 3260))],
            state_dir: PathBuf::from("/var/lib/rustiscsi"),
            control_socket: PathBuf::from("/run/rustiscsi/control.sock"),
            allow_demo_mode_on_network: false,
            max_connections: 256,
            max_login_connections: 64,
            max_discovery_sessions: 32,
            login_timeout_secs: 15,
            pdu_timeout_secs: 15,
            send_timeout_secs: 30,
            tcp_keepalive_secs: 30,
            buffer_memory: Size(1 << 30),
            session_buffer_memory: Size(128 << 20),
            nop_interval_secs: 10,
            nop_timeout_secs: 15,
            auth_failures_per_minute: 10,
            metrics_listen: None,
            managed_by: None,
        }
    }
}

/// `[iscsi]`: what the target offers in operational negotiation (RFC 7143 §13).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IscsiLimits {
    /// MaxRecvDataSegmentLength the target declares (512..=16777215).
    pub max_recv_data_segment_length: u32,
    /// Upper bound for MaxBurstLength.
    pub max_burst_length: u32,
    /// Upper bound for FirstBurstLength.
    pub first_burst_length: u32,
    /// Upper bound for MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
    /// Offer ImmediateData=Yes.
    pub immediate_data: bool,
    /// Require InitialR2T=Yes (the initiator may not send unsolicited Data-Out).
    pub initial_r2t: bool,
    /// Commands the initiator may have outstanding (the CmdSN window).
    pub queue_depth: u32,
    /// Digests the target accepts, in preference order: `"CRC32C"`, `"None"`.
    pub header_digest: Vec<String>,
    /// Data digests the target accepts, in preference order.
    pub data_digest: Vec<String>,
}

impl Default for IscsiLimits {
    /// The negotiation offer's own defaults ([`crate::iscsi::login::Offer`]), so the two
    /// cannot drift apart.
    fn default() -> Self {
        let o = crate::iscsi::login::Offer::default();
        Self {
            max_recv_data_segment_length: o.max_recv_data_segment_length,
            max_burst_length: o.max_burst_length,
            first_burst_length: o.first_burst_length,
            max_outstanding_r2t: o.max_outstanding_r2t,
            immediate_data: o.immediate_data,
            initial_r2t: o.initial_r2t,
            queue_depth: 128,
            header_digest: vec!["None".into(), "CRC32C".into()],
            data_digest: vec!["None".into(), "CRC32C".into()],
        }
    }
}

/// `[backstores.<name>]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackstoreConfig {
    /// `block`, `fileio` or `ramdisk`.
    pub kind: BackstoreKind,
    /// Device or file path (block, fileio).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Size (`"100G"`, `"512M"` or bytes): required for ramdisk; fileio creates/grows to it.
    #[serde(default)]
    pub size: Option<Size>,
    /// Logical block size for fileio/ramdisk: 512 or 4096.
    #[serde(default = "default_block_size")]
    pub block_size: u32,
    /// Write-back caching; write-through when false.
    #[serde(default)]
    pub write_cache: bool,
    /// How I/O reaches the file or device: `"direct"` (O_DIRECT, bypassing the page
    /// cache) or `"buffered"`. Default: direct for block, buffered for fileio; not for
    /// ramdisk.
    #[serde(default)]
    pub cache: Option<CacheMode>,
    /// Pinned unit serial number (VPD 0x80), printable ASCII; derived and persisted in
    /// the state dir when absent.
    #[serde(default)]
    pub serial: Option<String>,
    /// Pinned NAA designator (VPD 0x83) as `naa.` + 16 or 32 hex digits (NAA type 2, 3,
    /// 5 or 6); derived and persisted in the state dir when absent.
    #[serde(default)]
    pub wwn: Option<String>,
    /// T10 vendor identification of the INQUIRY data (at most 8 printable ASCII).
    #[serde(default)]
    pub vendor: Option<String>,
    /// Product identification of the INQUIRY data (at most 16 printable ASCII).
    #[serde(default)]
    pub product: Option<String>,
}

fn default_block_size() -> u32 {
    512
}

/// `[targets."<iqn>"]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Target portal group tag of the target's one portal group, which is reachable on
    /// every `daemon.portals` entry. Ignored when `portal_groups` is set.
    #[serde(default = "default_tpg")]
    pub tpg: u16,
    /// Whether the target accepts logins (LIO's TPG `enable`): a disabled target is not
    /// listed by SendTargets and refuses every login.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Several target portal groups, each on its own portals (a subset of
    /// `daemon.portals`). Empty: one group tagged `tpg` on every daemon portal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub portal_groups: Vec<PortalGroupConfig>,
    /// The target's LUNs.
    #[serde(default)]
    pub luns: Vec<LunConfig>,
    /// Any initiator may log in and sees every LUN read-write (no ACLs). On a portal that
    /// is not loopback this also needs `daemon.allow_demo_mode_on_network`.
    #[serde(default)]
    pub demo_mode: bool,
    /// Demo mode serves every LUN read-only (LIO's `demo_mode_write_protect`).
    #[serde(default)]
    pub demo_mode_read_only: bool,
    /// Target-wide default credentials for ACLs that set none (and for demo mode).
    #[serde(default)]
    pub auth: AuthConfig,
    /// Source networks (CIDR) allowed to log in to this target; empty = any.
    #[serde(default)]
    pub allowed_networks: Vec<ipnet::IpNet>,
    /// Node ACLs by initiator IQN.
    #[serde(default)]
    pub acls: BTreeMap<String, AclConfig>,
    /// Negotiation settings for logins to this target, over the daemon-wide `[iscsi]`.
    #[serde(default, skip_serializing_if = "TargetIscsi::is_empty")]
    pub iscsi: TargetIscsi,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            tpg: default_tpg(),
            enabled: true,
            portal_groups: Vec::new(),
            luns: Vec::new(),
            demo_mode: false,
            demo_mode_read_only: false,
            auth: AuthConfig::default(),
            allowed_networks: Vec::new(),
            acls: BTreeMap::new(),
            iscsi: TargetIscsi::default(),
        }
    }
}

impl TargetConfig {
    /// The target's portal groups as `(tag, portals, enabled)`: the configured ones, or
    /// the implicit one (`tpg` on every daemon portal).
    pub fn groups(&self, daemon_portals: &[SocketAddr]) -> Vec<(u16, Vec<SocketAddr>, bool)> {
        if self.portal_groups.is_empty() {
            vec![(self.tpg, daemon_portals.to_vec(), self.enabled)]
        } else {
            self.portal_groups
                .iter()
                .map(|g| (g.tag, g.portals.clone(), g.enabled && self.enabled))
                .collect()
        }
    }

    /// The portals of this target's groups that are reachable from the network (not
    /// loopback), each once: where demo mode would let any initiator in.
    pub fn network_portals(&self, daemon_portals: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = Vec::new();
        for (_, portals, _) in self.groups(daemon_portals) {
            for a in portals {
                if !is_loopback(a.ip()) && !v.contains(&a) {
                    v.push(a);
                }
            }
        }
        v
    }
}

fn default_tpg() -> u16 {
    1
}

fn default_true() -> bool {
    true
}

/// `[[targets."<iqn>".portal_groups]]`: one target portal group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalGroupConfig {
    /// Target portal group tag (1..=65535), unique within the target.
    pub tag: u16,
    /// The portals of this group, each also listed in `daemon.portals`.
    pub portals: Vec<SocketAddr>,
    /// Whether the group accepts logins.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// `[targets."<iqn>".iscsi]`: negotiation settings of one target; each key absent takes
/// the daemon-wide `[iscsi]` value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetIscsi {
    /// MaxRecvDataSegmentLength the target declares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recv_data_segment_length: Option<u32>,
    /// Upper bound for MaxBurstLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_burst_length: Option<u32>,
    /// Upper bound for FirstBurstLength.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_burst_length: Option<u32>,
    /// Upper bound for MaxOutstandingR2T.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_outstanding_r2t: Option<u32>,
    /// Offer ImmediateData=Yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immediate_data: Option<bool>,
    /// Require InitialR2T=Yes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_r2t: Option<bool>,
    /// Header digests accepted, in preference order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_digest: Option<Vec<String>>,
    /// Data digests accepted, in preference order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_digest: Option<Vec<String>>,
}

impl TargetIscsi {
    /// Whether no key is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The daemon-wide limits with this target's keys over them.
    pub fn over(&self, base: &IscsiLimits) -> IscsiLimits {
        let mut l = base.clone();
        macro_rules! take {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { l.$f = v.clone(); } )* };
        }
        take!(
            max_recv_data_segment_length,
            max_burst_length,
            first_burst_length,
            max_outstanding_r2t,
            immediate_data,
            initial_r2t,
            header_digest,
            data_digest
        );
        l
    }
}

/// One LUN of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LunConfig {
    /// LUN number on the target (defaults to the position in the list).
    #[serde(default)]
    pub lun: Option<u64>,
    /// Name of the backstore.
    pub backstore: String,
}

/// `[targets."<iqn>".acls."<initiator iqn>"]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclConfig {
    /// LUNs this initiator sees; empty = every target LUN, same numbers, read-write.
    #[serde(default)]
    pub mapped_luns: Vec<MappedLunConfig>,
    /// CHAP the initiator must answer (overrides the target default).
    #[serde(default)]
    pub chap: Option<ChapConfig>,
    /// Credentials the target answers with (mutual CHAP). Needs `chap` in the same ACL
    /// (an ACL that sets either replaces the target's `auth` as a whole) and a different
    /// `password_file` than `chap`.
    #[serde(default)]
    pub mutual_chap: Option<ChapConfig>,
    /// Source networks (CIDR) this initiator may log in from; empty = any.
    #[serde(default)]
    pub allowed_networks: Vec<ipnet::IpNet>,
}

/// One mapped LUN of an ACL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappedLunConfig {
    /// LUN number the initiator sees.
    pub lun: u64,
    /// Target LUN behind it (defaults to `lun`).
    #[serde(default)]
    pub target_lun: Option<u64>,
    /// Refuse writes (DATA PROTECT) and report WP in MODE SENSE.
    #[serde(default)]
    pub read_only: bool,
}

/// A CHAP identity: user name and a file holding the secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChapConfig {
    /// CHAP_N (non-empty).
    pub user: String,
    /// File with the secret (trailing newline ignored); re-read on reload, never logged.
    /// Must be absolute; validation never opens it (it may not exist at Nix build time).
    pub password_file: PathBuf,
}

/// CHAP settings of a target or of discovery.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// One-way CHAP: the initiator proves itself.
    #[serde(default)]
    pub chap: Option<ChapConfig>,
    /// Mutual CHAP: the target proves itself too (needs `chap`, with another secret file).
    #[serde(default)]
    pub mutual_chap: Option<ChapConfig>,
}

/// `[discovery]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Discovery {
    /// Discovery-session CHAP (none when absent).
    #[serde(default)]
    pub chap: Option<ChapConfig>,
    /// Discovery-session mutual CHAP (needs `chap`, with another secret file).
    #[serde(default)]
    pub mutual_chap: Option<ChapConfig>,
}

mod default;
pub mod names;
mod overrides;
pub mod portals;
pub mod spans;
mod validate;
pub use default::{DEMO_BACKSTORE, DEMO_SIZE, DEMO_TARGET, embedded_default, to_toml};
pub use names::check_iscsi_name;
pub use overrides::Overrides;
pub use validate::{
    ConfigError, EMBEDDED_ORIGIN, MAX_LUNS, ValidatedConfig, check_naa, is_loopback, load, parse,
    parse_all, validate, validate_all,
};

#[cfg(test)]
mod tests;
