//! The Prometheus text endpoint (`daemon.metrics_listen`): per-LUN operations, bytes and
//! latency histograms, per-session counters. A deliberately tiny HTTP/1.0 responder: one
//! GET per connection, bounded request size and time.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::ServerCtx;
use crate::scsi::metrics::BUCKETS_US;

/// Escapes a label value.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric in the Prometheus text exposition format.
pub fn render(ctx: &ServerCtx) -> String {
    let reg = ctx.registry.load();
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP rustiscsi_uptime_seconds Seconds since the daemon started."
    );
    let _ = writeln!(o, "# TYPE rustiscsi_uptime_seconds gauge");
    let _ = writeln!(
        o,
        "rustiscsi_uptime_seconds {}",
        ctx.started.elapsed().as_secs()
    );
    for (name, help) in [
        ("reads", "READ commands"),
        ("writes", "WRITE commands"),
        ("read_bytes", "Bytes read"),
        ("write_bytes", "Bytes written"),
    ] {
        let _ = writeln!(o, "# HELP rustiscsi_lun_{name}_total {help} per backstore.");
        let _ = writeln!(o, "# TYPE rustiscsi_lun_{name}_total counter");
        for (bs, (_, unit)) in &reg.units {
            let s = unit.metrics.snapshot();
            let v = match name {
                "reads" => s.reads,
                "writes" => s.writes,
                "read_bytes" => s.read_bytes,
                _ => s.write_bytes,
            };
            let _ = writeln!(
                o,
                "rustiscsi_lun_{name}_total{{backstore=\"{}\"}} {v}",
                label(bs)
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP rustiscsi_lun_io_latency_seconds READ/WRITE latency per backstore."
    );
    let _ = writeln!(o, "# TYPE rustiscsi_lun_io_latency_seconds histogram");
    for (bs, (_, unit)) in &reg.units {
        let s = unit.metrics.snapshot();
        let l = label(bs);
        let mut cum = 0;
        for (i, (_, n)) in s.latency_us.iter().enumerate() {
            cum += n;
            let le = BUCKETS_US
                .get(i)
                .map_or("+Inf".to_string(), |us| format!("{}", *us as f64 / 1e6));
            let _ = writeln!(
                o,
                "rustiscsi_lun_io_latency_seconds_bucket{{backstore=\"{l}\",le=\"{le}\"}} {cum}"
            );
        }
        let _ = writeln!(
            o,
            "rustiscsi_lun_io_latency_seconds_sum{{backstore=\"{l}\"}} {}",
            s.latency_sum_us as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "rustiscsi_lun_io_latency_seconds_count{{backstore=\"{l}\"}} {cum}"
        );
    }
    backstore_health(&mut o, &reg);
    let sessions = ctx.sessions.list();
    let _ = writeln!(o, "# HELP rustiscsi_sessions Logged-in sessions.");
    let _ = writeln!(o, "# TYPE rustiscsi_sessions gauge");
    let _ = writeln!(o, "rustiscsi_sessions {}", sessions.len());
    for (name, help) in [
        ("commands", "SCSI commands"),
        ("read_bytes", "Bytes sent as Data-In"),
        ("write_bytes", "Bytes received as Data-Out"),
        ("errors", "Commands that did not end GOOD"),
    ] {
        let _ = writeln!(
            o,
            "# HELP rustiscsi_session_{name}_total {help} per session."
        );
        let _ = writeln!(o, "# TYPE rustiscsi_session_{name}_total counter");
        for h in &sessions {
            let c = &h.counters;
            let v = match name {
                "commands" => c.commands.load(Relaxed),
                "read_bytes" => c.read_bytes.load(Relaxed),
                "write_bytes" => c.write_bytes.load(Relaxed),
                _ => c.errors.load(Relaxed),
            };
            let _ = writeln!(
                o,
                "rustiscsi_session_{name}_total{{tsih=\"{}\",initiator=\"{}\",target=\"{}\"}} {v}",
                h.tsih,
                label(&h.key.initiator),
                label(&h.key.target)
            );
        }
    }
    o
}

/// Per-backstore error counters and the health state (one series per state, 1 for the
/// current one).
fn backstore_health(o: &mut String, reg: &crate::registry::Registry) {
    use crate::backstore::health::State;
    let _ = writeln!(
        o,
        "# HELP rustiscsi_backstore_errors_total Failed backstore operations per backstore and operation."
    );
    let _ = writeln!(o, "# TYPE rustiscsi_backstore_errors_total counter");
    let snaps: Vec<_> = reg
        .units
        .iter()
        .map(|(bs, (_, unit))| (label(bs), unit.health.snapshot()))
        .collect();
    for (l, h) in &snaps {
        for (op, n) in [
            ("read", h.read_errors),
            ("write", h.write_errors),
            ("flush", h.flush_errors),
            ("discard", h.discard_errors),
        ] {
            let _ = writeln!(
                o,
                "rustiscsi_backstore_errors_total{{backstore=\"{l}\",op=\"{op}\"}} {n}"
            );
        }
    }
    let _ = writeln!(
        o,
        "# HELP rustiscsi_backstore_health Backstore state: 1 for the current one of healthy, failing, offline."
    );
    let _ = writeln!(o, "# TYPE rustiscsi_backstore_health gauge");
    for (l, h) in &snaps {
        for st in [State::Healthy, State::Failing, State::Offline] {
            let _ = writeln!(
                o,
                "rustiscsi_backstore_health{{backstore=\"{l}\",state=\"{}\"}} {}",
                st.as_str(),
                u8::from(h.state == Some(st))
            );
        }
    }
}

/// Serves `/metrics` on `addr` until the daemon stops.
pub async fn serve(addr: SocketAddr, ctx: Arc<ServerCtx>) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    let mut shutdown = ctx.shutdown.clone();
    loop {
        let (mut s, _) = tokio::select! {
            r = listener.accept() => r?,
            _ = shutdown.wait_for(|s| *s) => return Ok(()),
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut req = Vec::with_capacity(1024);
            let mut buf = [0u8; 1024];
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 8192 {
                    let n = s.read(&mut buf).await?;
                    if n == 0 {
                        break;
                    }
                    req.extend_from_slice(&buf[..n]);
                }
                std::io::Result::Ok(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let ok = req.starts_with(b"GET /metrics ") || req.starts_with(b"GET / ");
            let (status, body) = if ok {
                ("200 OK", render(&ctx))
            } else {
                ("404 Not Found", "not found: try /metrics\n".to_string())
            };
            let head = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
        });
    }
}
