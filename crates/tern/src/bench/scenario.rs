//! The four modes as one sequence: connect (and subscribe) the clients, run the load loops
//! until the run's deadline or limits, and gather what they measured into a [`Report`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tern_codec::TopicName;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::args::{LoadArgs, Mode};
use super::conn::Conn;
use super::load::{self, PublisherPlan, Run, SubscriberPlan, DRAIN_GRACE};
use super::payload::Clock;
use super::stats::{latency_histogram, Counters, Delivery, DeliveryTotals};

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    pub mode: &'static str,
    pub publishers: u32,
    pub subscribers: u32,
    /// From the first connection attempt to the end of the load loops.
    pub elapsed: Duration,
    /// From the start of the load to the last publisher's end.
    pub publish_elapsed: Duration,
    pub sent: u64,
    pub acked: u64,
    pub delivery: DeliveryTotals,
    pub latency: Histogram<u64>,
    pub connected: u64,
    pub connect_failed: u64,
    /// From the first connection attempt to the last CONNACK (or failure).
    pub connect_elapsed: Duration,
    pub connect_latency: Histogram<u64>,
    pub errors: u64,
}

/// Runs `mode` against `address`; `run` is shared with the progress line.
pub async fn execute(mode: &Mode, address: SocketAddr, run: Arc<Run>) -> anyhow::Result<Report> {
    let args = mode.args();
    let started = Instant::now();
    let (publishers, subscribers) = match mode {
        Mode::Pub(_) => (args.count, 0),
        Mode::Sub(_) => (0, args.count),
        Mode::Conn(_) => (0, 0),
        Mode::Pubsub(_) => (args.count, args.subscribers),
    };
    let mut report = Report {
        mode: mode.name(),
        publishers,
        subscribers,
        elapsed: Duration::ZERO,
        publish_elapsed: Duration::ZERO,
        sent: 0,
        acked: 0,
        delivery: DeliveryTotals::default(),
        latency: latency_histogram(),
        connected: 0,
        connect_failed: 0,
        connect_elapsed: Duration::ZERO,
        connect_latency: latency_histogram(),
        errors: 0,
    };
    let connect_count = if let Mode::Conn(_) = mode { args.count } else { 0 };
    let mut idle = connect_all(address, args, "c", connect_count, None, &run, &mut report).await;
    let subs = connect_all(address, args, "s", subscribers, Some(args.sub_topic.as_str()), &run, &mut report).await;
    let pubs = connect_all(address, args, "p", publishers, None, &run, &mut report).await;
    report.connect_elapsed = started.elapsed();

    let load_start = Instant::now();
    // Before any subscriber starts: one that saw no publisher running would stop at once.
    run.publishers_running.store(u32::try_from(pubs.len()).unwrap_or(u32::MAX), Ordering::Release);
    let mut sub_tasks = JoinSet::new();
    for (_, conn) in subs {
        let run = run.clone();
        let plan = SubscriberPlan { limit: args.limit };
        sub_tasks.spawn(async move { load::subscribe(conn, plan, &run).await });
    }
    let mut pub_tasks = JoinSet::new();
    let mut sent_by = HashMap::new();
    for (index, conn) in pubs {
        let plan = PublisherPlan {
            index,
            topic: TopicName::new(&args.topic_for(index)).context("invalid --topic")?,
            qos: args.qos(),
            size: args.size,
            interval: args.publish_interval(publishers),
            limit: args.limit,
            inflight: args.inflight,
        };
        let run = run.clone();
        pub_tasks.spawn(async move {
            let (sent, result) = load::publish(conn, &plan, &run).await;
            run.published.fetch_add(sent, Ordering::AcqRel);
            run.publishers_running.fetch_sub(1, Ordering::AcqRel);
            (plan.index, sent, result)
        });
    }
    while let Some(joined) = pub_tasks.join_next().await {
        let (index, sent, result) = joined.context("publisher task failed")?;
        sent_by.insert(index, sent);
        report.sent += sent;
        note_error(&mut report, &format!("publisher {index}"), result);
    }
    report.publish_elapsed = load_start.elapsed();
    let mut deliveries: Vec<Delivery> = Vec::new();
    while let Some(joined) = sub_tasks.join_next().await {
        let (delivery, result) = joined.context("subscriber task failed")?;
        note_error(&mut report, "subscriber", result);
        deliveries.push(delivery);
    }
    // Lost messages are only known against publishers of this process.
    let known = if matches!(mode, Mode::Pubsub(_)) { sent_by } else { HashMap::new() };
    for delivery in &deliveries {
        report.delivery.add(delivery.totals(&known));
        report.latency.add(&delivery.latency).context("merging latency histograms")?;
    }
    for (_, conn) in idle.drain(..) {
        let result = conn.close().await;
        note_error(&mut report, "connection", result);
    }
    report.acked = Counters::get(&run.counters.acked);
    report.errors += Counters::get(&run.counters.errors);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// The shared state of a run that must end by `duration` after now.
pub fn new_run(args: &LoadArgs, local_publishers: bool) -> Arc<Run> {
    let deadline = Instant::now() + args.duration();
    Arc::new(Run {
        clock: Clock::new(),
        counters: Counters::default(),
        deadline,
        hard_deadline: deadline + DRAIN_GRACE,
        local_publishers,
        publishers_running: AtomicU32::new(0),
        published: AtomicU64::new(0),
    })
}

fn note_error(report: &mut Report, who: &str, result: anyhow::Result<()>) {
    if let Err(error) = result {
        report.errors += 1;
        // The first few say what went wrong; the count says how often.
        if report.errors <= 5 {
            eprintln!("tern bench: {who}: {error:#}");
        }
    }
}

/// Connects `count` clients (and subscribes them to `filter` if given), paced by
/// `--connect-rate`, all by the run's deadline. Returns the connections by client index.
async fn connect_all(
    address: SocketAddr,
    args: &LoadArgs,
    role: &'static str,
    count: u32,
    filter: Option<&str>,
    run: &Arc<Run>,
    report: &mut Report,
) -> Vec<(u32, Conn)> {
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for index in 0..count {
        let at = match args.connect_rate {
            Some(rate) if rate > 0 => start + Duration::from_nanos(1_000_000_000 * u64::from(index) / rate),
            _ => start,
        };
        let (version, qos, filter, run) = (args.version, args.qos(), filter.map(str::to_owned), run.clone());
        let client_id = format!("tb-{}-{role}{index}", std::process::id());
        tasks.spawn(async move {
            let connect = async {
                sleep_until(at).await;
                let began = Instant::now();
                let mut conn = Conn::connect(address, client_id, version).await?;
                let took = began.elapsed();
                if let Some(filter) = filter {
                    conn.subscribe(&filter, qos).await?;
                }
                Ok::<_, anyhow::Error>((conn, took))
            };
            let result = timeout_at(run.deadline, connect)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("not connected by the end of the run")));
            match &result {
                Ok(_) => Counters::add(&run.counters.connected, 1),
                Err(_) => Counters::add(&run.counters.connect_failed, 1),
            }
            (index, result)
        });
    }
    let mut conns = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    while let Some(joined) = tasks.join_next().await {
        let Ok((index, result)) = joined else {
            report.connect_failed += 1;
            continue;
        };
        match result {
            Ok((conn, took)) => {
                report.connected += 1;
                report.connect_latency.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).max(1));
                conns.push((index, conn));
            }
            Err(error) => {
                report.connect_failed += 1;
                if report.connect_failed <= 5 {
                    eprintln!("tern bench: client {role}{index}: {error:#}");
                }
            }
        }
    }
    conns.sort_by_key(|(index, _)| *index);
    conns
}
