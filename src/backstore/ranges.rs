//! A bounded set of byte ranges: the ranges of a buffered backstore whose last write
//! failed (reads of them fail until they are rewritten), and the ranges written since the
//! last flush in write-back mode (which become failed ones when that flush fails).

use std::collections::BTreeMap;

/// Most disjoint ranges kept; past it a new range merges with its nearer neighbour, so the
/// set only ever grows to cover more bytes (a read is refused more often, never served
/// wrongly), and an insert stays O(log n) however scattered the writes.
const MAX_RANGES: usize = 4096;

/// Disjoint, non-adjacent `[start, end)` byte ranges.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RangeSet {
    /// start -> end
    map: BTreeMap<u64, u64>,
}

impl RangeSet {
    pub(crate) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of disjoint ranges.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether any byte of `[start, start + len)` is in the set.
    pub(crate) fn overlaps(&self, start: u64, len: u64) -> bool {
        let end = start.saturating_add(len);
        self.map
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > start)
    }

    /// Adds `[start, start + len)`, merging what it touches.
    pub(crate) fn insert(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let (mut s, mut e) = (start, start.saturating_add(len));
        let touching: Vec<(u64, u64)> = self
            .map
            .range(..=e)
            .rev()
            .take_while(|(_, re)| **re >= s)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (rs, re) in touching {
            self.map.remove(&rs);
            s = s.min(rs);
            e = e.max(re);
        }
        self.map.insert(s, e);
        if self.map.len() > MAX_RANGES {
            self.merge_with_neighbour(s, e);
        }
    }

    /// Merges `[s, e)` (in the set, touching nothing) with the nearer of its neighbours.
    fn merge_with_neighbour(&mut self, s: u64, e: u64) {
        let prev = self.map.range(..s).next_back().map(|(a, b)| (*a, *b));
        let next = self.map.range(e..).next().map(|(a, b)| (*a, *b));
        match (prev, next) {
            (Some((ps, pe)), Some((ns, _))) if s - pe <= ns - e => {
                self.map.remove(&s);
                self.map.insert(ps, e);
            }
            (Some((ps, _)), None) => {
                self.map.remove(&s);
                self.map.insert(ps, e);
            }
            (_, Some((ns, ne))) => {
                self.map.remove(&ns);
                self.map.insert(s, ne);
            }
            (None, None) => {}
        }
    }

    /// Removes `[start, start + len)` (splitting a range that only partly overlaps).
    pub(crate) fn remove(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        let hit: Vec<(u64, u64)> = self
            .map
            .range(..end)
            .rev()
            .take_while(|(_, re)| **re > start)
            .map(|(a, b)| (*a, *b))
            .collect();
        for (rs, re) in hit {
            self.map.remove(&rs);
            if rs < start {
                self.map.insert(rs, start);
            }
            if re > end {
                self.map.insert(end, re);
            }
        }
    }

    /// The ranges as `(start, end)`, ascending.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.map.iter().map(|(s, e)| (*s, *e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_merge_remove_split() {
        let mut r = RangeSet::default();
        assert!(!r.overlaps(0, 100));
        r.insert(100, 100); // [100,200)
        r.insert(300, 100); // [300,400)
        assert!(r.overlaps(150, 1));
        assert!(r.overlaps(50, 51));
        assert!(!r.overlaps(50, 50));
        assert!(!r.overlaps(200, 100));
        r.insert(200, 100); // touches both: one range [100,400)
        assert_eq!(r.len(), 1);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(100, 400)]);
        r.remove(150, 100); // [100,150) [250,400)
        assert_eq!(r.len(), 2);
        assert!(!r.overlaps(150, 100));
        assert!(r.overlaps(149, 1) && r.overlaps(250, 1));
        r.remove(0, 1000);
        assert!(r.is_empty());
    }

    #[test]
    fn bounded_by_merging_neighbours() {
        let mut r = RangeSet::default();
        for i in 0..(MAX_RANGES as u64 + 10) {
            r.insert(i * 10, 1);
        }
        assert!(r.len() <= MAX_RANGES);
        // Every inserted byte is still covered.
        for i in 0..(MAX_RANGES as u64 + 10) {
            assert!(r.overlaps(i * 10, 1));
        }
    }
}
