//! `tern passwd`: mosquitto_passwd's add, update and delete, on Tern's password file.
//!
//! The binary parses the command line into a [`PasswdRequest`]; this module does the rest.

use std::io::{self, BufRead, IsTerminal};
use std::path::{Path, PathBuf};

use super::PasswordFile;
use crate::error::AuthError;
use crate::scram::ScramFile;

/// One `tern passwd` invocation: `tern passwd [-c | -D] [-b PASSWORD] FILE USER`.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswdRequest {
    pub file: PathBuf,
    pub username: String,
    /// `-b PASSWORD` (batch mode). Without it the password is asked for twice on the terminal,
    /// or read as one line from standard input when that is not a terminal.
    pub password: Option<String>,
    /// `-c`: start a new file, replacing any file at `file`.
    pub create: bool,
    /// `-D`: delete `username` instead of setting a password.
    pub delete: bool,
}

/// Hides the password.
impl std::fmt::Debug for PasswdRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswdRequest")
            .field("file", &self.file)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("create", &self.create)
            .field("delete", &self.delete)
            .finish()
    }
}

/// What `tern passwd` does to a credentials file, whichever its format.
trait CredentialsFile: Sized {
    fn empty() -> Self;
    fn read(path: &Path) -> Result<Self, AuthError>;
    fn remove_user(&mut self, username: &str) -> bool;
    fn set_password(&mut self, username: &str, password: &[u8]) -> Result<(), AuthError>;
    fn write(&self, path: &Path) -> Result<(), AuthError>;
}

impl CredentialsFile for PasswordFile {
    fn empty() -> Self {
        PasswordFile::new()
    }
    fn read(path: &Path) -> Result<Self, AuthError> {
        PasswordFile::load(path)
    }
    fn remove_user(&mut self, username: &str) -> bool {
        self.remove(username)
    }
    fn set_password(&mut self, username: &str, password: &[u8]) -> Result<(), AuthError> {
        self.set(username, password)
    }
    fn write(&self, path: &Path) -> Result<(), AuthError> {
        self.save(path)
    }
}

impl CredentialsFile for ScramFile {
    fn empty() -> Self {
        ScramFile::new()
    }
    fn read(path: &Path) -> Result<Self, AuthError> {
        ScramFile::load(path)
    }
    fn remove_user(&mut self, username: &str) -> bool {
        self.remove(username)
    }
    /// Each mechanism with a fresh salt and its default iteration count.
    fn set_password(&mut self, username: &str, password: &[u8]) -> Result<(), AuthError> {
        self.set(username, password, None)
    }
    fn write(&self, path: &Path) -> Result<(), AuthError> {
        self.save(path)
    }
}

/// Carries out `request`: the file is read (unless `create`), changed, and written back
/// atomically with mode 0600. The existing file is read before the password is asked for, so a
/// bad file fails before anyone types.
fn apply<F: CredentialsFile>(request: &PasswdRequest) -> Result<(), AuthError> {
    if request.create && request.delete {
        return Err(AuthError::CreateAndDelete);
    }
    let mut file = if request.create { F::empty() } else { F::read(&request.file)? };
    if request.delete {
        if !file.remove_user(&request.username) {
            return Err(AuthError::UnknownUser { path: request.file.clone(), username: request.username.clone() });
        }
    } else {
        let password = match &request.password {
            Some(password) => password.clone(),
            None => read_password()?,
        };
        if password.is_empty() {
            return Err(AuthError::EmptyPassword);
        }
        file.set_password(&request.username, password.as_bytes())?;
    }
    file.write(&request.file)
}

/// `tern passwd`: a password file in mosquitto's format.
pub fn apply_passwd(request: &PasswdRequest) -> Result<(), AuthError> {
    apply::<PasswordFile>(request)
}

/// `tern passwd --scram`: the same request on a SCRAM credentials file. Setting a password
/// writes SCRAM-SHA-256 and SCRAM-SHA-512 entries for the user; `-D` removes both.
pub fn apply_scram_passwd(request: &PasswdRequest) -> Result<(), AuthError> {
    apply::<ScramFile>(request)
}

/// Asks twice on the terminal, or reads one line when standard input is a pipe or a file.
fn read_password() -> Result<String, AuthError> {
    if !io::stdin().is_terminal() {
        return read_password_line(io::stdin().lock());
    }
    let first = rpassword::prompt_password("Password: ").map_err(AuthError::ReadPassword)?;
    let second = rpassword::prompt_password("Reenter password: ").map_err(AuthError::ReadPassword)?;
    if first != second {
        return Err(AuthError::PasswordMismatch);
    }
    Ok(first)
}

/// The first line of `input`, without its line ending.
fn read_password_line(mut input: impl BufRead) -> Result<String, AuthError> {
    let mut line = String::new();
    input.read_line(&mut line).map_err(AuthError::ReadPassword)?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    Ok(password.strip_suffix('\r').unwrap_or(password).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_piped_password_is_one_line_without_its_ending() {
        assert_eq!(read_password_line(&b"s3cret\nnext\n"[..]).unwrap(), "s3cret");
        assert_eq!(read_password_line(&b"s3cret\r\n"[..]).unwrap(), "s3cret");
        assert_eq!(read_password_line(&b"no newline"[..]).unwrap(), "no newline");
        assert_eq!(read_password_line(&b""[..]).unwrap(), "");
    }

    #[test]
    fn debug_hides_the_password() {
        let request = PasswdRequest {
            file: "pw".into(),
            username: "u".into(),
            password: Some("hunter2".into()),
            create: false,
            delete: false,
        };
        assert!(!format!("{request:?}").contains("hunter2"));
    }

    #[test]
    fn scram_passwd_creates_updates_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("scram");
        let request = |password: Option<&str>, create, delete| PasswdRequest {
            file: file.clone(),
            username: "alice".into(),
            password: password.map(Into::into),
            create,
            delete,
        };
        assert!(matches!(apply_scram_passwd(&request(Some("pw"), false, false)), Err(AuthError::Io { .. })));
        apply_scram_passwd(&request(Some("pw"), true, false)).unwrap();
        let loaded = ScramFile::load(&file).unwrap();
        assert!(loaded.contains_user("alice"));
        assert!(matches!(apply_scram_passwd(&request(Some(""), false, false)), Err(AuthError::EmptyPassword)));
        apply_scram_passwd(&request(None, false, true)).unwrap();
        assert!(!ScramFile::load(&file).unwrap().contains_user("alice"));
        assert!(matches!(apply_scram_passwd(&request(None, false, true)), Err(AuthError::UnknownUser { .. })));
    }
}
