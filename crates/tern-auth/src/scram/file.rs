//! The SCRAM credentials file: one `username:SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`
//! line per user and mechanism, the format of PostgreSQL's `pg_authid.rolpassword`.

use std::collections::HashMap;
use std::fs;
use std::num::NonZeroU32;
use std::path::Path;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};

use super::{ScramCredentials, ScramMechanism};
use crate::error::{AuthError, LineError};
use crate::password_file::{credential_lines, temporary_path, validate_username, write_private, FileLine};

/// Standard base64; `=` padding accepted with or without it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_encode_padding(true).with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A loaded SCRAM credentials file. A user may have an entry for one mechanism or both;
/// `tern passwd --scram` writes both. Comments (`#` in the first column) and blank lines are
/// kept in place when the file is saved.
#[derive(Default)]
pub struct ScramFile {
    /// The file's lines in order, so that [`ScramFile::save`] keeps comments and ordering.
    lines: Vec<Line>,
    entries: HashMap<(String, ScramMechanism), ScramCredentials>,
}

#[derive(Debug, Clone)]
enum Line {
    /// A comment or blank line, kept verbatim.
    Other(String),
    /// The entry of this user and mechanism, written from `entries` on save.
    Entry(String, ScramMechanism),
}

impl ScramFile {
    /// An empty file.
    pub fn new() -> ScramFile {
        ScramFile::default()
    }

    /// Reads and parses the file at `path`. Errors name the file and, for a bad line, its
    /// number.
    pub fn load(path: impl AsRef<Path>) -> Result<ScramFile, AuthError> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|source| AuthError::Io { path: path.to_owned(), source })?;
        ScramFile::parse(&text).map_err(|(line, error)| AuthError::Line { path: path.to_owned(), line, error })
    }

    /// Parses the text of a SCRAM file; an error carries the line number, from 1.
    pub(crate) fn parse(text: &str) -> Result<ScramFile, (usize, LineError)> {
        let mut file = ScramFile::new();
        for (number, line) in credential_lines(text) {
            match line.map_err(|error| (number, error))? {
                FileLine::Other(text) => file.lines.push(Line::Other(text.to_owned())),
                FileLine::Entry { username, entry } => {
                    let credentials = parse_credentials(entry).map_err(|error| (number, error))?;
                    let key = (username.to_owned(), credentials.mechanism);
                    if file.entries.contains_key(&key) {
                        let error = LineError::DuplicateScramUser(username.to_owned(), credentials.mechanism.name());
                        return Err((number, error));
                    }
                    file.lines.push(Line::Entry(username.to_owned(), credentials.mechanism));
                    file.entries.insert(key, credentials);
                }
            }
        }
        Ok(file)
    }

    /// The credentials of `username` for `mechanism`, if the file has them.
    pub fn credentials(&self, username: &str, mechanism: ScramMechanism) -> Option<&ScramCredentials> {
        // A tuple key cannot be looked up by borrowed parts; the user name is short.
        self.entries.get(&(username.to_owned(), mechanism))
    }

    /// Whether `username` has an entry for any mechanism.
    pub fn contains_user(&self, username: &str) -> bool {
        ScramMechanism::ALL.into_iter().any(|mechanism| self.credentials(username, mechanism).is_some())
    }

    /// Adds `username` or replaces its credentials, for both mechanisms, each with a fresh
    /// salt and `iterations` (or the mechanism's default: [`super::SCRAM_SHA_256_ITERATIONS`],
    /// [`super::SCRAM_SHA_512_ITERATIONS`]). Takes the time of both PBKDF2 derivations.
    pub fn set(&mut self, username: &str, password: &[u8], iterations: Option<NonZeroU32>) -> Result<(), AuthError> {
        validate_username(username)?;
        for mechanism in ScramMechanism::ALL {
            let iterations = iterations.unwrap_or_else(|| mechanism.default_iterations());
            let credentials = ScramCredentials::generate(mechanism, password, iterations);
            if self.entries.insert((username.to_owned(), mechanism), credentials).is_none() {
                self.lines.push(Line::Entry(username.to_owned(), mechanism));
            }
        }
        Ok(())
    }

    /// Removes every entry of `username`; false when the file had none.
    pub fn remove(&mut self, username: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(name, _), _| name != username);
        self.lines.retain(|line| !matches!(line, Line::Entry(name, _) if name == username));
        self.entries.len() != before
    }

    /// Writes the file atomically: into a new file beside `path` (mode 0600 on unix), synced,
    /// then renamed over `path`, so the broker never reads half a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), AuthError> {
        let path = path.as_ref();
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(other) => text.push_str(other),
                Line::Entry(username, mechanism) => {
                    text.push_str(username);
                    text.push(':');
                    text.push_str(&self.entries[&(username.clone(), *mechanism)].to_string());
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
}

/// Shows how many entries there are, never their keys.
impl std::fmt::Debug for ScramFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramFile").field("entries", &self.entries.len()).finish_non_exhaustive()
    }
}

/// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`.
fn parse_credentials(text: &str) -> Result<ScramCredentials, LineError> {
    const SHAPE: &str = "expected <mechanism>$<iterations>:<salt>$<StoredKey>:<ServerKey>";
    let (name, rest) = text.split_once('$').ok_or(LineError::MalformedScram(SHAPE))?;
    let mechanism = ScramMechanism::from_name(name).ok_or(LineError::UnknownScramMechanism)?;
    let (parameters, keys) = rest.split_once('$').ok_or(LineError::MalformedScram(SHAPE))?;
    let (iterations, salt) = parameters.split_once(':').ok_or(LineError::MalformedScram(SHAPE))?;
    let (stored_key, server_key) = keys.split_once(':').ok_or(LineError::MalformedScram(SHAPE))?;
    let iterations = iterations
        .parse::<NonZeroU32>()
        .map_err(|_| LineError::MalformedScram("the iteration count is not a positive number"))?;
    let salt = BASE64.decode(salt).map_err(|_| LineError::MalformedScram("the salt is not base64"))?;
    if salt.is_empty() {
        return Err(LineError::MalformedScram("the salt is empty"));
    }
    let key = |text: &str| {
        let key = BASE64.decode(text).map_err(|_| LineError::MalformedScram("a key is not base64"))?;
        if key.len() != mechanism.key_len() {
            return Err(LineError::MalformedScram("a key is not as long as the mechanism's hash"));
        }
        Ok(key)
    };
    Ok(ScramCredentials { mechanism, iterations, salt, stored_key: key(stored_key)?, server_key: key(server_key)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example user ("user" / "pencil") in PostgreSQL's format, keys computed from
    /// the RFC's salt and count.
    const RFC_7677_LINE: &str = "user:SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU=";

    #[test]
    fn parses_postgresql_format_and_writes_it_back() {
        let file = ScramFile::parse(&format!("# comment\n\n{RFC_7677_LINE}\r\n")).unwrap();
        let credentials = file.credentials("user", ScramMechanism::Sha256).unwrap();
        assert_eq!(credentials.iterations.get(), 4096);
        let derived = ScramCredentials::derive(
            ScramMechanism::Sha256,
            b"pencil",
            credentials.salt.clone(),
            credentials.iterations,
        );
        assert_eq!(&derived, credentials);
        assert_eq!(format!("user:{credentials}"), RFC_7677_LINE);
        assert!(file.credentials("user", ScramMechanism::Sha512).is_none());
    }

    #[test]
    fn set_writes_both_mechanisms_and_save_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scram");
        let mut file = ScramFile::new();
        file.set("alice", b"pw", NonZeroU32::new(16)).unwrap();
        file.set("bob", b"pw", None).unwrap();
        file.set("alice", b"new", NonZeroU32::new(16)).unwrap();
        file.save(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let lines: Vec<_> = text.lines().map(|line| line.split('$').next().unwrap()).collect();
        assert_eq!(lines, ["alice:SCRAM-SHA-256", "alice:SCRAM-SHA-512", "bob:SCRAM-SHA-256", "bob:SCRAM-SHA-512"]);
        let loaded = ScramFile::load(&path).unwrap();
        assert_eq!(loaded.credentials("bob", ScramMechanism::Sha256).unwrap().iterations.get(), 4096);
        assert_eq!(loaded.credentials("bob", ScramMechanism::Sha512).unwrap().iterations.get(), 10_000);
        let alice = loaded.credentials("alice", ScramMechanism::Sha512).unwrap();
        assert_eq!(alice, file.credentials("alice", ScramMechanism::Sha512).unwrap());
        assert_eq!(
            alice,
            &ScramCredentials::derive(ScramMechanism::Sha512, b"new", alice.salt.clone(), alice.iterations)
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }

    #[test]
    fn remove_drops_every_mechanism() {
        let mut file = ScramFile::new();
        file.set("alice", b"pw", NonZeroU32::new(1)).unwrap();
        assert!(file.contains_user("alice"));
        assert!(file.remove("alice"));
        assert!(!file.contains_user("alice"));
        assert!(!file.remove("alice"));
        assert!(file.lines.is_empty());
    }

    #[test]
    fn bad_lines_carry_their_number_and_reason() {
        let bad = |text: &str| ScramFile::parse(text).unwrap_err();
        assert_eq!(bad("# c\nnocolon"), (2, LineError::MissingColon));
        assert_eq!(bad(":SCRAM-SHA-256$1:cw==$a:b"), (1, LineError::EmptyUsername));
        assert_eq!(
            bad("u:md5abc"),
            (1, LineError::MalformedScram("expected <mechanism>$<iterations>:<salt>$<StoredKey>:<ServerKey>"))
        );
        assert_eq!(bad("u:SCRAM-SHA-1$1:cw==$a:b"), (1, LineError::UnknownScramMechanism));
        assert_eq!(
            bad("u:SCRAM-SHA-256$0:cw==$a:b"),
            (1, LineError::MalformedScram("the iteration count is not a positive number"))
        );
        assert_eq!(bad("u:SCRAM-SHA-256$1:!$a:b"), (1, LineError::MalformedScram("the salt is not base64")));
        assert_eq!(bad("u:SCRAM-SHA-256$1:$a:b"), (1, LineError::MalformedScram("the salt is empty")));
        assert_eq!(
            bad("u:SCRAM-SHA-256$1:cw==$cw==:cw=="),
            (1, LineError::MalformedScram("a key is not as long as the mechanism's hash"))
        );
        let twice = format!("{RFC_7677_LINE}\n{RFC_7677_LINE}\n");
        assert_eq!(bad(&twice), (2, LineError::DuplicateScramUser("user".into(), "SCRAM-SHA-256")));
    }

    #[test]
    fn load_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scram");
        fs::write(&path, "\nu:nope\n").unwrap();
        let message = ScramFile::load(&path).unwrap_err().to_string();
        assert!(message.starts_with(&format!("{}:2: ", path.display())), "{message}");
    }

    #[test]
    fn debug_shows_no_keys() {
        let file = ScramFile::parse(RFC_7677_LINE).unwrap();
        assert_eq!(format!("{file:?}"), "ScramFile { entries: 1, .. }");
        let credentials = file.credentials("user", ScramMechanism::Sha256).unwrap();
        assert!(!format!("{credentials:?}").contains("W22Z"));
    }
}
