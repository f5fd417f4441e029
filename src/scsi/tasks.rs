//! The task set of a logical unit (SAM-5 §8): aborts that mean it, and COMPARE AND WRITE
//! atomic against every overlapping write.
//!
//! Every command that touches the medium enters the unit's task set before its I/O and
//! leaves it when the I/O is over ([`TaskSet::begin`], the [`TaskGuard`]). An abort
//! ([`TaskSet::abort`]) marks the covered tasks and then *waits* until none of them is
//! still in the set: only then does task management answer FUNCTION COMPLETE, so an
//! aborted write can never land after its abort was answered.
//!
//! Tasks that have not started their I/O yet — still collecting data in some session,
//! waiting for budget or CmdSN order — are reached without knowing them: each abort is
//! remembered with the time it was issued, and a task that arrived before a covering abort
//! is refused when it tries to begin. Sessions therefore only pass the time their command
//! arrived; nothing is registered per command until its I/O starts.
//!
//! COMPARE AND WRITE takes its blocks exclusively: it waits for every earlier overlapping
//! access, and overlapping accesses that come after it wait for it (first come, first
//! served, so a stream of writes cannot starve it). Other accesses never wait for each
//! other. The lock is taken once per command, never per block.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Who a task belongs to: the I_T nexus.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct NexusKey {
    /// Unique for the life of the daemon.
    pub id: u64,
    /// Initiator port name (`iqn...,i,0x<isid>`).
    pub initiator_port: String,
    /// Target port name (`iqn...,t,0x<tpgt>`).
    pub target_port: String,
}

/// Which tasks an abort covers (besides "arrived before it").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AbortScope {
    /// One task of one nexus (ABORT TASK).
    Task {
        /// The nexus.
        nexus: u64,
        /// The task (the session's task id).
        task: u64,
    },
    /// Every task of one nexus (ABORT TASK SET, session teardown).
    Nexus(u64),
    /// Every task of every nexus (CLEAR TASK SET, LOGICAL UNIT RESET, target resets).
    All,
    /// Every task of the I_T nexuses a PREEMPT AND ABORT preempted.
    Preempted(Vec<super::pr::Preempted>),
}

impl AbortScope {
    fn covers(&self, key: &NexusKey, task: u64) -> bool {
        match self {
            AbortScope::Task { nexus, task: t } => key.id == *nexus && task == *t,
            AbortScope::Nexus(n) => key.id == *n,
            AbortScope::All => true,
            AbortScope::Preempted(p) => p
                .iter()
                .any(|p| p.matches(&key.initiator_port, &key.target_port)),
        }
    }
}

/// What a command does to the medium.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads blocks `start..end`.
    Read(u64, u64),
    /// Writes (or deallocates) blocks `start..end`.
    Write(u64, u64),
    /// COMPARE AND WRITE of blocks `start..end`: exclusive.
    CompareAndWrite(u64, u64),
    /// Touches the medium without a block range that matters for ordering (a flush).
    Other,
}

impl Access {
    fn range(&self) -> Option<(u64, u64)> {
        match *self {
            Access::Read(a, b) | Access::Write(a, b) | Access::CompareAndWrite(a, b) => {
                Some((a, b))
            }
            Access::Other => None,
        }
    }

    fn conflicts(&self, other: &Access) -> bool {
        let exclusive = matches!(self, Access::CompareAndWrite(..))
            || matches!(other, Access::CompareAndWrite(..));
        match (self.range(), other.range()) {
            (Some((a, b)), Some((c, d))) => exclusive && a < d && c < b,
            _ => false,
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: Arc<NexusKey>,
    task: u64,
    access: Access,
    received: Instant,
    running: bool,
    aborted: bool,
}

#[derive(Debug)]
struct Record {
    at: Instant,
    scope: AbortScope,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<u64, Entry>,
    next: u64,
    /// Entries of COMPARE AND WRITE (only then do ranges need checking).
    exclusive: usize,
    /// Recent aborts, oldest first.
    history: VecDeque<Record>,
}

/// How long an abort is remembered for tasks that arrived before it but have not begun.
const HISTORY: Duration = Duration::from_secs(30 * 60);
/// Most aborts remembered.
const HISTORY_MAX: usize = 4096;

/// The task set of one logical unit.
#[derive(Debug, Default)]
pub struct TaskSet {
    inner: Mutex<Inner>,
    changed: Notify,
    waiters: AtomicUsize,
}

/// A task in the set; leaving it (drop) is what lets waiting aborts complete.
#[derive(Debug)]
pub struct TaskGuard<'a> {
    set: &'a TaskSet,
    id: u64,
}

impl TaskGuard<'_> {
    /// Whether an abort covered the task while it ran (its result must not be reported
    /// as its own: the initiator gets TASK ABORTED or nothing).
    pub fn aborted(&self) -> bool {
        self.set
            .lock()
            .entries
            .get(&self.id)
            .is_some_and(|e| e.aborted)
    }
}

impl Drop for TaskGuard<'_> {
    fn drop(&mut self) {
        let removed = {
            let mut g = self.set.lock();
            let e = g.entries.remove(&self.id);
            if matches!(
                e,
                Some(Entry {
                    access: Access::CompareAndWrite(..),
                    ..
                })
            ) {
                g.exclusive -= 1;
            }
            e.is_some()
        };
        if removed && self.set.waiters.load(Ordering::Acquire) > 0 {
            self.set.changed.notify_waiters();
        }
    }
}

impl TaskSet {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Enters task `task` of nexus `key`, which arrived at `received`, before its I/O.
    /// Waits while an earlier conflicting COMPARE AND WRITE (or, for one, any earlier
    /// overlapping access) runs. `None`: an abort covers the task — do no I/O.
    pub async fn begin(
        &self,
        key: &Arc<NexusKey>,
        task: u64,
        received: Instant,
        access: Access,
    ) -> Option<TaskGuard<'_>> {
        let id = {
            let mut g = self.lock();
            if g.history
                .iter()
                .any(|r| received <= r.at && r.scope.covers(key, task))
            {
                return None;
            }
            let id = g.next;
            g.next += 1;
            let exclusive = matches!(access, Access::CompareAndWrite(..));
            if exclusive {
                g.exclusive += 1;
            }
            let blocked = g.exclusive > 0
                && g.entries
                    .iter()
                    .any(|(eid, e)| *eid < id && e.access.conflicts(&access));
            g.entries.insert(
                id,
                Entry {
                    key: Arc::clone(key),
                    task,
                    access,
                    received,
                    running: !blocked,
                    aborted: false,
                },
            );
            if !blocked {
                return Some(TaskGuard { set: self, id });
            }
            id
        };
        // Wait for the conflicting accesses ahead of this one (dropping the guard on an
        // abort removes the entry).
        let guard = TaskGuard { set: self, id };
        self.waiters.fetch_add(1, Ordering::AcqRel);
        let result = loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut g = self.lock();
                let me = &g.entries[&id];
                if me.aborted {
                    break None;
                }
                let access = me.access;
                let blocked = g
                    .entries
                    .iter()
                    .any(|(eid, e)| *eid < id && e.access.conflicts(&access));
                if !blocked {
                    g.entries.get_mut(&id).expect("present").running = true;
                    break Some(());
                }
            }
            notified.await;
        };
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        result.map(|()| guard)
    }

    /// Aborts every task in `scope` that arrived at or before `before`: those in the set
    /// are marked, those yet to begin will be refused; returns once no marked task is left
    /// in the set (its I/O is over), with how many were marked.
    pub async fn abort(&self, scope: AbortScope, before: Instant) -> usize {
        let marked = {
            let mut g = self.lock();
            while g.history.len() >= HISTORY_MAX
                || g.history.front().is_some_and(|r| r.at + HISTORY < before)
            {
                g.history.pop_front();
            }
            g.history.push_back(Record {
                at: before,
                scope: scope.clone(),
            });
            let mut n = 0;
            for e in g.entries.values_mut() {
                if e.received <= before && scope.covers(&e.key, e.task) {
                    e.aborted = true;
                    n += 1;
                }
            }
            n
        };
        if marked > 0 {
            // Waiting entries that are now aborted must look again.
            self.changed.notify_waiters();
        }
        self.waiters.fetch_add(1, Ordering::AcqRel);
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let left = self.lock().entries.values().any(|e| e.aborted && e.running);
            if !left {
                break;
            }
            notified.await;
        }
        self.waiters.fetch_sub(1, Ordering::AcqRel);
        marked
    }

    /// Tasks in the set now (running or waiting).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u64) -> Arc<NexusKey> {
        Arc::new(NexusKey {
            id,
            initiator_port: format!("iqn.i{id},i,0x01"),
            target_port: "iqn.t,t,0x0001".into(),
        })
    }

    #[tokio::test]
    async fn abort_waits_for_the_running_io() {
        let set = Arc::new(TaskSet::default());
        let k = key(1);
        let t0 = Instant::now();
        let g = set.begin(&k, 7, t0, Access::Write(0, 8)).await.unwrap();
        let s2 = set.clone();
        let abort = tokio::spawn(async move {
            s2.abort(AbortScope::Task { nexus: 1, task: 7 }, Instant::now())
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!abort.is_finished(), "the abort must wait for the I/O");
        assert!(g.aborted());
        drop(g); // the I/O is over
        assert_eq!(abort.await.unwrap(), 1);
    }

    #[tokio::test]
    async fn tasks_that_arrived_before_an_abort_never_begin() {
        let set = TaskSet::default();
        let (a, b) = (key(1), key(2));
        let early = Instant::now();
        tokio::time::sleep(Duration::from_millis(2)).await;
        set.abort(AbortScope::All, Instant::now()).await;
        assert!(set.begin(&a, 1, early, Access::Read(0, 1)).await.is_none());
        assert!(set.begin(&b, 1, early, Access::Read(0, 1)).await.is_none());
        let late = Instant::now() + Duration::from_millis(1);
        assert!(set.begin(&a, 2, late, Access::Read(0, 1)).await.is_some());
        // A nexus-scoped abort leaves other nexuses alone.
        let t = Instant::now();
        set.abort(AbortScope::Nexus(1), t).await;
        assert!(set.begin(&a, 3, t, Access::Read(0, 1)).await.is_none());
        assert!(set.begin(&b, 3, t, Access::Read(0, 1)).await.is_some());
        // PREEMPT AND ABORT names ports.
        let t = Instant::now();
        set.abort(
            AbortScope::Preempted(vec![super::super::pr::Preempted {
                initiator_port: b.initiator_port.clone(),
                target_port: b.target_port.clone(),
            }]),
            t,
        )
        .await;
        assert!(set.begin(&b, 4, t, Access::Read(0, 1)).await.is_none());
        assert!(set.begin(&a, 4, t, Access::Read(0, 1)).await.is_some());
    }

    #[tokio::test]
    async fn compare_and_write_excludes_overlapping_writes_both_ways() {
        let set = Arc::new(TaskSet::default());
        let k = key(1);
        let now = Instant::now();
        let w = set.begin(&k, 1, now, Access::Write(0, 8)).await.unwrap();
        let s2 = set.clone();
        let k2 = k.clone();
        let caw = tokio::spawn(async move {
            let g = s2.begin(&k2, 2, now, Access::CompareAndWrite(4, 5)).await;
            g.is_some()
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!caw.is_finished(), "CAW waits for the overlapping write");
        // A write elsewhere does not wait.
        assert!(
            set.begin(&k, 3, now, Access::Write(100, 108))
                .await
                .is_some()
        );
        drop(w);
        assert!(caw.await.unwrap());
        // And a write that comes after a running CAW waits for it.
        let c = set
            .begin(&k, 4, now, Access::CompareAndWrite(0, 1))
            .await
            .unwrap();
        let s3 = set.clone();
        let k3 = k.clone();
        let later =
            tokio::spawn(
                async move { s3.begin(&k3, 5, now, Access::Write(0, 16)).await.is_some() },
            );
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(
            !later.is_finished(),
            "a write overlapping a running CAW waits"
        );
        drop(c);
        assert!(later.await.unwrap());
        assert!(set.is_empty());
    }

    #[tokio::test]
    async fn a_waiting_task_that_is_aborted_does_not_begin() {
        let set = Arc::new(TaskSet::default());
        let k = key(1);
        let now = Instant::now();
        let c = set
            .begin(&k, 1, now, Access::CompareAndWrite(0, 1))
            .await
            .unwrap();
        let s2 = set.clone();
        let k2 = k.clone();
        let w =
            tokio::spawn(async move { s2.begin(&k2, 2, now, Access::Write(0, 1)).await.is_some() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s3 = set.clone();
        let abort = tokio::spawn(async move {
            s3.abort(AbortScope::Task { nexus: 1, task: 2 }, Instant::now())
                .await
        });
        assert!(!w.await.unwrap(), "aborted while waiting");
        assert!(abort.await.unwrap() == 1);
        drop(c);
    }
}
