//! Helpers for the `tern pub` / `tern sub` tests: a broker process on loopback and child
//! processes whose output is read line by line, every wait bounded by a timeout.
//!
//! The broker under test is chosen by `TERN_CLI_TEST_BROKER`:
//! - `tern` (the default): `tern serve --listen 127.0.0.1:0 --in-memory`; ready when it logs
//!   `listener ready ... addr=127.0.0.1:PORT` (the contract the interop suite also relies on).
//! - `mosquitto`: `mosquitto -c FILE` with one listener on 127.0.0.1, anonymous access and
//!   no persistence; ready when it logs "mosquitto version ... running". Running the suite
//!   against mosquitto checks the tests themselves.

#![allow(dead_code)] // Each test binary uses a different part of this module.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

/// The bound on every wait in these tests.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The `tern` binary built for these tests.
pub const TERN: &str = env!("CARGO_BIN_EXE_tern");

/// A unique, readable topic for one test, so tests never see each other's messages.
pub fn topic(name: &str) -> String {
    format!("tern-cli-test/{}/{name}", std::process::id())
}

/// A running broker, killed when dropped.
pub struct Broker {
    pub port: u16,
    process: Proc,
    _dir: ScratchDir,
}

impl Broker {
    /// Starts the broker chosen by `TERN_CLI_TEST_BROKER` (default `tern`).
    pub fn start() -> Broker {
        match std::env::var("TERN_CLI_TEST_BROKER").as_deref() {
            Ok("tern") | Err(_) => Broker::tern(),
            Ok("mosquitto") => Broker::mosquitto(&[]),
            Ok(other) => {
                panic!("TERN_CLI_TEST_BROKER must be 'mosquitto' or 'tern', not {other:?}")
            }
        }
    }

    /// Starts mosquitto on a free loopback port with `extra` lines appended to its config
    /// (`allow_anonymous true` unless `extra` says otherwise).
    pub fn mosquitto(extra: &[&str]) -> Broker {
        require_program("mosquitto", "/usr/sbin/mosquitto");
        let dir = scratch_dir("mosquitto");
        // The free port can be taken between our probe and mosquitto's bind; try again then.
        for _ in 0..5 {
            let port = free_port();
            let mut config = format!("listener {port} 127.0.0.1\npersistence false\nlog_dest stderr\n");
            if !extra.iter().any(|line| line.starts_with("allow_anonymous")) {
                config.push_str("allow_anonymous true\n");
            }
            for line in extra {
                config.push_str(line);
                config.push('\n');
            }
            let config_path = dir.join("mosquitto.conf");
            std::fs::write(&config_path, config).expect("write mosquitto.conf");
            let mut command = Command::new(program_path("mosquitto", "/usr/sbin/mosquitto"));
            command.arg("-c").arg(&config_path);
            let mut process = Proc::spawn(command, None);
            match process.wait_stderr_any(&["running", "Address already in use"], TIMEOUT) {
                line if line.contains("running") => {
                    return Broker { port, process, _dir: dir };
                }
                _ => continue,
            }
        }
        panic!("mosquitto could not bind a free port in 5 attempts");
    }

    /// Starts `tern serve` on an ephemeral loopback port.
    pub fn tern() -> Broker {
        let dir = scratch_dir("tern");
        let mut command = Command::new(TERN);
        command.args(["serve", "--listen", "127.0.0.1:0", "--in-memory"]).env("NO_COLOR", "1").current_dir(&dir.0);
        let mut process = Proc::spawn(command, None);
        let line = without_ansi_escapes(&process.wait_stderr("listener ready", TIMEOUT));
        let port = line
            .split("addr=127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|digits| digits.parse().ok())
            .unwrap_or_else(|| panic!("no addr=127.0.0.1:PORT in tern's ready line: {line}"));
        Broker { port, process, _dir: dir }
    }

    /// `-p PORT` as arguments for a client.
    pub fn port_arg(&self) -> String {
        self.port.to_string()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        // Before the scratch directory goes (fields drop after this).
        self.process.kill();
    }
}

/// A directory under the system temp dir, removed when dropped, even by a failing test.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `text` without terminal colour sequences (`ESC [ ... m`), which a log line may carry.
fn without_ansi_escapes(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Fails the test with instructions when a program the tests need is missing.
pub fn require_program(name: &str, fallback: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
        || PathBuf::from(fallback).is_file();
    assert!(found, "{name} is not installed; these tests need it: apt-get install -y mosquitto mosquitto-clients");
}

fn program_path(name: &str, fallback: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| candidate.is_file()));
    on_path.unwrap_or_else(|| PathBuf::from(fallback))
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

fn scratch_dir(what: &str) -> ScratchDir {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tern-cli-test-{}-{what}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    ScratchDir(dir)
}

/// How a finished process ended and what it printed.
#[derive(Debug)]
pub struct Finished {
    /// The exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// A child process with stdout and stderr read line by line on threads; killed when dropped.
pub struct Proc {
    child: Child,
    name: String,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    stdout_seen: String,
    stderr_seen: String,
}

impl Proc {
    /// Starts `command` with piped output, writing `stdin` to it (then closing it) if given.
    pub fn spawn(mut command: Command, stdin: Option<&[u8]>) -> Proc {
        let name = format!("{command:?}");
        command.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("piped stdin");
            let input = input.to_vec();
            // On a thread, so a child that never reads cannot block the test.
            thread::spawn(move || pipe.write_all(&input));
        }
        let stdout = lines_of(child.stdout.take().expect("piped stdout"));
        let stderr = lines_of(child.stderr.take().expect("piped stderr"));
        Proc { child, name, stdout, stderr, stdout_seen: String::new(), stderr_seen: String::new() }
    }

    /// Starts the `tern` binary with `args`.
    pub fn tern(args: &[&str]) -> Proc {
        Proc::tern_with_stdin(args, None)
    }

    /// Starts the `tern` binary with `args`, feeding it `stdin`.
    pub fn tern_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Proc {
        let mut command = Command::new(TERN);
        command.args(args);
        Proc::spawn(command, stdin)
    }

    /// Waits for a stderr line containing `needle` and returns it.
    pub fn wait_stderr(&mut self, needle: &str, timeout: Duration) -> String {
        self.wait_stderr_any(&[needle], timeout)
    }

    /// Waits for a stderr line containing any of `needles` and returns it.
    pub fn wait_stderr_any(&mut self, needles: &[&str], timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let line = match self.stderr.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => line,
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("no stderr line with {needles:?} in {timeout:?}")),
                Err(RecvTimeoutError::Disconnected) => self.fail(&format!("exited before printing {needles:?}")),
            };
            self.stderr_seen.push_str(&line);
            if needles.iter().any(|needle| line.contains(needle)) {
                return line;
            }
        }
    }

    /// Waits for the next stdout line and returns it without its newline.
    pub fn stdout_line(&mut self, timeout: Duration) -> String {
        let line = match self.stdout.recv_timeout(timeout) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => self.fail(&format!("no stdout line in {timeout:?}")),
            Err(RecvTimeoutError::Disconnected) => self.fail("exited before printing a stdout line"),
        };
        self.stdout_seen.push_str(&line);
        line.strip_suffix('\n').unwrap_or(&line).to_owned()
    }

    /// Waits for the process to exit and collects the rest of its output.
    pub fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        // Read to end of both pipes first: the process closes them when it exits.
        while let Some(line) = recv_until(&self.stdout, deadline) {
            self.stdout_seen.push_str(&line);
        }
        while let Some(line) = recv_until(&self.stderr, deadline) {
            self.stderr_seen.push_str(&line);
        }
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return Finished {
                        code: status.code(),
                        stdout: std::mem::take(&mut self.stdout_seen),
                        stderr: std::mem::take(&mut self.stderr_seen),
                    }
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => self.fail(&format!("did not exit within {timeout:?}")),
                Err(error) => self.fail(&format!("cannot wait: {error}")),
            }
        }
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn fail(&mut self, what: &str) -> ! {
        self.kill();
        while let Ok(line) = self.stdout.try_recv() {
            self.stdout_seen.push_str(&line);
        }
        while let Ok(line) = self.stderr.try_recv() {
            self.stderr_seen.push_str(&line);
        }
        panic!("{}: {what}\n--- stdout ---\n{}--- stderr ---\n{}", self.name, self.stdout_seen, self.stderr_seen);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Receives until the channel closes (`None`) or the deadline passes (a test failure is
/// reported by the caller's exit wait).
fn recv_until(lines: &Receiver<String>, deadline: Instant) -> Option<String> {
    lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
}

/// Lines of `pipe`, each with its `\n` when it had one, as they arrive.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if sender.send(String::from_utf8_lossy(&line).into_owned()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    receiver
}

/// Runs `tern` with `args` (and `stdin`) to completion.
pub fn run_tern(args: &[&str], stdin: Option<&[u8]>) -> Finished {
    Proc::tern_with_stdin(args, stdin).finish(TIMEOUT)
}

/// Starts `tern sub` with `args` plus `-d`, and returns once its SUBACK has arrived.
pub fn subscribed_tern_sub(broker: &Broker, args: &[&str]) -> Proc {
    let port = broker.port_arg();
    let mut full = vec!["sub", "-p", &port, "-d"];
    full.extend_from_slice(args);
    let mut sub = Proc::tern(&full);
    sub.wait_stderr("Subscribed (mid:", TIMEOUT);
    sub
}

/// Asserts a process exited with `code`, showing its output otherwise.
#[track_caller]
pub fn assert_exit(finished: &Finished, code: i32) {
    assert_eq!(finished.code, Some(code), "unexpected exit; output: {finished:#?}");
}
