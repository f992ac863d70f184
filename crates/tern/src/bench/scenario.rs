//! The four modes as one sequence: connect (and subscribe) the clients, run the load loops
//! until the run's deadline or limits, and gather what they measured into a [`Report`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use tern_codec::{TopicFilter, TopicName};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep_until, timeout_at, Instant};

use super::args::{LoadArgs, Mode};
use super::conn::Conn;
use super::cpu::process_cpu;
use super::idle;
use super::load::{self, PublisherPlan, Run, SubscriberPlan};
use super::payload::Clock;
use super::stats::{latency_histogram, Counters, Delivery, DeliveryTotals};
use super::transport::Connector;

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
    /// From each QoS 1/2 publish to its PUBACK or PUBCOMP.
    pub ack_latency: Histogram<u64>,
    pub connected: u64,
    pub connect_failed: u64,
    /// From the first connection attempt to the last CONNACK (or failure).
    pub connect_elapsed: Duration,
    pub connect_latency: Histogram<u64>,
    /// Connections still up at the end of the load (`conn --hold`: at the deadline).
    pub up: u64,
    pub errors: u64,
    /// CPU time (user + system) this process used during the run, if known.
    pub cpu: Option<Duration>,
}

/// Runs `mode` through `connector`; `run` is shared with the progress line.
pub async fn execute(mode: &Mode, connector: Connector, run: Arc<Run>) -> anyhow::Result<Report> {
    let args = mode.args();
    let started = Instant::now();
    let cpu_before = process_cpu();
    let (publishers, subscribers) = counts(mode);
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
        ack_latency: latency_histogram(),
        connected: 0,
        connect_failed: 0,
        connect_elapsed: Duration::ZERO,
        connect_latency: latency_histogram(),
        up: 0,
        errors: 0,
        cpu: None,
    };
    let handshakes = Arc::new(Semaphore::new(args.connect_inflight.map_or(Semaphore::MAX_PERMITS, |n| n as usize)));
    let connect_count = if let Mode::Conn(_) = mode { args.count } else { 0 };
    let idles = connect_all(&connector, args, Role::Idle, connect_count, &handshakes, &run, &mut report).await;
    let subs = connect_all(&connector, args, Role::Subscriber, subscribers, &handshakes, &run, &mut report).await;
    let pubs = connect_all(&connector, args, Role::Publisher, publishers, &handshakes, &run, &mut report).await;
    report.connect_elapsed = started.elapsed();
    report.up = (idles.len() + subs.len() + pubs.len()) as u64;
    let mut pub_topics = HashMap::new();
    for index in 0..publishers {
        pub_topics.insert(index, TopicName::new(&args.topic_for(index)).context("invalid --topic")?);
    }

    let load_start = Instant::now();
    // Before any subscriber starts: one that saw no publisher running would stop at once.
    run.publishers_running.store(u32::try_from(pubs.len()).unwrap_or(u32::MAX), Ordering::Release);
    let mut sub_tasks = JoinSet::new();
    let mut sources_of = HashMap::new();
    for (index, conn) in subs {
        let sources = sources(&args.filter_for(index), &pub_topics)?;
        sources_of.insert(index, sources.clone());
        let run = run.clone();
        let plan = SubscriberPlan { limit: args.limit, sources, shared: args.shared_group.is_some() };
        sub_tasks.spawn(async move {
            let (delivery, result) = load::subscribe(conn, &plan, &run).await;
            (index, delivery, result)
        });
    }
    let mut idle_tasks = JoinSet::new();
    if args.hold {
        for (_, conn) in idles {
            let (run, keep_alive) = (run.clone(), Duration::from_secs(args.keep_alive.into()));
            idle_tasks.spawn(async move { idle::hold(conn, keep_alive, &run).await });
        }
    } else {
        for (_, conn) in idles {
            let result = conn.close().await;
            note_error(&mut report, "connection", result);
        }
    }
    let mut pub_tasks = JoinSet::new();
    let mut sent_by = HashMap::new();
    for (index, conn) in pubs {
        let plan = PublisherPlan {
            index,
            topic: pub_topics[&index].clone(),
            qos: args.qos(),
            size: args.size,
            interval: args.publish_interval(publishers),
            limit: args.limit,
            inflight: args.inflight,
        };
        let run = run.clone();
        pub_tasks.spawn(async move {
            let (published, result) = load::publish(conn, &plan, &run).await;
            if let Some(count) = usize::try_from(plan.index).ok().and_then(|i| run.published_by.get(i)) {
                count.store(published.sent, Ordering::Release);
            }
            run.publishers_running.fetch_sub(1, Ordering::AcqRel);
            (plan.index, published, result)
        });
    }
    while let Some(joined) = pub_tasks.join_next().await {
        let (index, published, result) = joined.context("publisher task failed")?;
        sent_by.insert(index, published.sent);
        report.sent += published.sent;
        report.ack_latency.add(&published.ack_latency).context("merging acknowledgement latency histograms")?;
        note_error(&mut report, &format!("publisher {index}"), result);
    }
    report.publish_elapsed = load_start.elapsed();
    let mut deliveries: Vec<(u32, Delivery)> = Vec::new();
    while let Some(joined) = sub_tasks.join_next().await {
        let (index, delivery, result) = joined.context("subscriber task failed")?;
        if result.is_err() {
            report.up = report.up.saturating_sub(1);
        }
        note_error(&mut report, "subscriber", result);
        deliveries.push((index, delivery));
    }
    deliveries.sort_by_key(|(index, _)| *index);
    if args.shared_group.is_some() && deliveries.len() > 1 {
        // The group is checked as one subscriber: together, its members get every message once.
        let mut members = deliveries.into_iter();
        let (index, mut group) = members.next().expect("more than one member");
        for (_, member) in members {
            group.merge(&member)?;
        }
        deliveries = vec![(index, group)];
    }
    // Lost messages are only known against publishers of this process, and each subscriber
    // only against the publishers its filter matches.
    let local = matches!(mode, Mode::Pubsub(_));
    for (index, delivery) in &deliveries {
        let known: HashMap<u32, u64> = match sources_of.get(index) {
            Some(sources) if local => {
                sources.iter().map(|source| (*source, sent_by.get(source).copied().unwrap_or(0))).collect()
            }
            _ => HashMap::new(),
        };
        report.delivery.add(delivery.totals(&known));
        report.latency.add(&delivery.latency).context("merging latency histograms")?;
    }
    while let Some(joined) = idle_tasks.join_next().await {
        let result = joined.context("connection task failed")?;
        if result.is_err() {
            report.up = report.up.saturating_sub(1);
        }
        note_error(&mut report, "idle connection", result);
    }
    report.acked = Counters::get(&run.counters.acked);
    report.errors += Counters::get(&run.counters.errors);
    report.elapsed = started.elapsed();
    report.cpu = process_cpu().zip(cpu_before).map(|(after, before)| after.saturating_sub(before));
    Ok(report)
}

/// Publishers and subscribers of `mode`.
pub fn counts(mode: &Mode) -> (u32, u32) {
    let args = mode.args();
    match mode {
        Mode::Pub(_) => (args.count, 0),
        Mode::Sub(_) => (0, args.count),
        Mode::Conn(_) => (0, 0),
        Mode::Pubsub(_) => (args.count, args.subscriber_count(args.count)),
    }
}

/// The publishers whose topic `filter` matches.
fn sources(filter: &str, topics: &HashMap<u32, TopicName>) -> anyhow::Result<Vec<u32>> {
    let filter = TopicFilter::new(filter).with_context(|| format!("invalid subscription filter '{filter}'"))?;
    let mut matched: Vec<u32> =
        topics.iter().filter(|(_, topic)| filter.matches(topic)).map(|(index, _)| *index).collect();
    matched.sort_unstable();
    Ok(matched)
}

/// The shared state of a run that must end by `duration` after now.
pub fn new_run(args: &LoadArgs, publishers: u32, local_publishers: bool) -> Arc<Run> {
    let deadline = Instant::now() + args.duration();
    Arc::new(Run {
        clock: Clock::new(),
        counters: Counters::default(),
        deadline,
        hard_deadline: deadline + args.drain(),
        drain: args.drain(),
        local_publishers,
        publishers_running: AtomicU32::new(0),
        published_by: (0..publishers).map(|_| AtomicU64::new(0)).collect(),
        shared_unique: AtomicU64::new(0),
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

/// What a connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Idle,
    Subscriber,
    Publisher,
}

impl Role {
    /// The letter in its client id.
    fn tag(self) -> &'static str {
        match self {
            Role::Idle => "c",
            Role::Subscriber => "s",
            Role::Publisher => "p",
        }
    }
}

/// Connects `count` clients (and subscribes subscribers), paced by `--connect-rate` and
/// `--connect-inflight` (`handshakes`), all by the run's deadline. Returns the connections
/// by client index.
async fn connect_all(
    connector: &Connector,
    args: &LoadArgs,
    role: Role,
    count: u32,
    handshakes: &Arc<Semaphore>,
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
        let (version, qos, run, handshakes) = (args.version, args.qos(), run.clone(), handshakes.clone());
        let filter = (role == Role::Subscriber).then(|| args.subscription_for(index));
        let keep_alive = args.keep_alive;
        let connector = connector.clone();
        let client_id = format!("tb-{}-{}{index}", std::process::id(), role.tag());
        tasks.spawn(async move {
            let connect = async {
                sleep_until(at).await;
                let _permit = handshakes.acquire().await.context("handshake limiter closed")?;
                let began = Instant::now();
                let mut conn = Conn::connect(&connector, client_id, version, keep_alive).await?;
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
                    eprintln!("tern bench: client {}{index}: {error:#}", role.tag());
                }
            }
        }
    }
    conns.sort_by_key(|(index, _)| *index);
    conns
}
