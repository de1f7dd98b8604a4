//! The `prism` command line: the server, the client commands, and the
//! commands that make, test and build projections (`new`, `test`, `build`,
//! `dev`).
//!
//! # Layout
//! - `import`, `status`: `prism import` and the plugin status as text.
//! - `project`: a projection's folder, language and name.
//! - `new`: `prism new`, from the templates in `host/templates/`.
//! - `sdk`: the SDKs and WIT the binary carries; where the Rust SDK is.
//! - `toolchain`: the pinned build tools, found or installed once.
//! - `build`, `unit_tests`, `dev`: `prism build`, `prism test`, `prism dev`.

pub mod build;
pub mod dev;
pub mod import;
pub mod new;
pub mod project;
pub mod sdk;
pub mod status;
pub mod toolchain;
pub mod unit_tests;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use prism::client::Client;
use prism::config::{ClientConfig, Config};

#[derive(Parser)]
#[command(
    name = "prism",
    version,
    about = "A WebAssembly-pluggable projection engine"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// How client commands reach the server. Each setting comes from its flag,
/// else its environment variable, else the config file's `[client]` table.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Base URL of a running server. Default http://127.0.0.1:7070.
    #[arg(long, global = true, env = "PRISM_SERVER")]
    pub server: Option<String>,
    /// Bearer token sent with every request. Prefer PRISM_TOKEN or the config
    /// file: other users of the machine can read command lines.
    #[arg(long, global = true, env = "PRISM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Config file with a [client] table (`server`, `token`); missing is fine
    /// unless given explicitly. Default ./prism.toml.
    #[arg(long, global = true, env = "PRISM_CONFIG")]
    pub config: Option<PathBuf>,
}

impl ClientArgs {
    /// The client these settings describe.
    pub fn client(self) -> anyhow::Result<Client> {
        let file = Config::locate(self.config.as_deref())?.client;
        let server = self
            .server
            .or(file.server)
            .unwrap_or_else(|| ClientConfig::DEFAULT_SERVER.to_string());
        // An empty PRISM_TOKEN= means "no token here", not an empty token.
        let token = self.token.filter(|t| !t.is_empty()).or(file.token);
        Ok(Client::new(&server, token.as_deref())?)
    }
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Config file (missing is fine unless given explicitly).
        #[arg(long, env = "PRISM_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory (RocksDB and compile cache). Default ./data.
        #[arg(long, env = "PRISM_DATA")]
        data: Option<PathBuf>,
        /// Compile cache directory. Default <data>/cache.
        #[arg(long, env = "PRISM_CACHE")]
        cache: Option<PathBuf>,
        /// Plugin directory, watched for NAME.wasm and NAME.view.yaml files. Default ./plugins.
        #[arg(long, env = "PRISM_PLUGINS")]
        plugins: Option<PathBuf>,
        /// Listen address. Default 127.0.0.1:7070.
        #[arg(long, env = "PRISM_LISTEN")]
        listen: Option<std::net::SocketAddr>,
        /// Bearer tokens, `TOKEN=read+write,OTHER=admin` (adds to the config file's).
        #[arg(long, env = "PRISM_TOKENS", hide_env_values = true)]
        tokens: Option<String>,
        /// Largest append body in bytes. Default 4 MiB.
        #[arg(long, env = "PRISM_MAX_BODY_BYTES")]
        max_body_bytes: Option<usize>,
        /// Seconds a client has to send a request's headers; also how long an
        /// idle kept-alive connection is kept. Default 10.
        #[arg(long, env = "PRISM_HEADER_READ_TIMEOUT_SECS")]
        header_read_timeout_secs: Option<u64>,
        /// Keep the event log in a NATS JetStream cluster shared by many
        /// nodes: `nats://h1:4222,h2:4222`. Default: the embedded log.
        #[arg(long, env = "PRISM_LOG_URL")]
        log_url: Option<String>,
        /// This node's name in a cluster. Default: host name and port.
        #[arg(long, env = "PRISM_NODE")]
        node: Option<String>,
    },
    /// Append one event to a stream.
    Append {
        stream: String,
        #[arg(value_name = "TYPE")]
        event_type: String,
        /// The event's data, JSON. Default {}.
        data: Option<String>,
        /// The event's metadata, a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        /// any | no_stream | exists | N
        #[arg(long)]
        expected_version: Option<String>,
        /// The event's id (a UUID) for idempotent retries.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Append events from an NDJSON file: one {"stream","type","data","metadata"?,"id"?} per line.
    ///
    /// Safe to run again after a failure, a kill or a success: every line has
    /// a stable event id (its own `id`, or one derived from the file name,
    /// the line number and the line), so the log ends up with the file's
    /// events exactly once, in the file's order.
    Import {
        file: PathBuf,
        /// Most lines in one request (each request is one atomic append).
        #[arg(long, default_value_t = 5000)]
        chunk_lines: usize,
        /// Most bytes in one request; keep it under the server's
        /// `max_body_bytes` (default 4 MiB).
        #[arg(long, default_value_t = 2 << 20)]
        max_request_bytes: usize,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print events from the global log, or one stream, as NDJSON.
    ///
    /// The log counts positions from 1, a stream counts versions from 0, so
    /// each has its own flag.
    Events {
        /// First position of the global log (1 is the first event).
        #[arg(long, value_name = "N", default_value_t = 1, conflicts_with = "stream")]
        from_position: u64,
        /// First version of the stream (0 is its first event); needs --stream.
        #[arg(long, value_name = "N", default_value_t = 0, requires = "stream")]
        from_version: u64,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Read this stream instead of the global log.
        #[arg(long)]
        stream: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Manage plugins on a running server.
    Plugins {
        #[command(subcommand)]
        action: PluginAction,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a projection project: a skeleton that builds and passes its
    /// unit test as it is.
    New {
        /// The projection's name: its plugin name and package name (a-z,
        /// 0-9, '-', '_').
        name: String,
        #[arg(long, value_enum)]
        lang: project::Lang,
        /// Where to create it. Default ./NAME.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// Rust only: the Prism checkout (or its guest-sdk folder, or its git
        /// URL) whose SDK the project depends on. Default: the checkout this
        /// prism was built from.
        #[arg(long, env = "PRISM_SDK", value_name = "PATH|GIT-URL")]
        sdk: Option<String>,
    },
    /// Run a projection's unit tests natively (cargo test, python3 -m
    /// unittest, node --test).
    Test {
        /// The project. Default: the current folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The language, when the folder could be more than one.
        #[arg(long, value_enum)]
        lang: Option<project::Lang>,
        /// Passed on to the test runner.
        #[arg(last = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Build a projection into a WebAssembly component, installing the
    /// pinned toolchain (into PRISM_TOOLS, default ~/.cache/prism/tools) if
    /// it is missing.
    Build {
        /// The project. Default: the current folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, value_enum)]
        lang: Option<project::Lang>,
    },
    /// Rebuild a projection on every save and install it on a running
    /// server; show its replay, its log lines and its errors. Ctrl-C stops.
    Dev {
        /// The project. Default: the current folder.
        #[arg(default_value = ".")]
        dir: PathBuf,
        #[arg(long, value_enum)]
        lang: Option<project::Lang>,
        /// The plugin to install it as. Default: the project's name.
        #[arg(long)]
        plugin: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand)]
pub enum PluginAction {
    /// Status of every plugin.
    List,
    /// Status of one plugin.
    Show { name: String },
    /// Install or replace a plugin from a .wasm component or a view file.
    Install { name: String, file: PathBuf },
    /// Unload a plugin and drop its views.
    Remove { name: String },
    /// Replay a plugin into a fresh generation.
    Rebuild { name: String },
    /// Every generation of a plugin, one line each (serving, candidate,
    /// previous, failed), with state and position.
    Status { name: String },
    /// Compare the caught-up candidate with the serving generation at one
    /// log position: counts of keys added, removed and changed, and examples.
    Diff {
        name: String,
        /// Examples of each kind of difference.
        #[arg(long, default_value_t = 5)]
        sample: usize,
    },
    /// Cut over to the caught-up candidate now.
    Promote { name: String },
    /// Bring back the generation replaced at the last cutover.
    Rollback { name: String },
    /// Discard the candidate (the plugin file goes back to what serves).
    Discard { name: String },
    /// Run a quarantined generation again, one event at a time through the
    /// batch the server died in.
    Resume { name: String },
    /// Run a quarantined generation again past that batch (dead-lettered).
    Skip { name: String },
    /// The plugin's outbox: counts per target, then its requests, one line
    /// each (state, attempts, next attempt, last error); or retry or drop one.
    Outbox {
        name: String,
        /// Only requests in this state: pending, delivered, dead or dropped.
        #[arg(long)]
        state: Option<String>,
        /// Most requests to list.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Send this (dead or pending) request again now.
        #[arg(long, value_name = "ID", conflicts_with = "drop")]
        retry: Option<String>,
        /// Never send this (pending or dead) request.
        #[arg(long, value_name = "ID")]
        drop: Option<String>,
    },
}
