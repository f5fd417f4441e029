//! The `rustiscsi` command line: targetcli habits, scriptable.
//!
//! Every change follows one path: fetch the running configuration and its revision
//! (`GetConfig`), edit a copy ([`edit`]), validate it ([`config::validate_all`]), send it
//! with that revision (`Apply`). The daemon refuses an edit made against a revision that
//! no longer runs, and answers with what it did, which is what the CLI prints.
//!
//! Exit codes ([`EXIT_CODES`]):
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | the operation failed: the daemon refused it (or needs `--force`), an object was not found / exists, a step failed |
//! | 2 | usage error (bad arguments) |
//! | 3 | cannot reach the daemon (not running, wrong `--socket`, permissions) |
//! | 4 | the resulting configuration does not validate |
//! | 5 | another change was installed while this one was made: nothing was changed, run it again |
//!
//! With `--json`, a failure is printed on standard output as
//! `{"error":{"code":"...","message":"...","exit_code":N}}`.

pub mod attrs;
pub mod complete;
pub mod edit;
pub mod lio;
pub mod render;
pub mod shell;
pub mod tree;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCandidates;

use crate::backstore::BackstoreKind;
use crate::config::{self, ChapConfig, Config, Size};
use crate::control::api::{ChangeReport, ControlError, ErrorCode, Request, Response};
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
/// Exit code: the change was made against a configuration another change replaced.
pub const EXIT_CONFLICT: u8 = 5;

/// The exit codes, as shown in `--help`.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the operation failed (refused by the daemon or needs --force, object not found or
     already exists, a step failed)
  2  usage error
  3  cannot reach rustiscsid (not running, wrong --socket, permissions)
  4  the resulting configuration does not validate
  5  another change was installed while this one was made; nothing was changed: run it
     again";

/// The command line (`rustiscsi`).
#[derive(Debug, Parser)]
#[command(
    name = "rustiscsi",
    version,
    about = "Manage the rustiscsid iSCSI target",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// Control socket of rustiscsid.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET,
          env = "RUSTISCSI_SOCKET")]
    socket: PathBuf,
    /// Print machine-readable JSON (the control API's types), errors included.
    #[arg(long, global = true)]
    json: bool,
    /// For changes: show what would change, change nothing.
    #[arg(long, global = true)]
    dry_run: bool,
    /// For changes: carry out what the change rules refuse otherwise (a live LUN's path,
    /// block size or identity, an existing file grown, a backstore kept larger).
    #[arg(long, global = true)]
    force: bool,
    /// Seconds to wait for the daemon's answer.
    #[arg(long, global = true, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
    /// For edits: when another change wins the race (exit 5), read the configuration
    /// again and redo the edit on it, up to N times.
    #[arg(long, global = true, value_name = "N", default_value_t = 0)]
    retry: u32,
    #[command(subcommand)]
    cmd: Cmd,
}

fn targets() -> ArgValueCandidates {
    ArgValueCandidates::new(complete::targets)
}
fn backstores() -> ArgValueCandidates {
    ArgValueCandidates::new(complete::backstores)
}
fn initiators() -> ArgValueCandidates {
    ArgValueCandidates::new(complete::initiators)
}
fn paths() -> ArgValueCandidates {
    ArgValueCandidates::new(complete::paths)
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Tree of backstores, targets, LUNs, ACLs and the listening portals, with host facts.
    Status,
    /// Logged-in sessions with negotiated parameters and counters.
    Sessions {
        /// One block per session: authentication, CHAP user, mapped LUNs, connections,
        /// digests, counters.
        #[arg(long)]
        detail: bool,
    },
    /// Act on one session.
    #[command(subcommand)]
    Session(SessionCmd),
    /// Per-LUN and per-session I/O counters.
    Stats,
    /// Print the running configuration as TOML.
    Config,
    /// List the targetcli-style tree at PATH (/backstores/fileio, /iscsi/IQN/tpg1/luns, ...).
    Ls {
        /// Path (default /).
        #[arg(add = paths())]
        path: Option<String>,
    },
    /// Show settings of an object: `get PATH [attribute|parameter|auth] [KEY...]`.
    Get {
        /// Path of the object.
        #[arg(add = paths())]
        path: String,
        /// Group: attribute, parameter or auth (default: all).
        group: Option<String>,
        /// Keys to show (default: all of the group).
        keys: Vec<String>,
    },
    /// Change settings of an object: `set PATH attribute|parameter|auth KEY=VALUE...`.
    Set {
        /// Path of the object.
        #[arg(add = paths())]
        path: String,
        /// Group: attribute, parameter or auth.
        group: String,
        /// Assignments.
        #[arg(required = true, value_name = "KEY=VALUE")]
        assignments: Vec<String>,
    },
    /// Interactive targetcli-style shell (cd, ls, create, delete, get, set, saveconfig...);
    /// with arguments, runs that one command line (e.g. `shell /iscsi create IQN`).
    Shell {
        /// A command line to run instead of the interactive shell.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        line: Vec<String>,
    },
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
    /// Replace the running configuration with FILE (a rustiscsi TOML).
    Restoreconfig {
        /// The configuration to run.
        file: PathBuf,
    },
    /// Remove every backstore, target and discovery credential (daemon settings stay).
    Clearconfig {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Re-read the daemon's configuration file (with its command-line overrides) and apply it.
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
        /// Directory for the CHAP secrets (one file per credential, mode 0600); needed
        /// only when a secret is carried over.
        #[arg(long, value_name = "DIR")]
        secrets_dir: Option<PathBuf>,
        /// Import even what would give initiators more access than LIO did (it is still
        /// reported).
        #[arg(long)]
        allow_widening: bool,
    },
    /// Shell completion script (bash, zsh, fish), completing IQNs, backstores and ACLs
    /// from the running daemon. E.g. `source <(rustiscsi completions bash)`.
    Completions {
        /// Shell.
        shell: CompletionShell,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(Debug, Subcommand)]
enum SessionCmd {
    /// Ask a session to log out (Async Message), then close it.
    Logout {
        /// Its TSIH (see `rustiscsi sessions`).
        tsih: u16,
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
        /// Size, e.g. 100G (fileio: a missing file is created sparse; an existing file is
        /// used as it is, and a size that differs needs --force; ramdisk: required).
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
        #[arg(add = backstores())]
        name: String,
    },
    /// Grow a fileio or ramdisk backstore online; initiators get CAPACITY DATA HAS
    /// CHANGED and see the new size after a rescan, without logging in again. (Block
    /// devices follow their device: lvextend, mdadm --grow.)
    Resize {
        /// Name.
        #[arg(add = backstores())]
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
        #[arg(add = targets())]
        iqn: String,
    },
}

#[derive(Debug, Subcommand)]
enum LunCmd {
    /// Export a backstore as a LUN of a target.
    Add {
        /// Target IQN.
        #[arg(add = targets())]
        target: String,
        /// Backstore name.
        #[arg(long, add = backstores())]
        backstore: String,
        /// LUN number (default: the lowest free one).
        #[arg(long)]
        lun: Option<u64>,
    },
    /// Remove a LUN (and its ACL mappings).
    Remove {
        /// Target IQN.
        #[arg(add = targets())]
        target: String,
        /// LUN number.
        lun: u64,
    },
}

#[derive(Debug, Args)]
struct ChapArgs {
    /// CHAP user the initiator answers as.
    #[arg(long, requires = "chap_password_file")]
    chap_user: Option<String>,
    /// File holding the CHAP secret.
    #[arg(long, value_name = "FILE", requires = "chap_user")]
    chap_password_file: Option<PathBuf>,
    /// Mutual CHAP user the target answers as.
    #[arg(long = "mutual-user", requires_all = ["mutual_password_file", "chap_user"])]
    mutual_user: Option<String>,
    /// File holding the mutual CHAP secret.
    #[arg(
        long = "mutual-password-file",
        value_name = "FILE",
        requires = "mutual_user"
    )]
    mutual_password_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum AclCmd {
    /// Allow an initiator (without --map it sees every LUN of the target); with
    /// --chap-user it must authenticate from its first login (one atomic change).
    Add {
        /// Target IQN.
        #[arg(add = targets())]
        target: String,
        /// Initiator IQN (see /etc/iscsi/initiatorname.iscsi on the client).
        initiator: String,
        /// Mapped LUN: LUN[:TARGET_LUN][:ro], repeatable.
        #[arg(long = "map", value_name = "LUN[:TARGET_LUN][:ro]", value_parser = edit::parse_map)]
        maps: Vec<crate::config::MappedLunConfig>,
        #[command(flatten)]
        chap: ChapArgs,
    },
    /// Remove an initiator's ACL.
    Remove {
        /// Target IQN.
        #[arg(add = targets())]
        target: String,
        /// Initiator IQN.
        #[arg(add = initiators())]
        initiator: String,
    },
}

#[derive(Debug, Args)]
struct ScopeArgs {
    /// Target IQN (omit with --discovery).
    #[arg(required_unless_present = "discovery", conflicts_with = "discovery", add = targets())]
    target: Option<String>,
    /// The ACL of this initiator instead of the target's defaults.
    #[arg(long, requires = "target", add = initiators())]
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
pub struct Failure {
    code: u8,
    kind: &'static str,
    message: String,
}

impl Failure {
    /// A failure with exit `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        let kind = match code {
            EXIT_USAGE => "usage",
            EXIT_CONNECT => "connect",
            EXIT_INVALID => "invalid",
            EXIT_CONFLICT => "conflict",
            _ => "failed",
        };
        Self {
            code,
            kind,
            message: message.into(),
        }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        self.code
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    fn print(&self, json: bool) {
        if json {
            let v = serde_json::json!({ "error": {
                "code": self.kind, "message": self.message, "exit_code": self.code } });
            println!("{v}");
        } else {
            eprintln!("rustiscsi: {}", self.message);
        }
    }
}

impl From<ControlError> for Failure {
    fn from(e: ControlError) -> Self {
        let code = match e.code {
            ErrorCode::Invalid => EXIT_INVALID,
            ErrorCode::Conflict => EXIT_CONFLICT,
            _ => EXIT_FAILED,
        };
        let mut f = Failure::new(code, e.message);
        f.kind = e.code.as_str();
        f
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
    // Shell completion requests (COMPLETE=bash ...) are answered here and exit.
    clap_complete::CompleteEnv::with_factory(command).complete();
    run_from(std::env::args_os())
}

/// Runs the CLI with `args` (the first is the program name).
pub fn run_from<I, T>(args: I) -> ExitCode
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(c) => c,
        Err(e) => {
            let json = args.iter().any(|a| a == "--json");
            if json && e.use_stderr() {
                Failure::new(EXIT_USAGE, e.to_string().trim_end()).print(true);
            } else {
                let _ = e.print();
            }
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let json = cli.json;
    match dispatch(cli) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(f) => {
            f.print(json);
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

/// A connection to the daemon with the global options.
pub struct Ctx {
    client: Client,
    json: bool,
    dry_run: bool,
    force: bool,
    retry: u32,
}

impl Ctx {
    /// The running configuration, its file and revision.
    pub fn get_config(&self) -> Result<(Config, Option<PathBuf>, u64), Failure> {
        match self.client.request(Request::GetConfig)? {
            Response::Config {
                config,
                path,
                revision,
            } => Ok((*config, path, revision)),
            r => Err(unexpected(&r)),
        }
    }

    /// The status report.
    pub fn status(&self) -> Result<crate::control::api::StatusReport, Failure> {
        match self.client.request(Request::Status)? {
            Response::Status(s) => Ok(*s),
            r => Err(unexpected(&r)),
        }
    }

    /// Prints a change report (what was done) and its notes; a step that failed after
    /// the change was installed makes the command fail.
    fn report(&self, resp: Response, managed_by: Option<&str>) -> Result<ChangeReport, Failure> {
        let Response::Change(r) = resp else {
            return Err(unexpected(&resp));
        };
        if self.json {
            print_json(&r)?;
        } else {
            print!("{}", render::change(&r));
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            if !r.dry_run && !r.plan.is_empty() {
                match (managed_by, r.unsaved) {
                    (Some(m), _) => eprintln!(
                        "note: this change lasts until rustiscsid restarts; the configuration \
                         is managed by {m}"
                    ),
                    (None, Some(true)) => eprintln!(
                        "note: not saved yet; run `rustiscsi saveconfig` to keep it across \
                         restarts"
                    ),
                    (None, None) => eprintln!(
                        "note: the daemon has no configuration file; `rustiscsi saveconfig \
                         FILE` keeps this configuration"
                    ),
                    (None, Some(false)) => {}
                }
            }
        }
        if !r.failed.is_empty() {
            return Err(Failure::new(
                EXIT_FAILED,
                format!(
                    "the change was installed, but not all of it was done:\n  {}",
                    r.failed.join("\n  ")
                ),
            ));
        }
        Ok(*r)
    }

    /// Sends a whole configuration made against `base` (`None`: replaces what runs).
    pub fn apply(&self, config: Config, base: Option<u64>) -> Result<ChangeReport, Failure> {
        let managed = config.daemon.managed_by.clone();
        let resp = self.client.request(Request::Apply {
            config,
            dry_run: self.dry_run,
            base_revision: base,
            force: self.force,
        })?;
        self.report(resp, managed.as_deref())
    }

    /// GetConfig → edit a copy → validate → Apply against the revision read; with
    /// `--retry N`, an edit that lost a race is made again on what runs then.
    pub fn mutate(
        &self,
        edit: impl Fn(&mut Config) -> Result<String, ControlError>,
    ) -> Result<(), Failure> {
        let mut left = self.retry;
        loop {
            match self.mutate_once(&edit) {
                Err(f) if f.code == EXIT_CONFLICT && left > 0 => left -= 1,
                r => return r,
            }
        }
    }

    fn mutate_once(
        &self,
        edit: &impl Fn(&mut Config) -> Result<String, ControlError>,
    ) -> Result<(), Failure> {
        let (old, _, revision) = self.get_config()?;
        let mut new = old.clone();
        let summary = edit(&mut new)?;
        config::validate_all(new.clone(), "<edited configuration>").map_err(|errs| {
            let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
            Failure::new(
                EXIT_INVALID,
                format!(
                    "the change would make the configuration invalid:\n  {}",
                    lines.join("\n  ")
                ),
            )
        })?;
        let r = self.apply(new, Some(revision))?;
        if !self.json {
            if r.dry_run {
                eprintln!("dry run, nothing was changed ({summary})");
            } else {
                eprintln!("{summary}");
            }
        }
        Ok(())
    }
}

fn chap_arg(user: String, file: &Path) -> Result<ChapConfig, Failure> {
    // The daemon reads the file and reports what is wrong with it.
    Ok(ChapConfig {
        user,
        password_file: absolute(file)?,
    })
}

fn ctx(cli: &Cli) -> Ctx {
    Ctx {
        client: Client::new(&cli.socket).with_timeout(Duration::from_secs(cli.timeout.max(1))),
        json: cli.json,
        dry_run: cli.dry_run,
        force: cli.force,
        retry: cli.retry,
    }
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    let cx = ctx(&cli);
    match cli.cmd {
        Cmd::Status => {
            let s = cx.status()?;
            if cx.json {
                print_json(&s)
            } else {
                print!("{}", render::status(&s));
                Ok(())
            }
        }
        Cmd::Sessions { detail } => match cx.client.request(Request::Sessions)? {
            Response::Sessions(s) if cx.json => print_json(&s),
            Response::Sessions(s) => {
                if detail {
                    print!("{}", render::sessions_detail(&s));
                } else {
                    print!("{}", render::sessions(&s));
                }
                Ok(())
            }
            r => Err(unexpected(&r)),
        },
        Cmd::Session(SessionCmd::Logout { tsih }) => {
            match cx.client.request(Request::Logout { tsih })? {
                Response::LoggedOut(s) if cx.json => print_json(&s),
                Response::LoggedOut(s) => {
                    println!("session {} ({}) asked to log out", s.tsih, s.initiator);
                    Ok(())
                }
                r => Err(unexpected(&r)),
            }
        }
        Cmd::Stats => match cx.client.request(Request::Stats)? {
            Response::Stats(s) if cx.json => print_json(&s),
            Response::Stats(s) => {
                print!("{}", render::stats(&s));
                Ok(())
            }
            r => Err(unexpected(&r)),
        },
        Cmd::Config => {
            let (c, path, revision) = cx.get_config()?;
            if cx.json {
                print_json(&serde_json::json!({ "config": c, "path": path, "revision": revision }))
            } else {
                if let Some(p) = path {
                    println!(
                        "# running configuration, revision {revision} (loaded from {})",
                        p.display()
                    );
                }
                print!("{}", config::to_toml(&c));
                Ok(())
            }
        }
        Cmd::Ls { path } => {
            shell::one_shot(&cx, &["ls".into(), path.unwrap_or_else(|| "/".into())])
        }
        Cmd::Get { path, group, keys } => {
            let mut line = vec![path, "get".into()];
            line.extend(group);
            line.extend(keys);
            shell::one_shot(&cx, &line)
        }
        Cmd::Set {
            path,
            group,
            assignments,
        } => {
            let mut line = vec![path, "set".into(), group];
            line.extend(assignments);
            shell::one_shot(&cx, &line)
        }
        Cmd::Shell { line } if line.is_empty() => shell::interactive(&cx),
        Cmd::Shell { line } => shell::one_shot(&cx, &line),
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
                edit::backstore_create(c, &name, kind, path.clone(), size, block_size, write_cache)
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
            chap,
        }) => {
            let one = match (chap.chap_user, chap.chap_password_file) {
                (Some(u), Some(f)) => Some(chap_arg(u, &f)?),
                _ => None,
            };
            let mutual = match (chap.mutual_user, chap.mutual_password_file) {
                (Some(u), Some(f)) => Some(chap_arg(u, &f)?),
                _ => None,
            };
            cx.mutate(|c| {
                let mut msg = edit::acl_add(c, &target, &initiator, maps.clone())?;
                if let Some(one) = one.clone() {
                    let scope = AuthScope::Acl {
                        target: target.clone(),
                        initiator: initiator.clone(),
                    };
                    msg.push_str(&format!(
                        "; {}",
                        edit::auth_set(c, &scope, one, mutual.clone())?
                    ));
                }
                Ok(msg)
            })
        }
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
            cx.mutate(|c| edit::auth_set(c, &scope, chap.clone(), mutual.clone()))
        }
        Cmd::Auth(AuthCmd::Clear { scope }) => {
            let scope = scope.scope();
            cx.mutate(|c| edit::auth_clear(c, &scope))
        }
        Cmd::Saveconfig { file } => saveconfig(&cx, file.as_deref()),
        Cmd::Restoreconfig { file } => restoreconfig(&cx, &file),
        Cmd::Clearconfig { yes } => clearconfig(&cx, yes),
        Cmd::Reload => {
            let resp = cx.client.request(Request::Reload {
                dry_run: cx.dry_run,
                force: cx.force,
            })?;
            let (c, _, _) = cx.get_config()?;
            cx.report(resp, c.daemon.managed_by.as_deref()).map(drop)
        }
        Cmd::Plan { file } => {
            let text = std::fs::read_to_string(&file).map_err(|e| {
                Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", file.display()))
            })?;
            let v = config::parse_all(&text, &file.display().to_string())
                .map_err(|errs| invalid_file(&errs))?;
            let resp = cx.client.request(Request::Apply {
                config: v.config,
                dry_run: true,
                base_revision: None,
                force: cx.force,
            })?;
            cx.report(resp, None).map(drop)
        }
        Cmd::ImportLio {
            input,
            output,
            secrets_dir,
            allow_widening,
        } => import_lio(
            &input,
            output.as_deref(),
            secrets_dir.as_deref(),
            allow_widening,
            cx.json,
        ),
        Cmd::Completions { shell } => {
            let name = match shell {
                CompletionShell::Bash => "bash",
                CompletionShell::Zsh => "zsh",
                CompletionShell::Fish => "fish",
            };
            complete::registration(name, &mut std::io::stdout())
                .map_err(|e| Failure::new(EXIT_FAILED, e.to_string()))
        }
    }
}

fn invalid_file(errs: &[config::ConfigError]) -> Failure {
    let lines: Vec<String> = errs.iter().map(ToString::to_string).collect();
    Failure::new(EXIT_INVALID, lines.join("\n"))
}

/// `saveconfig [FILE]`.
pub fn saveconfig(cx: &Ctx, file: Option<&Path>) -> Result<(), Failure> {
    let path = file.map(absolute).transpose()?;
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

/// `restoreconfig FILE`: the file's configuration replaces the running one (against the
/// revision read, so a concurrent change is not overwritten unseen).
pub fn restoreconfig(cx: &Ctx, file: &Path) -> Result<(), Failure> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", file.display())))?;
    let v = config::parse_all(&text, &file.display().to_string())
        .map_err(|errs| invalid_file(&errs))?;
    let (_, _, revision) = cx.get_config()?;
    cx.apply(v.config, Some(revision)).map(drop)
}

/// `clearconfig`: no backstores, targets or discovery credentials; asks first unless `yes`.
pub fn clearconfig(cx: &Ctx, yes: bool) -> Result<(), Failure> {
    let (old, _, revision) = cx.get_config()?;
    if !yes && !cx.dry_run {
        eprint!(
            "clearconfig removes {} backstores and {} targets from the running daemon (the \
             files and devices stay). Type yes to go on: ",
            old.backstores.len(),
            old.targets.len()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        if answer.trim() != "yes" {
            return Err(Failure::new(
                EXIT_FAILED,
                "clearconfig: not confirmed; nothing changed",
            ));
        }
    }
    let mut new = old.clone();
    new.backstores.clear();
    new.targets.clear();
    new.discovery = Default::default();
    cx.apply(new, Some(revision)).map(drop)
}

fn import_lio(
    input: &Path,
    output: Option<&Path>,
    secrets_dir: Option<&Path>,
    allow_widening: bool,
    json: bool,
) -> Result<(), Failure> {
    let text = std::fs::read_to_string(input)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot read {}: {e}", input.display())))?;
    let dir = secrets_dir.map(absolute).transpose()?;
    let imp = lio::convert(&text, dir.as_deref()).map_err(|m| Failure::new(EXIT_USAGE, m))?;
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
    let report = lio::Report::new(&imp, &v.warnings);
    if json {
        print_json(&report)?;
    } else {
        eprint!("{}", report.render());
    }
    if !imp.widening.is_empty() && !allow_widening {
        return Err(Failure::new(
            EXIT_FAILED,
            format!(
                "import stopped: it would give initiators more access than LIO did:\n  {}\n\
                 nothing was written; pass --allow-widening to import anyway",
                imp.widening.join("\n  ")
            ),
        ));
    }
    lio::write_secrets(&imp.secrets)
        .map_err(|e| Failure::new(EXIT_FAILED, format!("writing secrets: {e}")))?;
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
            if !json {
                eprintln!("wrote {}", out.display());
            }
        }
        None if json => {}
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
