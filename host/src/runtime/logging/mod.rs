//! A plugin's bounded log: its `logging` calls and its stdout/stderr.
//!
//! The log keeps the newest lines only, each truncated, so a plugin that
//! floods it costs a fixed amount of memory; the count of dropped lines tells
//! the operator that it happened. `GET /plugins/{name}/logs` reads it.

mod host;
pub(crate) mod stdio;

use std::collections::VecDeque;
use std::sync::Mutex;

use serde::Serialize;

/// Lines kept per plugin.
pub const LOG_CAPACITY: usize = 1000;
/// Longest line kept, in bytes; longer lines are cut.
pub const MAX_LINE_BYTES: usize = 4096;

/// One line of a plugin's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// `trace` … `error`, or `stdout` / `stderr` for captured output.
    pub level: &'static str,
    pub message: String,
}

/// The newest lines a plugin wrote.
#[derive(Debug, Default)]
pub struct PluginLog {
    inner: Mutex<LogInner>,
}

#[derive(Debug, Default)]
struct LogInner {
    lines: VecDeque<LogLine>,
    /// Lines pushed out of the buffer since the plugin started.
    dropped: u64,
}

impl PluginLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, level: &'static str, message: &str) {
        let mut message = message.trim_end().to_string();
        if message.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let at_ms = crate::clock::now_ms();
        let mut inner = self.inner.lock().expect("plugin log lock");
        if inner.lines.len() == LOG_CAPACITY {
            inner.lines.pop_front();
            inner.dropped += 1;
        }
        inner.lines.push_back(LogLine {
            at_ms,
            level,
            message,
        });
    }

    /// The kept lines, oldest first, and how many were dropped.
    pub fn snapshot(&self) -> (Vec<LogLine>, u64) {
        let inner = self.inner.lock().expect("plugin log lock");
        (inner.lines.iter().cloned().collect(), inner.dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_keeps_only_the_newest_lines() {
        let log = PluginLog::new();
        for i in 0..(LOG_CAPACITY + 10) {
            log.push("info", &format!("line {i}"));
        }
        let (lines, dropped) = log.snapshot();
        assert_eq!(lines.len(), LOG_CAPACITY);
        assert_eq!(dropped, 10);
        assert_eq!(lines[0].message, "line 10");
    }

    #[test]
    fn long_lines_are_cut() {
        let log = PluginLog::new();
        log.push("info", &"é".repeat(MAX_LINE_BYTES));
        assert!(log.snapshot().0[0].message.len() <= MAX_LINE_BYTES + '…'.len_utf8());
    }
}
