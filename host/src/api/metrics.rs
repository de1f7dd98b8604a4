//! `GET /metrics`: Prometheus text exposition, names prefixed `prism_`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::AppState;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 10] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0];

/// A cumulative latency histogram with fixed buckets.
#[derive(Debug, Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (bound, count) in BUCKETS.iter().zip(&self.counts) {
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {}", count.load(Ordering::Relaxed));
        }
        let total = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {total}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
    }
}

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
    let _ = writeln!(out, "# HELP prism_plugin_position Last log position a plugin applied.\n# TYPE prism_plugin_position gauge");
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(out, "prism_plugin_position{{plugin=\"{}\"}} {}", p.name, c.status.position.0);
        }
    }
    let _ = writeln!(out, "# HELP prism_plugin_lag_events Events a plugin has yet to apply.\n# TYPE prism_plugin_lag_events gauge");
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(out, "prism_plugin_lag_events{{plugin=\"{}\"}} {}", p.name, c.status.lag);
        }
    }
    let _ = writeln!(out, "# HELP prism_plugin_events_per_second Recent projection rate.\n# TYPE prism_plugin_events_per_second gauge");
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(out, "prism_plugin_events_per_second{{plugin=\"{}\"}} {}", p.name, c.status.events_per_second);
        }
    }
    let _ = writeln!(out, "# HELP prism_plugin_dead_letters_total Events a plugin skipped.\n# TYPE prism_plugin_dead_letters_total counter");
    for p in &plugins {
        if let Some(c) = &p.current {
            let _ = writeln!(out, "prism_plugin_dead_letters_total{{plugin=\"{}\"}} {}", p.name, c.status.dead_letters);
        }
    }
    m.query_latency.render(&mut out, "prism_view_read_seconds", "Latency of view reads and queries.");
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
