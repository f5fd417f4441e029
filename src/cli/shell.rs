//! `rustiscsi shell`: targetcli's verbs over the object tree ([`super::tree`]), each change
//! sent through the same path as the other commands ([`Ctx::mutate`]).
//!
//! `cd PATH`, `ls [PATH] [DEPTH]`, `pwd`, `create ...`, `delete ...`,
//! `get [attribute|parameter|auth] [KEY...]`, `set attribute|parameter|auth KEY=VALUE...`,
//! `saveconfig [FILE]`, `restoreconfig FILE`, `clearconfig [confirm=true]`, `status`,
//! `sessions [detail]`, `help`, `exit`. A line may start with a path: `/iscsi create IQN`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Context, Editor, Helper, Highlighter, Hinter, Validator};

use super::attrs::{self, Scope};
use super::edit::{self, AuthScope};
use super::tree::{self, Node};
use super::{Ctx, EXIT_FAILED, EXIT_USAGE, Failure};
use crate::backstore::BackstoreKind;
use crate::config::{ChapConfig, Config, Size};
use crate::control::api::ControlError;

/// The verbs, for completion and `help`.
pub const VERBS: &[&str] = &[
    "cd",
    "clearconfig",
    "create",
    "delete",
    "exit",
    "get",
    "help",
    "ls",
    "pwd",
    "restoreconfig",
    "saveconfig",
    "sessions",
    "set",
    "status",
];

const HELP: &str = "\
cd PATH                      go to PATH (/, .., relative or absolute)
ls [PATH] [DEPTH]            the tree under PATH
pwd                          where you are
create ...                   here: /backstores/block: NAME DEV | /backstores/fileio: NAME FILE [SIZE]
                             [write_back=true] | /backstores/ramdisk: NAME SIZE | /iscsi: [IQN] |
                             luns: /backstores/KIND/NAME [LUN] | acls: INITIATOR-IQN |
                             acls/IQN: MAPPED_LUN TPG_LUN [write_protect] | portals: [IP] [PORT]
delete NAME|IQN|LUN|IP PORT  removes the named child of here
get [GROUP] [KEY...]         attribute, parameter, auth (discovery_auth on /iscsi)
set GROUP KEY=VALUE...       e.g. set attribute generate_node_acls=1, set auth userid=u password=p
saveconfig [FILE]            write the running configuration (the daemon's file by default)
restoreconfig FILE           run the configuration of FILE instead
clearconfig confirm=true     remove every backstore and target
status | sessions [detail]   the daemon's state
exit                         leave the shell
A line may start with a path: /backstores/block create disk0 /dev/sdb";

/// One shell: where it is, and CHAP users noted until their password comes.
struct Shell<'a> {
    cx: &'a Ctx,
    cwd: Node,
    pending_user: HashMap<String, (Option<String>, Option<String>)>,
    interactive: bool,
}

/// Runs one command line (`words`) and returns.
pub fn one_shot(cx: &Ctx, words: &[String]) -> Result<(), Failure> {
    let mut sh = Shell {
        cx,
        cwd: Node::Root,
        pending_user: HashMap::new(),
        interactive: false,
    };
    sh.run(words).map(drop)
}

fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustiscsi_history"))
}

/// The interactive shell.
pub fn interactive(cx: &Ctx) -> Result<(), Failure> {
    let mut ed: Editor<ShellHelper, DefaultHistory> = Editor::new()
        .map_err(|e| Failure::new(EXIT_FAILED, format!("cannot start the line editor: {e}")))?;
    let socket = cx.client.path().to_path_buf();
    ed.set_helper(Some(ShellHelper {
        socket,
        cwd: "/".into(),
    }));
    let hist = history_file();
    if let Some(h) = &hist {
        let _ = ed.load_history(h);
    }
    let mut sh = Shell {
        cx,
        cwd: Node::Root,
        pending_user: HashMap::new(),
        interactive: true,
    };
    println!("rustiscsi shell: type help for the commands, exit to leave.");
    loop {
        if let Some(h) = ed.helper_mut() {
            h.cwd = sh.cwd.path();
        }
        let prompt = format!("{}> ", sh.cwd.path());
        match ed.readline(&prompt) {
            Ok(line) => {
                let words = match shlex::split(&line) {
                    Some(w) => w,
                    None => {
                        eprintln!("unbalanced quotes");
                        continue;
                    }
                };
                if words.is_empty() {
                    continue;
                }
                // Secrets typed in the shell are not written to the history.
                if !line.contains("password=") {
                    let _ = ed.add_history_entry(line.as_str());
                }
                match sh.run(&words) {
                    Ok(true) => break,
                    Ok(false) => {}
                    Err(f) => eprintln!("error: {}", f.message()),
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::new(EXIT_FAILED, e.to_string())),
        }
    }
    if let Some(h) = &hist {
        let _ = ed.save_history(h);
    }
    Ok(())
}

fn usage(m: impl Into<String>) -> Failure {
    Failure::new(EXIT_USAGE, m)
}

fn kv(args: &[String]) -> (Vec<&str>, HashMap<String, String>) {
    let mut pos = Vec::new();
    let mut kv = HashMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                kv.insert(k.to_ascii_lowercase(), v.to_owned());
            }
            None => pos.push(a.as_str()),
        }
    }
    (pos, kv)
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// A default IQN for `/iscsi create` without one, in the manner of targetcli.
fn default_iqn() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect::<String>();
    let host = if host.is_empty() { "host".into() } else { host };
    let mut r = [0u8; 6];
    let _ = getrandom::fill(&mut r);
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Civil year and month of the current date (days since 1970 → y-m).
    let days = secs.div_euclid(86_400);
    let (y, m) = civil(days);
    format!(
        "iqn.{y:04}-{m:02}.org.rustiscsi.{host}:sn.{}",
        hex::encode(r)
    )
}

fn civil(days: i64) -> (i64, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m)
}

fn parse_portal(ip: Option<&str>, port: Option<&str>) -> Result<SocketAddr, Failure> {
    if let Some(ip) = ip
        && port.is_none()
        && let Ok(a) = ip.parse::<SocketAddr>()
    {
        return Ok(a);
    }
    let ip = ip.unwrap_or("0.0.0.0");
    let ip: IpAddr = ip
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| usage(format!("{ip} is not an IP address")))?;
    let port: u16 = port
        .unwrap_or("3260")
        .parse()
        .map_err(|_| usage("the port is a number"))?;
    Ok(SocketAddr::new(ip, port))
}

fn lun_number(s: &str) -> Result<u64, Failure> {
    s.trim_start_matches("mapped_lun")
        .trim_start_matches("lun")
        .parse()
        .map_err(|_| usage(format!("{s} is not a LUN number")))
}

impl Shell<'_> {
    fn config(&self) -> Result<Config, Failure> {
        Ok(self.cx.get_config()?.0)
    }

    /// Runs one line; `Ok(true)` to leave the shell.
    fn run(&mut self, words: &[String]) -> Result<bool, Failure> {
        let Some(first) = words.first() else {
            return Ok(false);
        };
        let (node, verb, args) = if !VERBS.contains(&first.as_str()) && words.len() > 1 {
            let c = self.config()?;
            let n = self.cwd.resolve(first, &c).map_err(usage)?;
            (n, words[1].as_str(), &words[2..])
        } else {
            (self.cwd.clone(), first.as_str(), &words[1..])
        };
        match verb {
            "exit" | "quit" => return Ok(true),
            "help" => println!("{HELP}"),
            "pwd" => println!("{}", node.path()),
            "cd" => {
                let c = self.config()?;
                match args.first() {
                    None => print!("{}", tree::ls(&Node::Root, &c, None, 16)),
                    Some(p) => {
                        let n = node.resolve(p, &c).map_err(usage)?;
                        if !self.interactive {
                            println!("{}", n.path());
                        }
                        self.cwd = n;
                    }
                }
            }
            "ls" => {
                let c = self.config()?;
                let status = self.cx.status().ok();
                let (at, depth) = match args {
                    [] => (node, 16),
                    [p] if p.parse::<usize>().is_ok() => (node, p.parse().unwrap_or(16)),
                    [p, rest @ ..] => (
                        node.resolve(p, &c).map_err(usage)?,
                        rest.first().and_then(|d| d.parse().ok()).unwrap_or(16),
                    ),
                };
                print!("{}", tree::ls(&at, &c, status.as_ref(), depth));
            }
            "create" => self.create(&node, args)?,
            "delete" => self.delete(&node, args)?,
            "get" => self.get(&node, args)?,
            "set" => self.set(&node, args)?,
            "saveconfig" => super::saveconfig(self.cx, args.first().map(Path::new))?,
            "restoreconfig" => {
                let f = args
                    .iter()
                    .find(|a| !a.contains('='))
                    .ok_or_else(|| usage("restoreconfig FILE"))?;
                super::restoreconfig(self.cx, Path::new(f))?;
            }
            "clearconfig" => {
                let (_, kv) = kv(args);
                if !truthy(kv.get("confirm")) {
                    return Err(usage(
                        "clearconfig removes every backstore and target: run `clearconfig \
                         confirm=true`",
                    ));
                }
                super::clearconfig(self.cx, true)?;
            }
            "status" => print!("{}", super::render::status(&self.cx.status()?)),
            "sessions" => {
                let resp = self
                    .cx
                    .client
                    .request(crate::control::api::Request::Sessions)?;
                if let crate::control::api::Response::Sessions(s) = resp {
                    if args.first().is_some_and(|a| a == "detail") {
                        print!("{}", super::render::sessions_detail(&s));
                    } else {
                        print!("{}", super::render::sessions(&s));
                    }
                }
            }
            other => {
                return Err(usage(format!("unknown command {other} (help lists them)")));
            }
        }
        Ok(false)
    }

    fn create(&mut self, node: &Node, args: &[String]) -> Result<(), Failure> {
        let (pos, kv) = kv(args);
        let arg = |i: usize, k: &str| -> Option<String> {
            kv.get(k)
                .cloned()
                .or_else(|| pos.get(i).map(|s| (*s).to_owned()))
        };
        match node {
            Node::Kind(kind) => {
                let name = arg(0, "name").ok_or_else(|| usage("create NAME ..."))?;
                let (path, size) = match kind {
                    BackstoreKind::Ramdisk => (None, arg(1, "size")),
                    BackstoreKind::Block => (arg(1, "dev"), None),
                    BackstoreKind::Fileio => (
                        arg(1, "file_or_dev").or_else(|| kv.get("dev").cloned()),
                        arg(2, "size"),
                    ),
                };
                let path = path.map(|p| super::absolute(Path::new(&p))).transpose()?;
                let size = size.map(|s| s.parse::<Size>().map_err(usage)).transpose()?;
                let write_cache = truthy(kv.get("write_back"));
                let kind = *kind;
                self.cx.mutate(|c| {
                    edit::backstore_create(c, &name, kind, path.clone(), size, 512, write_cache)
                })
            }
            Node::Iscsi => {
                let iqn = arg(0, "wwn").unwrap_or_else(default_iqn).to_lowercase();
                self.cx.mutate(|c| edit::target_create(c, &iqn))
            }
            Node::Target(_) => Err(Failure::new(
                EXIT_FAILED,
                "a target has one portal group here from the shell (tpg1); several portal \
                 groups are set in the TOML (portal_groups)",
            )),
            Node::Luns(t, _) => {
                let so = arg(0, "storage_object")
                    .ok_or_else(|| usage("create /backstores/KIND/NAME [LUN]"))?;
                let name = so.rsplit('/').next().unwrap_or(&so).to_owned();
                let lun = arg(1, "lun").map(|l| lun_number(&l)).transpose()?;
                let t = t.clone();
                self.cx.mutate(|c| edit::lun_add(c, &t, &name, lun))
            }
            Node::Acls(t, _) => {
                let wwn = arg(0, "wwn")
                    .ok_or_else(|| usage("create INITIATOR-IQN"))?
                    .to_lowercase();
                let t = t.clone();
                self.cx.mutate(|c| edit::acl_add(c, &t, &wwn, Vec::new()))
            }
            Node::Acl(t, _, i) => {
                let ml = arg(0, "mapped_lun")
                    .ok_or_else(|| usage("create MAPPED_LUN TPG_LUN [write_protect]"))?;
                let ml = lun_number(&ml)?;
                let tl = arg(1, "tpg_lun_or_backstore")
                    .map(|l| lun_number(&l))
                    .transpose()?;
                let wp = truthy(kv.get("write_protect"))
                    || pos.get(2).is_some_and(|w| *w == "1" || *w == "true");
                let (t, i) = (t.clone(), i.clone());
                self.cx
                    .mutate(|c| edit::map_set(c, &t, &i, ml, Some(tl.unwrap_or(ml)), Some(wp)))
            }
            Node::Portals(t, g) => {
                let p = parse_portal(
                    arg(0, "ip_address").as_deref(),
                    arg(1, "ip_port").as_deref(),
                )?;
                let (t, g) = (t.clone(), *g);
                self.cx.mutate(|c| edit::portal_add(c, &t, g, p))
            }
            other => Err(usage(format!("nothing to create in {}", other.path()))),
        }
    }

    fn delete(&mut self, node: &Node, args: &[String]) -> Result<(), Failure> {
        let (pos, _) = kv(args);
        let first = pos
            .first()
            .map(|s| (*s).to_owned())
            .ok_or_else(|| usage("delete NAME"))?;
        match node {
            Node::Kind(_) => self.cx.mutate(|c| edit::backstore_delete(c, &first)),
            Node::Iscsi => self.cx.mutate(|c| edit::target_delete(c, &first)),
            Node::Luns(t, _) => {
                let n = lun_number(&first)?;
                let t = t.clone();
                self.cx.mutate(|c| edit::lun_remove(c, &t, n))
            }
            Node::Acls(t, _) => {
                let t = t.clone();
                self.cx
                    .mutate(|c| edit::acl_remove(c, &t, &first.to_lowercase()))
            }
            Node::Acl(t, _, i) => {
                let n = lun_number(&first)?;
                let (t, i) = (t.clone(), i.clone());
                self.cx.mutate(|c| edit::map_remove(c, &t, &i, n))
            }
            Node::Portals(t, g) => {
                let p = parse_portal(Some(&first), pos.get(1).copied())?;
                let (t, g) = (t.clone(), *g);
                self.cx.mutate(|c| edit::portal_remove(c, &t, g, p))
            }
            other => Err(usage(format!("nothing to delete in {}", other.path()))),
        }
    }

    fn scope(node: &Node) -> Result<Scope, Failure> {
        Ok(match node {
            Node::Iscsi => Scope::Iscsi,
            Node::Backstore(_, n) => Scope::Backstore(n.clone()),
            Node::Target(t) | Node::Tpg(t, _) => Scope::Target(t.clone()),
            Node::Acl(t, _, i) => Scope::Acl(t.clone(), i.clone()),
            Node::MappedLun(t, _, i, l) => Scope::MappedLun(t.clone(), i.clone(), *l),
            other => return Err(usage(format!("{} has no settings", other.path()))),
        })
    }

    fn get(&self, node: &Node, args: &[String]) -> Result<(), Failure> {
        let c = self.config()?;
        let groups =
            attrs::get(&c, &Self::scope(node)?).map_err(|m| Failure::new(EXIT_FAILED, m))?;
        let (group, keys) = match args.split_first() {
            Some((g, k)) => (Some(g.as_str()), k),
            None => (None, &[][..]),
        };
        let mut shown = false;
        for (g, kvs) in groups {
            if group.is_some_and(|x| x != g) {
                continue;
            }
            shown = true;
            println!("{} group:", g.to_uppercase());
            for (k, v) in kvs {
                if keys.is_empty() || keys.iter().any(|x| x.eq_ignore_ascii_case(&k)) {
                    println!("{k}={v}");
                }
            }
        }
        if !shown {
            return Err(usage(format!(
                "no group {} here",
                group.unwrap_or_default()
            )));
        }
        Ok(())
    }

    fn set(&mut self, node: &Node, args: &[String]) -> Result<(), Failure> {
        let (group, rest) = args
            .split_first()
            .ok_or_else(|| usage("set GROUP KEY=VALUE..."))?;
        let (_, kv) = kv(rest);
        if kv.is_empty() {
            return Err(usage("set GROUP KEY=VALUE..."));
        }
        let scope = Self::scope(node)?;
        if group == "auth" || group == "discovery_auth" {
            return self.set_auth(&scope, &kv);
        }
        let mut pairs: Vec<(String, String)> = kv.into_iter().collect();
        pairs.sort();
        let group = group.clone();
        self.cx.mutate(|c| {
            let mut done = Vec::new();
            for (k, v) in &pairs {
                done.push(attrs::set(c, &scope, &group, k, v)?);
            }
            Ok(done.join("; "))
        })
    }

    /// `set auth userid=... password=... mutual_userid=... mutual_password=...` (or
    /// `password_file=`). A password typed here is written to a file of its own (mode
    /// 0600) under the daemon's state dir; the configuration names that file.
    fn set_auth(&mut self, scope: &Scope, kv: &HashMap<String, String>) -> Result<(), Failure> {
        let auth_scope = match scope {
            Scope::Iscsi => AuthScope::Discovery,
            Scope::Target(t) => AuthScope::Target(t.clone()),
            Scope::Acl(t, i) => AuthScope::Acl {
                target: t.clone(),
                initiator: i.clone(),
            },
            _ => return Err(usage("auth is set on /iscsi (discovery), a TPG or an ACL")),
        };
        let (c, _, _) = self.cx.get_config()?;
        let current = current_auth(&c, &auth_scope);
        let key = format!("{auth_scope:?}");
        let pending = self.pending_user.entry(key.clone()).or_default();
        if kv.get("enable").is_some_and(|v| v == "0") && kv.len() == 1 {
            self.pending_user.remove(&key);
            return self.cx.mutate(|cfg| edit::auth_clear(cfg, &auth_scope));
        }
        let dir = c.daemon.state_dir.join("secrets");
        let file_name = key
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() || ch == '.' || ch == '-' {
                    ch
                } else {
                    '_'
                }
            })
            .collect::<String>();
        let side = |user_k: &str,
                    pass_k: &str,
                    file_k: &str,
                    suffix: &str,
                    cur: Option<&ChapConfig>,
                    pend: &mut Option<String>|
         -> Result<Option<Option<ChapConfig>>, Failure> {
            let user = kv.get(user_k).cloned();
            let pass = kv.get(pass_k);
            let file = kv.get(file_k);
            if user.is_none() && pass.is_none() && file.is_none() {
                return Ok(None);
            }
            if user.as_deref() == Some("") && pass.is_none() && file.is_none() {
                return Ok(Some(None));
            }
            let user = user
                .or_else(|| pend.clone())
                .or_else(|| cur.map(|c| c.user.clone()));
            let path = match (pass, file) {
                (_, Some(f)) => Some(super::absolute(Path::new(f))?),
                (Some(p), None) => Some(write_secret(&dir, &format!("{file_name}.{suffix}"), p)?),
                (None, None) => cur.map(|c| c.password_file.clone()),
            };
            match (user, path) {
                (Some(u), Some(p)) => Ok(Some(Some(ChapConfig {
                    user: u,
                    password_file: p,
                }))),
                (Some(u), None) => {
                    *pend = Some(u.clone());
                    println!("{user_k}={u} noted; it takes effect with {pass_k}= (or {file_k}=)");
                    Ok(None)
                }
                (None, _) => Err(usage(format!("give {user_k}= with {pass_k}="))),
            }
        };
        let one = side(
            "userid",
            "password",
            "password_file",
            "chap",
            current.0.as_ref(),
            &mut pending.0,
        )?;
        let mutual = side(
            "mutual_userid",
            "mutual_password",
            "mutual_password_file",
            "mutual_chap",
            current.1.as_ref(),
            &mut pending.1,
        )?;
        if one.is_none() && mutual.is_none() {
            return Ok(());
        }
        let chap = one.unwrap_or(current.0);
        let mutual = mutual.unwrap_or(current.1);
        self.pending_user.remove(&key);
        self.cx.mutate(|cfg| match chap.clone() {
            Some(chap) => edit::auth_set(cfg, &auth_scope, chap, mutual.clone()),
            None if mutual.is_some() => Err(ControlError::invalid(
                "mutual CHAP needs userid and password first",
            )),
            None => edit::auth_clear(cfg, &auth_scope),
        })
    }
}

fn current_auth(c: &Config, s: &AuthScope) -> (Option<ChapConfig>, Option<ChapConfig>) {
    match s {
        AuthScope::Discovery => (c.discovery.chap.clone(), c.discovery.mutual_chap.clone()),
        AuthScope::Target(t) => c.targets.get(t).map_or((None, None), |t| {
            (t.auth.chap.clone(), t.auth.mutual_chap.clone())
        }),
        AuthScope::Acl { target, initiator } => c
            .targets
            .get(target)
            .and_then(|t| t.acls.get(initiator))
            .map_or((None, None), |a| (a.chap.clone(), a.mutual_chap.clone())),
    }
}

/// Writes a secret typed in the shell to `dir/name` (directory 0700, file 0600).
fn write_secret(dir: &Path, name: &str, value: &str) -> Result<PathBuf, Failure> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        Failure::new(
            EXIT_FAILED,
            format!("cannot write the secret under {}: {e}", dir.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(fail)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(fail)?;
    f.write_all(format!("{value}\n").as_bytes()).map_err(fail)?;
    f.sync_all().map_err(fail)?;
    std::fs::rename(&tmp, &path).map_err(fail)?;
    println!("secret written to {} (mode 0600)", path.display());
    Ok(path)
}

/// Tab completion: verbs, paths of the tree and object names (asked from the daemon).
#[derive(Helper, Hinter, Highlighter, Validator)]
struct ShellHelper {
    socket: PathBuf,
    cwd: String,
}

impl ShellHelper {
    fn config(&self) -> Option<Config> {
        let client = crate::control::client::Client::new(&self.socket)
            .with_timeout(std::time::Duration::from_secs(2));
        match client
            .request(crate::control::api::Request::GetConfig)
            .ok()?
        {
            crate::control::api::Response::Config { config, .. } => Some(*config),
            _ => None,
        }
    }
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let upto = &line[..pos];
        let start = upto.rfind(' ').map_or(0, |i| i + 1);
        let word = &upto[start..];
        let first_word = !upto[..start].chars().any(|c| !c.is_whitespace());
        let pair = |s: String| Pair {
            display: s.clone(),
            replacement: s,
        };
        let mut out: Vec<Pair> = Vec::new();
        if first_word && !word.starts_with('/') && !word.starts_with('.') {
            out.extend(
                VERBS
                    .iter()
                    .filter(|v| v.starts_with(word))
                    .map(|v| pair((*v).to_owned())),
            );
        }
        if let Some(c) = self.config() {
            let cwd = Node::Root.resolve(&self.cwd, &c).unwrap_or(Node::Root);
            // Complete the last path segment against the children of its directory.
            let (dir, partial) = match word.rfind('/') {
                Some(i) => (&word[..=i], &word[i + 1..]),
                None => ("", word),
            };
            let base = if dir.is_empty() {
                Ok(cwd.clone())
            } else {
                cwd.resolve(dir, &c)
            };
            if let Ok(base) = base {
                for (name, _) in base.children(&c) {
                    if name.starts_with(partial) {
                        out.push(pair(format!("{dir}{name}/")));
                    }
                }
            }
            if !first_word && !word.contains('/') {
                // Object names: backstores (for luns create), IQNs (for delete).
                let names = c
                    .backstores
                    .iter()
                    .map(|(n, b)| format!("/backstores/{}/{n}", tree::kind_name(b.kind)))
                    .chain(c.targets.keys().cloned())
                    .chain(["attribute", "parameter", "auth"].map(String::from));
                for n in names {
                    if n.starts_with(word) && !out.iter().any(|p| p.replacement == n) {
                        out.push(pair(n));
                    }
                }
            }
        }
        Ok((start, out))
    }
}
