//! `tern sub`: subscribe and print messages, like mosquitto_sub.
//!
//! Each message's payload is written to stdout followed by a newline (`-v` puts the topic
//! first), and stdout is flushed after every message so that whoever reads the pipe sees it at
//! once. Exit codes follow mosquitto_sub: 0 after `-C` messages or Ctrl-C, 27 when `-W` runs
//! out first, 1 on any error.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use tern_codec::{Publish, SubAck, TopicFilter};
use tokio::time::Instant;

use crate::client::{reason_text, runtime, sleep_until_some, Client, ConnectionArgs};

/// mosquitto_sub's exit code when `-W` expires.
const TIMEOUT_EXIT_CODE: u8 = 27;

/// Flags of `tern sub`.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
pub struct SubArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Topic filter to subscribe to; may be repeated.
    #[arg(short = 't', long = "topic", required = true)]
    topics: Vec<String>,
    /// Disconnect and exit after this many messages.
    #[arg(short = 'C', long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    /// Exit with code 27 if this many seconds pass first.
    #[arg(short = 'W', long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: Option<u64>,
    /// Print the topic, a space, then the payload.
    #[arg(short = 'v', long)]
    verbose: bool,
    /// Do not print stale messages (those with the retain flag set).
    #[arg(short = 'R', long = "no-retained-print")]
    no_retained_print: bool,
    /// Only handle retained messages, and exit at the first message that is not retained.
    #[arg(long = "retained-only", conflicts_with = "no_retained_print")]
    retained_only: bool,
    /// Do not print a newline after each payload.
    #[arg(short = 'N', long = "no-newline")]
    no_newline: bool,
}

/// Runs `tern sub`.
pub fn run(args: SubArgs) -> anyhow::Result<ExitCode> {
    let filters = args
        .topics
        .iter()
        .map(|topic| TopicFilter::new(topic).with_context(|| format!("invalid topic filter '{topic}'")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    runtime()?.block_on(subscribe(&args, &filters))
}

async fn subscribe(args: &SubArgs, filters: &[TopicFilter]) -> anyhow::Result<ExitCode> {
    let connection = &args.connection;
    let connect = connection.connect_packet("tern-sub")?;
    let mut client = Client::connect(&connection.host, connection.port, connect, connection.debug).await?;
    let suback = client.subscribe(filters, connection.qos()).await?;
    check_suback(filters, &suback, client.debug())?;

    let deadline = args.timeout.map(|seconds| Instant::now() + Duration::from_secs(seconds));
    let mut printed = 0;
    loop {
        tokio::select! {
            message = client.next_message() => {
                let message = message?;
                if args.retained_only && !message.retain {
                    break;
                }
                if args.no_retained_print && message.retain {
                    continue;
                }
                print_message(args, &message)?;
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    break;
                }
            }
            () = sleep_until_some(deadline) => {
                eprintln!("tern: timed out after {} s", args.timeout.unwrap_or_default());
                client.disconnect().await?;
                return Ok(ExitCode::from(TIMEOUT_EXIT_CODE));
            }
            interrupted = tokio::signal::ctrl_c() => {
                interrupted.context("cannot listen for Ctrl-C")?;
                break;
            }
        }
    }
    client.disconnect().await?;
    Ok(ExitCode::SUCCESS)
}

/// Reports each refused filter on stderr, and fails when none was granted.
fn check_suback(filters: &[TopicFilter], suback: &SubAck, debug: bool) -> anyhow::Result<()> {
    if suback.return_codes.len() != filters.len() {
        bail!("protocol error: SUBACK has {} return codes for {} filters", suback.return_codes.len(), filters.len());
    }
    if debug {
        let codes: Vec<String> = suback.return_codes.iter().map(u8::to_string).collect();
        eprintln!("Subscribed (mid: {}): {}", suback.packet_id, codes.join(", "));
    }
    let mut granted = 0;
    for (filter, &code) in filters.iter().zip(&suback.return_codes) {
        if code >= SubAck::FAILURE {
            eprintln!("tern: subscription to '{filter}' refused: {} ({code:#04x})", reason_text(code));
        } else {
            granted += 1;
        }
    }
    if granted == 0 {
        bail!("every subscription was refused");
    }
    Ok(())
}

/// Writes one message to stdout and flushes it.
fn print_message(args: &SubArgs, message: &Publish) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let mut write = || -> std::io::Result<()> {
        if args.verbose {
            out.write_all(message.topic.as_str().as_bytes())?;
            out.write_all(b" ")?;
            // As mosquitto_sub -v does, so that an empty message is visible.
            if message.payload.is_empty() {
                out.write_all(b"(null)")?;
            }
        }
        out.write_all(&message.payload)?;
        if !args.no_newline {
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    write().context("cannot write to stdout")
}
