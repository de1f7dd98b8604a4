//! Per-plugin settings: `[plugin_defaults]` and `[plugin.NAME]` in
//! `prism.toml`, merged field by field.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lifecycle::Cutover;
use crate::projector::{PoisonPolicy, ProjectorConfig};
use crate::runtime::PluginLimits;

/// Default time a replaced generation is kept for a rollback: 24 hours.
pub const DEFAULT_PREVIOUS_RETENTION_SECS: u64 = 24 * 60 * 60;

/// Most workers a partitioned replay runs.
pub const MAX_REPLAY_WORKERS: usize = 64;

/// Per-plugin settings; every field falls back to the defaults.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PluginSettings {
    /// Memory limit in MiB (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_mb: Option<usize>,
    /// Deadline of one call into the plugin, in milliseconds (default 5000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_timeout_ms: Option<u64>,
    /// `halt` (default) or `skip`: what to do with an event the plugin fails on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<PoisonPolicy>,
    /// Most events per batch (default 65,536; batches start at 8,192 and grow
    /// while the plugin's memory has room).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_batch_events: Option<usize>,
    /// `auto` (default): a caught-up candidate takes over by itself;
    /// `manual`: it waits for `POST /plugins/{name}/promote`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cutover: Option<Cutover>,
    /// How long the generation replaced at a cutover is kept for a
    /// rollback, in seconds (default 86400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_retention_secs: Option<u64>,
    /// Query instances kept per generation; queries beyond them wait
    /// briefly, then get `503` (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_instances: Option<usize>,
    /// Memory the host may spend for one call into the plugin, in MiB:
    /// documents handed out by reads plus the batch's pending writes
    /// (default 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_memory_mb: Option<usize>,
    /// Disk the plugin's view may take, in MiB (default 4096); a batch that
    /// would go past it fails like a plugin error (halt or skip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_quota_mb: Option<u64>,
    /// Largest document the plugin may write, in MiB (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_document_mb: Option<usize>,
    /// How many log positions back a change-feed client can resume from
    /// (default 1,000,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_retention_positions: Option<u64>,
    /// Read the next batch from the log on a second thread while the plugin
    /// handles the current one (default true); false keeps a replaying
    /// plugin on one core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ahead: Option<bool>,
    /// Replay with this many workers at once, each taking the streams that
    /// hash to it (default 1: in log order). Only for a projection whose
    /// documents each belong to one stream, so that the order of events of
    /// different streams does not matter; ignored for one with indexes,
    /// emitted events or outbox targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_workers: Option<usize>,
}

impl PluginSettings {
    /// These settings, with `fallback`'s where these have none.
    pub fn or(&self, fallback: &PluginSettings) -> PluginSettings {
        PluginSettings {
            memory_limit_mb: self.memory_limit_mb.or(fallback.memory_limit_mb),
            call_timeout_ms: self.call_timeout_ms.or(fallback.call_timeout_ms),
            on_error: self.on_error.or(fallback.on_error),
            max_batch_events: self.max_batch_events.or(fallback.max_batch_events),
            cutover: self.cutover.or(fallback.cutover),
            previous_retention_secs: self
                .previous_retention_secs
                .or(fallback.previous_retention_secs),
            query_instances: self.query_instances.or(fallback.query_instances),
            change_retention_positions: self
                .change_retention_positions
                .or(fallback.change_retention_positions),
            host_memory_mb: self.host_memory_mb.or(fallback.host_memory_mb),
            storage_quota_mb: self.storage_quota_mb.or(fallback.storage_quota_mb),
            max_document_mb: self.max_document_mb.or(fallback.max_document_mb),
            read_ahead: self.read_ahead.or(fallback.read_ahead),
            replay_workers: self.replay_workers.or(fallback.replay_workers),
        }
    }

    pub fn cutover(&self) -> Cutover {
        self.cutover.unwrap_or_default()
    }

    pub fn previous_retention(&self) -> Duration {
        Duration::from_secs(
            self.previous_retention_secs
                .unwrap_or(DEFAULT_PREVIOUS_RETENTION_SECS),
        )
    }

    pub fn query_instances(&self) -> usize {
        self.query_instances.unwrap_or(4).max(1)
    }

    pub fn limits(&self) -> PluginLimits {
        let limits = PluginLimits::default();
        PluginLimits {
            host_bytes: self.host_memory_mb.map_or(limits.host_bytes, |mb| mb << 20),
            max_document_bytes: self
                .max_document_mb
                .map_or(limits.max_document_bytes, |mb| mb << 20),
            memory_bytes: self
                .memory_limit_mb
                .map_or(limits.memory_bytes, |mb| mb << 20),
            call_timeout: self
                .call_timeout_ms
                .map_or(limits.call_timeout, Duration::from_millis),
        }
    }

    pub fn projector_config(&self) -> ProjectorConfig {
        let base = ProjectorConfig::default();
        ProjectorConfig {
            max_batch_events: self
                .max_batch_events
                .unwrap_or(base.max_batch_events)
                .max(1),
            policy: self.on_error.unwrap_or_default(),
            limits: self.limits(),
            change_retention: self
                .change_retention_positions
                .unwrap_or(base.change_retention)
                .max(1),
            storage_quota: self
                .storage_quota_mb
                .map_or(base.storage_quota, |mb| Some(mb << 20)),
            read_ahead: self.read_ahead.unwrap_or(base.read_ahead),
            replay_workers: self
                .replay_workers
                .unwrap_or(base.replay_workers)
                .clamp(1, MAX_REPLAY_WORKERS),
            ..base
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_settings_fall_back_field_by_field() {
        let own = PluginSettings {
            on_error: Some(PoisonPolicy::Skip),
            ..Default::default()
        };
        let defaults = PluginSettings {
            memory_limit_mb: Some(128),
            on_error: Some(PoisonPolicy::Halt),
            cutover: Some(Cutover::Manual),
            ..Default::default()
        };
        let merged = own.or(&defaults);
        assert_eq!(merged.on_error, Some(PoisonPolicy::Skip));
        assert_eq!(merged.memory_limit_mb, Some(128));
        assert_eq!(merged.cutover(), Cutover::Manual);
        assert_eq!(merged.limits().memory_bytes, 128 << 20);
        assert_eq!(
            merged.previous_retention(),
            Duration::from_secs(DEFAULT_PREVIOUS_RETENTION_SECS)
        );
    }
}
