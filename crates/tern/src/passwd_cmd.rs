//! `tern passwd`: create and update password files, like mosquitto_passwd, and with `--scram`
//! SCRAM credentials files.

use std::path::PathBuf;
use std::process::ExitCode;

use tern_auth::{apply_passwd, apply_scram_passwd, PasswdRequest};

#[derive(Debug, Clone, clap::Args)]
pub struct PasswdArgs {
    /// Create a new file (replacing an existing one).
    #[arg(short = 'c', conflicts_with = "delete")]
    pub create: bool,
    /// Delete the user instead of setting a password.
    #[arg(short = 'D')]
    pub delete: bool,
    /// Batch mode: take the password from the command line (it is visible to other users
    /// of this machine; prefer the prompt or standard input).
    #[arg(short = 'b', requires = "password")]
    pub batch: bool,
    /// Edit a SCRAM credentials file (`[auth] scram_file`, for MQTT 5.0 enhanced
    /// authentication) instead of a password file: writes SCRAM-SHA-256 and SCRAM-SHA-512
    /// entries for the user.
    #[arg(long)]
    pub scram: bool,
    /// The password file.
    pub file: PathBuf,
    /// The user name.
    pub username: String,
    /// The password, with -b.
    pub password: Option<String>,
}

pub fn run(args: PasswdArgs) -> anyhow::Result<ExitCode> {
    if args.password.is_some() && !args.batch {
        anyhow::bail!("a password on the command line needs -b (batch mode)");
    }
    let request = PasswdRequest {
        file: args.file,
        username: args.username,
        password: args.password,
        create: args.create,
        delete: args.delete,
    };
    if args.scram {
        apply_scram_passwd(&request)?;
    } else {
        apply_passwd(&request)?;
    }
    Ok(ExitCode::SUCCESS)
}
