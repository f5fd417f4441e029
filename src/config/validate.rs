//! Validation: everything is checked before anything is served, and each error names the
//! file, the line and the key.
//!
//! Parsing never touches the filesystem (it also runs at Nix build time, where the secret
//! files named by `password_file` do not exist): only [`load`] reads, and only the config.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::names::{check_backstore_name, check_iscsi_name};
use super::spans::{KeyPath, SpanIndex};
use super::{AuthConfig, BackstoreConfig, ChapConfig, Config, IscsiLimits, Size, TargetConfig};
use crate::backstore::BackstoreKind;

/// Origin used for configurations built in memory (the embedded default).
pub const EMBEDDED_ORIGIN: &str = "<embedded default>";

/// Highest LUN number plus one (SAM flat/peripheral addressing: 14 bits).
pub const MAX_LUNS: u64 = 16384;

/// A configuration error, naming where it is: `file:line: key: message`, or `key: message`
/// for a configuration built in memory (an origin in angle brackets, no line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file (or `<embedded default>`).
    pub file: String,
    /// 1-based line of the offending key (0 when unknown).
    pub line: usize,
    /// Dotted key path, e.g. `targets."iqn.x:y".luns[0].backstore`.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.file.starts_with('<')) {
            (0, true) => write!(f, "{}: {}", self.key, self.message),
            (0, false) => write!(f, "{}: {}: {}", self.file, self.key, self.message),
            (n, _) => write!(f, "{}:{n}: {}: {}", self.file, self.key, self.message),
        }
    }
}

/// A configuration that passed every check; the only input the registry accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedConfig {
    /// The checked model.
    pub config: Config,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
    /// Soft problems (logged at start, printed by `--check`), each formatted like an error:
    /// `file:line: key: message`.
    pub warnings: Vec<String>,
}

/// Reads and validates a config file; errors name `path`.
pub fn load(path: &Path) -> Result<ValidatedConfig, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: origin.clone(),
        line: 0,
        key: KeyPath::root().to_string(),
        message: format!("cannot read the configuration: {e}"),
    })?;
    let mut v = parse(&text, &origin)?;
    v.source = Some(path.to_path_buf());
    Ok(v)
}

/// Parses and validates TOML text; `origin` names it in errors. Returns the first error
/// in file order; [`parse_all`] returns every one.
///
/// Touches no file: `password_file` paths are checked for form only.
pub fn parse(text: &str, origin: &str) -> Result<ValidatedConfig, ConfigError> {
    parse_all(text, origin).map_err(first)
}

/// Like [`parse`], but reports every semantic error, sorted by line (a syntax or type
/// error stops parsing, so it comes alone).
pub fn parse_all(text: &str, origin: &str) -> Result<ValidatedConfig, Vec<ConfigError>> {
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            // Best-effort tree to name the key near a syntax error.
            let (partial, _) = DeTable::parse_recoverable(text);
            let idx = SpanIndex::new(text, &partial);
            let mut err = toml_error(&e, &idx, origin);
            if let Some(span) = e.span() {
                err.key = idx.path_before(span.start).to_string();
            }
            return Err(vec![err]);
        }
    };
    let idx = SpanIndex::new(text, &doc);
    // A key of the wrong type or name stops deserialization. To report every mistake,
    // blank that key out (spaces, so lines and offsets stay) and try again; then check
    // the rest, leaving out what lies under a blanked key.
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut blanked: Vec<String> = Vec::new();
    let mut current = text.to_owned();
    let config = loop {
        match toml::from_str::<Config>(&current) {
            Ok(c) => break Some(c),
            Err(e) => {
                let err = toml_error(&e, &idx, origin);
                if blanked.contains(&err.key) {
                    // The key blanked out was required: nothing new to report.
                    break None;
                }
                let path = err.key.clone();
                let retry = (errors.len() < 32)
                    .then(|| blank_key(&current, &idx, &e))
                    .flatten();
                errors.push(err);
                match retry {
                    Some(t) => {
                        blanked.push(path);
                        current = t;
                    }
                    None => break None,
                }
            }
        }
    };
    let Some(config) = config else {
        errors.sort_by_key(|e| e.line);
        return Err(errors);
    };
    match Checker::run(config, origin, Some(&idx)) {
        Ok(v) if errors.is_empty() => Ok(v),
        Ok(_) => Err(errors),
        Err(semantic) => {
            // Errors about a blanked key, what lies under it, or its table (which lost
            // the key) follow from the first error.
            let under = |k: &str| {
                blanked.iter().any(|b| {
                    k == b
                        || k.starts_with(&format!("{b}."))
                        || k.starts_with(&format!("{b}["))
                        || b.starts_with(&format!("{k}."))
                        || b.starts_with(&format!("{k}["))
                })
            };
            errors.extend(semantic.into_iter().filter(|e| !under(&e.key)));
            errors.sort_by_key(|e| e.line);
            Err(errors)
        }
    }
}

/// `text` with the key that `e` is about replaced by spaces (with a comma that separates
/// it from a neighbour in an inline table or array), if that leaves valid TOML.
fn blank_key(text: &str, idx: &SpanIndex, e: &toml::de::Error) -> Option<String> {
    let span = e.span()?;
    let message = e.message();
    if message.starts_with("missing field") {
        return None;
    }
    let mut path = idx.path_at(span.start);
    if let Some(f) = message
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next())
    {
        let child = path.key(f);
        if idx.contains(&child) {
            path = child;
        }
    }
    if path.is_root() {
        return None;
    }
    let (key, value) = idx.spans(&path)?;
    let b = text.as_bytes();
    let (mut start, mut end) = (key.start.min(value.start), key.end.max(value.end));
    let mut j = end;
    while j < b.len() && (b[j] == b' ' || b[j] == b'\t') {
        j += 1;
    }
    if j < b.len() && b[j] == b',' {
        end = j + 1;
    } else {
        let mut i = start;
        while i > 0 && (b[i - 1] == b' ' || b[i - 1] == b'\t') {
            i -= 1;
        }
        if i > 0 && b[i - 1] == b',' {
            start = i - 1;
        }
    }
    let mut out = text.as_bytes().to_vec();
    for c in &mut out[start..end] {
        if *c != b'\n' {
            *c = b' ';
        }
    }
    let out = String::from_utf8(out).ok()?;
    DeTable::parse(&out).ok()?;
    Some(out)
}

/// Validates a configuration built in memory (errors carry line 0 and the key path).
pub fn validate(config: Config, origin: &str) -> Result<ValidatedConfig, ConfigError> {
    validate_all(config, origin).map_err(first)
}

/// Like [`validate`], but reports every error.
pub fn validate_all(config: Config, origin: &str) -> Result<ValidatedConfig, Vec<ConfigError>> {
    Checker::run(config, origin, None)
}

fn first(mut errors: Vec<ConfigError>) -> ConfigError {
    debug_assert!(!errors.is_empty());
    errors.swap_remove(0)
}

/// Turns a TOML syntax or serde error into a [`ConfigError`] at its key.
fn toml_error(e: &toml::de::Error, idx: &SpanIndex, origin: &str) -> ConfigError {
    let mut message = e.message().trim().to_owned();
    if message == "invalid socket address syntax" {
        message.push_str(" (expected IP:port, e.g. 0.0.0.0:3260 or [::]:3260)");
    }
    let (mut line, mut path) = match e.span() {
        Some(span) => (idx.line_of_offset(span.start), idx.path_at(span.start)),
        None => (0, KeyPath::root()),
    };
    let field = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|r| r.split('`').next())
            .map(str::to_owned)
    };
    // "missing field `x`" points at the table: name the missing key itself.
    if let Some(f) = field("missing field `") {
        path = path.key(&f);
    }
    // In an inline table, "unknown field `x`" points at the whole table: name the key.
    if let Some(f) = field("unknown field `") {
        let child = path.key(&f);
        if idx.contains(&child) {
            line = idx.line(&child);
            path = child;
        }
    }
    ConfigError {
        file: origin.to_owned(),
        line,
        key: path.to_string(),
        message,
    }
}

/// Collects errors and warnings while walking a [`Config`].
struct Checker<'a> {
    origin: &'a str,
    spans: Option<&'a SpanIndex>,
    errors: Vec<ConfigError>,
    warnings: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    fn run(
        config: Config,
        origin: &'a str,
        spans: Option<&'a SpanIndex>,
    ) -> Result<ValidatedConfig, Vec<ConfigError>> {
        let mut c = Checker {
            origin,
            spans,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        c.config(&config);
        if c.errors.is_empty() {
            Ok(ValidatedConfig {
                config,
                source: None,
                warnings: c.warnings.iter().map(ToString::to_string).collect(),
            })
        } else {
            c.errors.sort_by_key(|e| e.line);
            Err(c.errors)
        }
    }

    fn at(&self, path: &KeyPath, message: String) -> ConfigError {
        ConfigError {
            file: self.origin.to_owned(),
            line: self.spans.map_or(0, |s| s.line(path)),
            key: path.to_string(),
            message,
        }
    }

    fn err(&mut self, path: &KeyPath, message: impl Into<String>) {
        let e = self.at(path, message.into());
        self.errors.push(e);
    }

    fn warn(&mut self, path: &KeyPath, message: impl Into<String>) {
        let w = self.at(path, message.into());
        self.warnings.push(w);
    }

    /// Whether `path` is written in the source (`None` when validating a model in memory).
    fn written(&self, path: &KeyPath) -> Option<bool> {
        self.spans.map(|s| s.contains(path))
    }

    fn line(&self, path: &KeyPath) -> usize {
        self.spans.map_or(0, |s| s.line(path))
    }

    fn config(&mut self, c: &Config) {
        let root = KeyPath::root();
        self.daemon(c, &root.key("daemon"));
        self.iscsi(&c.iscsi, &root.key("iscsi"));
        let d = root.key("discovery");
        self.auth(
            &d,
            c.discovery.chap.as_ref(),
            c.discovery.mutual_chap.as_ref(),
        );
        self.backstores(c, &root.key("backstores"));
        self.targets(c, &root.key("targets"));
    }

    fn daemon(&mut self, c: &Config, p: &KeyPath) {
        let d = &c.daemon;
        let portals = p.key("portals");
        if d.portals.is_empty() {
            self.err(&portals, "at least one portal is needed");
        }
        let mut seen: HashMap<SocketAddr, usize> = HashMap::new();
        for (i, a) in d.portals.iter().enumerate() {
            let pi = portals.index(i);
            if a.port() == 0 {
                self.err(&pi, format!("portal {a} has port 0; iSCSI uses 3260"));
            }
            if let Some(&j) = seen.get(a) {
                self.err(
                    &pi,
                    format!("portal {a} is listed twice (also portals[{j}])"),
                );
                continue;
            }
            seen.insert(*a, i);
            let overlapping = d
                .portals
                .iter()
                .position(|b| super::portals::overlaps(&d.portals, a, b));
            if let Some(j) = overlapping {
                let b = d.portals[j];
                let how = if b.is_ipv6() && a.is_ipv4() {
                    " (IPv4 included: [::] is dual-stack unless 0.0.0.0 of the same port \
                     is listed too)"
                } else {
                    ""
                };
                self.err(
                    &pi,
                    format!(
                        "portal {a} overlaps the wildcard portal {b} (portals[{j}]), \
                         which already listens on every address{how}; drop one"
                    ),
                );
            }
        }
        if !d.state_dir.is_absolute() {
            self.err(&p.key("state_dir"), "state_dir must be an absolute path");
        }
        if !d.control_socket.is_absolute() {
            self.err(
                &p.key("control_socket"),
                "control_socket must be an absolute path",
            );
        }
        if d.max_connections < 1 {
            self.err(
                &p.key("max_connections"),
                "max_connections must be at least 1",
            );
        }
        for (key, v) in [
            ("max_login_connections", d.max_login_connections),
            ("max_discovery_sessions", d.max_discovery_sessions),
            ("pdu_timeout_secs", d.pdu_timeout_secs),
            ("send_timeout_secs", d.send_timeout_secs),
        ] {
            if v < 1 {
                self.err(&p.key(key), format!("{key} must be at least 1"));
            }
        }
        const MIN_BUFFERS: u64 = 64 << 20;
        if d.session_buffer_memory.0 < MIN_BUFFERS {
            self.err(
                &p.key("session_buffer_memory"),
                format!(
                    "session_buffer_memory = {} is below {}: one command of the largest \
                     transfer (32M) and a burst of reads must fit",
                    d.session_buffer_memory,
                    Size(MIN_BUFFERS)
                ),
            );
        }
        if d.buffer_memory < d.session_buffer_memory {
            self.err(
                &p.key("buffer_memory"),
                format!(
                    "buffer_memory = {} is smaller than session_buffer_memory = {}",
                    d.buffer_memory, d.session_buffer_memory
                ),
            );
        }
        if d.login_timeout_secs < 1 {
            self.err(
                &p.key("login_timeout_secs"),
                "login_timeout_secs must be at least 1",
            );
        }
        if d.nop_interval_secs > 0 && d.nop_timeout_secs < 1 {
            self.err(
                &p.key("nop_timeout_secs"),
                "nop_timeout_secs must be at least 1 when nop_interval_secs is set \
                 (set nop_interval_secs = 0 to disable pings)",
            );
        }
        if let Some(m) = d.metrics_listen
            && d.portals.contains(&m)
        {
            self.err(
                &p.key("metrics_listen"),
                format!("metrics_listen {m} is also an iSCSI portal"),
            );
        }
    }

    fn iscsi(&mut self, l: &IscsiLimits, p: &KeyPath) {
        const SEG: std::ops::RangeInclusive<u32> = 512..=16_777_215;
        for (key, v) in [
            (
                "max_recv_data_segment_length",
                l.max_recv_data_segment_length,
            ),
            ("max_burst_length", l.max_burst_length),
            ("first_burst_length", l.first_burst_length),
        ] {
            if !SEG.contains(&v) {
                self.err(
                    &p.key(key),
                    format!("{key} = {v} is outside 512..=16777215 (RFC 7143 §13)"),
                );
            }
        }
        if l.first_burst_length > l.max_burst_length {
            self.err(
                &p.key("first_burst_length"),
                format!(
                    "first_burst_length ({}) must not exceed max_burst_length ({})",
                    l.first_burst_length, l.max_burst_length
                ),
            );
        }
        if !(1..=65_535).contains(&l.max_outstanding_r2t) {
            self.err(
                &p.key("max_outstanding_r2t"),
                format!(
                    "max_outstanding_r2t = {} is outside 1..=65535 (RFC 7143 §13.17)",
                    l.max_outstanding_r2t
                ),
            );
        }
        if !(1..=4096).contains(&l.queue_depth) {
            self.err(
                &p.key("queue_depth"),
                format!("queue_depth = {} is outside 1..=4096", l.queue_depth),
            );
        }
        for (key, list) in [
            ("header_digest", &l.header_digest),
            ("data_digest", &l.data_digest),
        ] {
            let lp = p.key(key);
            if list.is_empty() {
                self.err(
                    &lp,
                    format!("{key} needs at least one of \"None\", \"CRC32C\""),
                );
            }
            for (i, d) in list.iter().enumerate() {
                if d != "None" && d != "CRC32C" {
                    self.err(
                        &lp.index(i),
                        format!("unknown digest {d:?}: use \"None\" or \"CRC32C\""),
                    );
                } else if list[..i].contains(d) {
                    self.err(&lp.index(i), format!("digest {d:?} is listed twice"));
                }
            }
        }
    }

    /// CHAP settings of discovery, a target's `auth` or an ACL (`p` is their table).
    fn auth(&mut self, p: &KeyPath, chap: Option<&ChapConfig>, mutual: Option<&ChapConfig>) {
        if let Some(c) = chap {
            self.chap(&p.key("chap"), c);
        }
        if let Some(m) = mutual {
            let mp = p.key("mutual_chap");
            self.chap(&mp, m);
            match chap {
                None => self.err(
                    &mp,
                    "mutual_chap needs chap in the same table: the initiator must \
                     authenticate first",
                ),
                Some(c) if c.password_file == m.password_file => self.err(
                    &mp.key("password_file"),
                    "mutual_chap uses the same secret file as chap; the two directions \
                     need different secrets (RFC 7143 §12.1.3)",
                ),
                Some(_) => {}
            }
        }
    }

    fn chap(&mut self, p: &KeyPath, c: &ChapConfig) {
        if c.user.trim().is_empty() {
            self.err(&p.key("user"), "CHAP user cannot be empty");
        } else if c.user.chars().any(char::is_control) {
            self.err(&p.key("user"), "CHAP user cannot hold control characters");
        }
        if !c.password_file.is_absolute() {
            self.err(
                &p.key("password_file"),
                format!(
                    "password_file must be an absolute path (got {:?})",
                    c.password_file
                ),
            );
        }
    }

    fn backstores(&mut self, c: &Config, p: &KeyPath) {
        let mut paths: BTreeMap<&Path, &str> = BTreeMap::new();
        // Two disks must never present one identity: multipath would merge them, and
        // their persisted reservations (keyed by the NAA designator) would mix.
        let mut pinned: BTreeMap<(&str, String), &str> = BTreeMap::new();
        let used: BTreeSet<&str> = c
            .targets
            .values()
            .flat_map(|t| t.luns.iter().map(|l| l.backstore.as_str()))
            .collect();
        for (name, b) in &c.backstores {
            let bp = p.key(name);
            if let Err(m) = check_backstore_name(name) {
                self.err(&bp, m);
            }
            self.backstore(b, &bp);
            if let Some(path) = &b.path
                && b.kind != BackstoreKind::Ramdisk
            {
                if let Some(other) = paths.get(path.as_path()) {
                    self.err(
                        &bp.key("path"),
                        format!(
                            "{} is also the path of backstore {other:?}; \
                             one file or device, one backstore",
                            path.display()
                        ),
                    );
                } else {
                    paths.insert(path, name);
                }
            }
            for (key, value) in [("serial", &b.serial), ("wwn", &b.wwn)] {
                let Some(v) = value else { continue };
                match pinned.get(&(key, v.to_ascii_lowercase())) {
                    Some(other) => self.err(
                        &bp.key(key),
                        format!(
                            "{key} {v:?} is also pinned by backstore {other:?}; two disks \
                             must not present the same identity"
                        ),
                    ),
                    None => {
                        pinned.insert((key, v.to_ascii_lowercase()), name);
                    }
                }
            }
            if !used.contains(name.as_str()) {
                self.warn(&bp, format!("backstore {name:?} is not used by any LUN"));
            }
        }
    }

    fn backstore(&mut self, b: &BackstoreConfig, p: &KeyPath) {
        let kind = match b.kind {
            BackstoreKind::Block => "block",
            BackstoreKind::Fileio => "fileio",
            BackstoreKind::Ramdisk => "ramdisk",
        };
        let path_key = p.key("path");
        let size_key = p.key("size");
        let bs_key = p.key("block_size");
        match (b.kind, &b.path) {
            (BackstoreKind::Ramdisk, Some(_)) => {
                self.err(&path_key, "a ramdisk backstore has no path (remove it)");
            }
            (BackstoreKind::Ramdisk, None) => {}
            (_, None) => self.err(p, format!("a {kind} backstore needs path")),
            (_, Some(path)) if !path.is_absolute() => self.err(
                &path_key,
                format!(
                    "path must be absolute (got {:?})",
                    path.display().to_string()
                ),
            ),
            (_, Some(_)) => {}
        }
        match (b.kind, b.size) {
            (BackstoreKind::Ramdisk, None) => {
                self.err(p, "a ramdisk backstore needs size (e.g. size = \"1G\")");
            }
            (BackstoreKind::Block, Some(_)) => self.warn(
                &size_key,
                "size is ignored for a block backstore: the device's size is used",
            ),
            (_, Some(s)) if s.0 == 0 => self.err(&size_key, "size must be greater than 0"),
            (_, Some(s))
                if (b.block_size == 512 || b.block_size == 4096)
                    && s.0 % u64::from(b.block_size) != 0 =>
            {
                self.err(
                    &size_key,
                    format!(
                        "size {} bytes is not a multiple of block_size {}",
                        s.0, b.block_size
                    ),
                );
            }
            _ => {}
        }
        if b.kind == BackstoreKind::Ramdisk && b.cache.is_some() {
            self.err(
                &p.key("cache"),
                "cache does not apply to a ramdisk backstore (remove it)",
            );
        }
        self.identity(b, p);
        if b.block_size != 512 && b.block_size != 4096 {
            self.err(
                &bs_key,
                format!("block_size = {} must be 512 or 4096", b.block_size),
            );
        } else if b.kind == BackstoreKind::Block
            && self.written(&bs_key).unwrap_or(b.block_size != 512)
        {
            self.warn(
                &bs_key,
                "block_size is ignored for a block backstore: the device's own logical \
                 block size is used",
            );
        }
    }

    /// Pinned identity keys: their form only (whether a change is allowed is decided
    /// where changes are planned).
    fn identity(&mut self, b: &BackstoreConfig, p: &KeyPath) {
        for (key, value, max) in [
            ("serial", &b.serial, 254),
            ("vendor", &b.vendor, 8),
            ("product", &b.product, 16),
        ] {
            let Some(v) = value else { continue };
            if v.is_empty() || v.len() > max {
                self.err(
                    &p.key(key),
                    format!("{key} must be 1 to {max} characters (got {})", v.len()),
                );
            } else if !v.bytes().all(|c| (0x20..0x7f).contains(&c)) {
                self.err(&p.key(key), format!("{key} must be printable ASCII"));
            } else if v.starts_with(' ') || v.ends_with(' ') {
                self.err(
                    &p.key(key),
                    format!("{key} must not start or end with a space"),
                );
            }
        }
        if let Some(w) = &b.wwn
            && let Err(m) = check_naa(w)
        {
            self.err(&p.key("wwn"), m);
        }
    }

    fn targets(&mut self, c: &Config, p: &KeyPath) {
        if c.targets.is_empty() {
            self.warn(p, "no targets are configured: nothing is exported");
        }
        // backstore name -> (target, LUN path) of its first use.
        // Which LUN of a target uses each backstore: one backstore may be exported by
        // several targets (they then share its logical unit and reservations, as in
        // LIO), but only once by each.
        let mut owners: HashMap<&str, (&str, KeyPath)> = HashMap::new();
        for (name, t) in &c.targets {
            let tp = p.key(name);
            self.name(&tp, "target name", name);
            if t.tpg < 1 {
                self.err(&tp.key("tpg"), "tpg must be at least 1");
            }
            self.portal_groups(c, t, &tp);
            if !t.iscsi.is_empty() {
                let merged = t.iscsi.over(&c.iscsi);
                self.iscsi(&merged, &tp.key("iscsi"));
            }
            if t.demo_mode_read_only && !t.demo_mode {
                self.warn(
                    &tp.key("demo_mode_read_only"),
                    "demo_mode_read_only has no effect without demo_mode = true",
                );
            }
            let luns = self.luns(name, c, t, &tp, &mut owners);
            let ap = tp.key("auth");
            let AuthConfig { chap, mutual_chap } = &t.auth;
            self.auth(&ap, chap.as_ref(), mutual_chap.as_ref());
            self.access(c, t, &tp);
            for (init, acl) in &t.acls {
                let acl_p = tp.key("acls").key(init);
                self.name(&acl_p, "initiator name", init);
                self.auth(&acl_p, acl.chap.as_ref(), acl.mutual_chap.as_ref());
                let mp = acl_p.key("mapped_luns");
                let mut seen: HashMap<u64, usize> = HashMap::new();
                for (i, m) in acl.mapped_luns.iter().enumerate() {
                    let mi = mp.index(i);
                    if m.lun >= MAX_LUNS {
                        self.err(
                            &mi.key("lun"),
                            format!("LUN {} is not below {MAX_LUNS}", m.lun),
                        );
                    }
                    if let Some(&j) = seen.get(&m.lun) {
                        self.err(
                            &mi.key("lun"),
                            format!(
                                "LUN {} is mapped twice for this initiator (also mapped_luns[{j}])",
                                m.lun
                            ),
                        );
                    } else {
                        seen.insert(m.lun, i);
                    }
                    let tl = m.target_lun.unwrap_or(m.lun);
                    if !luns.contains(&tl) {
                        let (key, how) = match m.target_lun {
                            Some(_) => (mi.key("target_lun"), ""),
                            None => (mi.clone(), " (target_lun defaults to lun)"),
                        };
                        self.err(
                            &key,
                            format!("target {name} has no LUN {tl}{how}; it has {luns:?}"),
                        );
                    }
                }
            }
        }
    }

    /// An iSCSI name: refused when malformed; a warning for a form LIO accepted that
    /// RFC 3720 does not (a month outside 01..12).
    fn name(&mut self, at: &KeyPath, what: &str, name: &str) {
        match check_iscsi_name(name) {
            Err(m) => self.err(at, format!("{what}: {m}")),
            Ok(()) => {
                if let Some(w) = super::names::iscsi_name_warning(name) {
                    self.warn(at, format!("{what}: {w}"));
                }
            }
        }
    }

    /// A target's portal groups: tags unique and non-zero, portals listed in
    /// `daemon.portals`, each portal in one group of the target.
    fn portal_groups(&mut self, c: &Config, t: &TargetConfig, tp: &KeyPath) {
        if t.portal_groups.is_empty() {
            return;
        }
        let gp = tp.key("portal_groups");
        if t.tpg != 1 {
            self.err(
                &tp.key("tpg"),
                "tpg is the tag of the implicit portal group; with portal_groups set, \
                 give each group its tag instead",
            );
        }
        let mut tags: HashMap<u16, usize> = HashMap::new();
        let mut owner: HashMap<SocketAddr, u16> = HashMap::new();
        for (i, g) in t.portal_groups.iter().enumerate() {
            let gi = gp.index(i);
            if g.tag < 1 {
                self.err(&gi.key("tag"), "tag must be at least 1");
            }
            if let Some(j) = tags.insert(g.tag, i) {
                self.err(
                    &gi.key("tag"),
                    format!("tag {} is also portal_groups[{j}]'s", g.tag),
                );
            }
            if g.portals.is_empty() {
                self.err(
                    &gi.key("portals"),
                    "a portal group needs at least one portal",
                );
            }
            for (k, a) in g.portals.iter().enumerate() {
                let pk = gi.key("portals").index(k);
                if !c.daemon.portals.contains(a) {
                    self.err(
                        &pk,
                        format!(
                            "portal {a} is not in daemon.portals (the listeners); add it there"
                        ),
                    );
                }
                if let Some(other) = owner.insert(*a, g.tag) {
                    self.err(
                        &pk,
                        format!(
                            "portal {a} is also in portal group {other}: a connection must \
                             name one group"
                        ),
                    );
                }
            }
        }
    }

    /// Checks a target's LUN list; returns the LUN numbers it defines.
    fn luns<'c>(
        &mut self,
        name: &'c str,
        c: &'c Config,
        t: &'c TargetConfig,
        tp: &KeyPath,
        owners: &mut HashMap<&'c str, (&'c str, KeyPath)>,
    ) -> BTreeSet<u64> {
        let lp = tp.key("luns");
        if t.luns.is_empty() {
            self.warn(&tp.key("luns"), format!("target {name} has no LUNs"));
        }
        let mut numbers: BTreeMap<u64, usize> = BTreeMap::new();
        for (i, l) in t.luns.iter().enumerate() {
            let li = lp.index(i);
            let n = l.lun.unwrap_or(i as u64);
            let how = if l.lun.is_none() {
                " (defaulted from its position in the list)"
            } else {
                ""
            };
            let nk = if l.lun.is_some() {
                li.key("lun")
            } else {
                li.clone()
            };
            if n >= MAX_LUNS {
                self.err(&nk, format!("LUN {n} is not below {MAX_LUNS}"));
            }
            if let Some(&j) = numbers.get(&n) {
                self.err(
                    &nk,
                    format!("LUN {n}{how} is already used by luns[{j}] of this target"),
                );
            } else {
                numbers.insert(n, i);
            }
            let bk = li.key("backstore");
            if !c.backstores.contains_key(&l.backstore) {
                let known: Vec<&str> = c.backstores.keys().map(String::as_str).collect();
                self.err(
                    &bk,
                    format!(
                        "no backstore named {:?} (defined: {})",
                        l.backstore,
                        if known.is_empty() {
                            "none".into()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            } else if let Some((owner, at)) = owners
                .get(l.backstore.as_str())
                .filter(|(owner, _)| *owner == name)
            {
                // Several targets may export one backstore (one logical unit, several
                // target ports, as LIO allows); one target exports it once.
                let line = self.line(at);
                let place = if line > 0 {
                    format!(" (line {line})")
                } else {
                    String::new()
                };
                self.err(
                    &bk,
                    format!(
                        "backstore {:?} is already a LUN of target {owner} at {at}{place}; \
                         a target exports a backstore once",
                        l.backstore
                    ),
                );
            } else {
                owners.insert(&l.backstore, (name, bk));
            }
        }
        numbers.into_keys().collect()
    }

    /// The demo-mode / ACL access rules of one target.
    fn access(&mut self, c: &Config, t: &TargetConfig, tp: &KeyPath) {
        let demo = tp.key("demo_mode");
        if t.demo_mode && !t.acls.is_empty() {
            self.err(
                &demo,
                "demo_mode = true with ACLs is ambiguous: demo mode lets every initiator in; \
                 remove the ACLs or set demo_mode = false",
            );
        }
        // The target's own portals: a demo target whose portal groups are all on
        // loopback is not reachable from the network, whatever the daemon's other portals.
        let exposed: Vec<String> = t
            .network_portals(&c.daemon.portals)
            .iter()
            .map(ToString::to_string)
            .collect();
        if t.demo_mode && !exposed.is_empty() {
            let what = format!(
                "demo_mode lets any initiator read and write every LUN, and portal(s) {} \
                 are reachable from the network",
                exposed.join(", ")
            );
            if c.daemon.allow_demo_mode_on_network {
                self.warn(&demo, what);
            } else {
                self.err(
                    &demo,
                    format!(
                        "{what}; set daemon.allow_demo_mode_on_network = true if that is \
                         intended, or set demo_mode = false and add ACLs"
                    ),
                );
            }
        }
        if !t.demo_mode && t.acls.is_empty() {
            self.warn(
                tp,
                "no ACLs and demo_mode = false: no initiator can log in to this target",
            );
        }
    }
}

/// Checks the form of an NAA designator written as `naa.` + 16 or 32 hex digits; the
/// first digit is the NAA type: 2, 3 or 5 for 16 digits, 6 for 32.
pub fn check_naa(w: &str) -> Result<(), String> {
    let hex = w
        .strip_prefix("naa.")
        .ok_or_else(|| format!("wwn {w:?} must start with \"naa.\""))?;
    if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("wwn {w:?}: only hex digits may follow \"naa.\""));
    }
    match (hex.len(), hex.as_bytes().first()) {
        (16, Some(b'2' | b'3' | b'5')) | (32, Some(b'6')) => Ok(()),
        (16 | 32, _) => Err(format!(
            "wwn {w:?}: NAA type {} does not fit {} digits (2, 3 or 5 take 16, 6 takes 32)",
            &hex[..1],
            hex.len()
        )),
        (n, _) => Err(format!(
            "wwn {w:?} has {n} hex digits; an NAA designator has 16 or 32"
        )),
    }
}

/// Whether `ip` is a loopback address (IPv4-mapped loopback included); the wildcard
/// addresses are not.
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}
