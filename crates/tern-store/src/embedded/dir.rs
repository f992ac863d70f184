//! The data directory: its format marker, and the errors that tell an operator what to do.
//!
//! Layout: `<dir>/FORMAT` (this file's marker, written before anything else) and `<dir>/db/`
//! (fjall's database, which holds its own lock file). A directory that is not empty but has
//! no marker, a marker of an unknown or future format, or a marker without its database is
//! refused rather than started empty: starting empty would silently drop every session.

use std::io::Write;
use std::path::{Path, PathBuf};

use tern_core::StoreError;

const MARKER: &str = "FORMAT";
const MARKER_TEXT: &str = "tern embedded store";
/// The layout of `keys.rs`; a new layout gets a new number and a migration.
pub const FORMAT: u32 = 1;
const DB: &str = "db";

/// What to tell an operator whose directory cannot be opened.
pub fn recovery(dir: &Path) -> String {
    format!(
        "to start with an empty store, stop the broker and move {} aside (keep it to recover from), \
         or restore a backup of it",
        dir.display()
    )
}

pub fn corrupt(dir: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("embedded store in {}: {what}; {}", dir.display(), recovery(dir)))
}

fn unusable(dir: &Path, what: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("embedded store in {}: {what}", dir.display()))
}

/// Checks (or, for a new or empty directory, creates) the marker; returns fjall's directory.
pub fn prepare(dir: &Path) -> Result<PathBuf, StoreError> {
    if dir.exists() && !dir.is_dir() {
        return Err(unusable(
            dir,
            "this is not a directory; the data directory must be a directory of its own (choose another path)",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| unusable(dir, format!("cannot create the directory: {e}")))?;
    let marker = dir.join(MARKER);
    let db = dir.join(DB);
    match std::fs::read(&marker) {
        Ok(text) => {
            check_marker(dir, &text)?;
            if !db.is_dir() {
                return Err(corrupt(
                    dir,
                    format!("{} is missing (the format marker says it should be there)", db.display()),
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut entries =
                std::fs::read_dir(dir).map_err(|e| unusable(dir, format!("cannot read the directory: {e}")))?;
            let temporary = format!(".{MARKER}.tmp");
            if entries.any(|entry| entry.map_or(true, |entry| entry.file_name().to_str() != Some(&temporary))) {
                return Err(corrupt(
                    dir,
                    format!("the directory is not empty but has no {MARKER} file, so it is not a tern data directory"),
                ));
            }
            write_marker(dir, &marker)?;
        }
        Err(e) => return Err(unusable(dir, format!("cannot read {}: {e} (check its permissions)", marker.display()))),
    }
    Ok(db)
}

fn check_marker(dir: &Path, text: &[u8]) -> Result<(), StoreError> {
    let text = std::str::from_utf8(text).unwrap_or("");
    let format = text
        .strip_prefix(MARKER_TEXT)
        .and_then(|rest| rest.trim().strip_prefix("format "))
        .and_then(|number| number.trim().parse::<u32>().ok());
    match format {
        Some(FORMAT) => Ok(()),
        Some(other) if other > FORMAT => Err(StoreError::Corrupt(format!(
            "embedded store in {}: written in format {other} by a newer tern; this tern reads format {FORMAT}. \
             Run the newer tern, or {}",
            dir.display(),
            recovery(dir)
        ))),
        _ => Err(corrupt(dir, format!("{MARKER} is not a tern format marker"))),
    }
}

/// Written whole (temporary file, fsync, rename, directory fsync), so a crash leaves either
/// no marker in an empty directory or a complete one.
fn write_marker(dir: &Path, marker: &Path) -> Result<(), StoreError> {
    let temporary = dir.join(format!(".{MARKER}.tmp"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(format!("{MARKER_TEXT}\nformat {FORMAT}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, marker)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| unusable(dir, format!("cannot write {}: {e} (check the permissions)", marker.display())))
}

/// Turns fjall's error at open into one that says what to do.
pub fn open_error(dir: &Path, error: fjall::Error) -> StoreError {
    match error {
        fjall::Error::Locked => unusable(
            dir,
            "the directory is in use by another process (another broker running on the same data directory?)",
        ),
        fjall::Error::Io(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            unusable(dir, format!("permission denied: {e} (the broker must be able to read and write it)"))
        }
        other => corrupt(dir, format!("cannot open the database: {other}")),
    }
}
