//! Human output: the `status` tree, tables, plans. (`--json` prints the API types as is.)

use std::fmt::Write as _;

use crate::backstore::BackstoreKind;
use crate::control::api::{
    AuthStatus, ChangeReport, Plan, PortalStatus, SessionInfo, Stats, StatusReport,
};

/// A node of a `targetcli ls`-like tree.
#[derive(Debug, Clone, Default)]
pub struct Node {
    /// Text of the line.
    pub label: String,
    /// Children, in order.
    pub children: Vec<Node>,
}

impl Node {
    /// A leaf.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            children: Vec::new(),
        }
    }
    /// Adds a child and returns `self`.
    pub fn child(mut self, c: Node) -> Self {
        self.children.push(c);
        self
    }
    /// Renders the tree: `o- label` with `|` guides, like targetcli.
    pub fn render(&self) -> String {
        let mut out = String::new();
        render_node(self, &mut out);
        out
    }
}

fn render_node(n: &Node, out: &mut String) {
    let _ = writeln!(out, "o- {}", n.label);
    let last = n.children.len().saturating_sub(1);
    for (i, c) in n.children.iter().enumerate() {
        let mut buf = String::new();
        render_node(c, &mut buf);
        for (j, line) in buf.lines().enumerate() {
            if j == 0 {
                let _ = writeln!(out, "  {line}");
            } else {
                // Descendant lines start with two columns of indentation; the guide
                // goes there while siblings of `c` follow.
                let guide = if i == last { "  " } else { "| " };
                let _ = writeln!(out, "  {guide}{}", line.get(2..).unwrap_or(""));
            }
        }
    }
}

/// `1.5G`-style binary size.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["", "K", "M", "G", "T", "P"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v.fract() == 0.0 || v >= 100.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// `3d 4h`, `2h 5m`, `42s`.
pub fn human_duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

fn auth_label(a: &AuthStatus) -> String {
    match (&a.chap_user, &a.mutual_chap_user) {
        (None, _) => "auth: none".into(),
        (Some(u), None) => format!("chap: {u}"),
        (Some(u), Some(m)) => format!("chap: {u}, mutual: {m}"),
    }
}

fn kind_name(k: BackstoreKind) -> &'static str {
    match k {
        BackstoreKind::Block => "block",
        BackstoreKind::Fileio => "fileio",
        BackstoreKind::Ramdisk => "ramdisk",
    }
}

fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

/// The `status` output.
pub fn status(s: &StatusReport) -> String {
    let mut out = String::new();
    let file = match &s.config_file {
        Some(f) => f.display().to_string(),
        None => "embedded default".into(),
    };
    let managed = s
        .managed_by
        .as_ref()
        .map_or(String::new(), |m| format!(" (managed by {m})"));
    let _ = writeln!(
        out,
        "rustiscsid {} on {}, up {}; config: {file}{managed}",
        s.version,
        if s.host.hostname.is_empty() {
            "?"
        } else {
            &s.host.hostname
        },
        human_duration(s.uptime_secs)
    );
    let _ = writeln!(
        out,
        "host: load {:.2} {:.2} {:.2}; memory {} available of {}",
        s.host.load1,
        s.host.load5,
        s.host.load15,
        human_bytes(s.host.mem_available),
        human_bytes(s.host.mem_total)
    );

    let mut backstores = Node::new(format!("backstores [{}]", s.backstores.len()));
    for b in &s.backstores {
        let mut parts = vec![kind_name(b.kind).to_owned()];
        if let Some(p) = &b.path {
            parts.push(p.display().to_string());
        }
        if let Some(sz) = b.size_bytes {
            parts.push(human_bytes(sz));
        }
        parts.push(format!("{}B blocks", b.block_size));
        parts.push(
            if b.write_cache {
                "write-back"
            } else {
                "write-through"
            }
            .into(),
        );
        let mut label = format!("{} [{}]", b.name, parts.join(", "));
        match b.health {
            Some(h) if b.io_errors > 0 => {
                label.push_str(&format!(" {}, {} I/O errors", h.as_str(), b.io_errors))
            }
            Some(h) => label.push_str(&format!(" {}", h.as_str())),
            None => {}
        }
        if let Some(e) = &b.error {
            label.push_str(&format!(" ERROR: {e}"));
        }
        let mut n = Node::new(label);
        if b.serial.is_some() || b.naa.is_some() {
            n = n.child(Node::new(format!(
                "serial {} naa {}",
                b.serial.as_deref().unwrap_or("-"),
                b.naa.as_deref().unwrap_or("-")
            )));
        }
        backstores = backstores.child(n);
    }

    let mut targets = Node::new(format!("targets [{}]", s.targets.len()));
    for t in &s.targets {
        let mut facts = vec![
            format!("tpg{}", t.tpg),
            plural(t.luns.len(), "LUN"),
            plural(t.acls.len(), "ACL"),
            plural(t.sessions as usize, "session"),
        ];
        if !t.enabled {
            facts.push("DISABLED".into());
        }
        if t.demo_mode {
            facts.push(if t.demo_mode_read_only {
                "DEMO MODE: any initiator, read-only".into()
            } else {
                "DEMO MODE: any initiator".into()
            });
        }
        if t.portal_groups.len() > 1
            || t.portal_groups
                .iter()
                .any(|g| !g.portals.is_empty() && g.portals.len() != s.portals.len())
        {
            for g in &t.portal_groups {
                let ps: Vec<String> = g.portals.iter().map(ToString::to_string).collect();
                facts.push(format!(
                    "tpg{} on {}{}",
                    g.tag,
                    ps.join(" "),
                    if g.enabled { "" } else { " (disabled)" }
                ));
            }
        }
        let mut luns = Node::new(format!("luns [{}]", t.luns.len()));
        for l in &t.luns {
            luns = luns.child(Node::new(format!("lun{} -> {}", l.lun, l.backstore)));
        }
        let mut acls = Node::new(format!("acls [{}]", t.acls.len()));
        for a in &t.acls {
            let auth = AuthStatus {
                chap_user: a.chap_user.clone(),
                mutual_chap_user: a.mutual_chap_user.clone(),
            };
            let mut n = Node::new(format!("{} [{}]", a.initiator, auth_label(&auth)));
            for m in &a.mapped_luns {
                n = n.child(Node::new(format!(
                    "mapped_lun{} -> lun{} ({})",
                    m.lun,
                    m.target_lun,
                    if m.read_only { "ro" } else { "rw" }
                )));
            }
            acls = acls.child(n);
        }
        let mut tn = Node::new(format!("{} [{}]", t.iqn, facts.join(", ")))
            .child(luns)
            .child(acls)
            .child(Node::new(format!("auth [{}]", auth_label(&t.auth))));
        if !t.allowed_networks.is_empty() {
            tn = tn.child(Node::new(format!(
                "allowed networks [{}]",
                t.allowed_networks.join(", ")
            )));
        }
        targets = targets.child(tn);
    }

    let mut portals = Node::new(format!("portals [{}]", s.portals.len()));
    for p in &s.portals {
        portals = portals.child(Node::new(portal_label(p)));
    }
    let root = Node::new("/")
        .child(backstores)
        .child(targets)
        .child(portals)
        .child(Node::new(format!(
            "discovery [{}]",
            auth_label(&s.discovery_auth)
        )));
    out.push_str(&root.render());
    out
}

/// One listener as `status` shows it: what the kernel holds, not the configuration.
pub fn portal_label(p: &PortalStatus) -> String {
    let mut facts = Vec::new();
    match p.bound {
        Some(b) if b != p.portal => facts.push(format!("bound {b}")),
        Some(_) => {}
        None => facts.push("NOT BOUND".into()),
    }
    if p.dual_stack {
        facts.push("IPv4 and IPv6".into());
    }
    facts.push(
        if p.accepting {
            "accepting"
        } else {
            "NOT ACCEPTING"
        }
        .into(),
    );
    facts.push(plural(p.accepted as usize, "connection"));
    if let Some(e) = &p.error {
        facts.push(format!("error: {e}"));
    }
    format!("{} [{}]", p.portal, facts.join(", "))
}

/// Left-aligned columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < w.len() {
                w[i] = w[i].max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<width$}  ", width = w[i]);
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// The `sessions` output.
pub fn sessions(list: &[SessionInfo]) -> String {
    if list.is_empty() {
        return "no sessions\n".into();
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|s| {
            vec![
                s.tsih.to_string(),
                s.initiator.clone(),
                if s.discovery {
                    "(discovery)".into()
                } else {
                    s.target.clone().unwrap_or_default()
                },
                s.peer.to_string(),
                s.local.to_string(),
                format!("{}/{}", s.params.header_digest, s.params.data_digest),
                format!(
                    "{}/{}/{}",
                    human_bytes(u64::from(s.params.max_burst_length)),
                    human_bytes(u64::from(s.params.first_burst_length)),
                    human_bytes(u64::from(s.params.initiator_mrdsl))
                ),
                format!(
                    "{}{}",
                    if s.params.immediate_data { "I" } else { "-" },
                    if s.params.initial_r2t { "R" } else { "-" }
                ),
                s.counters.commands.to_string(),
                human_bytes(s.counters.read_bytes),
                human_bytes(s.counters.write_bytes),
                s.counters.errors.to_string(),
                human_duration(s.since_secs),
            ]
        })
        .collect();
    table(
        &[
            "TSIH",
            "INITIATOR",
            "TARGET",
            "PEER",
            "PORTAL",
            "DIGEST(H/D)",
            "MBL/FBL/MRDSL",
            "IMM/R2T",
            "CMDS",
            "READ",
            "WRITTEN",
            "ERRORS",
            "AGE",
        ],
        &rows,
    )
}

/// The bucket bound below which `q` (0..1) of the samples fall.
pub fn percentile(hist: &[(u64, u64)], q: f64) -> Option<u64> {
    let total: u64 = hist.iter().map(|(_, c)| c).sum();
    if total == 0 {
        return None;
    }
    let want = (total as f64 * q).ceil().max(1.0) as u64;
    let mut acc = 0;
    for (bound, c) in hist {
        acc += c;
        if acc >= want {
            return Some(*bound);
        }
    }
    hist.last().map(|(b, _)| *b)
}

fn latency(v: Option<u64>) -> String {
    match v {
        None => "-".into(),
        Some(u64::MAX) => "slow".into(),
        Some(us) if us >= 1000 => format!("<={}ms", us / 1000),
        Some(us) => format!("<={us}us"),
    }
}

/// The `stats` output.
pub fn stats(s: &Stats) -> String {
    let rows: Vec<Vec<String>> = s
        .luns
        .iter()
        .map(|l| {
            vec![
                l.backstore.clone(),
                l.reads.to_string(),
                l.writes.to_string(),
                human_bytes(l.read_bytes),
                human_bytes(l.write_bytes),
                latency(percentile(&l.latency_histogram_us, 0.5)),
                latency(percentile(&l.latency_histogram_us, 0.99)),
                l.health.map_or("-", |h| h.as_str()).to_string(),
                format!(
                    "{}/{}/{}/{}",
                    l.read_errors, l.write_errors, l.flush_errors, l.discard_errors
                ),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "BACKSTORE",
            "READS",
            "WRITES",
            "READ",
            "WRITTEN",
            "P50",
            "P99",
            "HEALTH",
            "ERRORS R/W/F/D",
        ],
        &rows,
    );
    let rows: Vec<Vec<String>> = s
        .sessions
        .iter()
        .map(|x| {
            vec![
                x.tsih.to_string(),
                x.initiator.clone(),
                x.target.clone().unwrap_or_else(|| "(discovery)".into()),
                x.counters.commands.to_string(),
                human_bytes(x.counters.read_bytes),
                human_bytes(x.counters.write_bytes),
                x.counters.errors.to_string(),
            ]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &[
            "TSIH",
            "INITIATOR",
            "TARGET",
            "CMDS",
            "READ",
            "WRITTEN",
            "ERRORS",
        ],
        &rows,
    ));
    out
}

/// A plan, one change per line (`+` added, `-` removed, `~` changed).
pub fn plan(p: &Plan, dry_run: bool) -> String {
    if p.is_empty() {
        return "no changes\n".into();
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        if dry_run { "would change:" } else { "changed:" }
    );
    let mut l = |s: String| {
        out.push_str("  ");
        out.push_str(&s);
        out.push('\n');
    };
    for a in &p.portals_added {
        l(format!("+ portal {a}"));
    }
    for a in &p.portals_removed {
        l(format!("- portal {a}"));
    }
    for b in &p.backstores_added {
        l(format!("+ backstore {b}"));
    }
    for b in &p.backstores_removed {
        l(format!("- backstore {b}"));
    }
    for r in &p.backstores_resized {
        let f = |v: Option<u64>| v.map_or("device size".into(), human_bytes);
        l(format!(
            "~ backstore {} resized {} -> {}",
            r.name,
            f(r.old),
            f(r.new)
        ));
    }
    for b in &p.backstores_changed {
        l(format!(
            "~ backstore {b} reopened (kind, path, block size or caching)"
        ));
    }
    for t in &p.targets_added {
        l(format!("+ target {t}"));
    }
    for t in &p.targets_removed {
        l(format!("- target {t}"));
    }
    for t in &p.targets_changed {
        l(format!("~ target {t}"));
    }
    for x in &p.luns_added {
        l(format!("+ lun {}/{} -> {}", x.target, x.lun, x.backstore));
    }
    for x in &p.luns_removed {
        l(format!("- lun {}/{} -> {}", x.target, x.lun, x.backstore));
    }
    for a in &p.acls_added {
        l(format!("+ acl {} on {}", a.initiator, a.target));
    }
    for a in &p.acls_removed {
        l(format!("- acl {} on {}", a.initiator, a.target));
    }
    for a in &p.acls_changed {
        l(format!("~ acl {} on {}", a.initiator, a.target));
    }
    if p.discovery_auth_changed {
        l("~ discovery CHAP".into());
    }
    for k in &p.settings_changed {
        l(format!("~ {k}"));
    }
    for s in &p.sessions_logged_out {
        l(format!(
            "! session {} ({}) logged out: {}",
            s.tsih, s.initiator, s.reason
        ));
    }
    for s in &p.sessions_rescanned {
        l(format!(
            "! session {} ({}) notified to rescan: {}",
            s.tsih, s.initiator, s.reason
        ));
    }
    for b in &p.files_created {
        l(format!("+ file of backstore {b} created sparse"));
    }
    for n in &p.needs_force {
        l(format!(
            "{} {n}",
            if dry_run {
                "! needs --force:"
            } else {
                "! forced:"
            }
        ));
    }
    out
}

/// A change report: what was done (or would be, on a dry run).
pub fn change(r: &ChangeReport) -> String {
    let mut out = plan(&r.plan, r.dry_run);
    if !r.dry_run && !r.plan.is_empty() {
        let _ = writeln!(out, "revision {}", r.revision);
    }
    out
}

/// `sessions --detail`: one block per session.
pub fn sessions_detail(list: &[SessionInfo]) -> String {
    if list.is_empty() {
        return "no sessions\n".into();
    }
    let mut out = String::new();
    for s in list {
        let what = if s.discovery {
            "(discovery)".to_owned()
        } else {
            format!("{} tpg{}", s.target.clone().unwrap_or_default(), s.tpg)
        };
        let _ = writeln!(out, "session {} {} -> {what}", s.tsih, s.initiator);
        let _ = writeln!(
            out,
            "  isid {}, logged in {} ago",
            s.isid,
            human_duration(s.since_secs)
        );
        let _ = writeln!(
            out,
            "  auth: {}{}",
            s.auth_method,
            s.chap_user
                .as_ref()
                .map_or(String::new(), |u| format!(", user {u}"))
        );
        for c in &s.connections {
            let _ = writeln!(out, "  connection cid {}: {} -> {}", c.cid, c.peer, c.local);
        }
        let p = &s.params;
        let _ = writeln!(
            out,
            "  digests: header {}, data {}",
            p.header_digest, p.data_digest
        );
        let _ = writeln!(
            out,
            "  MaxBurstLength {}, FirstBurstLength {}, MaxRecvDataSegmentLength {}/{} \
             (initiator/target), ImmediateData {}, InitialR2T {}, MaxOutstandingR2T {}",
            p.max_burst_length,
            p.first_burst_length,
            p.initiator_mrdsl,
            p.target_mrdsl,
            if p.immediate_data { "Yes" } else { "No" },
            if p.initial_r2t { "Yes" } else { "No" },
            p.max_outstanding_r2t
        );
        if !s.discovery {
            let luns: Vec<String> = s
                .mapped_luns
                .iter()
                .map(|m| {
                    format!(
                        "lun{} -> {}{}",
                        m.lun,
                        m.backstore,
                        if m.read_only { " (ro)" } else { "" }
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "  mapped LUNs: {}",
                if luns.is_empty() {
                    "none".into()
                } else {
                    luns.join(", ")
                }
            );
        }
        let c = &s.counters;
        let _ = writeln!(
            out,
            "  counters: {} commands, {} read, {} written, {} errors",
            c.commands,
            human_bytes(c.read_bytes),
            human_bytes(c.write_bytes),
            c.errors
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_guides() {
        let t = Node::new("/")
            .child(Node::new("a").child(Node::new("a1")).child(Node::new("a2")))
            .child(Node::new("b").child(Node::new("b1")));
        assert_eq!(
            t.render(),
            "o- /\n  o- a\n  | o- a1\n  | o- a2\n  o- b\n    o- b1\n"
        );
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human_bytes(512), "512B");
        assert_eq!(human_bytes(1 << 30), "1G");
        assert_eq!(human_bytes(1536 << 20), "1.5G");
        assert_eq!(human_duration(3 * 86400 + 7200), "3d 2h");
        assert_eq!(human_duration(65), "1m 5s");
    }

    #[test]
    fn percentiles() {
        let h = [(100, 50), (1000, 40), (10_000, 10), (u64::MAX, 0)];
        assert_eq!(percentile(&h, 0.5), Some(100));
        assert_eq!(percentile(&h, 0.9), Some(1000));
        assert_eq!(percentile(&h, 0.99), Some(10_000));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn table_alignment() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "A    BB\nxxx  y\n");
    }
}
