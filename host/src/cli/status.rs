//! Plugin status and diffs as text for a terminal: one line per generation,
//! and a diff summary with examples.

use std::fmt::Write;

use serde_json::Value;

fn short(hash: &Value) -> &str {
    hash.as_str().map_or("-", |h| &h[..16.min(h.len())])
}

/// `GET /plugins/{name}` as one line per generation.
pub fn generations(status: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}  {}  position {} of {}",
        status["name"].as_str().unwrap_or("?"),
        status["state"].as_str().unwrap_or("?"),
        status["position"],
        status["head"]
    );
    for g in status["generations"].as_array().into_iter().flatten() {
        let mut line = format!(
            "  {:<10} {:<17} {:<12} {:>10}",
            g["role"].as_str().unwrap_or("?"),
            short(&g["generation"]),
            g["state"].as_str().unwrap_or("?"),
            g["position"]
        );
        if g["role"] == "candidate" {
            let c = &status["candidate"];
            let _ = write!(line, "  {}", c["purpose"].as_str().unwrap_or(""));
            if c["ready"] == true {
                line.push_str(", caught up: ready to promote");
            }
        }
        if g["role"] == "previous"
            && let Some(expires) = status["previous"]["expires_at_ms"].as_u64()
        {
            let left = expires.saturating_sub(prism::clock::now_ms()) / 1000;
            let _ = write!(
                line,
                "  kept {}h{:02}m for a rollback",
                left / 3600,
                left / 60 % 60
            );
        }
        if let Some(error) = g["error"]["message"].as_str() {
            let _ = write!(line, "\n{:>14}{error}", "");
        }
        let _ = writeln!(out, "{line}");
    }
    out
}

/// `GET /plugins/{name}/diff` as a summary and its examples.
pub fn diff(diff: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "serving {} vs candidate {}, both at position {}:",
        short(&diff["serving"]),
        short(&diff["candidate"]),
        diff["position"]
    );
    let _ = writeln!(
        out,
        "  {} changed, {} added, {} removed, {} unchanged",
        diff["changed"], diff["added"], diff["removed"], diff["unchanged"]
    );
    for (kind, sides) in [
        ("changed", &["serving", "candidate"][..]),
        ("added", &["candidate"][..]),
        ("removed", &["serving"][..]),
    ] {
        for example in diff["samples"][kind].as_array().into_iter().flatten() {
            let _ = writeln!(out, "  {kind} {}", example["key"]);
            for side in sides {
                let _ = writeln!(out, "    {side:<9} {}", example[*side]);
            }
        }
    }
    out
}

/// `GET /plugins/{name}/outbox`: counts per target, then one line per request.
pub fn outbox(page: &Value) -> String {
    let mut out = String::new();
    for t in page["targets"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "{}: {} pending, {} delivered, {} dead, {} dropped",
            t["target"].as_str().unwrap_or_default(),
            t["pending"],
            t["delivered"],
            t["dead"],
            t["dropped"]
        );
    }
    for r in page["items"].as_array().into_iter().flatten() {
        let _ = write!(
            out,
            "{} {:<9} {:<12} attempts {}",
            r["id"].as_str().unwrap_or_default(),
            r["state"].as_str().unwrap_or_default(),
            r["target"].as_str().unwrap_or_default(),
            r["attempts"]
        );
        if r["state"] == "pending"
            && let Some(at) = r["next_attempt_at_ms"].as_u64()
        {
            let wait = at.saturating_sub(prism::clock::now_ms());
            let _ = write!(out, ", next in {:.1} s", wait as f64 / 1000.0);
        }
        if let Some(waiting) = r["waiting_for"].as_str() {
            let _ = write!(out, ", waiting: {waiting}");
        }
        if let Some(error) = r["last_error"].as_str() {
            let _ = write!(out, ", last error: {error}");
        }
        out.push('\n');
    }
    if page["cursor"].is_string() {
        out.push_str("(more: raise --limit)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_diff_reads_as_counts_then_examples() {
        let text = diff(&json!({
            "serving": "aaaaaaaaaaaaaaaaaaaa", "candidate": "bbbbbbbbbbbbbbbbbbbb", "position": 7,
            "changed": 1, "added": 0, "removed": 0, "unchanged": 3,
            "samples": {"changed": [{"key": "k", "serving": {"n": 1}, "candidate": {"n": 2}}], "added": [], "removed": []}
        }));
        assert!(
            text.contains("1 changed, 0 added, 0 removed, 3 unchanged"),
            "{text}"
        );
        assert!(text.contains("serving   {\"n\":1}"), "{text}");
        assert!(text.contains("candidate {\"n\":2}"), "{text}");
    }

    #[test]
    fn every_generation_gets_a_line() {
        let text = generations(&json!({
            "name": "bank", "state": "live", "position": 10, "head": 10,
            "candidate": {"purpose": "upgrade", "ready": true},
            "generations": [
                {"role": "serving", "generation": "aaaaaaaaaaaaaaaaaaaa", "state": "live", "position": 10},
                {"role": "candidate", "generation": "bbbbbbbbbbbbbbbbbbbb", "state": "live", "position": 10},
                {"role": "failed", "generation": "cccccccccccccccccccc", "state": "failed", "position": 0, "error": {"message": "boom"}}
            ]
        }));
        assert_eq!(text.lines().count(), 5, "{text}");
        assert!(text.contains("ready to promote"));
        assert!(text.contains("boom"));
    }

    #[test]
    fn an_outbox_reads_as_counts_then_one_line_per_request() {
        let text = outbox(&json!({
            "targets": [{"target": "email", "pending": 1, "delivered": 5, "dead": 1, "dropped": 0}],
            "items": [
                {"id": "i-1", "state": "dead", "target": "email", "attempts": 8, "last_error": "HTTP 500: no"},
                {"id": "i-2", "state": "pending", "target": "email", "attempts": 0, "next_attempt_at_ms": 0}
            ],
            "cursor": "2"
        }));
        assert!(
            text.contains("email: 1 pending, 5 delivered, 1 dead, 0 dropped"),
            "{text}"
        );
        assert!(text.contains("i-1 dead"), "{text}");
        assert!(text.contains("last error: HTTP 500: no"), "{text}");
        assert!(text.contains("next in 0.0 s"), "{text}");
        assert!(text.contains("more"), "{text}");
    }
}
