//! End-to-end tests: each module is one scenario against the real `prism`
//! binary on a loopback port with temporary directories.

mod common;

mod append_and_read;
mod bad_plugins;
mod change_feed;
mod cli;
mod cli_tokens;
mod cluster;
mod concurrent_writers;
mod crash_recovery;
mod dashboard;
mod deploys;
mod dev_loop;
mod durability;
mod emitted_events;
mod event_filter;
mod event_json;
mod example_plugins;
mod find_queries;
mod full_disk;
mod graceful_shutdown;
mod hot_swap;
mod idempotent_retry;
mod import;
mod json_corpus;
mod languages;
mod log_pages;
mod new_projects;
mod outbox;
mod plugin_directory;
mod plugin_status;
mod poison_events;
mod profiling;
mod reserved_keys;
mod sandbox_limits;
mod security;
mod slow_clients;
mod view_files;
mod view_reads;
mod wit_versions;
