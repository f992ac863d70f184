//! `tern bench` against a `tern serve` child process: small bounded runs whose JSON summary
//! must show every message delivered once and in order, and the loopback-only safety default.

mod cli_support;

use cli_support::{assert_exit, run_tern, Broker, Finished, Proc, TERN};
use std::process::Command;
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
    if qos == "0" {
        assert!(json["ack_latency_us"].is_null(), "QoS 0 has no acknowledgements: {json}");
    } else {
        assert_eq!(json["acked"], 400, "{json}");
        // Every acknowledged publish has its PUBACK/PUBCOMP latency measured.
        assert_eq!(json["ack_latency_us"]["count"], 400, "{json}");
        assert!(json["ack_latency_us"]["p50"].as_f64().is_some_and(|p50| p50 > 0.0), "{json}");
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

#[test]
fn shared_group_members_together_get_every_message_once() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let json = summary(&bench(&[
        "pubsub",
        "-p",
        &port,
        "-c",
        "2",
        "--subscribers",
        "3",
        "--shared-group",
        "workers",
        "-t",
        "fan/%i",
        "--sub-topic",
        "fan/+",
        "-q",
        "1",
        "--limit",
        "150",
        "--duration",
        "10",
        "--json",
    ]));
    assert_eq!(json["shared_group"], "workers", "{json}");
    assert_eq!(json["subscribers"], 3, "{json}");
    assert_eq!(json["sent"], 300, "{json}");
    // Each message went to one member only: the group as a whole saw each once.
    assert_eq!(json["received"], 300, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[test]
fn pairs_check_each_subscriber_against_its_own_publisher() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    // A low paced rate, bounded by time: every message still arrives.
    let json = summary(&bench(&[
        "pubsub",
        "-p",
        &port,
        "-c",
        "5",
        "--pairs",
        "-t",
        "pair/%i",
        "-q",
        "1",
        "--rate",
        "250",
        "--duration",
        "2",
        "--json",
    ]));
    assert_eq!(json["publishers"], 5, "{json}");
    assert_eq!(json["subscribers"], 5, "{json}");
    assert_eq!(json["connected"], 10, "{json}");
    let sent = json["sent"].as_u64().expect("sent");
    assert!(sent > 0, "{json}");
    // A subscriber checked against every publisher would count the other four as lost.
    assert_eq!(json["received"], sent, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["duplicates"], 0, "{json}");
    assert_eq!(json["out_of_order"], 0, "{json}");
    assert_eq!(json["latency_us"]["count"], sent, "{json}");
}

#[test]
fn conn_hold_keeps_every_connection_up_through_keep_alive() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    // Keep alive 1 s over a 3 s run: each connection has to ping several times to stay up.
    let json = summary(&bench(&[
        "conn",
        "-p",
        &port,
        "-c",
        "200",
        "--hold",
        "--keep-alive",
        "1",
        "--connect-inflight",
        "16",
        "--duration",
        "3",
        "--json",
    ]));
    assert_eq!(json["connected"], 200, "{json}");
    assert_eq!(json["up"], 200, "{json}");
    assert_eq!(json["connect_failed"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[test]
fn summary_reports_the_generators_own_cpu_time() {
    let broker = Broker::tern();
    let port = broker.port_arg();
    let json = summary(&bench(&["pubsub", "-p", &port, "-c", "2", "--limit", "500", "--duration", "10", "--json"]));
    assert_eq!(json["received"], 1000, "{json}");
    assert!(json["cpu_s"].as_f64().is_some_and(|cpu| cpu >= 0.0), "{json}");
    assert!(json["cpu_us_per_msg"].as_f64().is_some_and(|cpu| cpu >= 0.0), "{json}");
    let text = bench(&["pubsub", "-p", &port, "-c", "1", "--limit", "10", "--duration", "10"]);
    assert_exit(&text, 0);
    assert!(text.stdout.contains("bench CPU:"), "{text:#?}");
}

#[test]
fn inconsistent_pairs_and_shared_groups_are_refused() {
    let finished = run_tern(&["bench", "pubsub", "--pairs", "-t", "fixed/topic", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("--pairs needs a per-publisher topic"), "{finished:#?}");
    let finished = run_tern(&["bench", "sub", "--shared-group", "a/b", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("not a valid share name"), "{finished:#?}");
    assert!(!finished.stderr.contains("panicked"), "{finished:#?}");
}

/// `tern serve` with the given arguments; returns it and the port of its `kind` listener
/// (`mqtt`, `mqtts`, `ws`), read from the "listener ready" lines.
fn tern_serving(args: &[&str], kind: &str) -> (Proc, String) {
    let mut command = Command::new(TERN);
    command.args(["serve", "--in-memory"]).args(args).env("NO_COLOR", "1");
    let mut broker = Proc::spawn(command, None);
    for _ in 0..4 {
        let line = strip_ansi(&broker.wait_stderr("listener ready", cli_support::TIMEOUT));
        let field = |name: &str| {
            line.split(&format!("{name}="))
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(|value| value.trim_matches('"').to_owned())
        };
        if field("kind").as_deref() == Some(kind) {
            let addr = field("addr").unwrap_or_else(|| panic!("no addr= in {line}"));
            let port = addr.rsplit(':').next().expect("port").to_owned();
            return (broker, port);
        }
    }
    panic!("no {kind} listener became ready");
}

fn strip_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (a letter).
            for next in chars.by_ref() {
                if next.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn assert_all_delivered(json: &serde_json::Value, expected: u64) {
    assert_eq!(json["sent"], expected, "{json}");
    assert_eq!(json["received"], expected, "{json}");
    assert_eq!(json["lost"], 0, "{json}");
    assert_eq!(json["errors"], 0, "{json}");
}

#[test]
fn tls_transport_with_the_brokers_ca_and_with_insecure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tls = tern_test_support::secure::Pki::new("bench test CA").tls_config(dir.path(), false);
    let config = dir.path().join("tern.toml");
    let toml = format!(
        "[[listeners]]\nprotocol = \"mqtts\"\naddress = \"127.0.0.1:0\"\n[listeners.tls]\ncert = {:?}\nkey = {:?}\n",
        tls.cert, tls.key
    );
    std::fs::write(&config, toml).expect("write config");
    let (_broker, port) = tern_serving(&["--config", config.to_str().expect("utf-8 path")], "mqtts");
    // The server chain file holds the CA too, so it serves as the trust anchor.
    let cafile = tls.cert.to_str().expect("utf-8 path");
    let common = ["pubsub", "-p", &port, "--tls", "-q", "1", "--limit", "100", "--duration", "10", "--json"];
    let json = summary(&bench(&[&common[..], &["--cafile", cafile]].concat()));
    assert_all_delivered(&json, 100);
    let json = summary(&bench(&[&common[..], &["--insecure"]].concat()));
    assert_all_delivered(&json, 100);
    // Plain MQTT against a TLS listener gets no CONNACK: nobody connects.
    let plain = bench(&["conn", "-p", &port, "-c", "1", "--duration", "2", "--json"]);
    assert_exit(&plain, 1);
}

#[test]
fn websocket_transport_delivers_every_message() {
    let (_broker, port) = tern_serving(&["--listen", "127.0.0.1:0", "--ws-listen", "127.0.0.1:0"], "ws");
    let json = summary(&bench(&[
        "pubsub",
        "-p",
        &port,
        "--ws",
        "-c",
        "2",
        "-q",
        "1",
        "--limit",
        "200",
        "--duration",
        "10",
        "--json",
    ]));
    assert_all_delivered(&json, 400);
    let wrong_path = bench(&["conn", "-p", &port, "--ws", "--ws-path", "/nope", "-c", "1", "--duration", "2"]);
    assert_exit(&wrong_path, 1);
    assert!(wrong_path.stderr.contains("WebSocket handshake failed"), "{wrong_path:#?}");
}

#[test]
fn tls_needs_a_ca_or_insecure() {
    let finished = run_tern(&["bench", "conn", "--tls", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("--cafile"), "{finished:#?}");
    let finished = run_tern(&["bench", "conn", "--tls", "--cafile", "/nonexistent/ca.pem", "--duration", "1"], None);
    assert_exit(&finished, 1);
    assert!(finished.stderr.contains("cannot read --cafile"), "{finished:#?}");
}
