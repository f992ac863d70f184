//! The `tern` binary: the broker (`tern`, `tern serve`) and its command-line clients
//! (`tern pub`, `tern sub`) and load generator (`tern bench`).

mod bench;
mod client;
mod passwd_cmd;
mod pub_cmd;
mod serve_cmd;
mod sub_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "tern", version, about = "Tern, an MQTT broker", args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `tern` serves with these options.
    #[command(flatten)]
    serve: serve_cmd::ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker (the default when no subcommand is given).
    Serve(serve_cmd::ServeArgs),
    /// Publish a message, like mosquitto_pub.
    Pub(pub_cmd::PubArgs),
    /// Subscribe and print messages, like mosquitto_sub.
    Sub(sub_cmd::SubArgs),
    /// Create or update a password file, like mosquitto_passwd.
    Passwd(passwd_cmd::PasswdArgs),
    /// Generate load against a broker and measure it, like emqtt-bench.
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve_cmd::run(cli.serve),
        Some(Command::Serve(args)) => serve_cmd::run(args),
        Some(Command::Pub(args)) => pub_cmd::run(args),
        Some(Command::Sub(args)) => sub_cmd::run(args),
        Some(Command::Passwd(args)) => passwd_cmd::run(args),
        Some(Command::Bench(args)) => bench::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("tern: {error:#}");
            ExitCode::FAILURE
        }
    }
}
