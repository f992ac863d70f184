//! `tern bench`: a load generator for MQTT brokers, in the spirit of emqtt-bench.
//!
//! Four modes: `pub` and `sub` (run as two processes, or against other clients), `conn`
//! (connection storms) and `pubsub` (publishers and subscribers in one process, with every
//! message checked end to end: lost, duplicated, out of order, latency). Every run ends by
//! itself: `--duration` bounds every load loop, followed by a short grace for messages in
//! flight. By default the tool refuses a broker that is not on a loopback address.
//!
//! Code map: [`args`] (flags and the loopback check), [`payload`] (the message header),
//! [`conn`] (one lean connection), [`load`] (publisher and subscriber loops), [`stats`]
//! (counters, delivery checks, histograms), [`scenario`] (a mode from connect to report),
//! [`report`] (the summary), [`idle`] (`conn --hold`), [`cpu`] (the generator's own CPU
//! time), [`transport`] (TCP, TLS, WebSocket).

mod args;
mod conn;
mod cpu;
mod idle;
mod load;
mod payload;
mod report;
mod scenario;
mod stats;
mod transport;

pub use args::BenchArgs;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use args::Mode;
use load::Run;
use stats::Counters;

/// Runs `tern bench`.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mode = args.mode;
    let load = mode.args().clone();
    // Before any socket is opened: refuses remote brokers without --allow-remote.
    let address = load.broker_address()?;
    let connector = transport::Connector::new(&load, address)?;
    tern_codec::TopicName::new(&load.topic_for(0)).context("invalid --topic")?;
    let (publishers, subscribers) = scenario::counts(&mode);
    raise_open_files_limit(u64::from(publishers) + u64::from(subscribers) + u64::from(load.count));
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let report = runtime.block_on(async {
        let run = scenario::new_run(&load, publishers, matches!(mode, Mode::Pubsub(_)));
        let progress = tokio::spawn(progress(run.clone()));
        let report = scenario::execute(&mode, connector, run).await;
        progress.abort();
        report
    })?;
    if load.json {
        println!("{}", report::json(&report, &load));
    } else {
        println!("{}", report::text(&report));
    }
    let expected = match mode {
        Mode::Conn(_) | Mode::Sub(_) | Mode::Pub(_) => u64::from(load.count),
        Mode::Pubsub(_) => u64::from(publishers) + u64::from(subscribers),
    };
    Ok(if report.connected == expected { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Raises the soft limit of open files to the hard limit when `connections` (plus some
/// spare) would not fit; says so when even the hard limit is too low.
fn raise_open_files_limit(connections: u64) {
    let needed = connections + 64;
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _)) if soft >= needed => {}
        Ok((_, hard)) => {
            let raised = rlimit::setrlimit(rlimit::Resource::NOFILE, hard, hard).is_ok();
            if !raised || hard < needed {
                eprintln!(
                    "tern bench: warning: {connections} connections need about {needed} open files, but the limit \
                     is {} (raise it with `ulimit -n`)",
                    if raised { hard } else { 0 }
                );
            }
        }
        Err(error) => eprintln!("tern bench: warning: cannot read the open files limit: {error}"),
    }
}

/// Prints one line a second to stderr: rates since the last line and totals.
async fn progress(run: Arc<Run>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.tick().await;
    let counters = &run.counters;
    let (mut last_sent, mut last_received, mut seconds) = (0, 0, 0u64);
    loop {
        ticker.tick().await;
        seconds += 1;
        let (sent, received) = (Counters::get(&counters.sent), Counters::get(&counters.received));
        eprintln!(
            "[{seconds:>4}s] sent {}/s, received {}/s, connected {}, connect failed {}, errors {}",
            sent - last_sent,
            received - last_received,
            Counters::get(&counters.connected),
            Counters::get(&counters.connect_failed),
            Counters::get(&counters.errors),
        );
        (last_sent, last_received) = (sent, received);
    }
}
