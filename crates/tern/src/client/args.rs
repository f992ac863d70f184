//! The connection flags shared by `tern pub` and `tern sub`, and the CONNECT built from them.

use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use anyhow::{bail, Context};
use bytes::Bytes;
use tern_codec::{Connect, LastWill, Properties, ProtocolVersion, QoS, TopicName};

/// Connection flags shared by `tern pub` and `tern sub`, with mosquitto's letters.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Broker host to connect to.
    #[arg(short = 'h', long, default_value = "127.0.0.1")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long, default_value_t = 1883)]
    pub port: u16,
    /// Client identifier (default: the command name and a random suffix).
    #[arg(short = 'i', long)]
    pub id: Option<String>,
    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Keep alive in seconds; 0 turns pings off.
    #[arg(short = 'k', long, default_value_t = 60)]
    pub keepalive: u16,
    /// User name to authenticate with.
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password to authenticate with (needs a user name).
    #[arg(short = 'P', long = "pw", requires = "username")]
    pub password: Option<String>,
    /// Keep the session after disconnecting (clean session off); needs an id.
    #[arg(short = 'c', long = "disable-clean-session", requires = "id")]
    pub disable_clean_session: bool,
    /// Protocol version: mqttv31, mqttv311 or mqttv5.
    #[arg(short = 'V', long = "protocol-version", default_value = "mqttv311", value_parser = parse_protocol)]
    pub protocol: ProtocolVersion,
    /// Print the packets sent and received to stderr.
    #[arg(short = 'd', long)]
    pub debug: bool,
    /// Topic of the will message the broker publishes if this client goes away uncleanly.
    #[arg(long = "will-topic")]
    pub will_topic: Option<String>,
    /// Payload of the will message (default: empty).
    #[arg(long = "will-payload", requires = "will_topic")]
    pub will_payload: Option<String>,
    /// QoS of the will message.
    #[arg(long = "will-qos", default_value_t = 0, requires = "will_topic",
          value_parser = clap::value_parser!(u8).range(0..=2))]
    pub will_qos: u8,
    /// Retain the will message.
    #[arg(long = "will-retain", requires = "will_topic")]
    pub will_retain: bool,
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
}

fn parse_protocol(value: &str) -> Result<ProtocolVersion, String> {
    match value {
        "mqttv31" | "31" => Ok(ProtocolVersion::V3_1),
        "mqttv311" | "311" => Ok(ProtocolVersion::V3_1_1),
        "mqttv5" | "5" => Ok(ProtocolVersion::V5),
        _ => Err(format!("unknown protocol version '{value}' (use mqttv31, mqttv311 or mqttv5)")),
    }
}

impl ConnectionArgs {
    /// The subscription or publish QoS given with `-q`.
    pub fn qos(&self) -> QoS {
        qos_from_flag(self.qos)
    }

    /// The CONNECT to send; `prefix` names the command in a generated client identifier.
    pub fn connect_packet(&self, prefix: &str) -> anyhow::Result<Connect> {
        let will = match &self.will_topic {
            Some(topic) => Some(LastWill {
                topic: valid_topic_name(topic).context("invalid --will-topic")?,
                payload: Bytes::from(self.will_payload.clone().unwrap_or_default()),
                qos: qos_from_flag(self.will_qos),
                retain: self.will_retain,
                properties: Properties::default(),
            }),
            None => None,
        };
        let clean_start = !self.disable_clean_session;
        let mut properties = Properties::default();
        if self.protocol == ProtocolVersion::V5 && !clean_start {
            // As mosquitto does: a persistent session in 5.0 never expires unless told to.
            properties.session_expiry_interval = Some(u32::MAX);
        }
        Ok(Connect {
            protocol: self.protocol,
            clean_start,
            keep_alive: self.keepalive,
            client_id: self.id.clone().unwrap_or_else(|| format!("{prefix}-{}", random_suffix())),
            will,
            username: self.username.clone(),
            password: self.password.clone().map(Bytes::from),
            properties,
        })
    }
}

/// Checks a topic name given on the command line, refusing the empty name as brokers do.
pub fn valid_topic_name(topic: &str) -> anyhow::Result<TopicName> {
    if topic.is_empty() {
        bail!("topic name '' is empty");
    }
    TopicName::new(topic).with_context(|| format!("invalid topic name '{topic}'"))
}

fn qos_from_flag(value: u8) -> QoS {
    // clap has already limited the flag to 0..=2.
    QoS::from_u8(value).unwrap_or_default()
}

/// Twelve hex digits, random enough to keep two clients started together apart, and short
/// enough that `tern-pub-` and the suffix fit in 3.1's 23-character client identifier.
fn random_suffix() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    hasher.write_u128(nanos.as_nanos());
    format!("{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_client_id_fits_mqtt_3_1() {
        let suffix = random_suffix();
        assert_eq!(suffix.len(), 12);
        assert!(format!("tern-pub-{suffix}").len() <= 23);
    }

    #[test]
    fn protocol_names_parse() {
        assert_eq!(parse_protocol("mqttv31"), Ok(ProtocolVersion::V3_1));
        assert_eq!(parse_protocol("mqttv311"), Ok(ProtocolVersion::V3_1_1));
        assert_eq!(parse_protocol("mqttv5"), Ok(ProtocolVersion::V5));
        assert!(parse_protocol("mqttv4").is_err());
    }
}
