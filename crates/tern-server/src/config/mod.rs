//! The TOML configuration file. Every key is documented in `tern.example.toml` at the
//! repository root; unknown keys are errors, so a typo is reported instead of ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use tern_core::{Features, Limits, Strategy};

mod auth;
mod listener;
mod storage;

pub use auth::{AuthConfig, HttpHookConfig, JwtConfig};
pub use listener::{CertificateUsername, ListenerConfig, ListenerProtocol, TlsConfig};
pub use storage::{StorageBackend, StorageConfig};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid configuration file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// The whole configuration, with defaults for everything.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where clients connect: `[[listeners]]` tables, plain MQTT on 127.0.0.1:1883 by default.
    pub listeners: Vec<ListenerConfig>,
    /// Budgets and limits; the keys are the fields of [`Limits`], documented there.
    pub limits: Limits,
    pub mqtt: MqttConfig,
    pub storage: StorageConfig,
    pub auth: AuthConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listeners: vec![ListenerConfig::mqtt(SocketAddr::from(([127, 0, 0, 1], 1883)))],
            limits: Limits::default(),
            mqtt: MqttConfig::default(),
            storage: StorageConfig::default(),
            auth: AuthConfig::default(),
        }
    }
}

/// MQTT protocol features.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Response Information for 5.0 clients that request it; `{client_id}` is replaced.
    pub response_information: Option<String>,
    /// How a shared subscription group picks a member: round_robin, random, hash_client_id,
    /// hash_topic or sticky.
    pub shared_subscription_strategy: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig { response_information: None, shared_subscription_strategy: "round_robin".to_string() }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Config::from_toml(&text).map_err(|error| match error {
            ConfigError::Parse { message, .. } => ConfigError::Parse { path: path.to_path_buf(), message },
            other => other,
        })
    }

    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text)
            .map_err(|error| ConfigError::Parse { path: PathBuf::new(), message: error.to_string() })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.max_packet_size < 16 || limits.max_packet_size > tern_codec::MAX_REMAINING_LENGTH + 5 {
            return Err(ConfigError::Invalid(format!(
                "limits.max_packet_size must be between 16 and {}, not {}",
                tern_codec::MAX_REMAINING_LENGTH + 5,
                limits.max_packet_size
            )));
        }
        if limits.max_inflight_messages == 0 || limits.max_inflight_messages > 65_535 {
            return Err(ConfigError::Invalid("limits.max_inflight_messages must be between 1 and 65535".into()));
        }
        if limits.max_queued_messages == 0 {
            return Err(ConfigError::Invalid("limits.max_queued_messages must be at least 1".into()));
        }
        if limits.receive_maximum == 0 {
            return Err(ConfigError::Invalid("limits.receive_maximum must be at least 1".into()));
        }
        if Strategy::parse(&self.mqtt.shared_subscription_strategy).is_none() {
            return Err(ConfigError::Invalid(format!(
                "mqtt.shared_subscription_strategy must be one of round_robin, random, hash_client_id, hash_topic, sticky, not {:?}",
                self.mqtt.shared_subscription_strategy
            )));
        }
        if self.listeners.is_empty() {
            return Err(ConfigError::Invalid("at least one [[listeners]] entry is needed".into()));
        }
        for (index, listener) in self.listeners.iter().enumerate() {
            listener.validate().map_err(|message| ConfigError::Invalid(format!("listeners[{index}]: {message}")))?;
        }
        self.auth.validate().map_err(ConfigError::Invalid)?;
        self.storage.validate().map_err(ConfigError::Invalid)?;
        if limits.connect_timeout_secs == 0 {
            return Err(ConfigError::Invalid("limits.connect_timeout_secs must be at least 1".into()));
        }
        Ok(())
    }

    pub fn features(&self) -> Features {
        Features { response_information: self.mqtt.response_information.clone() }
    }

    /// The shared subscription strategy; `validate` has checked the name.
    pub fn shared_strategy(&self) -> Strategy {
        Strategy::parse(&self.mqtt.shared_subscription_strategy).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::from_toml("[limits]\nmax_packet_sise = 10\n").unwrap_err().to_string();
        assert!(error.contains("max_packet_sise"), "{error}");
    }

    #[test]
    fn wrong_type_is_named_with_its_line() {
        let error = Config::from_toml("[limits]\n\nmax_queued_messages = \"many\"\n").unwrap_err().to_string();
        assert!(error.contains("line 3"), "{error}");
    }

    #[test]
    fn unknown_shared_strategy_is_named() {
        let error = Config::from_toml("[mqtt]\nshared_subscription_strategy = \"fastest\"\n").unwrap_err().to_string();
        assert!(error.contains("fastest") && error.contains("round_robin"), "{error}");
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(Config::from_toml("[limits]\nmax_inflight_messages = 0\n").is_err());
        assert!(Config::from_toml("[limits]\nmax_packet_size = 1\n").is_err());
        assert!(Config::from_toml("[[listeners]]\nprotocol = \"mqtt\"\naddress = \"not an address\"\n").is_err());
        let tls_without_files = "[[listeners]]\nprotocol = \"mqtts\"\naddress = \"127.0.0.1:8883\"\n";
        let error = Config::from_toml(tls_without_files).unwrap_err().to_string();
        assert!(error.contains("listeners[0]") && error.contains("tls"), "{error}");
    }

    #[test]
    fn storage_settings_are_checked() {
        let config = Config::from_toml("[storage]\ndurability = \"relaxed\"\nflush_interval_ms = 200\n").unwrap();
        assert_eq!(config.storage.durability, tern_store::Durability::Relaxed);
        let error = Config::from_toml("[storage]\ndurability = \"sometimes\"\n").unwrap_err().to_string();
        assert!(error.contains("sometimes"), "{error}");
        let error = Config::from_toml("[storage]\nbackend = \"redis\"\n").unwrap_err().to_string();
        assert!(error.contains("storage.redis_url"), "{error}");
        let error = Config::from_toml("[storage]\nflush_interval_ms = 0\n").unwrap_err().to_string();
        assert!(error.contains("storage.flush_interval_ms"), "{error}");
        assert!(Config::from_toml("[storage]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n").is_ok());
    }

    #[test]
    fn example_file_parses() {
        let text = include_str!("../../../../tern.example.toml");
        Config::from_toml(text).unwrap();
    }
}
