//! Password files in mosquitto's format: one `username:hash` per line.
//!
//! Files are interchangeable with mosquitto 2.0: Tern verifies what `mosquitto_passwd`
//! writes (`$7$` PBKDF2-HMAC-SHA512, and mosquitto 1.x's `$6$` SHA-512) and writes `$7$`,
//! which mosquitto verifies. Lines starting with `#` and blank lines are kept as they are;
//! any other line without a valid `username:hash` is an error naming the file and line, where
//! mosquitto would skip it silently.

mod hash;
mod passwd;

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ring::hmac;
use ring::rand::SystemRandom;
use subtle::ConstantTimeEq;

use crate::authenticator::{AuthOutcome, AuthRequest, Authenticator, BoxFuture};
use crate::error::{AuthError, LineError};
use hash::PasswordHash;

pub use hash::PBKDF2_ITERATIONS;
pub use passwd::{apply_passwd, apply_scram_passwd, PasswdRequest};

/// The outcome of checking a password against the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    Ok,
    WrongPassword,
    UnknownUser,
}

/// A loaded password file.
///
/// As an [`Authenticator`] it allows a known user with the right password, answers
/// `BadCredentials` to a known user with a wrong or missing password, and abstains for a
/// client without a user name or with one the file does not know, so that the next
/// authenticator of the chain is asked.
pub struct PasswordFile {
    /// The file's lines in order, so that [`PasswordFile::save`] keeps comments and ordering.
    lines: Vec<Line>,
    /// Behind an `Arc` so a verification can run on a blocking thread without copying.
    users: HashMap<String, Arc<PasswordHash>>,
    /// For each user, a keyed digest of the last password that verified, so a reconnecting
    /// client skips the deliberately slow hash. Keyed with the random `cache_key` (HMAC-SHA256)
    /// so a memory dump gives nothing faster to attack than the file itself. Owned by this
    /// `PasswordFile`; a std `Mutex` because it is held for one lookup or insert, never across
    /// an `.await`. Holds at most one entry per user of the file, so it needs no eviction.
    verified: Mutex<HashMap<String, [u8; 32]>>,
    cache_key: hmac::Key,
}

#[derive(Debug, Clone)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Other(String),
    /// The entry of this user, written from `users` on save.
    User(String),
}

impl PasswordFile {
    /// An empty file, as `tern passwd -c` starts from.
    pub fn new() -> PasswordFile {
        PasswordFile {
            lines: Vec::new(),
            users: HashMap::new(),
            verified: Mutex::new(HashMap::new()),
            cache_key: hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
                .expect("the system random number generator failed"),
        }
    }

    /// Reads and parses the file at `path`. Errors name the file and, for a bad line, its
    /// number.
    pub fn load(path: impl AsRef<Path>) -> Result<PasswordFile, AuthError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.to_owned(), source })?;
        PasswordFile::parse(&text).map_err(|(line, error)| AuthError::Line { path: path.to_owned(), line, error })
    }

    /// Parses the text of a password file; an error carries the line number, from 1.
    fn parse(text: &str) -> Result<PasswordFile, (usize, LineError)> {
        let mut file = PasswordFile::new();
        for (number, line) in credential_lines(text) {
            match line.map_err(|error| (number, error))? {
                FileLine::Other(text) => file.lines.push(Line::Other(text.to_owned())),
                FileLine::Entry { username, entry } => {
                    let hash = PasswordHash::parse(entry).map_err(|error| (number, error))?;
                    if file.users.insert(username.to_owned(), Arc::new(hash)).is_some() {
                        return Err((number, LineError::DuplicateUser(username.to_owned())));
                    }
                    file.lines.push(Line::User(username.to_owned()));
                }
            }
        }
        Ok(file)
    }

    /// Whether `username` has an entry.
    pub fn contains_user(&self, username: &str) -> bool {
        self.users.contains_key(username)
    }

    /// The users of the file, in file order.
    pub fn usernames(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            Line::User(username) => Some(username.as_str()),
            Line::Other(_) => None,
        })
    }

    /// Checks `password` for `username`. Takes the full hashing time (see
    /// [`PBKDF2_ITERATIONS`]) unless this password verified before; runs on the calling thread.
    pub fn verify(&self, username: &str, password: &[u8]) -> Verification {
        let Some(hash) = self.users.get(username) else {
            return Verification::UnknownUser;
        };
        if self.verified_before(username, password) || self.verify_and_remember(hash, username, password) {
            Verification::Ok
        } else {
            Verification::WrongPassword
        }
    }

    /// Adds `username` or replaces its password, hashed with a fresh salt.
    pub fn set(&mut self, username: &str, password: &[u8]) -> Result<(), AuthError> {
        validate_username(username)?;
        let hash = Arc::new(PasswordHash::new(password));
        if self.users.insert(username.to_owned(), hash).is_none() {
            self.lines.push(Line::User(username.to_owned()));
        }
        self.forget(username);
        Ok(())
    }

    /// Removes `username`; false when the file did not have it.
    pub fn remove(&mut self, username: &str) -> bool {
        if self.users.remove(username).is_none() {
            return false;
        }
        self.lines.retain(|line| !matches!(line, Line::User(name) if name == username));
        self.forget(username);
        true
    }

    /// Writes the file atomically: into a new file beside `path` (mode 0600 on unix), synced,
    /// then renamed over `path`, so the broker never reads half a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), AuthError> {
        let path = path.as_ref();
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(other) => text.push_str(other),
                Line::User(username) => {
                    text.push_str(username);
                    text.push(':');
                    text.push_str(&self.users[username].to_string());
                }
            }
            text.push('\n');
        }
        let temporary = temporary_path(path);
        let written = write_private(&temporary, text.as_bytes()).and_then(|()| fs::rename(&temporary, path));
        written.map_err(|source| {
            // The temporary file may not exist; nothing more can be done about it here.
            let _ = fs::remove_file(&temporary);
            AuthError::Io { path: path.to_owned(), source }
        })
    }

    fn verified_before(&self, username: &str, password: &[u8]) -> bool {
        let digest = self.cache_digest(password);
        let verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
        verified.get(username).is_some_and(|known| bool::from(known.ct_eq(&digest)))
    }

    fn verify_and_remember(&self, hash: &PasswordHash, username: &str, password: &[u8]) -> bool {
        let ok = hash.verify(password);
        if ok {
            self.remember(username, password);
        }
        ok
    }

    fn remember(&self, username: &str, password: &[u8]) {
        let digest = self.cache_digest(password);
        self.verified.lock().unwrap_or_else(PoisonError::into_inner).insert(username.to_owned(), digest);
    }

    fn forget(&mut self, username: &str) {
        self.verified.get_mut().unwrap_or_else(PoisonError::into_inner).remove(username);
    }

    fn cache_digest(&self, password: &[u8]) -> [u8; 32] {
        let tag = hmac::sign(&self.cache_key, password);
        let mut digest = [0; 32];
        digest.copy_from_slice(tag.as_ref());
        digest
    }
}

impl Default for PasswordFile {
    fn default() -> PasswordFile {
        PasswordFile::new()
    }
}

/// Shows how many users there are, never their hashes.
impl std::fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordFile").field("users", &self.users.len()).finish_non_exhaustive()
    }
}

impl Authenticator for PasswordFile {
    fn authenticate<'a>(&'a self, request: &'a AuthRequest<'a>) -> BoxFuture<'a, AuthOutcome> {
        Box::pin(async move {
            let Some(username) = request.username else {
                return AuthOutcome::Abstain;
            };
            let Some(hash) = self.users.get(username) else {
                return AuthOutcome::Abstain;
            };
            let Some(password) = request.password else {
                return AuthOutcome::BadCredentials;
            };
            let ok = self.verified_before(username, password) || {
                let ok = verify_off_the_runtime(Arc::clone(hash), password.to_vec()).await;
                if ok {
                    self.remember(username, password);
                }
                ok
            };
            if ok {
                AuthOutcome::Allow { username: Some(username.to_owned()), attributes: Vec::new() }
            } else {
                AuthOutcome::BadCredentials
            }
        })
    }
}

/// Runs the slow hash on tokio's blocking pool when there is a runtime, so a burst of CONNECTs
/// does not stall the async workers that carry every other client's traffic.
async fn verify_off_the_runtime(hash: Arc<PasswordHash>, password: Vec<u8>) -> bool {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return hash.verify(&password);
    };
    match runtime.spawn_blocking(move || hash.verify(&password)).await {
        Ok(ok) => ok,
        Err(error) => {
            tracing::warn!(%error, "Password verification task failed");
            false
        }
    }
}

/// Usernames are stored (here and in the SCRAM file) before the first `:` of a line, one per line.
pub(crate) fn validate_username(username: &str) -> Result<(), AuthError> {
    let reason = if username.is_empty() {
        "it is empty"
    } else if username.contains(':') {
        "it contains ':'"
    } else if username.contains(['\n', '\r']) {
        "it contains a line break"
    } else if username.starts_with('#') {
        "it starts with '#', which would make the line a comment"
    } else if username.trim() != username {
        "it starts or ends with white space"
    } else {
        return Ok(());
    };
    Err(AuthError::InvalidUsername { username: username.to_owned(), reason })
}

/// A fresh name beside `path`, on the same file system so that the rename is atomic.
pub(crate) fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let mut suffix = [0u8; 6];
    // A predictable name would only risk a failed create_new, never a wrong write.
    let _ = ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut suffix);
    let suffix: String = suffix.iter().map(|byte| format!("{byte:02x}")).collect();
    path.with_file_name(format!(".{name}.{suffix}.tmp"))
}

pub(crate) fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file: File = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// One line of a `user:entry` credentials file (password and SCRAM files share the layout).
pub(crate) enum FileLine<'a> {
    /// A blank line or a comment, kept as it is when the file is saved.
    Other(&'a str),
    Entry {
        username: &'a str,
        entry: &'a str,
    },
}

/// The lines of a `user:entry` file with their numbers, from 1. A comment is a `#` in the first
/// column, exactly mosquitto's test; other lines need a non-empty user name before the first
/// `:`.
pub(crate) fn credential_lines(text: &str) -> impl Iterator<Item = (usize, Result<FileLine<'_>, LineError>)> {
    text.lines().enumerate().map(|(index, line)| {
        // `lines` leaves the `\r` of a CRLF file behind; trailing blanks mean nothing.
        let line = line.trim_end();
        let parsed = if line.is_empty() || line.starts_with('#') {
            Ok(FileLine::Other(line))
        } else {
            match line.split_once(':') {
                None => Err(LineError::MissingColon),
                Some(("", _)) => Err(LineError::EmptyUsername),
                Some((username, entry)) => Ok(FileLine::Entry { username, entry }),
            }
        };
        (index + 1, parsed)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blank_lines_and_crlf_are_accepted() {
        let text = "# users\n\r\nalice:$6$lGXPCRLtJgroNvMw$IkvksBsvdkQA7psbl3zxs5/cFNytFZep9IuWPrcoL8+u+OSTWCvepR/hdnWMfUjn137CcJnx0U/CeCbmgKCZ3w==\r\n";
        let file = PasswordFile::parse(text).unwrap();
        assert_eq!(file.usernames().collect::<Vec<_>>(), ["alice"]);
        assert_eq!(file.verify("alice", b"p"), Verification::Ok);
    }

    #[test]
    fn bad_lines_carry_their_number() {
        assert_eq!(PasswordFile::parse("# c\nnocolon\n").unwrap_err(), (2, LineError::MissingColon));
        assert_eq!(PasswordFile::parse(":$6$x$y").unwrap_err(), (1, LineError::EmptyUsername));
        assert_eq!(PasswordFile::parse("\n\nbob:secret").unwrap_err(), (3, LineError::UnknownHashFormat));
    }

    #[test]
    fn a_user_listed_twice_is_an_error() {
        let line = "bob:$6$lGXPCRLtJgroNvMw$IkvksBsvdkQA7psbl3zxs5/cFNytFZep9IuWPrcoL8+u+OSTWCvepR/hdnWMfUjn137CcJnx0U/CeCbmgKCZ3w==";
        let text = format!("{line}\n{line}\n");
        assert_eq!(PasswordFile::parse(&text).unwrap_err(), (2, LineError::DuplicateUser("bob".into())));
    }

    #[test]
    fn usernames_that_would_break_the_file_are_refused() {
        let mut file = PasswordFile::new();
        for bad in ["", "a:b", "a\nb", "#a", " a", "a "] {
            assert!(matches!(file.set(bad, b"pw"), Err(AuthError::InvalidUsername { .. })), "{bad:?}");
        }
        assert!(file.set("alice smith", b"pw").is_ok());
    }

    #[test]
    fn a_verified_password_is_cached_and_a_new_password_forgets_it() {
        let mut file = PasswordFile::new();
        file.set("alice", b"old").unwrap();
        assert!(!file.verified_before("alice", b"old"));
        assert_eq!(file.verify("alice", b"old"), Verification::Ok);
        assert!(file.verified_before("alice", b"old"));
        assert!(!file.verified_before("alice", b"other"));
        file.set("alice", b"new").unwrap();
        assert!(!file.verified_before("alice", b"old"));
        assert_eq!(file.verify("alice", b"old"), Verification::WrongPassword);
        assert!(!file.verified_before("alice", b"old"), "a wrong password was cached");
    }

    #[test]
    fn debug_shows_no_hashes() {
        let mut file = PasswordFile::new();
        file.set("alice", b"pw").unwrap();
        assert_eq!(format!("{file:?}"), "PasswordFile { users: 1, .. }");
    }
}
