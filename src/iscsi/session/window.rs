//! The CmdSN window (RFC 7143 §4.2.2.1, §3.2.2.1).
//!
//! Non-immediate commands carry CmdSNs in `[ExpCmdSN, MaxCmdSN]`; the target delivers them
//! to the SCSI layer in CmdSN order. A CmdSN above ExpCmdSN (the initiator skipped one, or
//! a PDU was dropped for a digest error) is held until the hole is filled — by a retry, or
//! by an ABORT TASK whose RefCmdSN names it (§11.5.1) — never dropped. Anything outside the
//! window is a duplicate or a peer error and is dropped silently, as the RFC says.
//!
//! MaxCmdSN: `ExpCmdSN + open - 1`, where `open` is the queue depth less the delivered
//! commands still holding a slot (a slot is held until the command's status has been
//! *sent*, not merely queued), further limited by the caller's memory budget. It never
//! moves backwards: a narrower window only stops it from growing.

use crate::iscsi::serial::sn_le;

/// Where a CmdSN falls relative to the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// Inside the window and not yet received: accept it (`offset` from ExpCmdSN).
    Accept { offset: u32 },
    /// Already received (a retry of a held command) or below ExpCmdSN: drop it.
    Duplicate,
    /// Above MaxCmdSN: the initiator broke the window; drop it.
    Beyond,
}

/// The window of one session (one connection at ERL 0).
#[derive(Debug, Clone)]
pub struct Window {
    exp: u32,
    depth: u32,
    /// Delivered commands (CmdSN < ExpCmdSN) that still hold a slot.
    held_slots: u32,
    /// Received CmdSNs at or above ExpCmdSN: `ahead[i]` is CmdSN `exp + i`.
    ahead: std::collections::VecDeque<bool>,
    /// The MaxCmdSN last reported (never reported lower again).
    max: u32,
}

impl Window {
    /// A window starting at `exp_cmdsn` with `depth` slots.
    pub fn new(exp_cmdsn: u32, depth: u32) -> Self {
        let depth = depth.max(1);
        Window {
            exp: exp_cmdsn,
            depth,
            held_slots: 0,
            ahead: std::collections::VecDeque::new(),
            max: exp_cmdsn.wrapping_add(depth).wrapping_sub(1),
        }
    }

    /// ExpCmdSN.
    pub fn exp_cmdsn(&self) -> u32 {
        self.exp
    }

    /// The MaxCmdSN advertised so far (what the initiator may use).
    pub fn max_cmdsn(&self) -> u32 {
        self.max
    }

    /// Slots held by delivered commands.
    pub fn held_slots(&self) -> u32 {
        self.held_slots
    }

    /// Classifies `cmdsn` against the window as advertised.
    pub fn position(&self, cmdsn: u32) -> Position {
        let offset = cmdsn.wrapping_sub(self.exp);
        if !sn_le(self.exp, cmdsn) {
            return Position::Duplicate;
        }
        if !sn_le(cmdsn, self.max) {
            return Position::Beyond;
        }
        if self.ahead.get(offset as usize).copied().unwrap_or(false) {
            return Position::Duplicate;
        }
        Position::Accept { offset }
    }

    /// Records the receipt of an accepted CmdSN (see [`Window::position`]) and returns
    /// the CmdSNs that became deliverable, in order (empty while a hole stays below it).
    /// The caller takes a slot ([`Window::take_slot`]) for each delivered SCSI command.
    pub fn receive(&mut self, cmdsn: u32) -> Delivered {
        let offset = cmdsn.wrapping_sub(self.exp) as usize;
        debug_assert!(offset < (1 << 31));
        if self.ahead.len() <= offset {
            self.ahead.resize(offset + 1, false);
        }
        self.ahead[offset] = true;
        let first = self.exp;
        let mut n = 0u32;
        while self.ahead.front() == Some(&true) {
            self.ahead.pop_front();
            self.exp = self.exp.wrapping_add(1);
            n += 1;
        }
        Delivered { first, count: n }
    }

    /// A delivered command took a slot (call for each delivered SCSI command).
    pub fn take_slot(&mut self) {
        self.held_slots += 1;
    }

    /// A delivered command's slot is free again (its status was sent, or it was aborted).
    pub fn free_slot(&mut self) {
        debug_assert!(self.held_slots > 0);
        self.held_slots = self.held_slots.saturating_sub(1);
    }

    /// Recomputes MaxCmdSN with at most `budget_slots` more commands admitted (memory),
    /// never lowering it, and returns it.
    pub fn advertise(&mut self, budget_slots: u32) -> u32 {
        let open = self.depth.saturating_sub(self.held_slots).min(budget_slots);
        let candidate = self.exp.wrapping_add(open).wrapping_sub(1);
        if sn_le(self.max, candidate) {
            self.max = candidate;
        }
        self.max
    }
}

/// CmdSNs that became deliverable: `first`, `first + 1`, ... (`count` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The first deliverable CmdSN.
    pub first: u32,
    /// How many.
    pub count: u32,
}

impl Delivered {
    /// Whether `cmdsn` is among them.
    pub fn contains(&self, cmdsn: u32) -> bool {
        cmdsn.wrapping_sub(self.first) < self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_order_commands_advance() {
        let mut w = Window::new(10, 4);
        assert_eq!(w.max_cmdsn(), 13);
        assert_eq!(w.position(10), Position::Accept { offset: 0 });
        let d = w.receive(10);
        assert_eq!((d.first, d.count), (10, 1));
        w.take_slot();
        assert_eq!(w.exp_cmdsn(), 11);
        assert_eq!(w.advertise(u32::MAX), 13, "one slot held: max stays");
        w.free_slot();
        assert_eq!(w.advertise(u32::MAX), 14);
        assert_eq!(w.position(9), Position::Duplicate);
        assert_eq!(w.position(15), Position::Beyond);
    }

    /// Defect 5 of issue 8: a CmdSN above ExpCmdSN is held, and delivered when the hole
    /// is filled.
    #[test]
    fn holes_hold_later_commands() {
        let mut w = Window::new(1, 8);
        assert_eq!(w.receive(2).count, 0, "held behind the hole at 1");
        assert_eq!(w.receive(3).count, 0);
        assert_eq!(
            w.position(2),
            Position::Duplicate,
            "a retry of a held CmdSN"
        );
        assert_eq!(w.exp_cmdsn(), 1);
        let d = w.receive(1);
        assert_eq!((d.first, d.count), (1, 3));
        assert!(d.contains(3) && !d.contains(4));
        assert_eq!(w.exp_cmdsn(), 4);
    }

    #[test]
    fn max_never_moves_back() {
        let mut w = Window::new(0, 4);
        assert_eq!(w.advertise(u32::MAX), 3);
        w.receive(0);
        w.take_slot();
        w.receive(1);
        w.take_slot();
        assert_eq!(w.advertise(0), 3, "no budget: max stays, never lowered");
        assert_eq!(w.position(3), Position::Accept { offset: 1 });
    }

    #[test]
    fn wraps_around() {
        let mut w = Window::new(u32::MAX - 1, 4);
        for sn in [u32::MAX - 1, u32::MAX, 0, 1] {
            assert!(matches!(w.position(sn), Position::Accept { .. }), "{sn}");
            assert_eq!(w.receive(sn).count, 1);
        }
        assert_eq!(w.exp_cmdsn(), 2);
        assert_eq!(w.advertise(u32::MAX), 5);
    }

    proptest! {
        /// Any arrival order of the CmdSNs of a window delivers each exactly once, in
        /// order, and ExpCmdSN ends past all of them; MaxCmdSN never decreases.
        #[test]
        fn any_arrival_order_delivers_in_order(
            start in any::<u32>(),
            depth in 1u32..64,
            perm in Just(()).prop_flat_map(|_| prop::collection::vec(any::<u32>(), 64)),
            budgets in prop::collection::vec(0u32..80, 64),
        ) {
            let mut w = Window::new(start, depth);
            let mut order: Vec<u32> = (0..depth).collect();
            // A permutation from the random keys.
            order.sort_by_key(|i| perm[*i as usize]);
            let mut delivered = Vec::new();
            let mut last_max = w.max_cmdsn();
            for (k, off) in order.iter().enumerate() {
                let sn = start.wrapping_add(*off);
                prop_assert!(matches!(w.position(sn), Position::Accept { .. }), "accepted");
                let d = w.receive(sn);
                for i in 0..d.count {
                    delivered.push(d.first.wrapping_add(i));
                    w.take_slot();
                }
                prop_assert_eq!(w.position(sn), Position::Duplicate);
                let max = w.advertise(budgets[k]);
                prop_assert!(sn_le(last_max, max));
                last_max = max;
            }
            let want: Vec<u32> = (0..depth).map(|i| start.wrapping_add(i)).collect();
            prop_assert_eq!(delivered, want);
            prop_assert_eq!(w.exp_cmdsn(), start.wrapping_add(depth));
            for _ in 0..depth {
                w.free_slot();
            }
            prop_assert_eq!(w.advertise(u32::MAX), start.wrapping_add(2 * depth).wrapping_sub(1));
        }
    }
}
