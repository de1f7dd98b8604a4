//! `prism import`: stream an NDJSON file into a running server with a
//! progress bar.
//!
//! Lines are read in chunks; each chunk's events are grouped by stream (order
//! within a stream is kept) and sent as concurrent appends, so a file of
//! interleaved streams still goes in with few, large requests.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, bail};
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use prism::client::{Client, segment};
use prism::log::limits::MAX_EVENTS_PER_APPEND;

pub async fn run(
    client: &Client,
    file: &Path,
    chunk: usize,
    concurrency: usize,
) -> anyhow::Result<u64> {
    let total_bytes = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let bar = ProgressBar::new(total_bytes);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} [{elapsed_precise}, eta {eta}]")
            .expect("template"),
    );
    let started = Instant::now();
    let mut imported = 0u64;
    let mut lines = reader.lines().enumerate().peekable();
    while lines.peek().is_some() {
        let mut per_stream: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut bytes = 0u64;
        for (n, line) in lines.by_ref().take(chunk.max(1)) {
            let line = line?;
            bytes += line.len() as u64 + 1;
            if line.trim().is_empty() {
                continue;
            }
            let mut v: Value =
                serde_json::from_str(&line).with_context(|| format!("line {}: not JSON", n + 1))?;
            let Some(stream) = v.get("stream").and_then(Value::as_str).map(str::to_string) else {
                bail!("line {}: no \"stream\"", n + 1);
            };
            v.as_object_mut().expect("object").remove("stream");
            per_stream.entry(stream).or_default().push(v);
        }
        let requests: Vec<(String, Vec<Value>)> = per_stream
            .into_iter()
            .flat_map(|(stream, events)| {
                events
                    .chunks(MAX_EVENTS_PER_APPEND)
                    .map(|c| (stream.clone(), c.to_vec()))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut sent = futures::stream::iter(requests.into_iter().map(|(stream, events)| {
            let client = client.clone();
            async move {
                let count = events.len() as u64;
                client
                    .post_json(
                        &format!("/streams/{}/events", segment(&stream)),
                        &json!({ "events": events }),
                    )
                    .await
                    .with_context(|| format!("appending to {stream}"))?;
                Ok::<_, anyhow::Error>(count)
            }
        }))
        .buffer_unordered(concurrency.max(1));
        while let Some(result) = sent.next().await {
            imported += result?;
        }
        bar.inc(bytes);
        let rate = imported as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{imported} events, {rate:.0} events/s"));
    }
    bar.finish();
    Ok(imported)
}
