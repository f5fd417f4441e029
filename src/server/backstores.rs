//! Backstore upkeep, one task for the daemon: every second the health summaries are
//! flushed and offline backstores are retried (backoff 1 s doubling to 5 s, so a device
//! that appears is served within seconds, without a restart); every 5 s sizes are re-read
//! (online resize) and vanished files or devices are taken offline, and the I/O buffer pool
//! returns what stayed idle since the previous check ([`crate::iobuf::trim`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ServerCtx;

/// First retry delay of an offline backstore.
const RETRY_FIRST: Duration = Duration::from_secs(1);
/// Longest retry delay.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often sizes and presence are checked.
const REFRESH_EVERY: Duration = Duration::from_secs(5);

/// Starts the upkeep task; it ends when the daemon stops.
pub fn spawn(ctx: Arc<ServerCtx>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(ctx))
}

async fn run(ctx: Arc<ServerCtx>) {
    let mut shutdown = ctx.shutdown.clone();
    let mut t = tokio::time::interval(Duration::from_secs(1));
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // name -> (next attempt, delay after it)
    let mut retry: HashMap<String, (Instant, Duration)> = HashMap::new();
    let mut last_refresh = Instant::now();
    loop {
        tokio::select! {
            _ = t.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        let reg = ctx.registry.load_full();
        let now = Instant::now();
        for (_, unit) in reg.units.values() {
            unit.health.tick(now);
        }
        let offline = reg.offline();
        retry.retain(|n, _| offline.contains(n));
        let due: Vec<String> = offline
            .into_iter()
            .filter(|n| retry.get(n).is_none_or(|(at, _)| *at <= now))
            .collect();
        let refresh = now.duration_since(last_refresh) >= REFRESH_EVERY;
        if due.is_empty() && !refresh {
            continue;
        }
        if refresh {
            last_refresh = now;
            crate::iobuf::trim();
        }
        let c = ctx.clone();
        let r = reg.clone();
        let names = due.clone();
        let done = tokio::task::spawn_blocking(move || {
            // Not while a reload builds a registry from this one.
            let _one_at_a_time = c.changes.lock().unwrap_or_else(|e| e.into_inner());
            if refresh {
                r.refresh_sizes();
            }
            names.iter().map(|n| r.reopen(n)).collect::<Vec<bool>>()
        })
        .await
        .unwrap_or_default();
        let now = Instant::now();
        for (name, online) in due.into_iter().zip(done) {
            if online {
                retry.remove(&name);
            } else {
                let delay = retry.get(&name).map_or(RETRY_FIRST, |(_, d)| *d);
                retry.insert(name, (now + delay, (delay * 2).min(RETRY_MAX)));
            }
        }
    }
}
