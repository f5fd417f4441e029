//! The control protocol: versioned JSON lines over a Unix socket.
//!
//! One request per line, one response per line, each an envelope carrying
//! [`API_VERSION`]:
//!
//! ```text
//! → {"version":2,"request":"status"}
//! ← {"version":2,"ok":{"kind":"status","data":{...}}}
//! → {"version":2,"request":{"apply":{"config":{...},"dry_run":true}}}
//! ← {"version":2,"error":{"code":"invalid","message":"..."}}
//! ```
//!
//! Every change goes through [`Request::Apply`] with a whole [`Config`]: the CLI fetches the
//! running config and its revision ([`Request::GetConfig`]), edits a copy, validates it and
//! sends it back with that revision. The daemon serialises changes: one made against an
//! older revision is refused ([`ErrorCode::Conflict`]), never applied over another. It
//! answers with a [`ChangeReport`]: what it did (or, on `dry_run`, would do).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::backstore::BackstoreKind;
use crate::config::{ChapConfig, Config};

/// Version of this protocol; a request with another version is answered with
/// [`ErrorCode::VersionMismatch`].
pub const API_VERSION: u32 = 2;

/// Largest request line the daemon reads (1 MiB, newline included).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// Largest response line the client reads (64 MiB: status of a large installation).
pub const MAX_RESPONSE_BYTES: usize = 64 << 20;

/// A request line: `{"version":2,"request":...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    /// Protocol version ([`API_VERSION`]).
    pub version: u32,
    /// The request.
    pub request: Request,
}

/// What the client asks for.
// Apply carries a whole Config; requests are built once per command, so no boxing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Request {
    /// The running configuration as a tree, with host facts: [`Response::Status`].
    Status,
    /// Logged-in sessions: [`Response::Sessions`].
    Sessions,
    /// Per-LUN and per-session counters: [`Response::Stats`].
    Stats,
    /// The running configuration and the file it came from: [`Response::Config`].
    GetConfig,
    /// Replace the running configuration (validated again by the daemon):
    /// [`Response::Change`]. With `dry_run`, only computes the plan.
    Apply {
        /// The complete new configuration.
        config: Config,
        /// Compute the plan, change nothing.
        #[serde(default)]
        dry_run: bool,
        /// The revision the configuration was edited from ([`Response::Config`]); the
        /// change is refused with [`ErrorCode::Conflict`] when another was installed
        /// since. `None` replaces whatever runs.
        #[serde(default)]
        base_revision: Option<u64>,
        /// Carry out changes the rules refuse otherwise ([`Plan::needs_force`]).
        #[serde(default)]
        force: bool,
    },
    /// Re-read the daemon's configuration file, apply its command-line overrides, and
    /// apply it: [`Response::Change`].
    Reload {
        /// Compute the plan, change nothing.
        #[serde(default)]
        dry_run: bool,
        /// Carry out changes the rules refuse otherwise.
        #[serde(default)]
        force: bool,
    },
    /// Ask a session to log out (Async Message), then close it: [`Response::LoggedOut`].
    Logout {
        /// The session's TSIH.
        tsih: u16,
    },
    /// Write the running configuration as TOML (atomically, with rotated backups) to
    /// `path` or, when absent, to the daemon's configuration file: [`Response::Saved`].
    SaveConfig {
        /// Destination (absolute); the daemon's config file when absent.
        #[serde(default)]
        path: Option<PathBuf>,
    },
}

impl Request {
    /// Short name of the request, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::Sessions => "sessions",
            Request::Stats => "stats",
            Request::GetConfig => "get_config",
            Request::Apply { .. } => "apply",
            Request::Reload { .. } => "reload",
            Request::SaveConfig { .. } => "save_config",
            Request::Logout { .. } => "logout",
        }
    }
}

/// A response line: `{"version":2,"ok":{...}}` or `{"version":2,"error":{...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseEnvelope {
    /// Protocol version of the daemon ([`API_VERSION`]).
    pub version: u32,
    /// The answer, when the request succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<Response>,
    /// Why the request failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ControlError>,
}

impl ResponseEnvelope {
    /// Wraps a result in an envelope of the current version.
    pub fn from_result(r: Result<Response, ControlError>) -> Self {
        match r {
            Ok(resp) => Self {
                version: API_VERSION,
                ok: Some(resp),
                error: None,
            },
            Err(e) => Self {
                version: API_VERSION,
                ok: None,
                error: Some(e),
            },
        }
    }

    /// Unwraps the envelope (an envelope with neither field is an [`ErrorCode::Internal`]).
    pub fn into_result(self) -> Result<Response, ControlError> {
        match (self.ok, self.error) {
            (_, Some(e)) => Err(e),
            (Some(r), None) => Ok(r),
            (None, None) => Err(ControlError::new(
                ErrorCode::Internal,
                "response carries neither a result nor an error",
            )),
        }
    }
}

/// Typed answers.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(Box<StatusReport>),
    /// Answer to [`Request::Sessions`].
    Sessions(Vec<SessionInfo>),
    /// Answer to [`Request::Stats`].
    Stats(Stats),
    /// Answer to [`Request::GetConfig`].
    Config {
        /// The running configuration.
        config: Box<Config>,
        /// The file it was loaded from (none for the embedded default).
        path: Option<PathBuf>,
        /// Its revision (send it back with an edit: `Request::Apply::base_revision`).
        revision: u64,
    },
    /// Answer to [`Request::Apply`] and [`Request::Reload`].
    Change(Box<ChangeReport>),
    /// Answer to [`Request::Logout`]: the session told to log out.
    LoggedOut(SessionRef),
    /// Answer to [`Request::SaveConfig`].
    Saved {
        /// The file written.
        path: PathBuf,
        /// Backups kept (`FILE.1` is the previous version).
        backups: Vec<PathBuf>,
    },
}

/// Error classes (in the spirit of tgtadm's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The named object (target, backstore, ACL, file) does not exist.
    NotFound,
    /// The object already exists.
    Exists,
    /// The request or the configuration it carries is invalid (bad JSON, failed
    /// validation, oversized request).
    Invalid,
    /// Not permitted: wrong peer credentials, configuration managed by NixOS, in use.
    Refused,
    /// The client speaks another protocol version.
    VersionMismatch,
    /// The change was made against a configuration revision that is no longer running:
    /// another change was installed first. Nothing was changed; edit again.
    Conflict,
    /// The daemon failed (I/O error, backstore could not be opened, ...).
    Internal,
}

impl ErrorCode {
    /// The wire name (`not_found`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::NotFound => "not_found",
            ErrorCode::Exists => "exists",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Refused => "refused",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Internal => "internal",
        }
    }
}

/// A failed request: a class and a message for humans.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// Error class.
    pub code: ErrorCode,
    /// What went wrong, in a sentence.
    pub message: String,
}

impl ControlError {
    /// An error of class `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    /// [`ErrorCode::NotFound`].
    pub fn not_found(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, m)
    }
    /// [`ErrorCode::Exists`].
    pub fn exists(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Exists, m)
    }
    /// [`ErrorCode::Invalid`].
    pub fn invalid(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, m)
    }
    /// [`ErrorCode::Refused`].
    pub fn refused(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Refused, m)
    }
    /// [`ErrorCode::Internal`].
    pub fn internal(m: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, m)
    }
}

/// What `status` shows: the running configuration as a tree, plus runtime facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    /// Daemon version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The configuration file (none for the embedded default).
    pub config_file: Option<PathBuf>,
    /// `daemon.managed_by` (e.g. the NixOS option), when set.
    pub managed_by: Option<String>,
    /// Revision of the running configuration.
    #[serde(default)]
    pub revision: u64,
    /// The listeners as they are (bound, listening, accepting), not as configured.
    pub portals: Vec<PortalStatus>,
    /// Backstores, by name.
    pub backstores: Vec<BackstoreStatus>,
    /// Targets, by IQN.
    pub targets: Vec<TargetStatus>,
    /// Discovery-session CHAP.
    pub discovery_auth: AuthStatus,
    /// Facts about the host.
    pub host: HostInfo,
}

/// One portal listener in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalStatus {
    /// The configured portal.
    pub portal: SocketAddr,
    /// The address the socket is bound to (from the kernel); none when not bound.
    pub bound: Option<SocketAddr>,
    /// `[::]` taking IPv4 too.
    pub dual_stack: bool,
    /// The socket is listening and its accept loop runs without error.
    pub accepting: bool,
    /// Connections accepted since it started.
    pub accepted: u64,
    /// The last accept error, or why it is not bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One portal group of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalGroupStatus {
    /// Target portal group tag.
    pub tag: u16,
    /// Its portals.
    pub portals: Vec<SocketAddr>,
    /// Accepts logins.
    pub enabled: bool,
}

/// One backstore in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackstoreStatus {
    /// Name in the configuration.
    pub name: String,
    /// Kind of storage.
    pub kind: BackstoreKind,
    /// File or device (none for ramdisk).
    pub path: Option<PathBuf>,
    /// Size in bytes as opened (or as configured when not open).
    pub size_bytes: Option<u64>,
    /// Logical block size in use.
    pub block_size: u32,
    /// Write-back caching.
    pub write_cache: bool,
    /// Unit serial number (VPD 0x80), when known.
    pub serial: Option<String>,
    /// NAA WWN (VPD 0x83) as hex, when known.
    pub naa: Option<String>,
    /// Why the backstore is not serving (open failure), if so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `healthy`, `failing` (I/O errors) or `offline` (its LUNs answer NOT READY); none
    /// when not running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::backstore::health::State>,
    /// Failed I/O commands (read, write, flush, discard) since the daemon started.
    #[serde(default)]
    pub io_errors: u64,
}

/// One target in [`StatusReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Target IQN.
    pub iqn: String,
    /// Target portal group tag (of the first group).
    pub tpg: u16,
    /// Portal groups.
    #[serde(default)]
    pub portal_groups: Vec<PortalGroupStatus>,
    /// Accepts logins.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Any initiator may log in.
    pub demo_mode: bool,
    /// Demo mode is read-only.
    #[serde(default)]
    pub demo_mode_read_only: bool,
    /// LUNs, by number.
    pub luns: Vec<LunStatus>,
    /// Node ACLs, by initiator.
    pub acls: Vec<AclStatus>,
    /// Target-wide CHAP defaults.
    pub auth: AuthStatus,
    /// Source networks allowed (CIDR); empty = any.
    #[serde(default)]
    pub allowed_networks: Vec<String>,
    /// Logged-in sessions on this target.
    #[serde(default)]
    pub sessions: u32,
}

fn yes() -> bool {
    true
}

/// One LUN of a target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LunStatus {
    /// LUN number.
    pub lun: u64,
    /// Backstore behind it.
    pub backstore: String,
}

/// One ACL of a target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AclStatus {
    /// Initiator IQN.
    pub initiator: String,
    /// LUNs the initiator sees (resolved: an empty config list shows every target LUN).
    pub mapped_luns: Vec<MappedLunStatus>,
    /// CHAP user the initiator must answer as (ACL's own, or inherited from the target).
    pub chap_user: Option<String>,
    /// CHAP user the target answers with (mutual CHAP).
    pub mutual_chap_user: Option<String>,
}

/// One mapped LUN of an ACL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappedLunStatus {
    /// LUN number the initiator sees.
    pub lun: u64,
    /// Target LUN behind it.
    pub target_lun: u64,
    /// Writes refused.
    pub read_only: bool,
}

/// CHAP settings, user names only (secrets never leave the daemon).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthStatus {
    /// One-way CHAP user, when set.
    pub chap_user: Option<String>,
    /// Mutual CHAP user, when set.
    pub mutual_chap_user: Option<String>,
}

impl AuthStatus {
    fn from_chap(chap: Option<&ChapConfig>, mutual: Option<&ChapConfig>) -> Self {
        Self {
            chap_user: chap.map(|c| c.user.clone()),
            mutual_chap_user: mutual.map(|c| c.user.clone()),
        }
    }
}

/// Facts about the host, for `status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name.
    pub hostname: String,
    /// Total memory in bytes.
    pub mem_total: u64,
    /// Available memory in bytes.
    pub mem_available: u64,
    /// Load average over 1 minute.
    pub load1: f64,
    /// Load average over 5 minutes.
    pub load5: f64,
    /// Load average over 15 minutes.
    pub load15: f64,
}

impl HostInfo {
    /// Reads the facts from `/proc` (fields stay zero/empty where unreadable).
    pub fn collect() -> Self {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self::from_proc(hostname, &meminfo, &loadavg)
    }

    /// Builds the facts from the text of `/proc/meminfo` and `/proc/loadavg`.
    pub fn from_proc(hostname: String, meminfo: &str, loadavg: &str) -> Self {
        let kib = |key: &str| -> u64 {
            meminfo
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .map_or(0, |k| k * 1024)
        };
        let mut loads = loadavg
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(0.0));
        let mut next = || loads.next().unwrap_or(0.0);
        Self {
            hostname,
            mem_total: kib("MemTotal"),
            mem_available: kib("MemAvailable"),
            load1: next(),
            load5: next(),
            load15: next(),
        }
    }
}

impl StatusReport {
    /// A report built from a configuration alone: sizes as configured, no identities,
    /// no session counts, uptime 0, host facts from `/proc`. The daemon starts from this
    /// and fills in what it knows at run time.
    pub fn from_config(config: &Config, config_file: Option<PathBuf>) -> Self {
        let backstores = config
            .backstores
            .iter()
            .map(|(name, b)| BackstoreStatus {
                name: name.clone(),
                kind: b.kind,
                path: b.path.clone(),
                size_bytes: b.size.map(|s| s.0),
                block_size: b.block_size,
                write_cache: b.write_cache,
                serial: None,
                naa: None,
                error: None,
                health: None,
                io_errors: 0,
            })
            .collect();
        let targets = config
            .targets
            .iter()
            .map(|(iqn, t)| {
                let luns: Vec<LunStatus> = crate::control::plan::target_luns(t)
                    .into_iter()
                    .map(|(lun, backstore)| LunStatus { lun, backstore })
                    .collect();
                let acls = t
                    .acls
                    .iter()
                    .map(|(initiator, a)| {
                        let mapped_luns = if a.mapped_luns.is_empty() {
                            luns.iter()
                                .map(|l| MappedLunStatus {
                                    lun: l.lun,
                                    target_lun: l.lun,
                                    read_only: false,
                                })
                                .collect()
                        } else {
                            a.mapped_luns
                                .iter()
                                .map(|m| MappedLunStatus {
                                    lun: m.lun,
                                    target_lun: m.target_lun.unwrap_or(m.lun),
                                    read_only: m.read_only,
                                })
                                .collect()
                        };
                        let own = a.chap.is_some() || a.mutual_chap.is_some();
                        let auth = if own {
                            AuthStatus::from_chap(a.chap.as_ref(), a.mutual_chap.as_ref())
                        } else {
                            AuthStatus::from_chap(t.auth.chap.as_ref(), t.auth.mutual_chap.as_ref())
                        };
                        AclStatus {
                            initiator: initiator.clone(),
                            mapped_luns,
                            chap_user: auth.chap_user,
                            mutual_chap_user: auth.mutual_chap_user,
                        }
                    })
                    .collect();
                let groups = t.groups(&config.daemon.portals);
                TargetStatus {
                    iqn: iqn.clone(),
                    tpg: groups.first().map_or(t.tpg, |g| g.0),
                    portal_groups: groups
                        .into_iter()
                        .map(|(tag, portals, enabled)| PortalGroupStatus {
                            tag,
                            portals,
                            enabled,
                        })
                        .collect(),
                    enabled: t.enabled,
                    demo_mode: t.demo_mode,
                    demo_mode_read_only: t.demo_mode_read_only,
                    luns,
                    acls,
                    auth: AuthStatus::from_chap(t.auth.chap.as_ref(), t.auth.mutual_chap.as_ref()),
                    allowed_networks: t.allowed_networks.iter().map(ToString::to_string).collect(),
                    sessions: 0,
                }
            })
            .collect();
        Self {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_secs: 0,
            config_file,
            managed_by: config.daemon.managed_by.clone(),
            revision: 0,
            portals: config
                .daemon
                .portals
                .iter()
                .map(|p| PortalStatus {
                    portal: *p,
                    bound: None,
                    dual_stack: crate::config::portals::dual_stack(&config.daemon.portals, p),
                    accepting: false,
                    accepted: 0,
                    error: Some("not bound (configured only)".into()),
                })
                .collect(),
            backstores,
            targets,
            discovery_auth: AuthStatus::from_chap(
                config.discovery.chap.as_ref(),
                config.discovery.mutual_chap.as_ref(),
            ),
            host: HostInfo::collect(),
        }
    }
}

/// One logged-in session (or discovery session).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// Target-assigned session identifying handle.
    pub tsih: u16,
    /// Initiator node name.
    pub initiator: String,
    /// Initiator session ID, 12 hex digits.
    pub isid: String,
    /// Target IQN (none for a discovery session).
    pub target: Option<String>,
    /// Initiator address.
    pub peer: SocketAddr,
    /// Portal address the session came in on.
    pub local: SocketAddr,
    /// A SendTargets discovery session.
    pub discovery: bool,
    /// Negotiated operational parameters.
    pub params: SessionParams,
    /// Counters since login.
    pub counters: SessionCounters,
    /// Seconds since login.
    pub since_secs: u64,
    /// Target portal group tag of the login.
    #[serde(default)]
    pub tpg: u16,
    /// How the initiator authenticated: `"None"` or `"CHAP (SHA3-256)"` and the like.
    #[serde(default)]
    pub auth_method: String,
    /// The CHAP user it answered as, when it used CHAP.
    #[serde(default)]
    pub chap_user: Option<String>,
    /// The LUNs the session sees now (LUN, backstore, read-only).
    #[serde(default)]
    pub mapped_luns: Vec<SessionLun>,
    /// Its connections.
    #[serde(default)]
    pub connections: Vec<ConnectionInfo>,
}

/// A LUN as a session sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLun {
    /// LUN number the initiator sees.
    pub lun: u64,
    /// Backstore behind it.
    pub backstore: String,
    /// Writes refused.
    pub read_only: bool,
}

/// One connection of a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Connection ID.
    pub cid: u16,
    /// Initiator address.
    pub peer: SocketAddr,
    /// Portal address.
    pub local: SocketAddr,
}

/// Negotiated parameters of a session (leading connection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionParams {
    /// `"None"` or `"CRC32C"`.
    pub header_digest: String,
    /// `"None"` or `"CRC32C"`.
    pub data_digest: String,
    /// MaxBurstLength.
    pub max_burst_length: u32,
    /// FirstBurstLength.
    pub first_burst_length: u32,
    /// MaxRecvDataSegmentLength declared by the initiator (what the target sends at most).
    pub initiator_mrdsl: u32,
    /// MaxRecvDataSegmentLength declared by the target.
    pub target_mrdsl: u32,
    /// ImmediateData.
    pub immediate_data: bool,
    /// InitialR2T.
    pub initial_r2t: bool,
    /// MaxOutstandingR2T.
    pub max_outstanding_r2t: u32,
}

/// Session counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounters {
    /// SCSI commands executed.
    pub commands: u64,
    /// Bytes read by the initiator.
    pub read_bytes: u64,
    /// Bytes written by the initiator.
    pub write_bytes: u64,
    /// Commands that ended in CHECK CONDITION, and protocol errors.
    pub errors: u64,
}

/// Answer to `stats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Per-backstore I/O counters.
    pub luns: Vec<LunStats>,
    /// Per-session counters.
    pub sessions: Vec<SessionStats>,
}

/// I/O counters of one backstore (LUN).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LunStats {
    /// Backstore name.
    pub backstore: String,
    /// Read commands.
    pub reads: u64,
    /// Write commands.
    pub writes: u64,
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Latency histogram: `(bucket upper bound in µs, count)`, ascending; the last bucket's
    /// bound is `u64::MAX` for "slower than everything else".
    pub latency_histogram_us: Vec<(u64, u64)>,
    /// Health of the backstore (none from an older daemon).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<crate::backstore::health::State>,
    /// Failed reads.
    #[serde(default)]
    pub read_errors: u64,
    /// Failed writes.
    #[serde(default)]
    pub write_errors: u64,
    /// Failed flushes (SYNCHRONIZE CACHE).
    #[serde(default)]
    pub flush_errors: u64,
    /// Failed discards (UNMAP, WRITE SAME with UNMAP).
    #[serde(default)]
    pub discard_errors: u64,
}

/// Counters of one session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStats {
    /// Session handle.
    pub tsih: u16,
    /// Initiator node name.
    pub initiator: String,
    /// Target IQN (none for discovery).
    pub target: Option<String>,
    /// Counters.
    pub counters: SessionCounters,
}

/// A LUN of a target, in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LunRef {
    /// Target IQN.
    pub target: String,
    /// LUN number.
    pub lun: u64,
    /// Backstore behind it.
    pub backstore: String,
}

/// An ACL of a target, in a [`Plan`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclRef {
    /// Target IQN.
    pub target: String,
    /// Initiator IQN.
    pub initiator: String,
}

/// A backstore whose size changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resize {
    /// Backstore name.
    pub name: String,
    /// Configured size before (bytes), if any.
    pub old: Option<u64>,
    /// Configured size after (bytes), if any.
    pub new: Option<u64>,
}

/// A session affected by a change, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRef {
    /// Session handle.
    pub tsih: u16,
    /// Initiator node name.
    pub initiator: String,
    /// Target IQN (none for discovery).
    pub target: Option<String>,
    /// Why it is affected.
    pub reason: String,
}

/// What applying a configuration changes (computed by [`plan`](crate::control::plan::plan)).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Portals to start listening on.
    pub portals_added: Vec<SocketAddr>,
    /// Portals to close.
    pub portals_removed: Vec<SocketAddr>,
    /// New backstores.
    pub backstores_added: Vec<String>,
    /// Removed backstores.
    pub backstores_removed: Vec<String>,
    /// Backstores whose configured size changes.
    pub backstores_resized: Vec<Resize>,
    /// Backstores reopened: kind, path, block size or caching changed.
    pub backstores_changed: Vec<String>,
    /// New targets.
    pub targets_added: Vec<String>,
    /// Removed targets.
    pub targets_removed: Vec<String>,
    /// Targets whose own settings change (TPG, demo mode, auth, allowed networks).
    pub targets_changed: Vec<String>,
    /// New LUNs (a LUN whose backstore is swapped is removed and added).
    pub luns_added: Vec<LunRef>,
    /// Removed LUNs.
    pub luns_removed: Vec<LunRef>,
    /// New ACLs.
    pub acls_added: Vec<AclRef>,
    /// Removed ACLs.
    pub acls_removed: Vec<AclRef>,
    /// ACLs whose mapped LUNs, credentials or networks change.
    pub acls_changed: Vec<AclRef>,
    /// Discovery CHAP changes.
    pub discovery_auth_changed: bool,
    /// `[daemon]` / `[iscsi]` keys that change (`daemon.state_dir`, `iscsi.queue_depth`, ...);
    /// negotiation limits apply to new logins only.
    pub settings_changed: Vec<String>,
    /// Sessions that will be logged out (access lost or credentials changed).
    pub sessions_logged_out: Vec<SessionRef>,
    /// Sessions that stay but see their LUN inventory change (REPORTED LUNS DATA HAS
    /// CHANGED / CAPACITY DATA HAS CHANGED unit attentions).
    pub sessions_rescanned: Vec<SessionRef>,
    /// New fileio backstores whose file does not exist yet: created sparse.
    #[serde(default)]
    pub files_created: Vec<String>,
    /// What the change rules refuse unless forced (a live LUN's path, block size or pinned
    /// identity changing, an existing file grown, ...), one sentence each. In a report of
    /// a forced change: what was carried out anyway.
    #[serde(default)]
    pub needs_force: Vec<String>,
}

impl Plan {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == Plan::default()
    }
}

/// The answer to a change: what was done (or, for a dry run, what would be done).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChangeReport {
    /// Nothing was changed: `plan` is a prediction.
    pub dry_run: bool,
    /// Revision of the configuration running after the change (unchanged on a dry run or
    /// an empty change).
    pub revision: u64,
    /// What the change did: portals bound and closed, backstores opened, sessions logged
    /// out or told to rescan (each only once it was done).
    pub plan: Plan,
    /// Warnings about the new configuration (validation, secret files), one sentence each.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Steps that failed after the change was installed (a listener that could not be
    /// re-bound, ...); empty when everything planned was done.
    #[serde(default)]
    pub failed: Vec<String>,
    /// Whether the running configuration now differs from the daemon's file (`None`:
    /// there is no file).
    #[serde(default)]
    pub unsaved: Option<bool>,
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_wire_format() {
        let r = RequestEnvelope {
            version: API_VERSION,
            request: Request::Status,
        };
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"version":2,"request":"status"}"#
        );
        let r: RequestEnvelope =
            serde_json::from_str(r#"{"version":2,"request":{"reload":{"dry_run":true}}}"#).unwrap();
        assert_eq!(
            r.request,
            Request::Reload {
                dry_run: true,
                force: false
            }
        );
        let r: RequestEnvelope =
            serde_json::from_str(r#"{"version":2,"request":{"save_config":{}}}"#).unwrap();
        assert_eq!(r.request, Request::SaveConfig { path: None });
    }

    #[test]
    fn apply_roundtrips_a_config() {
        let cfg = crate::config::embedded_default(std::path::Path::new("/var/lib/rustiscsi"));
        let r = RequestEnvelope {
            version: API_VERSION,
            request: Request::Apply {
                config: cfg.clone(),
                dry_run: false,
                base_revision: Some(3),
                force: false,
            },
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains('\n'));
        let back: RequestEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn response_wire_format() {
        let e = ResponseEnvelope::from_result(Err(ControlError::not_found("no target x")));
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"version":2,"error":{"code":"not_found","message":"no target x"}}"#
        );
        let ok = ResponseEnvelope::from_result(Ok(Response::Change(Box::default())));
        let text = serde_json::to_string(&ok).unwrap();
        assert!(text.starts_with(r#"{"version":2,"ok":{"kind":"change","data":{"#));
        let back: ResponseEnvelope = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back.into_result().unwrap(),
            Response::Change(Box::default())
        );
    }

    #[test]
    fn host_info_from_proc_text() {
        let h = HostInfo::from_proc(
            "nas".into(),
            "MemTotal:       16318412 kB\nMemFree: 1 kB\nMemAvailable:   12000000 kB\n",
            "0.52 0.40 0.31 1/123 4567\n",
        );
        assert_eq!(h.mem_total, 16_318_412 * 1024);
        assert_eq!(h.mem_available, 12_000_000 * 1024);
        assert_eq!((h.load1, h.load5, h.load15), (0.52, 0.40, 0.31));
        let empty = HostInfo::from_proc(String::new(), "", "");
        assert_eq!(empty.mem_total, 0);
    }

    #[test]
    fn status_from_config_resolves_acl_luns_and_auth() {
        let text = r#"
[daemon]
portals = ["127.0.0.1:3260"]
[backstores.a]
kind = "ramdisk"
size = "1M"
[backstores.b]
kind = "ramdisk"
size = "1M"
[targets."iqn.2026-11.org.example:t"]
luns = [{ backstore = "a" }, { lun = 5, backstore = "b" }]
auth = { chap = { user = "tgt", password_file = "/s/t" } }
[targets."iqn.2026-11.org.example:t".acls."iqn.2026-11.org.example:i"]
"#;
        let cfg = crate::config::parse(text, "t.toml").unwrap().config;
        let s = StatusReport::from_config(&cfg, None);
        let t = &s.targets[0];
        assert_eq!(
            t.luns,
            vec![
                LunStatus {
                    lun: 0,
                    backstore: "a".into()
                },
                LunStatus {
                    lun: 5,
                    backstore: "b".into()
                }
            ]
        );
        let acl = &t.acls[0];
        assert_eq!(acl.mapped_luns.len(), 2);
        assert_eq!(acl.chap_user.as_deref(), Some("tgt"));
    }
}
