//! The `rustiscsi` command line: targetcli habits, scriptable.
//!
//! Every change follows one path: fetch the running configuration (`GetConfig`), edit a
//! copy ([`edit`]), validate it ([`config::validate`]), send it (`Apply`). The daemon
//! answers with the plan of what changed.
//!
//! Exit codes ([`EXIT_CODES`]):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the operation failed: the daemon refused it or an object was not found / exists |
//! | 2 | usage error (bad arguments) |
//! | 3 | cannot reach the daemon (not running, wrong `--socket`, permissions) |
//! | 4 | the resulting configuration does not validate |

pub mod edit;
pub mod lio;
pub mod render;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::backstore::BackstoreKind;
use crate::config::{self, ChapConfig, Config, Size};
use crate::control::api::{ControlError, ErrorCode, Plan, Request, Response};
use crate::control::client::{Client, ClientError, DEFAULT_SOCKET};
use edit::AuthScope;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the daemon refused the operation, or an object was not found / exists.
pub const EXIT_FAILED: u8 = 1;
/// Exit code: bad arguments.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon cannot be reached.
pub const EXIT_CONNECT: u8 = 3;
/// Exit code: the configuration does not validate.
pub const EXIT_INVALID: u8 = 4;

/// The exit codes, as shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed (refused by the daemon, object not found or already exists)
  2  usage error
  3  cannot reach rustiscsid (not running, wrong --socket, permissions)
  4  the resulting configuration does not validate";

#[derive(Debug, Parser)]
#[command(
    name = "rustiscsi",
    version,
    about = "Manage the rustiscsid iSCSI target",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Control socket of rustiscsid.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET,
          env = "RUSTISCSI_SOCKET")]
    socket: PathBuf,
    /// Print machine-readable JSON (the control API's types).
    #[arg(long, global = true)]
    json: bool,
    /// For changes: show what would change, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// Seconds to wait for the daemon's answer.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Tree of backstores, targets, LUNs, ACLs and portals, with host facts.
    Status,
    /// Logged-in sessions with negotiated parameters and counters.
    Sessions,
    /// Per-LUN and per-session I/O counters.
    Stats,
    /// Print the running configuration as TOML.
    Config,
    /// Storage objects.
    #[command(subcommand)]
    Backstore(BackstoreCmd),
    /// Targets.
    #[command(subcommand)]
    Target(TargetCmd),
    /// LUNs of a target.
    #[command(subcommand)]
    Lun(LunCmd),
    /// Initiator ACLs of a target.
    #[command(subcommand)]
    Acl(AclCmd),
    /// CHAP credentials of discovery, a target or an ACL.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Write the running configuration (atomically, keeping FILE.1..FILE.5).
    Saveconfig {
        /// Destination; the daemon's configuration file when absent.
        file: Option<PathBuf>,
    },
    /// Re-read the daemon's configuration file and apply it.
    Reload,
    /// Show what applying FILE would change (nothing is changed).
    Plan {
        /// A rustiscsi TOML configuration.
        file: PathBuf,
    },
    /// Convert targetcli's saveconfig.json into a rustiscsi TOML configuration (offline).
    ImportLio {
        /// Usually /etc/target/saveconfig.json.
        input: PathBuf,
        /// Write the TOML here instead of standard output.
        #[arg(short, long, value_name = "OUT.toml")]
        output: Option<PathBuf>,
        /// Directory for the CHAP secrets (one file per credential, mode 0600).
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
    },
    /// Shell completions.
    Completions {
        /// Shell.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Fileio,
    Block,
    Ramdisk,
}

#[derive(Debug, Subcommand)]
enum BackstoreCmd {
    /// Create a backstore.
    Create {
        /// Name (A-Z a-z 0-9 _ . -).
        name: String,
        /// Kind of storage.
        #[arg(long, value_enum)]
        kind: KindArg,
        /// File (fileio) or device (block).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Size, e.g. 100G (fileio: created sparse; ramdisk: required).
        #[arg(long, value_parser = parse_size)]
        size: Option<Size>,
        /// Logical block size: 512 or 4096 (fileio, ramdisk).
        #[arg(long, default_value_t = 512)]
        block_size: u32,
        /// Write-back caching (default: write-through).
        #[arg(long)]
        write_cache: bool,
    },
    /// Delete a backstore (not while a LUN uses it).
    Delete {
        /// Name.
        name: String,
    },
    /// Grow a fileio or ramdisk backstore online; initiators get CAPACITY DATA HAS
    /// CHANGED and see the new size after a rescan, without logging in again. (Block
    /// devices follow their device: lvextend, mdadm --grow.)
    Resize {
        /// Name.
        name: String,
        /// New size, e.g. 200G (never smaller than now).
        #[arg(long, value_parser = parse_size)]
        size: Size,
    },
}

#[derive(Debug, Subcommand)]
enum TargetCmd {
    /// Create a target (TPG 1, no LUNs, no ACLs).
    Create {
        /// Target IQN.
        iqn: String,
    },
    /// Delete a target (its backstores stay).
    Delete {
        /// Target IQN.
        iqn: String,
    },
}

#[derive(Debug, Subcommand)]
enum LunCmd {
    /// Export a backstore as a LUN of a target.
    Add {
        /// Target IQN.
        target: String,
        /// Backstore name.
        #[arg(long)]
        backstore: String,
        /// LUN number (default: the lowest free one).
        #[arg(long)]
        lun: Option<u64>,
    },
    /// Remove a LUN (and its ACL mappings).
    Remove {
        /// Target IQN.
        target: String,
        /// LUN number.
        lun: u64,
    },
}

#[derive(Debug, Subcommand)]
enum AclCmd {
    /// Allow an initiator (without --map it sees every LUN of the target).
    Add {
        /// Target IQN.
        target: String,
        /// Initiator IQN (see /etc/iscsi/initiatorname.iscsi on the client).
        initiator: String,
        /// Mapped LUN: LUN[:TARGET_LUN][:ro], repeatable.
        #[arg(long = "map", value_name = "LUN[:TARGET_LUN][:ro]", value_parser = edit::parse_map)]
        maps: Vec<crate::config::MappedLunConfig>,
    },
    /// Remove an initiator's ACL.
    Remove {
        /// Target IQN.
        target: String,
        /// Initiator IQN.
        initiator: String,
    },
}

#[derive(Debug, Args)]
struct ScopeArgs {
    /// Target IQN (omit with --discovery).
    #[arg(required_unless_present = "discovery", conflicts_with = "discovery")]
    target: Option<String>,
    /// The ACL of this initiator instead of the target's defaults.
    #[arg(long, requires = "target")]
    initiator: Option<String>,
    /// Discovery (SendTargets) sessions.
    #[arg(long)]
    discovery: bool,
}

impl ScopeArgs {
    fn scope(&self) -> AuthScope {
        match (&self.target, &self.initiator) {
            (Some(t), Some(i)) => AuthScope::Acl {
                target: t.clone(),
                initiator: i.clone(),
            },
            (Some(t), None) => AuthScope::Target(t.clone()),
            _ => AuthScope::Discovery,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AuthCmd {
    /// Set CHAP (and optionally mutual CHAP); replaces both directions.
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// CHAP user the initiator answers as.
        #[arg(long)]
        user: String,
        /// File holding the CHAP secret.
        #[arg(long, value_name = "FILE")]
        password_file: PathBuf,
        /// Mutual CHAP user the target answers as.
        #[arg(long, requires = "mutual_password_file")]
        mutual_user: Option<String>,
        /// File holding the mutual CHAP secret.
        #[arg(long, value_name = "FILE", requires = "mutual_user")]
        mutual_password_file: Option<PathBuf>,
    },
    /// Remove CHAP (both directions).
    Clear {
        #[command(flatten)]
        scope: ScopeArgs,
    },
}

fn parse_size(s: &str) -> Result<Size, String> {
    s.parse()
}

/// Why a command failed, with its exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        let code = match e.code {
            ErrorCode::Invalid => EXIT_INVALID,
            _ => EXIT_FAILED,
        };
        Failure::new(code, e.message)
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Daemon(d) => d.into(),
            ClientError::Connect { .. } => Failure::new(EXIT_CONNECT, e.to_string()),
            other => Failure::new(EXIT_FAILED, other.to_string()),
        }
    }
}

/// The CLI's clap command (for man pages and completions).
pub fn command() -> clap::Command {
    Cli::command()
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn run() -> ExitCode {
    run_from(std::env::args_os())
}

/// Runs the CLI with `args` (the first is the program name).
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    match dispatch(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(f) => {
            eprintln!("rustiscsi: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<(), Failure> {
    let s =
        serde_json::to_string_pretty(v).map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))?;
    println!("{s}");
    Ok(())
}

fn unexpected(r: &Response) -> Failure {
    Failure::new(
        EXIT_FAILED,
        format!("unexpected answer from rustiscsid: {r:?}"),
    )
}

/// Makes `p` absolute against the current directory.
fn absolute(p: &Path) -> Result<PathBuf, Failure> {
    std::path::absolute(p).map_err(|e| Failure::new(EXIT_USAGE, format!("{}: {e}", p.display())))
}

struct Ctx {
    client: Client,
    json: bool,
    dry_run: bool,
}

impl Ctx {
    fn get_config(&self) -> Result<(Config, Option<PathBuf>), Failure> {
        match self.client.request(Request::GetConfig)? {
            Response::Config { config, path } => Ok((*config, path)),
            r => Err(unexpected(&r)),
        }
    }

    fn show_plan(&self, resp: Response, dry_run: bool) -> Result<Plan, Failure> {
        let Response::Plan(p) = resp else {
            return Err(unexpected(&resp));
        };
        if self.json {
            print_json(&p)?;
        } else {
            print!("{}", render::plan(&p, dry_run));
        }
        Ok(p)
    }

    /// GetConfig → edit a copy → validate → Apply.
    fn mutate(
        &self,
        edit: impl FnOnce(&mut Config) -> Result<String, ControlError>,
    ) -> Result<(), Failure> {
        let (old, _) = self.get_config()?;
        let mut new = old.clone();
        let summary = edit(&mut new)?;
        const ORIGIN: &str = "<edited configuration>";
        let before: Vec<String> = config::validate(old.clone(), ORIGIN)
            .map(|v| v.warnings)
            .unwrap_or_default();
        let v = config::validate_all(new.clone(), ORIGIN).map_err(|errs| {
            let lines: Vec<String> = errs
                .iter()
                .map(|e| format!("{}: {}", e.key, e.message))
                .collect();
            Failure::new(
                EXIT_INVALID,
                format!(
                    "the change would make the configuration invalid:\n  {}",
                    lines.join("\n  ")
                ),
            )
        })?;
        for w in v.warnings.iter().filter(|w| !before.contains(w)) {
            eprintln!("warning: {w}");
        }
        let resp = self.client.request(Request::Apply {
            config: new.clone(),
            dry_run: self.dry_run,
        })?;
        if !self.json {
            println!("{}{summary}", if self.dry_run { "dry run: " } else { "" });
        }
        self.show_plan(resp, self.dry_run)?;
        if !self.dry_run && !self.json {
            match &new.daemon.managed_by {
                Some(m) => eprintln!(
                    "note: this change lasts until rustiscsid restarts; the configuration is \
                     managed by {m}"
                ),
                None => eprintln!(
                    "note: not saved yet; run `rustiscsi saveconfig` to keep it across restarts"
                ),
            }
        }
        Ok(())
    }
}

fn chap_arg(user: String, file: &Path) -> Result<ChapConfig, Failure> {
    let password_file = absolute(file)?;
    match std::fs::metadata(&password_file) {
        Ok(m) if m.len() > 0 => {
            // 12..16 bytes (+ newline) is what every initiator accepts.
            let len = std::fs::read(&password_file)
                .map(|s| s.strip_suffix(b"\n").map_or(s.len(), <[u8]>::len))
                .unwrap_or(0);
            if len != 0 && !(12..=16).contains(&len) {
                eprintln!(
                    "warning: the secret in {} is {len} bytes; use 12 to 16 bytes for \
                     initiators that require it (Microsoft's)",
                    password_file.display()
                );
            }
        }
        Ok(_) => eprintln!("warning: {} is empty", password_file.display()),
        Err(e) => eprintln!(
            "warning: cannot read {} here ({e}); the daemon must be able to",
            password_file.display()
        ),
    }
    Ok(ChapConfig {
        user,
        password_file,
    })
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let cx = Ctx {
        client: Client::new(&cli.socket).with_timeout(Duration::from_secs(cli.timeout.max(1))),
        json: cli.json,
        dry_run: cli.dry_run,
    };
    match cli.cmd {
        Cmd::Status => match cx.client.request(Request::Status)? {
            Response::Status(s) if cx.json => print_json(&s),
            Response::Status(s) => {
                print!("{}", render::status(&s));
                Ok(())
            }
            r => Err(unexpected(&r)),
        },
        Cmd::Sessions => match cx.client.request(Request::Sessions)? {
            Response::Sessions(s) if cx.json => print_json(&s),
            Response::Sessions(s) => {
                print!("{}", render::sessions(&s));
                Ok(())
            }
            r => Err(unexpected(&r)),
        },
        Cmd::Stats => match cx.client.request(Request::Stats)? {
            Response::Stats(s) if cx.json => print_json(&s),
            Response::Stats(s) => {
                print!("{}", render::stats(&s));
                Ok(())
            }
            r => Err(unexpected(&r)),
        },
        Cmd::Config => {
            let (c, path) = cx.get_config()?;
            if cx.json {
                print_json(&serde_json::json!({ "config": c, "path": path }))
            } else {
                if let Some(p) = path {
                    println!("# running configuration (loaded from {})", p.display());
                }
                print!("{}", config::to_toml(&c));
                Ok(())
            }
        }
        Cmd::Backstore(BackstoreCmd::Create {
            name,
            kind,
            path,
            size,
            block_size,
            write_cache,
        }) => {
            let kind = match kind {
                KindArg::Fileio => BackstoreKind::Fileio,
                KindArg::Block => BackstoreKind::Block,
                KindArg::Ramdisk => BackstoreKind::Ramdisk,
            };
            let path = path.as_deref().map(absolute).transpose()?;
            cx.mutate(|c| {
                edit::backstore_create(c, &name, kind, path, size, block_size, write_cache)
            })
        }
        Cmd::Backstore(BackstoreCmd::Delete { name }) => {
            cx.mutate(|c| edit::backstore_delete(c, &name))
        }
        Cmd::Backstore(BackstoreCmd::Resize { name, size }) => {
            cx.mutate(|c| edit::backstore_resize(c, &name, size))
        }
        Cmd::Target(TargetCmd::Create { iqn }) => cx.mutate(|c| edit::target_create(c, &iqn)),
        Cmd::Target(TargetCmd::Delete { iqn }) => cx.mutate(|c| edit::target_delete(c, &iqn)),
        Cmd::Lun(LunCmd::Add {
            target,
            backstore,
            lun,
        }) => cx.mutate(|c| edit::lun_add(c, &target, &backstore, lun)),
        Cmd::Lun(LunCmd::Remove { target, lun }) => {
            cx.mutate(|c| edit::lun_remove(c, &target, lun))
        }
        Cmd::Acl(AclCmd::Add {
            target,
            initiator,
            maps,
        }) => cx.mutate(|c| edit::acl_add(c, &target, &initiator, maps)),
        Cmd::Acl(AclCmd::Remove { target, initiator }) => {
            cx.mutate(|c| edit::acl_remove(c, &target, &initiator))
        }
        Cmd::Auth(AuthCmd::Set {
            scope,
            user,
            password_file,
            mutual_user,
            mutual_password_file,
        }) => {
            let chap = chap_arg(user, &password_file)?;
            let mutual = match (mutual_user, mutual_password_file) {
                (Some(u), Some(f)) => Some(chap_arg(u, &f)?),
                _ => None,
            };
            let scope = scope.scope();
            cx.mutate(|c| edit::auth_set(c, &scope, chap, mutual))
        }
        Cmd::Auth(AuthCmd::Clear { scope }) => {
            let scope = scope.scope();
            cx.mutate(|c| edit::auth_clear(c, &scope))
        }
        Cmd::Saveconfig { file } => {
            let path = file.as_deref().map(absolute).transpose()?;
            match cx.client.request(Request::SaveConfig { path })? {
                Response::Saved { path, backups } if cx.json => {
                    print_json(&serde_json::json!({ "path": path, "backups": backups }))
                }
                Response::Saved { path, backups } => {
                    println!("saved {}", path.display());
                    if let Some(b) = backups.first() {
                        println!(
                            "previous version: {} ({} backups kept)",
                            b.display(),
                            backups.len()
                        );
                    }
                    Ok(())
                }
                r => Err(unexpected(&r)),
            }
        }
        Cmd::Reload => {
            let resp = cx.client.request(Request::Reload {
                dry_run: cx.dry_run,
            })?;
            cx.show_plan(resp, cx.dry_run).map(drop)
        }
        Cmd::Plan { file } => {
            let v = config::load(&file).map_err(|e| Failure::new(EXIT_INVALID, e.to_string()))?;
            for w in &v.warnings {
                eprintln!("warning: {w}");
            }
            let resp = cx.client.request(Request::Apply {
                config: v.config,
                dry_run: true,
            })?;
            cx.show_plan(resp, true).map(drop)
        }
        Cmd::ImportLio {
            input,
            output,
            secrets_dir,
        } => import_lio(&input, output.as_deref(), secrets_dir.as_deref()),
        Cmd::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "rustiscsi", &mut std::io::stdout());
            Ok(())
        }
    }
}

fn import_lio(
    input: &Path,
    output: Option<&Path>,
    secrets_dir: Option<&Path>,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(input)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", input.display())))?;
    let dir = secrets_dir.map(absolute).transpose()?;
    let imp = lio::convert(&text, dir.as_deref()).map_err(|m| Failure::new(EXIT_USAGE, m))?;
    for w in &imp.warnings {
        eprintln!("warning: {w}");
    }
    let origin = output.map_or("<import-lio>".to_owned(), |p| p.display().to_string());
    let v = config::validate_all(imp.config.clone(), &origin).map_err(|errs| {
        let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
        Failure::new(
            EXIT_INVALID,
            format!(
                "the imported configuration does not validate:\n  {}",
                lines.join("\n  ")
            ),
        )
    })?;
    for w in &v.warnings {
        eprintln!("warning: {w}");
    }
    lio::write_secrets(&imp.secrets)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("writing secrets: {e}")))?;
    for s in &imp.secrets {
        eprintln!("secret: {} -> {} (mode 0600)", s.what, s.path.display());
    }
    let toml = format!(
        "# Imported from {} by rustiscsi import-lio.\n{}",
        input.display(),
        config::to_toml(&imp.config)
    );
    match output {
        Some(out) => {
            crate::control::atomic::write_with_backups(out, toml.as_bytes(), 5, 0o644).map_err(
                |e| Failure::new(EXIT_FAILED, format!("cannot write {}: {e}", out.display())),
            )?;
            eprintln!("wrote {}", out.display());
        }
        None => {
            let _ = std::io::stdout().write_all(toml.as_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn auth_scope_parsing() {
        let c = Cli::try_parse_from([
            "rustiscsi",
            "auth",
            "set",
            "--discovery",
            "--user",
            "u",
            "--password-file",
            "/f",
        ])
        .unwrap();
        let Cmd::Auth(AuthCmd::Set { scope, .. }) = c.cmd else {
            panic!()
        };
        assert_eq!(scope.scope(), AuthScope::Discovery);
        let c = Cli::try_parse_from([
            "rustiscsi",
            "auth",
            "clear",
            "iqn.2026-11.org.example:t",
            "--initiator",
            "iqn.2026-11.org.example:i",
        ])
        .unwrap();
        let Cmd::Auth(AuthCmd::Clear { scope }) = c.cmd else {
            panic!()
        };
        assert!(matches!(scope.scope(), AuthScope::Acl { .. }));
        assert!(Cli::try_parse_from(["rustiscsi", "auth", "clear"]).is_err());
        assert!(
            Cli::try_parse_from(["rustiscsi", "auth", "clear", "iqn.x:y", "--discovery"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "rustiscsi",
                "auth",
                "set",
                "iqn.x:y",
                "--user",
                "u",
                "--password-file",
                "/f",
                "--mutual-user",
                "m"
            ])
            .is_err()
        );
    }
}
