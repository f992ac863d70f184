//! What `tern pub` and `tern sub` tell a user when something goes wrong: bad flags, a closed
//! port, a refused connection, a timeout. Exit codes follow mosquitto's clients.

mod cli_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

use cli_support::{assert_exit, run_tern, topic, Broker, Proc, TIMEOUT};

#[test]
fn timeout_without_messages_exits_27() {
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("quiet");
    let received = run_tern(&["sub", "-p", &port, "-t", &topic, "-W", "1"], None);
    assert_exit(&received, 27);
    assert_eq!(received.stdout, "");
    assert!(received.stderr.contains("timed out"), "{received:#?}");
}

#[test]
fn closed_port_is_a_readable_error() {
    let port = cli_support::free_port().to_string();
    let published = run_tern(&["pub", "-p", &port, "-t", "a", "-m", "x"], None);
    assert_exit(&published, 1);
    assert!(published.stderr.contains(&format!("cannot connect to 127.0.0.1:{port}")), "{published:#?}");
    assert!(published.stderr.contains("refused"), "{published:#?}");
    let subscribed = run_tern(&["sub", "-p", &port, "-t", "a"], None);
    assert_exit(&subscribed, 1);
    assert!(subscribed.stderr.contains("cannot connect"), "{subscribed:#?}");
}

/// Always mosquitto: this proves the client reads CONNACK codes, whatever broker is under test.
#[test]
fn refused_connack_is_reported_in_words() {
    let broker = Broker::mosquitto(&["allow_anonymous false"]);
    let port = broker.port_arg();
    let published = run_tern(&["pub", "-p", &port, "-t", "a", "-m", "x"], None);
    assert_exit(&published, 1);
    assert!(published.stderr.contains("connection refused: not authorised (0x05)"), "{published:#?}");
    let published_v5 = run_tern(&["pub", "-V", "mqttv5", "-p", &port, "-t", "a", "-m", "x"], None);
    assert_exit(&published_v5, 1);
    assert!(published_v5.stderr.contains("connection refused: not authorized (0x87)"), "{published_v5:#?}");
}

#[test]
fn bad_flags_are_usage_errors() {
    let no_source = run_tern(&["pub", "-t", "a"], None);
    assert_exit(&no_source, 2);
    assert!(no_source.stderr.contains("--message"), "{no_source:#?}");
    let two_sources = run_tern(&["pub", "-t", "a", "-m", "x", "-n"], None);
    assert_exit(&two_sources, 2);
    let no_topic = run_tern(&["sub", "-C", "1"], None);
    assert_exit(&no_topic, 2);
    let bad_qos = run_tern(&["pub", "-t", "a", "-m", "x", "-q", "3"], None);
    assert_exit(&bad_qos, 2);
    let persistent_without_id = run_tern(&["sub", "-t", "a", "-c"], None);
    assert_exit(&persistent_without_id, 2);
    let bad_filter = run_tern(&["sub", "-t", "a/#/b"], None);
    assert_exit(&bad_filter, 1);
    assert!(bad_filter.stderr.contains("invalid topic filter 'a/#/b'"), "{bad_filter:#?}");
    let wildcard_topic = run_tern(&["pub", "-t", "a/+", "-m", "x"], None);
    assert_exit(&wildcard_topic, 1);
    assert!(wildcard_topic.stderr.contains("invalid topic name 'a/+'"), "{wildcard_topic:#?}");
}

/// A stand-in broker for one 3.1.1 connection: it accepts CONNECT, answers SUBSCRIBE with
/// `suback_codes` followed by a QoS 0 message "still here" on `allowed/x`, and PINGREQ with
/// PINGRESP. No broker at hand refuses a subscription on demand
/// (mosquitto grants a filter its ACL denies and filters on delivery instead).
fn refusing_broker(suback_codes: Vec<u8>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let port = listener.local_addr().expect("local_addr").port();
    thread::spawn(move || {
        let Ok((mut stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        while let Some((packet_type, body)) = read_packet(&mut stream) {
            let reply = match packet_type {
                1 => vec![0x20, 2, 0, 0],
                8 => {
                    let length = u8::try_from(2 + suback_codes.len()).expect("few codes");
                    let suback = [&[0x90, length, body[0], body[1]][..], &suback_codes].concat();
                    [suback, b"\x30\x15\x00\x09allowed/xstill here".to_vec()].concat()
                }
                12 => vec![0xD0, 0],
                _ => break,
            };
            if stream.write_all(&reply).is_err() {
                break;
            }
        }
    });
    port
}

/// Reads one packet: its type and its body.
fn read_packet(stream: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut byte = [0u8; 1];
    stream.read_exact(&mut byte).ok()?;
    let packet_type = byte[0] >> 4;
    let (mut length, mut shift) = (0usize, 0);
    loop {
        stream.read_exact(&mut byte).ok()?;
        length |= usize::from(byte[0] & 0x7F) << shift;
        shift += 7;
        if byte[0] & 0x80 == 0 {
            break;
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some((packet_type, body))
}

#[test]
fn refused_subscription_is_reported_and_the_rest_kept() {
    let port = refusing_broker(vec![0x01, 0x80]).to_string();
    let mut sub = Proc::tern(&["sub", "-p", &port, "-q", "1", "-t", "allowed/x", "-t", "denied/x"]);
    sub.wait_stderr("subscription to 'denied/x' refused: unspecified error (0x80)", TIMEOUT);
}

#[test]
fn every_subscription_refused_is_an_error() {
    let port = refusing_broker(vec![0x80]).to_string();
    let refused = run_tern(&["sub", "-p", &port, "-t", "denied/x"], None);
    assert_exit(&refused, 1);
    assert!(refused.stderr.contains("subscription to 'denied/x' refused"), "{refused:#?}");
    assert!(refused.stderr.contains("every subscription was refused"), "{refused:#?}");
}
