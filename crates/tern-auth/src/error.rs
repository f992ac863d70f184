//! Errors of loading and editing the files behind authentication and authorization.

use std::io;
use std::path::PathBuf;

use tern_codec::TopicFilterError;

/// Why a password file, a SCRAM file, an ACL file or a `tern passwd` request could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A line of the file is not valid; `line` counts from 1.
    #[error("{}:{line}: {error}", path.display())]
    Line {
        path: PathBuf,
        line: usize,
        #[source]
        error: LineError,
    },
    /// A user name that cannot be stored in a password file.
    #[error("invalid user name {username:?}: {reason}")]
    InvalidUsername { username: String, reason: &'static str },
    /// `tern passwd -D` for a user the file does not have.
    #[error("user {username:?} is not in {}", path.display())]
    UnknownUser { path: PathBuf, username: String },
    /// The password typed the second time differs from the first.
    #[error("the passwords do not match")]
    PasswordMismatch,
    #[error("the password is empty")]
    EmptyPassword,
    /// `tern passwd -c -D`: mosquitto_passwd refuses the combination too.
    #[error("-c (create) and -D (delete) cannot be used together")]
    CreateAndDelete,
    /// The terminal or standard input could not be read.
    #[error("reading the password: {0}")]
    ReadPassword(#[source] io::Error),
    /// A JWT key file that cannot verify tokens of the configured algorithm.
    #[error("JWT key file {}: {reason}", path.display())]
    JwtKey { path: PathBuf, reason: String },
    #[error("unknown JWT algorithm {0:?}: expected HS256, RS256 or ES256")]
    UnknownJwtAlgorithm(String),
    /// The HTTP auth hook's URL cannot be used.
    #[error("HTTP auth hook URL {url:?}: {reason}")]
    HttpHookUrl { url: String, reason: &'static str },
    /// The HTTP auth hook's timeout is zero or longer than a connecting client should wait.
    #[error("HTTP auth hook timeout {0:?}: must be more than zero and at most 30 s")]
    HttpHookTimeout(std::time::Duration),
}

/// What is wrong with one line of a password, SCRAM or ACL file. Never quotes a password hash or key, so
/// the error can be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("expected `username:password-hash`")]
    MissingColon,
    #[error("the user name is empty")]
    EmptyUsername,
    #[error("user {0:?} appears a second time")]
    DuplicateUser(String),
    #[error("unsupported password hash: expected $7$ (PBKDF2-SHA512) or $6$ (SHA-512), as mosquitto_passwd writes")]
    UnknownHashFormat,
    #[error("malformed password hash: {0}")]
    MalformedHash(&'static str),
    #[error("malformed SCRAM entry: {0}")]
    MalformedScram(&'static str),
    #[error("unsupported SCRAM mechanism: expected SCRAM-SHA-256 or SCRAM-SHA-512")]
    UnknownScramMechanism,
    #[error("user {0:?} has a second {1} entry")]
    DuplicateScramUser(String, &'static str),
    #[error("unknown keyword {0:?}: expected `user`, `topic` or `pattern`")]
    UnknownKeyword(String),
    #[error("`user` without a user name")]
    MissingUsername,
    #[error("`{0}` without a topic")]
    MissingTopic(&'static str),
    #[error("invalid topic {topic:?}: {error}")]
    InvalidTopic { topic: String, error: TopicFilterError },
    #[error("%c and %u must be a whole topic level, not part of {0:?}")]
    PartialSubstitution(String),
}
