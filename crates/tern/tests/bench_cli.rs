//! `tern bench` against a `tern serve` child process: small bounded runs whose JSON summary
//! must show every message delivered once and in order, and the loopback-only safety default.

mod cli_support;

use cli_support::{assert_exit, run_tern, Broker, Finished, Proc};
use std::time::Duration;

/// Bound on one bench run: its `--duration`, the drain grace and process start-up.
const BENCH_TIMEOUT: Duration = Duration::from_secs(30);

fn bench(args: &[&str]) -> Finished {
    let mut full = vec!["bench"];
    full.extend_from_slice(args);
    Proc::tern(&full).finish(BENCH_TIMEOUT)
}

fn summary(finished: &Finished) -> serde_json::Value {
    assert_exit(finished, 0);
    let line = finished.stdout.lines().last().unwrap_or_else(|| panic!("no summary: {finished:#?}"));
    serde_json::from_str(line).unwrap_or_else(|error| panic!("summary is not JSON ({error}): {line}"))
}

fn pubsub_delivers_every_message_once_in_order(qos: &str, version: &str) {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let finished = bench(&[
        "pubsub",
        "-p",
        &port,
        "-c",
        "2",
        "--subscribers",
        "1",
        "-q",
        qos,
        "-V",
        version,
        "--limit",
        "200",
        "--duration",
        "10",
        "--json",
    ]);
    let json = summary(&finished);
    assert_eq!(json["sent"], 400, "{json}");
    assert_eq!(json["received"], 400, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
    assert_eq!(json["out_of_order"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
    assert_eq!(json["latency_us"]["count"], 400, "{json}");
    if qos != "0" {
        assert_eq!(json["acked"], 400, "{json}");
    }
}

#[test]
fn pubsub_qos0_delivers_every_message() {
    pubsub_delivers_every_message_once_in_order("0", "3");
}

#[test]
fn pubsub_qos1_delivers_every_message_once_in_order() {
    pubsub_delivers_every_message_once_in_order("1", "3");
}

#[test]
fn pubsub_qos2_delivers_every_message_once_in_order() {
    pubsub_delivers_every_message_once_in_order("2", "3");
}

#[test]
fn pubsub_qos1_v5_delivers_every_message_once_in_order() {
    pubsub_delivers_every_message_once_in_order("1", "5");
}

#[test]
fn pubsub_counts_messages_of_every_subscriber() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let finished = bench(&[
        "pubsub",
        "-p",
        &port,
        "-c",
        "3",
        "--subscribers",
        "2",
        "-q",
        "1",
        "--limit",
        "50",
        "--duration",
        "10",
        "--json",
    ]);
    let json = summary(&finished);
    assert_eq!(json["received"], 300, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
}

#[test]
fn conn_connects_every_client() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let json = summary(&bench(&["conn", "-p", &port, "-c", "20", "--duration", "10", "--json"]));
    assert_eq!(json["connected"], 20, "{json}");
    assert_eq!(json["connect_failed"], 0, "{json}");
}

#[test]
fn pub_alone_stops_at_its_limit() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let json =
        summary(&bench(&["pub", "-p", &port, "-c", "2", "-q", "2", "--limit", "100", "--duration", "10", "--json"]));
    assert_eq!(json["sent"], 200, "{json}");
    assert_eq!(json["acked"], 200, "{json}");
}

#[test]
fn non_loopback_broker_is_refused_before_connecting() {
    // 192.0.2.1 is TEST-NET-1: nothing answers there, and the tool must not even try.
    let finished = run_tern(&["bench", "conn", "-h", "192.0.2.1", "-c", "1", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("not a loopback address"), "{finished:#?}");
    assert!(finished.stderr.contains("--allow-remote"), "{finished:#?}");
    assert!(!finished.stderr.contains("cannot connect"), "{finished:#?}");
}

#[test]
fn payload_smaller_than_the_header_is_refused() {
    let finished = run_tern(&["bench", "pub", "-s", "4", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("bench header"), "{finished:#?}");
}
