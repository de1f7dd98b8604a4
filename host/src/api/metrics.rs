//! `GET /metrics`: Prometheus text exposition, names prefixed `prism_`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::histogram::Histogram;
use crate::projector::StatusReport;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// Counters the API updates as it serves.
#[derive(Debug, Default)]
pub struct Metrics {
    events_appended: AtomicU64,
    query_latency: Histogram,
}

impl Metrics {
    pub fn appended(&self, events: u64) {
        self.events_appended.fetch_add(events, Ordering::Relaxed);
    }

    pub fn query_latency(&self, d: Duration) {
        self.query_latency.observe(d);
    }
}

/// A per-plugin series: name, type, help, and how to read it off a status.
type PluginSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StatusReport) -> String,
);

/// A per-plugin-and-target series of the outbox, read off its report.
type OutboxSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&crate::outbox::delivery::TargetReport) -> u64,
);

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let m = &state.metrics;
    let _ = writeln!(
        out,
        "# HELP prism_events_appended_total Events appended through the API.\n# TYPE prism_events_appended_total counter\nprism_events_appended_total {}",
        m.events_appended.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP prism_log_head_position Position of the last event in the log.\n# TYPE prism_log_head_position gauge\nprism_log_head_position {}",
        state.log.head().0
    );
    let plugins = state.plugins.list();
    let series: [PluginSeries; 7] = [
        (
            "prism_plugin_position",
            "gauge",
            "Last log position a plugin applied.",
            |s| s.position.0.to_string(),
        ),
        (
            "prism_plugin_events_total",
            "counter",
            "Events a plugin generation has processed.",
            |s| s.events_processed.to_string(),
        ),
        (
            "prism_plugin_lag_events",
            "gauge",
            "Events a plugin has yet to apply.",
            |s| s.lag.to_string(),
        ),
        (
            "prism_plugin_events_per_second",
            "gauge",
            "Recent projection rate.",
            |s| s.events_per_second.to_string(),
        ),
        (
            "prism_plugin_dead_letters_total",
            "counter",
            "Events a plugin skipped.",
            |s| s.dead_letters.to_string(),
        ),
        (
            "prism_plugin_emitted_events_total",
            "counter",
            "Events the serving generation emitted and appended to the log since it started.",
            |s| s.emitted.appended.to_string(),
        ),
        (
            "prism_plugin_emitted_events_already_in_log_total",
            "counter",
            "Events the serving generation emitted again and the log already held (left out).",
            |s| s.emitted.already_in_log.to_string(),
        ),
    ];
    for (name, kind, help, value) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for p in &plugins {
            if let Some(s) = &p.status {
                let _ = writeln!(out, "{name}{{plugin=\"{}\"}} {}", p.name, value(s));
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_storage_bytes About how many bytes a plugin's serving view takes.\n# TYPE prism_plugin_storage_bytes gauge"
    );
    for p in &plugins {
        if let Some(bytes) = p.storage_bytes {
            let _ = writeln!(
                out,
                "prism_plugin_storage_bytes{{plugin=\"{}\"}} {bytes}",
                p.name
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_generation_position Position of each generation of a plugin, by role (serving, candidate, previous).\n# TYPE prism_plugin_generation_position gauge"
    );
    for p in &plugins {
        for g in p.generations.iter().filter(|g| g.role != "failed") {
            let _ = writeln!(
                out,
                "prism_plugin_generation_position{{plugin=\"{}\",role=\"{}\",generation=\"{}\",state=\"{}\"}} {}",
                p.name,
                g.role,
                &g.generation[..16.min(g.generation.len())],
                g.state,
                g.position.0
            );
        }
    }
    let outbox = state.outbox.reports();
    let outbox_series: [OutboxSeries; 5] = [
        (
            "prism_outbox_pending",
            "gauge",
            "Outbox requests waiting to be delivered, per plugin and target.",
            |r| r.counts.pending,
        ),
        (
            "prism_outbox_dead",
            "gauge",
            "Outbox requests that failed every attempt and wait for an operator.",
            |r| r.counts.dead,
        ),
        (
            "prism_outbox_delivered_total",
            "counter",
            "Outbox requests delivered (a 2xx answer) since the server started.",
            |r| r.since_start.delivered,
        ),
        (
            "prism_outbox_failed_attempts_total",
            "counter",
            "Outbox delivery attempts that failed since the server started.",
            |r| r.since_start.failed_attempts,
        ),
        (
            "prism_outbox_dead_total",
            "counter",
            "Outbox requests that went dead since the server started.",
            |r| r.since_start.dead,
        ),
    ];
    for (name, kind, help, value) in outbox_series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for r in &outbox {
            let _ = writeln!(
                out,
                "{name}{{plugin=\"{}\",target=\"{}\"}} {}",
                r.plugin,
                r.target,
                value(r)
            );
        }
    }
    m.query_latency.render(
        &mut out,
        "prism_view_read_seconds",
        "Latency of view reads and queries.",
        "",
    );
    let mut first = true;
    for p in &plugins {
        let Ok(name) = crate::plugins::PluginName::parse(&p.name) else {
            continue;
        };
        if let Ok(generation) = state.plugins.serving(&name) {
            let help = if first {
                "Time to apply one batch (handle + commit)."
            } else {
                ""
            };
            generation.status().batch_latency().render(
                &mut out,
                "prism_plugin_batch_seconds",
                help,
                &format!("plugin=\"{}\"", p.name),
            );
            first = false;
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
