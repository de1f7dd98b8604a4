//! Prism: a WebAssembly-pluggable projection engine for event-sourced systems.
//!
//! Events are appended to a durable log; projection plugins (WebAssembly
//! components) turn them into views, each in its own keyspace; the views are
//! read over HTTP.
//!
//! # Layout
//! - [`storage`]: the one RocksDB database and its byte layouts.
//! - [`log`]: the append-only event log (single writer, group commit).
//! - [`cluster`]: the event log in NATS JetStream, shared by many nodes.
//! - [`views`]: keyspaces per plugin generation, transactions, checkpoints.
//! - [`runtime`]: wasmtime, the WIT bindings, the sandbox and its limits.
//! - [`projector`]: log → plugin → view, batched and exactly once.
//! - [`declarative`]: view files, projections written as a spec and run natively.
//! - [`outbox`]: side effects projections ask for, committed with their
//!   batch and delivered to HTTP endpoints at least once.
//! - [`plugins`]: the registry of plugin generations, hot swap, the watcher.
//! - [`api`]: the HTTP API.
//! - [`server`]: wiring it all together; [`config`]: settings.
//! - [`client`]: the HTTP client behind the CLI; [`histogram`]: latency
//!   histograms; [`clock`]: timestamps; `mailbox`: threads fed through a
//!   channel, waited for when their last handle goes.

pub mod api;
pub mod client;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod declarative;
pub mod histogram;
pub mod log;
mod mailbox;
pub mod outbox;
pub mod plugins;
pub mod projector;
pub mod runtime;
pub mod server;
pub mod storage;
pub mod views;
