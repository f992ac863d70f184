//! `tern pub`: publish messages from the command line, like mosquitto_pub.
//!
//! The message comes from exactly one of `-m`, `-f`, `-s`, `-l` or `-n`. The command exits 0
//! only when every message has been acknowledged as its QoS requires.

use std::io::{BufRead, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::ArgGroup;
use tern_codec::TopicName;
use tokio::sync::mpsc;

use crate::client::{runtime, valid_topic_name, Client, ConnectionArgs};

/// How many stdin lines may wait while an earlier one is being published.
const LINE_QUEUE: usize = 64;

/// Flags of `tern pub`.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
#[command(group(
    ArgGroup::new("source")
        .required(true)
        .args(["message", "file", "stdin_file", "stdin_line", "null_message"])
))]
pub struct PubArgs {
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Topic to publish on.
    #[arg(short = 't', long)]
    topic: String,
    /// Message payload.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Send the contents of a file as the message.
    #[arg(short = 'f', long)]
    file: Option<PathBuf>,
    /// Send the whole of stdin as one message.
    #[arg(short = 's', long = "stdin-file")]
    stdin_file: bool,
    /// Send each line of stdin as a message (without its newline; empty lines are sent too).
    #[arg(short = 'l', long = "stdin-line")]
    stdin_line: bool,
    /// Send a zero-length message.
    #[arg(short = 'n', long = "null-message")]
    null_message: bool,
    /// Ask the broker to retain the message.
    #[arg(short = 'r', long)]
    retain: bool,
    /// Publish the message this many times in all (not with -l).
    #[arg(long, default_value_t = 1, conflicts_with = "stdin_line",
          value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Seconds to wait after one repeated message is acknowledged before the next.
    #[arg(long = "repeat-delay", value_name = "SECONDS", default_value = "0", value_parser = parse_seconds)]
    repeat_delay: Duration,
}

fn parse_seconds(value: &str) -> Result<Duration, String> {
    let seconds: f64 = value.parse().map_err(|_| format!("'{value}' is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{value}' is not a valid number of seconds"))
}

/// Where the messages come from.
enum Source {
    /// One payload, read before connecting, published `--repeat` times.
    Single(Bytes),
    /// Lines of stdin, published as they arrive.
    Lines,
}

/// Runs `tern pub`.
pub fn run(args: PubArgs) -> anyhow::Result<ExitCode> {
    let topic = valid_topic_name(&args.topic)?;
    let source = if let Some(message) = &args.message {
        Source::Single(Bytes::from(message.clone()))
    } else if let Some(path) = &args.file {
        let contents = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Source::Single(Bytes::from(contents))
    } else if args.stdin_file {
        let mut contents = Vec::new();
        std::io::stdin().read_to_end(&mut contents).context("cannot read stdin")?;
        Source::Single(Bytes::from(contents))
    } else if args.stdin_line {
        Source::Lines
    } else if args.null_message {
        Source::Single(Bytes::new())
    } else {
        // clap's required "source" group makes this unreachable; say so rather than panic.
        bail!("give a message with one of -m, -f, -s, -l or -n");
    };
    runtime()?.block_on(publish(&args, &topic, source))?;
    Ok(ExitCode::SUCCESS)
}

async fn publish(args: &PubArgs, topic: &TopicName, source: Source) -> anyhow::Result<()> {
    let connection = &args.connection;
    let connect = connection.connect_packet("tern-pub")?;
    let mut client = Client::connect(&connection.host, connection.port, connect, connection.debug).await?;
    let qos = connection.qos();
    match source {
        Source::Single(payload) => {
            for round in 0..args.repeat {
                if round > 0 && !args.repeat_delay.is_zero() {
                    // Keep answering the broker (pings) while waiting out the delay.
                    let delay = tokio::time::sleep(args.repeat_delay);
                    tokio::pin!(delay);
                    loop {
                        tokio::select! {
                            () = &mut delay => break,
                            received = client.next_message() => { received?; }
                        }
                    }
                }
                client.publish(topic, payload.clone(), qos, args.retain).await?;
            }
        }
        Source::Lines => {
            let mut lines = stdin_lines();
            loop {
                tokio::select! {
                    line = lines.recv() => match line {
                        Some(line) => {
                            let line = line.context("cannot read stdin")?;
                            client.publish(topic, Bytes::from(line), qos, args.retain).await?;
                        }
                        None => break,
                    },
                    // A publisher subscribes to nothing; this only keeps the connection alive
                    // (PINGREQ) while stdin is quiet, and notices the broker going away.
                    received = client.next_message() => { received?; }
                }
            }
        }
    }
    client.disconnect().await
}

/// Reads stdin line by line on a thread of its own (stdin is blocking) and passes each line,
/// without its `\n`, to the returned channel; the channel closes at end of input.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (sender, receiver) = mpsc::channel(LINE_QUEUE);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            let failed = line.is_err();
            if sender.blocking_send(line).is_err() || failed {
                break;
            }
        }
    });
    receiver
}
