//! The daemon side of the control socket.
//!
//! The daemon implements [`ControlBackend`] on its server context and runs [`serve`].
//! Framing, versions and permissions are done here; every change goes to the backend's
//! one change path ([`ControlBackend::change`]), which serialises it with SIGHUP reloads.

use std::future::Future;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::api::{
    API_VERSION, ChangeReport, ControlError, ErrorCode, MAX_REQUEST_BYTES, Request,
    RequestEnvelope, Response, ResponseEnvelope, SessionInfo, SessionRef, Stats, StatusReport,
};
use super::atomic;
use crate::config::{self, Config};

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the new configuration of a change comes from.
// Built once per change; boxing the configuration buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ChangeSource {
    /// A whole configuration (a CLI edit), made against `base_revision` when given.
    Config {
        /// The new configuration.
        config: Config,
        /// The revision it was edited from.
        base_revision: Option<u64>,
    },
    /// The daemon's file, with its command-line overrides.
    Reload,
}

/// One change, as every path (control socket, SIGHUP) hands it to the daemon.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeRequest {
    /// The new configuration.
    pub source: ChangeSource,
    /// Plan only.
    pub dry_run: bool,
    /// Carry out what the change rules refuse otherwise.
    pub force: bool,
}

/// What the daemon provides to the control socket.
pub trait ControlBackend: Send + Sync {
    /// The running configuration as a status tree, with runtime facts (sizes as opened,
    /// serials, NAA, listeners, session counts, uptime, host).
    /// [`StatusReport::from_config`] is a starting point.
    fn status(&self) -> StatusReport;
    /// Logged-in sessions, discovery sessions included.
    fn sessions(&self) -> Vec<SessionInfo>;
    /// Counters.
    fn stats(&self) -> Stats;
    /// The running configuration, the file it was loaded from (none for the embedded
    /// default) and its revision.
    fn config(&self) -> (Config, Option<PathBuf>, u64);
    /// Carries out a change through the daemon's one change path and reports what was
    /// done. Blocking (opens files, binds sockets): [`serve`] calls it on a blocking
    /// thread.
    fn change(&self, req: ChangeRequest) -> Result<ChangeReport, ControlError>;
    /// Writes the running configuration (see [`save_config`]) while no change runs.
    /// Blocking.
    fn save(&self, path: Option<PathBuf>) -> Result<Response, ControlError>;
    /// Asks the session `tsih` to log out.
    fn logout(&self, tsih: u16) -> Result<SessionRef, ControlError>;
}

/// Origin named in validation errors of a configuration received over the socket.
pub const APPLY_ORIGIN: &str = "<control request>";

/// How long a connection may take to send a request line.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a peer with `peer_uid` may use the socket of a daemon running as `daemon_uid`:
/// root or the daemon's own user.
pub fn peer_allowed(peer_uid: u32, daemon_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == daemon_uid
}

/// Binds the control socket at `path`: creates the parent directory, replaces a stale
/// socket (refuses when a daemon still answers on it, or when `path` is not a socket) and
/// sets mode 0600.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "{} is in use: is another rustiscsid running?",
                        path.display()
                    ),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {}: {e}", path.display())))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the control socket at `path` until `shutdown` becomes true, then removes the
/// socket. Each connection may send several requests, one per line; connections are
/// handled concurrently, changes (`Apply`, `Reload`, `SaveConfig`) one at a time.
///
/// Fails only when the socket cannot be bound.
pub async fn serve(
    path: &Path,
    backend: Arc<dyn ControlBackend>,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let listener = bind(path)?;
    tracing::info!(socket = %path.display(), "control socket listening");
    let own_uid = nix::unistd::geteuid().as_raw();
    loop {
        if *shutdown.borrow_and_update() {
            break;
        }
        tokio::select! {
            // A dropped sender also stops the server.
            r = shutdown.changed() => if r.is_err() { break },
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let backend = backend.clone();
                    tokio::spawn(async move {
                        if let Err(e) = connection(stream, backend, own_uid).await {
                            tracing::debug!(error = %e, "control connection ended");
                        }
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "control socket accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    let _ = std::fs::remove_file(path);
    Ok(())
}

async fn send(
    w: &mut (impl AsyncWriteExt + Unpin),
    r: Result<Response, ControlError>,
) -> io::Result<()> {
    let env = ResponseEnvelope::from_result(r);
    let mut line = serde_json::to_vec(&env).unwrap_or_else(|e| {
        serde_json::to_vec(&ResponseEnvelope::from_result(Err(ControlError::internal(
            format!("cannot encode the response: {e}"),
        ))))
        .unwrap_or_default()
    });
    line.push(b'\n');
    w.write_all(&line).await?;
    w.flush().await
}

async fn connection(
    stream: UnixStream,
    backend: Arc<dyn ControlBackend>,
    own_uid: u32,
) -> io::Result<()> {
    let (r, mut w) = stream.into_split();
    let cred = w.as_ref().peer_cred()?;
    if !peer_allowed(cred.uid(), own_uid) {
        tracing::warn!(uid = cred.uid(), pid = ?cred.pid(), "control connection refused");
        let msg = format!(
            "permission denied: the control socket is for root (or uid {own_uid}); \
             you are uid {}",
            cred.uid()
        );
        return send(&mut w, Err(ControlError::refused(msg))).await;
    }
    let mut reader = BufReader::new(r);
    loop {
        let mut line = Vec::new();
        let mut limited = (&mut reader).take(MAX_REQUEST_BYTES as u64 + 1);
        let read = limited.read_until(b'\n', &mut line);
        let n = match tokio::time::timeout(READ_TIMEOUT, read).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_REQUEST_BYTES {
            let msg = format!("request exceeds {MAX_REQUEST_BYTES} bytes");
            return send(&mut w, Err(ControlError::invalid(msg))).await;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let result = match decode(&line) {
            Ok(req) => {
                tracing::debug!(request = req.name(), "control request");
                handle(req, backend.clone()).await
            }
            Err(e) => Err(e),
        };
        send(&mut w, result).await?;
    }
}

/// Parses a request line, checking the version first (so that a newer client gets
/// [`ErrorCode::VersionMismatch`] rather than a parse error).
pub fn decode(line: &[u8]) -> Result<Request, ControlError> {
    let value: serde_json::Value = serde_json::from_slice(line)
        .map_err(|e| ControlError::invalid(format!("request is not valid JSON: {e}")))?;
    match value.get("version").map(serde_json::Value::as_u64) {
        Some(Some(v)) if v == u64::from(API_VERSION) => {}
        Some(Some(v)) => {
            return Err(ControlError::new(
                ErrorCode::VersionMismatch,
                format!(
                    "protocol version {v} is not supported; this rustiscsid speaks version \
                     {API_VERSION} (use a rustiscsi of the same release)"
                ),
            ));
        }
        _ => {
            return Err(ControlError::invalid(
                "request has no numeric \"version\" field",
            ));
        }
    }
    serde_json::from_value::<RequestEnvelope>(value)
        .map(|e| e.request)
        .map_err(|e| ControlError::invalid(format!("malformed request: {e}")))
}

/// Runs a blocking backend call on a blocking thread.
async fn blocking<T: Send + 'static>(
    backend: Arc<dyn ControlBackend>,
    f: impl FnOnce(&dyn ControlBackend) -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(move || f(backend.as_ref()))
        .await
        .map_err(|e| ControlError::internal(format!("the change task failed: {e}")))?
}

/// Answers one request.
pub async fn handle(
    req: Request,
    backend: Arc<dyn ControlBackend>,
) -> Result<Response, ControlError> {
    match req {
        Request::Status => Ok(Response::Status(Box::new(backend.status()))),
        Request::Sessions => Ok(Response::Sessions(backend.sessions())),
        Request::Stats => Ok(Response::Stats(backend.stats())),
        Request::GetConfig => {
            let (config, path, revision) = backend.config();
            Ok(Response::Config {
                config: Box::new(config),
                path,
                revision,
            })
        }
        Request::Apply {
            config,
            dry_run,
            base_revision,
            force,
        } => {
            let req = ChangeRequest {
                source: ChangeSource::Config {
                    config,
                    base_revision,
                },
                dry_run,
                force,
            };
            blocking(backend, move |b| b.change(req))
                .await
                .map(|r| Response::Change(Box::new(r)))
        }
        Request::Reload { dry_run, force } => {
            let req = ChangeRequest {
                source: ChangeSource::Reload,
                dry_run,
                force,
            };
            blocking(backend, move |b| b.change(req))
                .await
                .map(|r| Response::Change(Box::new(r)))
        }
        Request::SaveConfig { path } => blocking(backend, move |b| b.save(path)).await,
        Request::Logout { tsih } => backend.logout(tsih).map(Response::LoggedOut),
    }
}

/// The refusal message for a configuration managed by `option`.
pub fn managed_message(option: &str, file: Option<&Path>) -> String {
    let file = file.map_or(String::new(), |f| {
        format!(" ({} is generated)", f.display())
    });
    format!(
        "this configuration is managed by NixOS option {option}; change it there{file} \
         (saveconfig FILE can still export the running configuration elsewhere)"
    )
}

/// Writes `config` as TOML to `requested` or, when absent, to `source` (atomically, with
/// rotated backups); refused for the generated file of a NixOS-managed configuration.
/// Blocking.
pub fn save_config(
    config: &Config,
    source: Option<&Path>,
    requested: Option<&Path>,
) -> Result<Response, ControlError> {
    let dest = match (requested, source) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(s)) => s.to_path_buf(),
        (None, None) => {
            return Err(ControlError::invalid(
                "the daemon runs the embedded default and has no configuration file; \
                 name one: rustiscsi saveconfig FILE",
            ));
        }
    };
    if !dest.is_absolute() {
        return Err(ControlError::invalid(format!(
            "{} is not an absolute path",
            dest.display()
        )));
    }
    if let Some(option) = &config.daemon.managed_by
        && (requested.is_none() || source.is_some_and(|s| s == dest))
    {
        return Err(ControlError::refused(managed_message(option, source)));
    }
    let text = format!(
        "# Written by rustiscsi saveconfig.\n{}",
        config::to_toml(config)
    );
    let backups =
        atomic::write_with_backups(&dest, text.as_bytes(), atomic::DEFAULT_BACKUPS, 0o644)
            .map_err(|e| {
                let code = if e.kind() == io::ErrorKind::NotFound {
                    ErrorCode::NotFound
                } else {
                    ErrorCode::Internal
                };
                ControlError::new(code, format!("cannot write {}: {e}", dest.display()))
            })?;
    Ok(Response::Saved {
        path: dest,
        backups,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_check() {
        assert!(peer_allowed(0, 1000));
        assert!(peer_allowed(1000, 1000));
        assert!(!peer_allowed(1001, 1000));
        assert!(peer_allowed(0, 0));
        assert!(!peer_allowed(1000, 0));
    }

    #[test]
    fn decode_errors() {
        assert_eq!(decode(b"{nope").unwrap_err().code, ErrorCode::Invalid);
        assert_eq!(
            decode(br#"{"version":9,"request":"status"}"#)
                .unwrap_err()
                .code,
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            decode(br#"{"version":9,"request":"something_new"}"#)
                .unwrap_err()
                .code,
            ErrorCode::VersionMismatch
        );
        assert_eq!(
            decode(br#"{"request":"status"}"#).unwrap_err().code,
            ErrorCode::Invalid
        );
        assert_eq!(
            decode(br#"{"version":2,"request":"fly"}"#)
                .unwrap_err()
                .code,
            ErrorCode::Invalid
        );
        assert_eq!(
            decode(br#"{"version":2,"request":"status"}"#).unwrap(),
            Request::Status
        );
    }

    #[test]
    fn managed_message_names_the_option() {
        let m = managed_message("services.rustiscsi", Some(Path::new("/etc/rustiscsi.toml")));
        assert!(m.contains("NixOS option services.rustiscsi; change it there"));
    }

    #[test]
    fn save_config_refuses_when_managed_and_writes_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("rustiscsi.toml");
        let mut cfg = crate::config::embedded_default(Path::new("/var/lib/rustiscsi"));
        cfg.daemon.managed_by = Some("services.rustiscsi".into());
        let e = save_config(&cfg, Some(&file), None).unwrap_err();
        assert_eq!(e.code, ErrorCode::Refused);
        assert!(!file.exists());
        // Exporting elsewhere is allowed.
        let other = dir.path().join("export.toml");
        save_config(&cfg, Some(&file), Some(&other)).unwrap();
        let back = crate::config::load(&other).unwrap();
        assert_eq!(back.config, cfg);
        cfg.daemon.managed_by = None;
        save_config(&cfg, Some(&file), None).unwrap();
        match save_config(&cfg, Some(&file), None).unwrap() {
            Response::Saved { backups, .. } => assert_eq!(backups.len(), 1),
            r => panic!("{r:?}"),
        }
        let e = save_config(&cfg, None, None).unwrap_err();
        assert_eq!(e.code, ErrorCode::Invalid);
    }

    #[test]
    fn bind_refuses_a_regular_file_and_replaces_a_stale_socket() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("not-a-socket");
        std::fs::write(&f, b"x").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(bind(&f).is_err());
            let s = dir.path().join("sub/control.sock");
            let l = bind(&s).unwrap();
            let mode = std::fs::metadata(&s).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            // A live socket is not replaced.
            assert!(bind(&s).is_err());
            drop(l);
            // Now stale: replaced.
            bind(&s).unwrap();
        });
    }
}
