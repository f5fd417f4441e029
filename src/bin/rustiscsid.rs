//! `rustiscsid`: the rustiscsi target daemon.
//!
//! With `--config FILE` it serves that configuration; without, an embedded default: a
//! 1 GiB sparse demo LUN under the state dir, on a loopback-only portal.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use rustiscsi::config::{self, Overrides, ValidatedConfig};
use rustiscsi::control::server::{ChangeRequest, ChangeSource};
use rustiscsi::daemon_args::Args;
use rustiscsi::registry::Registry;
use rustiscsi::server::{self, ServerCtx};
use tokio::signal::unix::{SignalKind, signal};

/// Portal port of the embedded default when not running as root.
const UNPRIVILEGED_PORT: u16 = 13260;

fn default_state_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/rustiscsi");
    }
    match std::env::var_os("XDG_STATE_HOME") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("rustiscsi"),
        _ => std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".local/state/rustiscsi"))
            .unwrap_or_else(|| PathBuf::from("/tmp/rustiscsi")),
    }
}

/// The command-line overrides, which every reload applies again.
fn overrides(args: &Args) -> Overrides {
    Overrides {
        portals: args.portals.clone(),
        state_dir: args.state_dir.clone(),
        control_socket: args.control_socket.clone(),
    }
}

/// Loads the configuration with command-line overrides applied, then validates it.
fn load(args: &Args) -> anyhow::Result<ValidatedConfig> {
    let o = overrides(args);
    match &args.config {
        // Errors keep the file's line numbers; every one is reported.
        Some(path) => o.load(path).map_err(report_all),
        None => {
            let dir = args.state_dir.clone().unwrap_or_else(default_state_dir);
            let mut c = config::embedded_default(&dir);
            if !nix::unistd::geteuid().is_root() {
                // Unprivileged: no port below 1024 and no /run; stay on loopback.
                c.daemon.control_socket = dir.join("control.sock");
                c.daemon.portals = vec![SocketAddr::from(([127, 0, 0, 1], UNPRIVILEGED_PORT))];
            }
            o.apply(&mut c);
            config::validate_all(c, config::EMBEDDED_ORIGIN).map_err(report_all)
        }
    }
}

fn report_all(errs: Vec<config::ConfigError>) -> anyhow::Error {
    let lines: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
    anyhow::anyhow!("invalid configuration:\n  {}", lines.join("\n  "))
}

fn print_demo_banner(v: &ValidatedConfig) {
    let c = &v.config;
    let Some(portal) = c.daemon.portals.first() else {
        return;
    };
    let iqn = config::DEMO_TARGET;
    let path = c
        .backstores
        .get(config::DEMO_BACKSTORE)
        .and_then(|b| b.path.clone())
        .unwrap_or_default();
    eprintln!(
        "rustiscsid: no --config given: serving the demo target\n\
         \x20 target   {iqn}\n\
         \x20 LUN 0    1 GiB sparse file {}\n\
         \x20 portal   {portal} (loopback only)\n\
         connect with open-iscsi:\n\
         \x20 iscsiadm -m discovery -t sendtargets -p {portal}\n\
         \x20 iscsiadm -m node -T {iqn} -p {portal} --login\n\
         or with libiscsi / QEMU:\n\
         \x20 iscsi-inq iscsi://{portal}/{iqn}/0\n\
         \x20 qemu-img info iscsi://{portal}/{iqn}/0",
        path.display()
    );
}

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log));
    // Plain text when stderr is a file or journald; colours only on a terminal.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let v = match load(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("rustiscsid: {e:#}");
            return ExitCode::from(if args.check { 1 } else { 2 });
        }
    };
    for w in &v.warnings {
        tracing::warn!("{w}");
    }
    if args.check {
        let n_targets = v.config.targets.len();
        println!(
            "{}: OK ({} backstores, {n_targets} targets, {} warnings)",
            args.config
                .as_deref()
                .map(Path::display)
                .map(|d| d.to_string())
                .unwrap_or_else(|| config::EMBEDDED_ORIGIN.into()),
            v.config.backstores.len(),
            v.warnings.len()
        );
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rustiscsid: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(args, v)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rustiscsid: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: Args, v: ValidatedConfig) -> anyhow::Result<()> {
    let registry =
        Registry::build(&v, None).context("cannot build the target from the configuration")?;
    let portals = v.config.daemon.portals.clone();
    for p in &portals {
        if !config::is_loopback(p.ip()) {
            for t in registry.targets.values().filter(|t| t.demo_mode) {
                tracing::warn!(target = %t.name, portal = %p, "demo mode on a network portal: any initiator can log in");
            }
        }
    }
    for w in &registry.warnings {
        tracing::warn!("{w}");
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let ctx = ServerCtx::with_overrides(
        registry,
        stop_rx.clone(),
        args.config.clone(),
        overrides(&args),
    );
    server::listen_configured(&ctx).map_err(|e| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            anyhow::anyhow!("{e} (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --portal 127.0.0.1:13260)")
        } else {
            anyhow::anyhow!("{e}")
        }
    })?;
    let control_path = v.config.daemon.control_socket.clone();
    let control = {
        let (path, backend, stop) = (
            control_path.clone(),
            server::control::backend(&ctx),
            stop_rx.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = rustiscsi::control::server::serve(&path, backend, stop).await {
                tracing::warn!(socket = %path.display(), error = %e, "control socket unavailable: the rustiscsi CLI cannot reach this daemon");
            }
        })
    };
    if let Some(addr) = v.config.daemon.metrics_listen {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            if let Err(e) = server::metrics::serve(addr, ctx).await {
                tracing::error!(%addr, error = %e, "metrics endpoint failed");
            }
        });
    }
    server::backstores::spawn(ctx.clone());
    if args.config.is_none() {
        print_demo_banner(&v);
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        ?portals,
        "rustiscsid ready"
    );
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    spawn_watchdog();

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let server = tokio::spawn(server::run(Vec::new(), ctx.clone()));
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => reload(&ctx).await,
        }
    }
    tracing::info!("stopping: asking initiators to log out, draining commands");
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    let _ = stop_tx.send(true);
    let _ = server.await;
    let _ = control.await;
    tracing::info!("stopped");
    Ok(())
}

/// SIGHUP: the same change path as `rustiscsi reload` (file plus overrides, the rules,
/// one lock).
async fn reload(ctx: &Arc<ServerCtx>) {
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Reloading]);
    let c = ctx.clone();
    let req = ChangeRequest {
        source: ChangeSource::Reload,
        dry_run: false,
        force: false,
    };
    match tokio::task::spawn_blocking(move || server::apply::change(&c, req)).await {
        Ok(Ok(r)) => {
            for w in &r.warnings {
                tracing::warn!("{w}");
            }
            for f in &r.failed {
                tracing::error!("reload: {f}");
            }
            tracing::info!(
                revision = r.revision,
                logged_out = ?r.plan.sessions_logged_out.iter().map(|s| s.tsih).collect::<Vec<_>>(),
                rescanned = ?r.plan.sessions_rescanned.iter().map(|s| s.tsih).collect::<Vec<_>>(),
                "configuration reloaded"
            );
        }
        Ok(Err(e)) => {
            tracing::error!("reload refused, keeping the running configuration: {e}")
        }
        Err(e) => tracing::error!("reload failed: {e}"),
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
}

fn spawn_watchdog() {
    if let Some(period) = sd_notify::watchdog_enabled() {
        let every = period / 2;
        tokio::spawn(async move {
            let mut t = tokio::time::interval(every);
            loop {
                t.tick().await;
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
        });
    }
}
