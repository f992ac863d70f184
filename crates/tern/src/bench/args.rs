//! The flags of `tern bench`, shared by its four modes, and the checks made before any
//! connection is opened.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context};
use tern_codec::{ProtocolVersion, QoS};

use super::load::DRAIN_GRACE;
use super::payload::HEADER_LEN;

/// `tern bench MODE [FLAGS]`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

/// What the run does.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Mode {
    /// `-c` publishers send to `-t` (as fast as `--inflight` allows, or paced).
    Pub(LoadArgs),
    /// `-c` subscribers receive on `--sub-topic` and check what `tern bench pub` sent.
    Sub(LoadArgs),
    /// `-c` clients connect (at `--connect-rate` per second) and then disconnect.
    Conn(LoadArgs),
    /// `-c` publishers and `--subscribers` subscribers in one process, checked end to end.
    Pubsub(LoadArgs),
}

impl Mode {
    pub fn args(&self) -> &LoadArgs {
        match self {
            Mode::Pub(args) | Mode::Sub(args) | Mode::Conn(args) | Mode::Pubsub(args) => args,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mode::Pub(_) => "pub",
            Mode::Sub(_) => "sub",
            Mode::Conn(_) => "conn",
            Mode::Pubsub(_) => "pubsub",
        }
    }
}

/// Flags of every mode; each mode ignores those that do not concern it.
#[derive(Debug, Clone, clap::Args)]
#[command(disable_help_flag = true)]
pub struct LoadArgs {
    /// Broker host: a loopback address unless `--allow-remote` is given.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Number of clients (publishers in `pub` and `pubsub`).
    #[arg(short = 'c', long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Number of subscribers in `pubsub` mode.
    #[arg(long, default_value_t = 1)]
    pub subscribers: u32,
    /// Quality of service of publishes and subscriptions: 0, 1 or 2.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Payload size in bytes; at least the 20-byte bench header.
    #[arg(short = 's', long, default_value_t = 64)]
    pub size: usize,
    /// Milliseconds between two publishes of one publisher.
    #[arg(short = 'I', long = "interval-ms", conflicts_with = "rate")]
    pub interval_ms: Option<u64>,
    /// Total publishes per second over all publishers; 0 is as fast as possible.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Unacknowledged QoS 1/2 publishes each publisher may have outstanding.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..))]
    pub inflight: u16,
    /// Topic to publish to; `%i` is replaced by the publisher index.
    #[arg(short = 't', long, default_value = "bench/%i")]
    pub topic: String,
    /// Topic filter subscribers subscribe to; `%i` is replaced by the subscriber index.
    #[arg(long = "sub-topic", default_value = "bench/#")]
    pub sub_topic: String,
    /// Subscribers join the shared subscription `$share/NAME/<sub-topic>`: each message goes
    /// to one member, and losses are counted over the whole group.
    #[arg(long = "shared-group", value_name = "NAME")]
    pub shared_group: Option<String>,
    /// `pubsub`: one subscriber per publisher, on that publisher's own topic (`-t` needs `%i`);
    /// replaces `--subscribers` and `--sub-topic`.
    #[arg(long)]
    pub pairs: bool,
    /// Protocol version: 3 (3.1.1, the default) or 5.
    #[arg(short = 'V', long = "protocol-version", default_value = "3", value_parser = parse_version)]
    pub version: ProtocolVersion,
    /// Upper bound of the load in seconds: every load loop stops by then (the `--drain` grace
    /// for messages and acknowledgements in flight follows).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: u64,
    /// Seconds subscribers wait for messages still queued in the broker once the publishers
    /// are done (default 2); what has not arrived by then counts as lost.
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub drain: Option<u64>,
    /// Messages each publisher sends (in `sub` mode: messages each subscriber waits for).
    #[arg(long)]
    pub limit: Option<u64>,
    /// Connections opened per second (all at once by default).
    #[arg(long = "connect-rate")]
    pub connect_rate: Option<u64>,
    /// At most this many handshakes (TCP, CONNECT, CONNACK, SUBSCRIBE) in flight at once.
    #[arg(long = "connect-inflight", value_parser = clap::value_parser!(u32).range(1..))]
    pub connect_inflight: Option<u32>,
    /// `conn`: keep every connection open, idle, until `--duration` is over (answering keep
    /// alive), then report how many are still up.
    #[arg(long)]
    pub hold: bool,
    /// Keep alive in seconds asked for in CONNECT (0 is off; some brokers refuse 0). A client
    /// that has sent nothing for three quarters of it sends PINGREQ.
    #[arg(long = "keep-alive", default_value_t = 60)]
    pub keep_alive: u16,
    /// Connect over TLS (mqtts; wss with `--ws`).
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA certificate(s) the broker's certificate must chain to (`--tls`).
    #[arg(long, value_name = "FILE")]
    pub cafile: Option<std::path::PathBuf>,
    /// Accept any broker certificate (`--tls`): for loopback tests with a throwaway one.
    #[arg(long)]
    pub insecure: bool,
    /// Connect over WebSocket (subprotocol `mqtt`).
    #[arg(long)]
    pub ws: bool,
    /// HTTP path of the WebSocket endpoint.
    #[arg(long = "ws-path", default_value = "/mqtt")]
    pub ws_path: String,
    /// Print the final summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Allow a broker that is not on a loopback address.
    #[arg(long = "allow-remote")]
    pub allow_remote: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

fn parse_version(value: &str) -> Result<ProtocolVersion, String> {
    match value {
        "3" | "4" | "311" | "mqttv311" => Ok(ProtocolVersion::V3_1_1),
        "5" | "mqttv5" => Ok(ProtocolVersion::V5),
        _ => Err(format!("unknown protocol version '{value}' (use 3 for 3.1.1 or 5)")),
    }
}

impl LoadArgs {
    pub fn qos(&self) -> QoS {
        // clap has already limited the flag to 0..=2.
        QoS::from_u8(self.qos).unwrap_or_default()
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration)
    }

    /// The grace after `--duration` for messages in flight.
    pub fn drain(&self) -> Duration {
        self.drain.map_or(DRAIN_GRACE, Duration::from_secs)
    }

    /// Time between two publishes of one publisher, or `None` for as fast as possible.
    pub fn publish_interval(&self, publishers: u32) -> Option<Duration> {
        match (self.interval_ms, self.rate) {
            (Some(0), _) | (None, Some(0)) | (None, None) => None,
            (Some(ms), _) => Some(Duration::from_millis(ms)),
            (None, Some(rate)) => Some(Duration::from_nanos(1_000_000_000 * u64::from(publishers) / rate)),
        }
    }

    /// The topic of publisher `index`.
    pub fn topic_for(&self, index: u32) -> String {
        self.topic.replace("%i", &index.to_string())
    }

    /// How many subscribers `pubsub` runs with `publishers` publishers.
    pub fn subscriber_count(&self, publishers: u32) -> u32 {
        if self.pairs {
            publishers
        } else {
            self.subscribers
        }
    }

    /// The filter subscriber `index` matches against, without any `$share/` prefix.
    pub fn filter_for(&self, index: u32) -> String {
        if self.pairs {
            self.topic_for(index)
        } else {
            self.sub_topic.replace("%i", &index.to_string())
        }
    }

    /// What subscriber `index` sends in its SUBSCRIBE.
    pub fn subscription_for(&self, index: u32) -> String {
        match &self.shared_group {
            Some(group) => format!("$share/{group}/{}", self.filter_for(index)),
            None => self.filter_for(index),
        }
    }

    /// Checks the flags and resolves the broker's address, refusing a non-loopback broker
    /// without `--allow-remote`. Nothing is sent anywhere before this passes.
    pub fn broker_address(&self) -> anyhow::Result<SocketAddr> {
        if self.size < HEADER_LEN {
            bail!("--size {} is below the {HEADER_LEN}-byte bench header", self.size);
        }
        if self.pairs && !self.topic.contains("%i") {
            bail!("--pairs needs a per-publisher topic: -t must contain %i (e.g. -t 'bench/%i')");
        }
        if let Some(group) = &self.shared_group {
            if group.is_empty() || group.contains(['/', '+', '#']) {
                bail!("--shared-group '{group}' is not a valid share name (non-empty, no '/', '+' or '#')");
            }
            if self.pairs || self.sub_topic.contains("%i") {
                bail!("--shared-group needs one filter for the whole group: drop --pairs and %i from --sub-topic");
            }
        }
        for index in [0, 1] {
            tern_codec::TopicFilter::new(&self.subscription_for(index))
                .with_context(|| format!("invalid subscription '{}'", self.subscription_for(index)))?;
        }
        let ip = resolve_host(&self.host)?;
        if !ip.is_loopback() && !self.allow_remote {
            bail!(
                "refusing to send load to {} ({ip}), which is not a loopback address; \
                 pass --allow-remote to benchmark a remote broker",
                self.host
            );
        }
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// An IP literal, or `localhost`; other names are resolved only when they are not loopback
/// anyway, and the first address is the only one ever used.
fn resolve_host(host: &str) -> anyhow::Result<IpAddr> {
    let literal = host.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).unwrap_or(host);
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(ip);
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let mut addresses = std::net::ToSocketAddrs::to_socket_addrs(&(host, 0))
        .with_context(|| format!("cannot resolve broker host '{host}'"))?;
    addresses.next().map(|address| address.ip()).with_context(|| format!("broker host '{host}' has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: LoadArgs,
    }

    fn parse(args: &[&str]) -> LoadArgs {
        let mut full = vec!["bench"];
        full.extend_from_slice(args);
        Wrapper::try_parse_from(full).expect("valid flags").args
    }

    #[test]
    fn non_loopback_host_is_refused_without_allow_remote() {
        let error = parse(&["-h", "192.0.2.1"]).broker_address().unwrap_err();
        assert!(error.to_string().contains("--allow-remote"), "{error}");
        let allowed = parse(&["-h", "192.0.2.1", "--allow-remote"]).broker_address().unwrap();
        assert_eq!(allowed.to_string(), "192.0.2.1:1883");
    }

    #[test]
    fn loopback_hosts_are_accepted() {
        for host in ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"] {
            assert!(parse(&["-h", host]).broker_address().is_ok(), "{host}");
        }
    }

    #[test]
    fn rate_is_shared_by_publishers() {
        let args = parse(&["--rate", "1000"]);
        assert_eq!(args.publish_interval(4), Some(Duration::from_millis(4)));
        assert_eq!(parse(&["-I", "20"]).publish_interval(4), Some(Duration::from_millis(20)));
        assert_eq!(parse(&[]).publish_interval(4), None);
    }

    #[test]
    fn drain_defaults_to_the_grace() {
        assert_eq!(parse(&[]).drain(), DRAIN_GRACE);
        assert_eq!(parse(&["--drain", "7"]).drain(), Duration::from_secs(7));
    }

    #[test]
    fn topic_template_takes_the_index() {
        assert_eq!(parse(&["-t", "load/%i/x"]).topic_for(7), "load/7/x");
    }

    #[test]
    fn pairs_and_shared_groups_shape_the_subscriptions() {
        let pairs = parse(&["--pairs", "-c", "3", "-t", "p/%i"]);
        assert_eq!(pairs.subscriber_count(3), 3);
        assert_eq!(pairs.subscription_for(2), "p/2");
        let shared = parse(&["--shared-group", "g1", "--sub-topic", "bench/+"]);
        assert_eq!(shared.subscription_for(5), "$share/g1/bench/+");
        assert_eq!(shared.filter_for(5), "bench/+");
        assert!(parse(&["--sub-topic", "s/%i"]).subscription_for(4) == "s/4");
    }

    #[test]
    fn inconsistent_pairs_and_groups_are_refused() {
        let error = parse(&["--pairs", "-t", "fixed"]).broker_address().unwrap_err();
        assert!(error.to_string().contains("%i"), "{error}");
        assert!(parse(&["--shared-group", "a/b"]).broker_address().is_err());
        assert!(parse(&["--shared-group", "g", "--pairs"]).broker_address().is_err());
        assert!(parse(&["--sub-topic", "a/#/b"]).broker_address().is_err());
    }

    #[test]
    fn payload_smaller_than_header_is_refused() {
        assert!(parse(&["-s", "8"]).broker_address().is_err());
    }
}
