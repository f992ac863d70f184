//! The final summary of a run, as text or as one JSON object.

use std::time::Duration;

use super::args::LoadArgs;
use super::scenario::Report;
use super::stats::{percentiles_json, percentiles_text};

fn per_second(count: u64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// CPU time of the bench process per message it sent or received.
fn cpu_per_message(report: &Report) -> Option<Duration> {
    let messages = report.sent + report.delivery.received;
    let messages = u32::try_from(messages).ok().filter(|&n| n > 0)?;
    report.cpu.map(|cpu| cpu / messages)
}

/// The summary as JSON; latencies in microseconds.
pub fn json(report: &Report, args: &LoadArgs) -> serde_json::Value {
    serde_json::json!({
        "mode": report.mode,
        "protocol_level": args.version.level(),
        "qos": args.qos,
        "size": args.size,
        "publishers": report.publishers,
        "subscribers": report.subscribers,
        "elapsed_s": report.elapsed.as_secs_f64(),
        "sent": report.sent,
        "acked": report.acked,
        "sent_per_s": per_second(report.sent, report.publish_elapsed),
        "received": report.delivery.received,
        "received_per_s": per_second(report.delivery.received, report.elapsed.saturating_sub(report.connect_elapsed)),
        "lost": report.delivery.lost,
        "duplicates": report.delivery.duplicates,
        "out_of_order": report.delivery.out_of_order,
        "foreign": report.delivery.foreign,
        "latency_us": percentiles_json(&report.latency),
        "ack_latency_us": percentiles_json(&report.ack_latency),
        "connected": report.connected,
        "connect_failed": report.connect_failed,
        "connect_per_s": per_second(report.connected, report.connect_elapsed),
        "connect_latency_us": percentiles_json(&report.connect_latency),
        "up": report.up,
        "errors": report.errors,
        "shared_group": args.shared_group,
        "cpu_s": report.cpu.map(|cpu| cpu.as_secs_f64()),
        "cpu_us_per_msg": cpu_per_message(report).map(|cpu| cpu.as_secs_f64() * 1e6),
    })
}

/// The summary as a few lines of text.
pub fn text(report: &Report) -> String {
    let mut lines = vec![format!(
        "tern bench {}: {:.2} s, {} connected, {} failed to connect ({:.0} conn/s), {} errors",
        report.mode,
        report.elapsed.as_secs_f64(),
        report.connected,
        report.connect_failed,
        per_second(report.connected, report.connect_elapsed),
        report.errors,
    )];
    lines.push(format!("connect latency: {}", percentiles_text(&report.connect_latency)));
    if report.mode == "conn" {
        lines.push(format!("{} connections up at the end", report.up));
    }
    if report.publishers > 0 {
        lines.push(format!(
            "sent {} ({:.0} msg/s), acknowledged {}",
            report.sent,
            per_second(report.sent, report.publish_elapsed),
            report.acked
        ));
        if !report.ack_latency.is_empty() {
            lines.push(format!("acknowledgement latency: {}", percentiles_text(&report.ack_latency)));
        }
    }
    if report.subscribers > 0 {
        let totals = report.delivery;
        lines.push(format!(
            "received {} ({:.0} msg/s), lost {}, duplicates {}, out of order {}, not bench messages {}",
            totals.received,
            per_second(totals.received, report.elapsed.saturating_sub(report.connect_elapsed)),
            totals.lost,
            totals.duplicates,
            totals.out_of_order,
            totals.foreign
        ));
        lines.push(format!("latency: {}", percentiles_text(&report.latency)));
    }
    if let Some(cpu) = report.cpu {
        let per_message = cpu_per_message(report)
            .map(|cpu| format!(", {:.2} µs per message", cpu.as_secs_f64() * 1e6))
            .unwrap_or_default();
        lines.push(format!("bench CPU: {:.2} s{per_message}", cpu.as_secs_f64()));
    }
    lines.join("\n")
}
