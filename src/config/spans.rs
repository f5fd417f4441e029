//! Where keys are in the source text: dotted key paths and their 1-based lines.

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A dotted key path such as `targets."iqn.2026-11.org.example:t".luns[0].backstore`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyPath(Vec<Segment>);

impl KeyPath {
    /// The empty path (the document root).
    pub fn root() -> Self {
        Self::default()
    }

    /// This path extended by a table key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(k.to_owned()));
        p
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// The path without its last segment (`None` at the root).
    pub fn parent(&self) -> Option<Self> {
        let mut p = self.clone();
        p.0.pop().map(|_| p)
    }

    /// Whether this is the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

/// Whether `k` can be written without quotes.
fn is_bare(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// Writes `k` as a TOML key: bare when possible, else a basic string.
pub fn fmt_key(k: &str, f: &mut impl fmt::Write) -> fmt::Result {
    if is_bare(k) {
        return f.write_str(k);
    }
    f.write_char('"')?;
    for c in k.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            c if c.is_control() => write!(f, "\\u{:04X}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<document>");
        }
        for (i, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    fmt_key(k, f)?;
                }
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Byte offsets of line starts, to turn offsets into 1-based line numbers.
#[derive(Debug, Clone)]
pub struct Lines(Vec<usize>);

impl Lines {
    /// Indexes the line starts of `text`.
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self(starts)
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.0.partition_point(|&s| s <= offset).max(1)
    }
}

#[derive(Debug, Clone)]
struct Entry {
    path: KeyPath,
    /// Span of the key (for array elements: of the element).
    key: Range<usize>,
    /// Span of the value.
    value: Range<usize>,
}

/// Every key path present in a document, with its position.
#[derive(Debug, Clone)]
pub struct SpanIndex {
    lines: Lines,
    entries: Vec<Entry>,
    by_path: HashMap<KeyPath, usize>,
}

impl SpanIndex {
    /// Indexes a parsed document (`text` is the source it was parsed from).
    pub fn new(text: &str, doc: &Spanned<DeTable<'_>>) -> Self {
        let mut idx = Self {
            lines: Lines::new(text),
            entries: Vec::new(),
            by_path: HashMap::new(),
        };
        idx.walk_table(&KeyPath::root(), doc.get_ref());
        idx
    }

    fn push(&mut self, path: KeyPath, key: Range<usize>, value: Range<usize>) {
        // The first occurrence wins (a table header repeated as a parent of later headers).
        if !self.by_path.contains_key(&path) {
            self.by_path.insert(path.clone(), self.entries.len());
            self.entries.push(Entry { path, key, value });
        }
    }

    fn walk_table(&mut self, at: &KeyPath, t: &DeTable<'_>) {
        for (k, v) in t.iter() {
            let p = at.key(k.get_ref());
            self.push(p.clone(), k.span(), v.span());
            self.walk_value(&p, v);
        }
    }

    fn walk_value(&mut self, at: &KeyPath, v: &Spanned<DeValue<'_>>) {
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(at, t),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    let p = at.index(i);
                    self.push(p.clone(), item.span(), item.span());
                    self.walk_value(&p, item);
                }
            }
            _ => {}
        }
    }

    /// The byte spans of `path`'s key and value, when it is written in the source.
    pub fn spans(&self, path: &KeyPath) -> Option<(Range<usize>, Range<usize>)> {
        let e = &self.entries[*self.by_path.get(path)?];
        Some((e.key.clone(), e.value.clone()))
    }

    /// Whether `path` is written in the source.
    pub fn contains(&self, path: &KeyPath) -> bool {
        self.by_path.contains_key(path)
    }

    /// The 1-based line of `path`, or of its nearest ancestor that is written in the source
    /// (a defaulted key points at its table); 0 when nothing is found.
    pub fn line(&self, path: &KeyPath) -> usize {
        let mut p = Some(path.clone());
        while let Some(cur) = p {
            if let Some(&i) = self.by_path.get(&cur) {
                return self.lines.line_of(self.entries[i].key.start);
            }
            p = cur.parent();
        }
        0
    }

    /// The 1-based line of byte `offset`.
    pub fn line_of_offset(&self, offset: usize) -> usize {
        self.lines.line_of(offset)
    }

    /// The last key that starts at or before `offset` (for syntax errors, whose span often
    /// lies past the key being written); the root when none does.
    pub fn path_before(&self, offset: usize) -> KeyPath {
        self.entries
            .iter()
            .filter(|e| e.key.start <= offset)
            .max_by_key(|e| e.key.start)
            .map(|e| e.path.clone())
            .unwrap_or_default()
    }

    /// The key path an error span points at: the key whose name is at `offset`, else the
    /// innermost value containing it; the root when none does.
    pub fn path_at(&self, offset: usize) -> KeyPath {
        if let Some(e) = self.entries.iter().find(|e| e.key.contains(&offset)) {
            return e.path.clone();
        }
        self.entries
            .iter()
            .filter(|e| e.value.contains(&offset) || e.value.start == offset)
            .min_by_key(|e| e.value.len())
            .map(|e| e.path.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_paths() {
        let p = KeyPath::root()
            .key("targets")
            .key("iqn.2026-11.org.example:t")
            .key("luns")
            .index(0)
            .key("backstore");
        assert_eq!(
            p.to_string(),
            r#"targets."iqn.2026-11.org.example:t".luns[0].backstore"#
        );
        assert_eq!(KeyPath::root().key("a\"b").to_string(), r#""a\"b""#);
    }

    #[test]
    fn line_numbers() {
        let l = Lines::new("a\nbc\n\nd");
        assert_eq!(l.line_of(0), 1);
        assert_eq!(l.line_of(1), 1);
        assert_eq!(l.line_of(2), 2);
        assert_eq!(l.line_of(5), 3);
        assert_eq!(l.line_of(6), 4);
    }

    #[test]
    fn finds_keys() {
        let text = "[a]\nb = 1\n\n[a.c.\"d.e\"]\nf = [ { g = 1 },\n { g = 2 } ]\n";
        let doc = DeTable::parse(text).unwrap();
        let idx = SpanIndex::new(text, &doc);
        let a = KeyPath::root().key("a");
        assert_eq!(idx.line(&a), 1);
        assert_eq!(idx.line(&a.key("b")), 2);
        let de = a.key("c").key("d.e");
        assert_eq!(idx.line(&de), 4);
        assert_eq!(idx.line(&de.key("f").index(1).key("g")), 6);
        assert_eq!(idx.line(&de.key("f").index(1).key("missing")), 6);
        assert_eq!(idx.line(&KeyPath::root().key("nothing")), 0);
        assert!(idx.contains(&de.key("f").index(0)));
    }
}
