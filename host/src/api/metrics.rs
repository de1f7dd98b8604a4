//! `GET /metrics`: Prometheus text exposition, names prefixed `prism_`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::histogram::Histogram;
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
    let _ = writeln!(
        out,
        "# HELP prism_plugin_position Last log position a plugin applied.\n# TYPE prism_plugin_position gauge"
    );
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(
                out,
                "prism_plugin_position{{plugin=\"{}\"}} {}",
                p.name, c.status.position.0
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_events_total Events a plugin generation has processed.\n# TYPE prism_plugin_events_total counter"
    );
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(
                out,
                "prism_plugin_events_total{{plugin=\"{}\"}} {}",
                p.name, c.status.events_processed
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_lag_events Events a plugin has yet to apply.\n# TYPE prism_plugin_lag_events gauge"
    );
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(
                out,
                "prism_plugin_lag_events{{plugin=\"{}\"}} {}",
                p.name, c.status.lag
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_events_per_second Recent projection rate.\n# TYPE prism_plugin_events_per_second gauge"
    );
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(
                out,
                "prism_plugin_events_per_second{{plugin=\"{}\"}} {}",
                p.name, c.status.events_per_second
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP prism_plugin_dead_letters_total Events a plugin skipped.\n# TYPE prism_plugin_dead_letters_total counter"
    );
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(
                out,
                "prism_plugin_dead_letters_total{{plugin=\"{}\"}} {}",
                p.name, c.status.dead_letters
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
        if let Some(generation) = state.plugins.current(&p.name) {
            let help = if first {
                "Time to apply one batch (handle + commit)."
            } else {
                ""
            };
            generation.status.batch_latency().render(
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
