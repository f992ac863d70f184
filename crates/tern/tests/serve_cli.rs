//! `tern serve` as an operator sees it: the ready line per listener, errors that name the
//! problem with a non-zero exit, the anonymous-access warning, and a clean stop on signals.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const TERN: &str = env!("CARGO_BIN_EXE_tern");
const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `tern` with `args` to completion (bounded) and returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(TERN)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tern");
    let status = wait_bounded(&mut child);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut stderr).expect("read stderr");
    (status, stderr)
}

fn wait_bounded(child: &mut Child) -> i32 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code().unwrap_or(-1);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("tern did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `tern serve` whose stderr lines arrive on a channel.
struct Serving {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Serving {
    fn start(args: &[&str]) -> Serving {
        let mut child = Command::new(TERN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tern");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Serving { child, lines, seen: Vec::new() }
    }

    /// Waits for a line containing `needle`.
    fn wait_for(&mut self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line with {needle:?} within {TIMEOUT:?}; saw {:#?}", self.seen),
            }
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").args(["-s", signal, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_ready_line_per_listener_and_sigterm_stops_cleanly() {
    let mut tern = Serving::start(&["serve", "--in-memory", "--listen", "127.0.0.1:0", "--listen", "127.0.0.1:0"]);
    let first = tern.wait_for("listener ready");
    let second = tern.wait_for("listener ready");
    assert_ne!(first, second, "two listeners, two different addresses");
    assert!(first.contains("addr=127.0.0.1:"), "{first}");
    tern.signal("TERM");
    tern.wait_for("Stopped");
    assert_eq!(wait_bounded(&mut tern.child), 0);
}

#[test]
fn sigint_stops_cleanly_and_plain_tern_serves() {
    let mut tern = Serving::start(&["--in-memory", "--listen", "127.0.0.1:0"]);
    tern.wait_for("listener ready");
    tern.signal("INT");
    assert_eq!(wait_bounded(&mut tern.child), 0);
}

#[test]
fn anonymous_access_on_a_non_loopback_listener_is_warned_about() {
    // Binding the wildcard address listens only; the test sends no traffic anywhere.
    let mut tern = Serving::start(&["serve", "--in-memory", "--listen", "0.0.0.0:0"]);
    let warning = tern.wait_for("Anonymous clients are accepted on a non-loopback listener");
    assert!(warning.contains("WARN"), "{warning}");
    tern.wait_for("listener ready");
}

#[test]
fn loopback_listener_gets_no_anonymous_warning() {
    let mut tern = Serving::start(&["serve", "--in-memory", "--listen", "127.0.0.1:0"]);
    tern.wait_for("listener ready");
    assert!(!tern.seen.iter().any(|line| line.contains("Anonymous")), "{:#?}", tern.seen);
}

#[test]
fn unknown_configuration_key_is_named_and_exits_non_zero() {
    let dir = std::env::temp_dir().join(format!("tern-serve-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[limits]\nmax_inflight = 3\n").expect("write config");
    let (code, stderr) = run(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("max_inflight") && stderr.contains("line 2"), "{stderr}");

    std::fs::write(&path, "[limits]\nmax_inflight_messages = 0\n").expect("write config");
    let (code, stderr) = run(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    assert_ne!(code, 0);
    assert!(stderr.contains("limits.max_inflight_messages"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn missing_configuration_file_and_bad_flags_exit_non_zero() {
    let (code, stderr) = run(&["serve", "--config", "/nonexistent/tern.toml"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("/nonexistent/tern.toml"), "{stderr}");
    let (code, stderr) = run(&["serve", "--listen", "not-an-address"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("not-an-address"), "{stderr}");
    let (code, stderr) = run(&["--no-such-flag"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("--no-such-flag"), "{stderr}");
}

#[test]
fn a_port_already_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let (code, stderr) = run(&["serve", "--in-memory", "--listen", &addr]);
    assert_ne!(code, 0);
    assert!(stderr.contains(&addr), "{stderr}");
}
