//! `tern pub` and `tern sub` against clients written by others: mosquitto_pub and
//! mosquitto_sub, through the broker under test.

mod cli_support;

use cli_support::{assert_exit, run_tern, subscribed_tern_sub, topic, Broker, Proc, TIMEOUT};

#[test]
fn mosquitto_pub_reaches_tern_sub() {
    cli_support::require_program("mosquitto_pub", "/usr/bin/mosquitto_pub");
    let broker = Broker::start();
    let topic = topic("interop-in");
    let sub = subscribed_tern_sub(&broker, &["-q", "2", "-v", "-t", &topic, "-C", "1"]);
    let mut command = std::process::Command::new("mosquitto_pub");
    command.args(["-h", "127.0.0.1", "-p", &broker.port_arg(), "-q", "2", "-t", &topic, "-m", "from mosquitto"]);
    assert_exit(&Proc::spawn(command, None).finish(TIMEOUT), 0);
    let received = sub.finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, format!("{topic} from mosquitto\n"));
}

#[test]
fn tern_pub_reaches_mosquitto_sub() {
    cli_support::require_program("mosquitto_sub", "/usr/bin/mosquitto_sub");
    let broker = Broker::start();
    let port = broker.port_arg();
    let topic = topic("interop-out");
    // Retained, so mosquitto_sub (whose stdout is block-buffered in a pipe and so cannot tell
    // us when it has subscribed) receives it whenever it subscribes.
    let published = run_tern(&["pub", "-p", &port, "-q", "2", "-r", "-t", &topic, "-m", "from tern"], None);
    assert_exit(&published, 0);
    let mut command = std::process::Command::new("mosquitto_sub");
    command.args(["-h", "127.0.0.1", "-p", &port, "-q", "2", "-t", &topic, "-C", "1", "-v", "-W", "10"]);
    let received = Proc::spawn(command, None).finish(TIMEOUT);
    assert_exit(&received, 0);
    assert_eq!(received.stdout, format!("{topic} from tern\n"));
}
