//! Black-box tests of `tern pub` and `tern sub`: the built binary against a real broker
//! (mosquitto unless `TERN_CLI_TEST_BROKER=tern`), asserting what a user sees: output, exit
//! codes and error messages. Subscribers are known to be ready by their SUBACK (`-d` output),
//! never by sleeping.

mod cli_support;

use cli_support::{assert_exit, run_tern, subscribed_tern_sub, topic, Broker, TIMEOUT};

/// Publishes one message at `qos` with `version` and checks the subscriber prints it and both
/// sides went through the acknowledgement flow of that QoS.
fn round_trip(qos: &str, version: &str, name: &str) {
    round_trip_on(Broker::start(), qos, version, name);
}

fn round_trip_on(broker: Broker, qos: &str, version: &str, name: &str) {
    let port = broker.port_arg();
    let topic = topic(name);
    let sub = subscribed_tern_sub(&broker, &["-V", version, "-q", qos, "-t", &topic, "-C", "1"]);
    let published = run_tern(&["pub", "-d", "-V", version, "-p", &port, "-q", qos, "-t", &topic, "-m", "hello"], None);
    assert_exit(&published, 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, "hello\n");
    match qos {
        "1" => {
            assert!(published.stderr.contains("received PUBACK"), "{published:#?}");
            assert!(received.stderr.contains("sending PUBACK"), "{received:#?}");
        }
        "2" => {
            for step in ["received PUBREC", "sending PUBREL", "received PUBCOMP"] {
                assert!(published.stderr.contains(step), "publisher lacks {step}: {published:#?}");
            }
            for step in ["sending PUBREC", "received PUBREL", "sending PUBCOMP"] {
                assert!(received.stderr.contains(step), "subscriber lacks {step}: {received:#?}");
            }
        }
        _ => assert!(!published.stderr.contains("PUBACK"), "{published:#?}"),
    }
}

#[test]
fn qos0_round_trip() {
    round_trip("0", "mqttv311", "qos0");
}

#[test]
fn qos1_round_trip() {
    round_trip("1", "mqttv311", "qos1");
}

#[test]
fn qos2_round_trip() {
    round_trip("2", "mqttv311", "qos2");
}

#[test]
fn qos2_round_trip_mqttv31() {
    round_trip("2", "mqttv31", "qos2-v31");
}

/// The client's MQTT 5.0 flows, checked against mosquitto while Tern's broker refuses 5.0
/// (CONNACK 0x84) until it serves it.
#[test]
fn qos2_round_trip_mqttv5() {
    round_trip_on(Broker::mosquitto(&[]), "2", "mqttv5", "qos2-v5");
}

#[test]
fn retained_message_reaches_a_later_subscriber_verbose() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("retained");
    let published = run_tern(&["pub", "-p", &port, "-q", "1", "-r", "-t", &topic, "-m", "kept value"], None);
    assert_exit(&published, 0);
    let received = run_tern(&["sub", "-p", &port, "-t", &topic, "-C", "1", "-v"], None);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, format!("{topic} kept value\n"));
}

#[test]
fn no_retained_print_skips_the_retained_message() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("skip-retained");
    assert_exit(&run_tern(&["pub", "-p", &port, "-q", "1", "-r", "-t", &topic, "-m", "stale"], None), 0);
    let sub = subscribed_tern_sub(&broker, &["-R", "-t", &topic, "-C", "1"]);
    assert_exit(&run_tern(&["pub", "-p", &port, "-q", "1", "-t", &topic, "-m", "fresh"], None), 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, "fresh\n");
}

#[test]
fn retained_only_stops_at_the_first_live_message() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("retained-only");
    assert_exit(&run_tern(&["pub", "-p", &port, "-q", "1", "-r", "-t", &topic, "-m", "old"], None), 0);
    let mut sub = subscribed_tern_sub(&broker, &["--retained-only", "-t", &topic]);
    assert_eq!(sub.stdout_line(TIMEOUT), "old");
    assert_exit(&run_tern(&["pub", "-p", &port, "-t", &topic, "-m", "live"], None), 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, "old\n");
}

#[test]
fn verbose_prints_the_matched_topic_for_a_wildcard() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let base = topic("verbose");
    let filter = format!("{base}/#");
    let mut sub = subscribed_tern_sub(&broker, &["-v", "-t", &filter, "-C", "2"]);
    let first = format!("{base}/kitchen/temp");
    assert_exit(&run_tern(&["pub", "-p", &port, "-t", &first, "-m", "21.5"], None), 0);
    assert_eq!(sub.stdout_line(TIMEOUT), format!("{first} 21.5"));
    // Printed as soon as it arrives, before the subscriber exits: stdout is flushed per message.
    let second = format!("{base}/hall");
    assert_exit(&run_tern(&["pub", "-p", &port, "-t", &second, "-m", "two words"], None), 0);
    assert_eq!(sub.stdout_line(TIMEOUT), format!("{second} two words"));
    assert_exit(&sub.finish(TIMEOUT), 0);
}

#[test]
fn stdin_lines_are_published_one_message_each() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("lines");
    let sub = subscribed_tern_sub(&broker, &["-q", "1", "-t", &topic, "-C", "3"]);
    let published = run_tern(&["pub", "-p", &port, "-q", "1", "-t", &topic, "-l"], Some(b"one\n\nthree\n"));
    assert_exit(&published, 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, "one\n\nthree\n");
}

#[test]
fn stdin_file_file_and_repeat_publish_whole_payloads() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("whole");
    let path = std::env::temp_dir().join(format!("tern-cli-test-{}-payload", std::process::id()));
    std::fs::write(&path, "from a file").expect("write payload file");
    let path = path.to_str().expect("utf-8 temp path").to_owned();
    let sub = subscribed_tern_sub(&broker, &["-q", "2", "-t", &topic, "-C", "4", "-N"]);
    let from_stdin = run_tern(&["pub", "-p", &port, "-q", "2", "-t", &topic, "-s"], Some(b"multi\nline|"));
    assert_exit(&from_stdin, 0);
    let from_file = run_tern(&["pub", "-p", &port, "-q", "2", "-t", &topic, "-f", &path], None);
    let _ = std::fs::remove_file(&path);
    assert_exit(&from_file, 0);
    let repeated = run_tern(
        &["pub", "-p", &port, "-q", "2", "-t", &topic, "-m", "|r", "--repeat", "2", "--repeat-delay", "0.05"],
        None,
    );
    assert_exit(&repeated, 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, "multi\nline|from a file|r|r");
}

#[test]
fn null_message_is_an_empty_payload() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("null");
    let sub = subscribed_tern_sub(&broker, &["-v", "-t", &topic, "-C", "1"]);
    assert_exit(&run_tern(&["pub", "-p", &port, "-q", "1", "-t", &topic, "-n"], None), 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, format!("{topic} (null)\n"));
}

#[test]
fn will_is_published_when_the_client_dies() {
    let broker = Broker::start();
    let will_topic = topic("will");
    let watcher = subscribed_tern_sub(&broker, &["-v", "-q", "1", "-t", &will_topic, "-C", "1"]);
    let idle = topic("will-idle");
    let will = ["--will-topic", will_topic.as_str(), "--will-payload", "gone", "--will-qos", "1"];
    let mut doomed = subscribed_tern_sub(&broker, &[&will[..], &["-t", &idle]].concat());
    doomed.kill();
    let received = watcher.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, format!("{will_topic} gone\n"));
}

#[test]
fn keep_alive_pings_the_broker() {
    let broker = Broker::start();
    let mut sub = subscribed_tern_sub(&broker, &["-k", "1", "-t", &topic("keep-alive")]);
    sub.wait_stderr("sending PINGREQ", TIMEOUT);
    sub.wait_stderr("received PINGRESP", TIMEOUT);
}
