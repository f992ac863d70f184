//! Password files, black-box: Tern's own round trip, files made by the real mosquitto_passwd,
//! a Tern file read by the real mosquitto broker, the `tern passwd` logic, and file errors.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use tern_auth::{
    apply_passwd, AuthError, AuthOutcome, AuthRequest, Authenticator, LineError, PasswdRequest, PasswordFile,
    Verification, PBKDF2_ITERATIONS,
};

const INSTALL_HINT: &str =
    "is needed by this test: install the Debian package `mosquitto` (scripts/install-test-deps does)";

fn mosquitto_passwd(args: &[&str]) {
    let status = Command::new("mosquitto_passwd")
        .args(args)
        .status()
        .unwrap_or_else(|error| panic!("mosquitto_passwd {INSTALL_HINT}: {error}"));
    assert!(status.success(), "mosquitto_passwd {args:?} failed: {status}");
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn request<'a>(username: Option<&'a str>, password: Option<&'a [u8]>) -> AuthRequest<'a> {
    AuthRequest {
        client_id: "client",
        username,
        password,
        peer: SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
        certificate_username: None,
    }
}

#[test]
fn set_save_load_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    let mut file = PasswordFile::new();
    file.set("alice", b"wonderland").unwrap();
    file.set("bob", b"builder").unwrap();
    file.save(&path).unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with(&format!("alice:$7${PBKDF2_ITERATIONS}$")), "{text}");
    assert!(lines[1].starts_with("bob:$7$"), "{text}");

    let loaded = PasswordFile::load(&path).unwrap();
    assert_eq!(loaded.usernames().collect::<Vec<_>>(), ["alice", "bob"]);
    assert_eq!(loaded.verify("alice", b"wonderland"), Verification::Ok);
    assert_eq!(loaded.verify("bob", b"builder"), Verification::Ok);
    assert_eq!(loaded.verify("alice", b"builder"), Verification::WrongPassword);
    assert_eq!(loaded.verify("carol", b"wonderland"), Verification::UnknownUser);
}

#[cfg(unix)]
#[test]
fn saved_files_are_private_and_replace_the_old_one_atomically() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    std::fs::write(&path, "# kept\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut file = PasswordFile::load(&path).unwrap();
    file.set("alice", b"pw").unwrap();
    file.save(&path).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&path).unwrap().starts_with("# kept\nalice:$7$"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers, ["passwords"], "the temporary file was left behind");
}

#[test]
fn files_made_by_mosquitto_passwd_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    let file = path_str(&path);
    // Its default, `$7$` PBKDF2-SHA512 with 101 iterations; a custom count; 1.x's `$6$` SHA-512.
    mosquitto_passwd(&["-c", "-b", file, "alice", "wonderland"]);
    mosquitto_passwd(&["-I", "1000", "-b", file, "bob", "builder"]);
    mosquitto_passwd(&["-H", "sha512", "-b", file, "carol", "c:ar ol"]);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("alice:$7$101$") && text.contains("bob:$7$1000$") && text.contains("carol:$6$"), "{text}");

    let loaded = PasswordFile::load(&path).unwrap();
    assert_eq!(loaded.verify("alice", b"wonderland"), Verification::Ok);
    assert_eq!(loaded.verify("bob", b"builder"), Verification::Ok);
    assert_eq!(loaded.verify("carol", b"c:ar ol"), Verification::Ok);
    assert_eq!(loaded.verify("alice", b"Wonderland"), Verification::WrongPassword);
    assert_eq!(loaded.verify("carol", b"c:ar o"), Verification::WrongPassword);

    // Tern keeps mosquitto's lines as they were when it changes another user.
    let mut edited = loaded;
    edited.set("dave", b"pw").unwrap();
    edited.save(&path).unwrap();
    let after = std::fs::read_to_string(&path).unwrap();
    assert!(after.starts_with(&text), "{after}");
}

#[test]
fn sha512_hashes_of_mosquitto_1_verify() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    // mosquitto_passwd -H sha512 for u / "p".
    let line = "u:$6$lGXPCRLtJgroNvMw$IkvksBsvdkQA7psbl3zxs5/cFNytFZep9IuWPrcoL8+u+OSTWCvepR/hdnWMfUjn137CcJnx0U/CeCbmgKCZ3w==\n";
    std::fs::write(&path, line).unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.verify("u", b"p"), Verification::Ok);
    assert_eq!(file.verify("u", b"P"), Verification::WrongPassword);
}

/// Stops the mosquitto it holds, also when a test fails.
struct Broker(Child);

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The other direction: the real mosquitto broker accepts a file Tern wrote.
#[test]
fn mosquitto_accepts_a_file_tern_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let passwords = dir.path().join("passwords");
    let mut file = PasswordFile::new();
    file.set("alice", b"wonderland").unwrap();
    file.save(&passwords).unwrap();
    let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
    let config = dir.path().join("mosquitto.conf");
    std::fs::write(
        &config,
        format!(
            "user root\nlistener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nlog_dest stderr\n",
            passwords.display()
        ),
    )
    .unwrap();
    let binary =
        ["/usr/sbin/mosquitto", "mosquitto"].into_iter().find(|b| Path::new(b).exists()).unwrap_or("mosquitto");
    let mut broker = Broker(
        Command::new(binary)
            .arg("-c")
            .arg(&config)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("mosquitto {INSTALL_HINT}: {error}")),
    );
    // mosquitto logs "... running" once its listener is open.
    let mut log = BufReader::new(broker.0.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains(" running") {
        let mut line = String::new();
        assert_ne!(log.read_line(&mut line).unwrap(), 0, "mosquitto exited before it was running: {seen}");
        seen.push_str(&line);
    }
    let publish = |password: &str| {
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-u", "alice", "-P", password, "-t", "t", "-m", "m"])
            .output()
            .unwrap_or_else(|error| panic!("mosquitto_pub {INSTALL_HINT}-clients: {error}"))
    };
    let right = publish("wonderland");
    let wrong = publish("wonder");
    assert!(right.status.success(), "mosquitto refused Tern's hash: {}", String::from_utf8_lossy(&right.stderr));
    assert!(!wrong.status.success(), "mosquitto accepted a wrong password");
}

#[tokio::test]
async fn as_authenticator_known_users_decide_and_others_abstain() {
    let mut file = PasswordFile::new();
    file.set("alice", b"wonderland").unwrap();
    let allowed = AuthOutcome::Allow { username: Some("alice".into()), attributes: Vec::new() };
    assert_eq!(file.authenticate(&request(Some("alice"), Some(b"wonderland"))).await, allowed);
    // Again, now from the cache of verified passwords.
    assert_eq!(file.authenticate(&request(Some("alice"), Some(b"wonderland"))).await, allowed);
    assert_eq!(file.authenticate(&request(Some("alice"), Some(b"wonder"))).await, AuthOutcome::BadCredentials);
    assert_eq!(file.authenticate(&request(Some("alice"), None)).await, AuthOutcome::BadCredentials);
    assert_eq!(file.authenticate(&request(Some("mallory"), Some(b"wonderland"))).await, AuthOutcome::Abstain);
    assert_eq!(file.authenticate(&request(None, Some(b"wonderland"))).await, AuthOutcome::Abstain);
}

#[test]
fn a_malformed_line_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    mosquitto_passwd(&["-c", "-b", path_str(&path), "alice", "pw"]);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("# a comment\nbob secret\n");
    std::fs::write(&path, text).unwrap();
    let error = PasswordFile::load(&path).unwrap_err();
    assert!(matches!(&error, AuthError::Line { line: 3, error: LineError::MissingColon, .. }), "{error:?}");
    assert_eq!(error.to_string(), format!("{}:3: expected `username:password-hash`", path.display()));

    std::fs::write(&path, "bob:plaintext\n").unwrap();
    let error = PasswordFile::load(&path).unwrap_err();
    assert!(matches!(&error, AuthError::Line { line: 1, error: LineError::UnknownHashFormat, .. }), "{error:?}");
    assert!(!error.to_string().contains("plaintext"), "the error quotes the password field: {error}");
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let path = PathBuf::from("/nonexistent/tern/passwords");
    let error = PasswordFile::load(&path).unwrap_err();
    assert!(matches!(&error, AuthError::Io { .. }), "{error:?}");
    assert!(error.to_string().starts_with("/nonexistent/tern/passwords: "), "{error}");
}

fn passwd(file: &Path, username: &str, password: Option<&str>, create: bool, delete: bool) -> Result<(), AuthError> {
    apply_passwd(&PasswdRequest {
        file: file.to_owned(),
        username: username.to_owned(),
        password: password.map(str::to_owned),
        create,
        delete,
    })
}

#[test]
fn tern_passwd_creates_updates_and_deletes_users() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    // Without -c the file must exist, as with mosquitto_passwd.
    assert!(matches!(passwd(&path, "alice", Some("a"), false, false), Err(AuthError::Io { .. })));
    passwd(&path, "alice", Some("old"), true, false).unwrap();
    passwd(&path, "bob", Some("builder"), false, false).unwrap();
    passwd(&path, "alice", Some("new"), false, false).unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.verify("alice", b"new"), Verification::Ok);
    assert_eq!(file.verify("alice", b"old"), Verification::WrongPassword);
    assert_eq!(file.verify("bob", b"builder"), Verification::Ok);

    passwd(&path, "alice", None, false, true).unwrap();
    let file = PasswordFile::load(&path).unwrap();
    assert_eq!(file.usernames().collect::<Vec<_>>(), ["bob"]);
    assert!(matches!(passwd(&path, "alice", None, false, true), Err(AuthError::UnknownUser { .. })));

    // -c replaces the whole file.
    passwd(&path, "carol", Some("c"), true, false).unwrap();
    assert_eq!(PasswordFile::load(&path).unwrap().usernames().collect::<Vec<_>>(), ["carol"]);
}

#[test]
fn tern_passwd_refuses_bad_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("passwords");
    assert!(matches!(passwd(&path, "alice", Some("pw"), true, true), Err(AuthError::CreateAndDelete)));
    assert!(matches!(passwd(&path, "alice", Some(""), true, false), Err(AuthError::EmptyPassword)));
    assert!(matches!(passwd(&path, "al:ice", Some("pw"), true, false), Err(AuthError::InvalidUsername { .. })));
    assert!(matches!(passwd(&path, "", Some("pw"), true, false), Err(AuthError::InvalidUsername { .. })));
    assert!(!path.exists(), "a refused request wrote the file");
}
