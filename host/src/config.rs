//! Configuration: one `Config`, filled from `prism.toml`, then environment
//! variables, then command-line flags (each overriding the one before). The
//! same setting has the same name everywhere: `listen` in the file,
//! `PRISM_LISTEN` in the environment, `--listen` on the command line. The
//! server reads all of it but the `[client]` table, which is what the client
//! commands read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::api::auth::TokenConfig;
use crate::plugins::PluginSettings;

/// Everything `prism serve` needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Data directory: the RocksDB database and the compile cache. Default `./data`.
    pub data: PathBuf,
    /// Compile cache directory. Default `<data>/cache`.
    pub cache: Option<PathBuf>,
    /// The watched plugin directory. Default `./plugins`.
    pub plugins: PathBuf,
    /// Address to listen on. Default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// Largest append request body, in bytes. Default 4 MiB.
    pub max_body_bytes: usize,
    /// Largest plugin upload, in bytes. Default 256 MiB.
    pub max_plugin_bytes: usize,
    /// Seconds a client has to send a request's headers, counted from when
    /// the server starts waiting for them: on a new connection and on a
    /// kept-alive one after each answer. A connection that has sent no
    /// complete request head by then is closed, so this is also how long an
    /// idle keep-alive connection is kept. At least 1. Default 10.
    pub header_read_timeout_secs: u64,
    /// Seconds a plugin's lag may stand still before it is reported stalled. Default 30.
    pub stall_after_secs: u64,
    /// Appends are refused (`507 storage_full`) while less than this many
    /// MiB are free on the data directory's disk, so that RocksDB does not
    /// run out in the middle of a write (it would then stop every write,
    /// views' too, until 64 MiB are free) and views keep room to catch up.
    /// 0 turns the check off. Default 64.
    pub min_free_mb: u64,
    /// Defaults for every plugin (`memory_limit_mb`, `call_timeout_ms`, `on_error`, `max_batch_events`).
    pub plugin_defaults: PluginSettings,
    /// Per-plugin settings: `[plugin.NAME]` tables with the same keys.
    pub plugin: HashMap<String, PluginSettings>,
    /// Bearer tokens: `[[tokens]]` with `token` and `scopes` (`read`,
    /// `write`, `admin`). None (the default): no authentication, and the
    /// server refuses to listen on anything but a loopback address.
    pub tokens: Vec<TokenConfig>,
    /// The `[client]` table, for the client commands (`append`, `events`,
    /// `plugins`, …); the server ignores it.
    pub client: ClientConfig,
    /// Where the event log lives: the embedded RocksDB log (the default), or
    /// a NATS JetStream cluster shared by many nodes (`[log] url = ...`).
    pub log: LogConfig,
    /// How outbox requests are retried and kept (`[outbox]`, see `crate::outbox::config`).
    pub outbox: crate::outbox::OutboxConfig,
    /// Where outbox requests go: `[targets.NAME]` tables with `url`,
    /// `method`, `headers`, `timeout_ms`. None by default.
    pub targets: HashMap<String, crate::outbox::TargetConfig>,
    /// This node's name in a cluster: on every response (`Prism-Node`) and
    /// in `GET /cluster`. Default: the host name and the listen port.
    pub node: Option<String>,
}

/// The `[log]` table: which backend keeps the event log.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `nats://host:4222,host2:4222`: keep the log in that JetStream cluster
    /// (`--log-url`, `PRISM_LOG_URL`). None (the default): the embedded log.
    pub url: Option<String>,
    /// Replicas of the JetStream stream (1 for a single server). Default 3.
    pub replicas: usize,
    /// The JetStream stream's name. Default `PRISM_EVENTS`.
    pub stream: String,
    /// How long JetStream itself remembers event ids, in seconds (after
    /// that, a node's copy of the log recognises them). Default 120.
    pub duplicate_window_secs: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            url: None,
            replicas: 3,
            stream: "PRISM_EVENTS".into(),
            duplicate_window_secs: 120,
        }
    }
}

/// How the client commands reach a server.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Base URL of the server (`PRISM_SERVER`, `--server`). Default
    /// `http://127.0.0.1:7070`.
    pub server: Option<String>,
    /// Bearer token sent with every request (`PRISM_TOKEN`, `--token`).
    /// Default none.
    pub token: Option<String>,
}

impl ClientConfig {
    pub const DEFAULT_SERVER: &str = "http://127.0.0.1:7070";
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data: PathBuf::from("./data"),
            cache: None,
            plugins: PathBuf::from("./plugins"),
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            max_body_bytes: 4 << 20,
            max_plugin_bytes: 256 << 20,
            header_read_timeout_secs: 10,
            stall_after_secs: 30,
            min_free_mb: 64,
            plugin_defaults: PluginSettings::default(),
            plugin: HashMap::new(),
            tokens: Vec::new(),
            client: ClientConfig::default(),
            log: LogConfig::default(),
            outbox: crate::outbox::OutboxConfig::default(),
            targets: HashMap::new(),
            node: None,
        }
    }
}

/// Why the configuration could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Config {
    /// Why this configuration must not be served; `None` if it may.
    pub fn exposure_problem(&self, listen: SocketAddr) -> Option<String> {
        (self.tokens.is_empty() && !listen.ip().is_loopback()).then(|| {
            format!(
                "refusing to listen on {listen} without authentication: configure bearer \
                 tokens ([[tokens]] in prism.toml or PRISM_TOKENS) or listen on a loopback address"
            )
        })
    }

    /// Read the file named on the command line or in `PRISM_CONFIG`, which
    /// must exist; without one, `./prism.toml` if there is one.
    pub fn locate(named: Option<&Path>) -> Result<Config, ConfigError> {
        match named {
            Some(path) => Config::load(path, true),
            None => Config::load("prism.toml".as_ref(), false),
        }
    }

    /// Read a `prism.toml`. A missing file is fine only if `required` is false.
    pub fn load(path: &Path, required: bool) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_settings_override_defaults_and_per_plugin_tables_parse() {
        let config: Config = toml::from_str(
            r#"
            listen = "127.0.0.1:9000"
            [plugin_defaults]
            memory_limit_mb = 128
            [plugin.orders]
            on_error = "skip"
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.data, PathBuf::from("./data"));
        assert_eq!(config.plugin_defaults.memory_limit_mb, Some(128));
        assert_eq!(
            config.plugin["orders"].on_error,
            Some(crate::projector::PoisonPolicy::Skip)
        );
    }

    #[test]
    fn the_client_table_is_optional_and_checked() {
        let config: Config =
            toml::from_str("[client]\nserver = \"http://prism:7070\"\ntoken = \"t\"").unwrap();
        assert_eq!(config.client.server.as_deref(), Some("http://prism:7070"));
        assert_eq!(config.client.token.as_deref(), Some("t"));
        assert!(Config::default().client.token.is_none());
        assert!(toml::from_str::<Config>("[client]\ntokn = \"t\"").is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<Config>("lisen = \"x\"").is_err());
    }
}
