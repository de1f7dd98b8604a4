//! `prism import`: put an NDJSON file of events into a running server, so
//! that it can be run again — after a failure, a kill, or a success — and
//! the log holds the file's events exactly once, in the file's order.
//!
//! - Every line gets a stable event id: its own `id`, or one derived from
//!   the file's name, the line's number and its content (a UUID v5). The
//!   log's idempotent appends then recognise what is already in.
//! - A line goes into the request as it is written, with only its derived
//!   id spliced in: it is checked (one JSON object with a string `stream`)
//!   but never parsed into a tree and written out again.
//! - Lines go in chunks of whole lines, each one atomic `POST /events` (all
//!   of a chunk's events or none), one chunk at a time, in file order, so
//!   when an import stops, the lines before a point are in and none after
//!   it — and the error says which point. The next chunk is read and
//!   encoded while the current one is in flight.
//! - A chunk stays under the request-size limit (`--max-request-bytes`),
//!   so long lines are never refused wholesale; a byte-order mark and
//!   CRLF line ends are accepted. It holds no more events than one append
//!   of the server's log may (`/healthz`: 1,000 on JetStream).

use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use prism::client::{Client, ClientError};
use prism::log::limits::MAX_EVENTS_PER_APPEND;

/// The namespace of the ids derived for lines without one.
const LINE_IDS: Uuid = Uuid::from_u128(0x7072_6973_6d2d_696d_706f_7274_6c69_6e65);

/// How the import is cut into requests.
#[derive(Debug, Clone, Copy)]
pub struct Chunking {
    /// Most lines in one request.
    pub lines: usize,
    /// Most bytes of JSON in one request (a single longer line goes alone).
    pub bytes: usize,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Imported {
    /// Events appended by this run.
    pub appended: u64,
    /// Events that were already in the log (an earlier run put them there).
    pub already_in: u64,
}

/// A chunk of lines, encoded as the body of `POST /events`.
struct Chunk {
    /// Line number (1-based) of each event, in order.
    lines: Vec<u64>,
    body: Vec<u8>,
    /// File bytes the chunk covers, for progress.
    bytes: u64,
}

/// Reads the file line by line into chunks.
struct Chunker<R> {
    lines: std::iter::Enumerate<std::io::Lines<R>>,
    source: String,
    chunking: Chunking,
    /// A line read but left for the next chunk.
    held: Option<(u64, Vec<u8>, u64)>,
}

/// What the import looks at in a line; every other member is only checked
/// to be JSON.
#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    stream: Option<&'a RawValue>,
    /// Present even as `null`: a line that names its id keeps it as written.
    #[serde(default, deserialize_with = "present")]
    id: Option<IgnoredAny>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<IgnoredAny>, D::Error> {
    IgnoredAny::deserialize(d).map(Some)
}

impl<R: BufRead> Chunker<R> {
    /// The event of line `number` as the JSON that goes into the request:
    /// the line itself, with a stable id spliced in if it has none.
    fn event(&self, number: u64, text: &str) -> anyhow::Result<Vec<u8>> {
        let object = text.trim();
        if !object.starts_with('{') {
            bail!("line {number}: not a JSON object");
        }
        let line: Line = serde_json::from_str(object)
            .with_context(|| format!("line {number}: not a JSON object"))?;
        if !line.stream.is_some_and(|s| s.get().starts_with('"')) {
            bail!("line {number}: no \"stream\"");
        }
        if line.id.is_some() {
            return Ok(object.as_bytes().to_vec());
        }
        let digest = Sha256::digest(text.as_bytes());
        let name = format!("{}:{number}:{}", self.source, hex::encode(digest));
        let id = Uuid::new_v5(&LINE_IDS, name.as_bytes());
        // `{"id":"…",` and the rest of the object: it has a member (`stream`).
        let mut event = Vec::with_capacity(object.len() + 48);
        event.extend_from_slice(b"{\"id\":\"");
        event.extend_from_slice(
            id.hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        event.extend_from_slice(b"\",");
        event.extend_from_slice(&object.as_bytes()[1..]);
        Ok(event)
    }

    fn next_line(&mut self) -> anyhow::Result<Option<(u64, Vec<u8>, u64)>> {
        if let Some(held) = self.held.take() {
            return Ok(Some(held));
        }
        for (index, line) in self.lines.by_ref() {
            let number = index as u64 + 1;
            let line = line.with_context(|| format!("reading line {number}"))?;
            let size = line.len() as u64 + 1;
            let text = line
                .strip_prefix('\u{feff}')
                .filter(|_| number == 1)
                .unwrap_or(&line);
            let text = text.strip_suffix('\r').unwrap_or(text);
            if text.trim().is_empty() {
                continue;
            }
            return Ok(Some((number, self.event(number, text)?, size)));
        }
        Ok(None)
    }

    fn next_chunk(&mut self) -> anyhow::Result<Option<Chunk>> {
        let mut chunk = Chunk {
            lines: Vec::new(),
            body: b"{\"events\":[".to_vec(),
            bytes: 0,
        };
        let max_lines = self.chunking.lines.clamp(1, MAX_EVENTS_PER_APPEND);
        while chunk.lines.len() < max_lines {
            let Some((number, encoded, size)) = self.next_line()? else {
                break;
            };
            if !chunk.lines.is_empty() && chunk.body.len() + encoded.len() + 2 > self.chunking.bytes
            {
                self.held = Some((number, encoded, size));
                break;
            }
            if !chunk.lines.is_empty() {
                chunk.body.push(b',');
            }
            chunk.body.extend_from_slice(&encoded);
            chunk.lines.push(number);
            chunk.bytes += size;
        }
        if chunk.lines.is_empty() {
            return Ok(None);
        }
        chunk.body.extend_from_slice(b"]}");
        Ok(Some(chunk))
    }
}

/// Why the import stopped, said so the operator knows what is in and how
/// to go on.
fn stopped(error: anyhow::Error, committed_through: Option<u64>, file: &Path) -> anyhow::Error {
    let state = match committed_through {
        Some(line) => format!(
            "lines 1 to {line} are in the log; nothing after line {line} was appended by this run"
        ),
        None => "nothing of the file was appended by this run".into(),
    };
    error.context(format!(
        "{state}. Fix the problem and run the same command again: lines already in the log \
         are recognised by their ids and not appended twice ({})",
        file.display()
    ))
}

pub async fn run(client: &Client, file: &Path, chunking: Chunking) -> anyhow::Result<Imported> {
    // No chunk larger than one append of the server's log may be (the
    // JetStream log takes fewer events per append than the embedded one).
    let mut chunking = chunking;
    if let Ok(health) = client.get("/healthz").await
        && let Some(most) = health["log"]["max_events_per_append"].as_u64()
    {
        chunking.lines = chunking.lines.min(most.max(1) as usize);
    }
    let total_bytes = std::fs::metadata(file)
        .with_context(|| format!("reading {}", file.display()))?
        .len();
    let reader = std::io::BufReader::new(std::fs::File::open(file)?);
    let source = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut chunker = Chunker {
        lines: reader.lines().enumerate(),
        source,
        chunking,
        held: None,
    };
    let bar = ProgressBar::with_draw_target(
        Some(total_bytes),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {percent:>3}% {msg} [{elapsed_precise}, eta {eta}]")
            .expect("template"),
    );
    let started = Instant::now();
    let mut imported = Imported::default();
    let mut committed_through: Option<u64> = None;
    let mut next = chunker.next_chunk();
    loop {
        let chunk = match next {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => return Err(stopped(e, committed_through, file)),
        };
        let request = client.post_json_bytes("/events", chunk.body);
        // Read and encode the next chunk while this one is in flight.
        let (answer, following) = tokio::join!(request, async { chunker.next_chunk() });
        next = following;
        match answer {
            Ok(outcome) => {
                let count = chunk.lines.len() as u64;
                if outcome["duplicate"] == true {
                    imported.already_in += count;
                } else {
                    imported.appended += count;
                }
                committed_through = chunk.lines.last().copied();
            }
            Err(e) => {
                let line = match &e {
                    ClientError::Api { error, .. } => error["event_index"]
                        .as_u64()
                        .and_then(|i| chunk.lines.get(i as usize)),
                    _ => None,
                };
                let e = match line {
                    Some(line) => anyhow::Error::new(e).context(format!("line {line} was refused")),
                    None => anyhow::Error::new(e).context(format!(
                        "the chunk of lines {} to {} was refused",
                        chunk.lines[0],
                        chunk.lines[chunk.lines.len() - 1]
                    )),
                };
                return Err(stopped(e, committed_through, file));
            }
        }
        bar.inc(chunk.bytes);
        let done = imported.appended + imported.already_in;
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_message(format!("{done} events, {rate:.0} events/s"));
    }
    bar.finish_and_clear();
    let took = started.elapsed().max(Duration::from_millis(1));
    tracing::debug!(?took, "import finished");
    Ok(imported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// A chunker over `text` as the file `events.ndjson`.
    fn chunker(text: &str, chunking: Chunking) -> Chunker<std::io::Cursor<Vec<u8>>> {
        Chunker {
            lines: std::io::Cursor::new(text.as_bytes().to_vec())
                .lines()
                .enumerate(),
            source: "events.ndjson".into(),
            chunking,
            held: None,
        }
    }

    fn chunks(text: &str, chunking: Chunking) -> Vec<(Vec<u64>, Value)> {
        let mut chunker = chunker(text, chunking);
        let mut out = Vec::new();
        while let Some(chunk) = chunker.next_chunk().unwrap() {
            out.push((chunk.lines, serde_json::from_slice(&chunk.body).unwrap()));
        }
        out
    }

    #[test]
    fn lines_get_stable_ids_and_a_bom_and_crlf_are_accepted() {
        let text = "\u{feff}{\"stream\":\"a\",\"type\":\"T\"}\r\n\r\n{\"stream\":\"b\",\"type\":\"T\",\"id\":\"00000000-0000-4000-8000-000000000001\"}\r\n";
        let every = Chunking {
            lines: 100,
            bytes: 1 << 20,
        };
        let first = chunks(text, every);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].0, [1, 3]);
        let events = first[0].1["events"].as_array().unwrap();
        assert_eq!(events[1]["id"], "00000000-0000-4000-8000-000000000001");
        // The same file gives the same ids; another line content another id.
        assert_eq!(chunks(text, every)[0].1, first[0].1);
        let changed = text.replace("\"a\"", "\"c\"");
        assert_ne!(
            chunks(&changed, every)[0].1["events"][0]["id"],
            events[0]["id"]
        );
    }

    #[test]
    fn a_line_goes_into_the_request_as_written_with_only_its_id_added() {
        let text = "{\"stream\":\"a\",\"type\":\"T\"}\n  {\"type\": \"T\", \"stream\": \"b\", \"id\": null, \"data\": {\"n\": 1.50}}\n";
        let every = Chunking {
            lines: 100,
            bytes: 1 << 20,
        };
        let chunker = chunker("", every);
        // The id a line gets is part of the file format: a run of an older
        // or newer `prism import` must recognise what this one put in.
        let first = chunker
            .event(1, "{\"stream\":\"a\",\"type\":\"T\"}")
            .unwrap();
        assert_eq!(
            String::from_utf8(first).unwrap(),
            "{\"id\":\"4ad99b00-dc29-5d44-bddd-a958c2c4711d\",\"stream\":\"a\",\"type\":\"T\"}"
        );
        // A line that names its id, even as null, is sent as written.
        let second = chunker.event(2, text.lines().nth(1).unwrap()).unwrap();
        assert_eq!(
            String::from_utf8(second).unwrap(),
            "{\"type\": \"T\", \"stream\": \"b\", \"id\": null, \"data\": {\"n\": 1.50}}"
        );
        let body = &chunks(text, every)[0].1;
        assert_eq!(body["events"].as_array().unwrap().len(), 2);
        for bad in [
            "[\"a\", null]",
            "{\"stream\": 5}",
            "{\"stream\":\"a\"} x",
            "{\"stream\":\"a\"",
        ] {
            let error = chunker.event(7, bad).err().unwrap();
            assert!(error.to_string().starts_with("line 7"), "{bad}: {error}");
        }
    }

    #[test]
    fn chunks_stay_under_the_byte_bound_and_a_long_line_goes_alone() {
        let long = format!(
            "{{\"stream\":\"s\",\"type\":\"T\",\"data\":\"{}\"}}",
            "x".repeat(5000)
        );
        let short = "{\"stream\":\"s\",\"type\":\"T\"}";
        let text = [short, short, &long, short].join("\n");
        let cut = chunks(
            &text,
            Chunking {
                lines: 100,
                bytes: 1000,
            },
        );
        let lines: Vec<Vec<u64>> = cut.iter().map(|(l, _)| l.clone()).collect();
        assert_eq!(lines, [vec![1, 2], vec![3], vec![4]]);
    }

    #[test]
    fn a_line_that_is_not_an_event_names_its_number() {
        let mut chunker = chunker(
            "{\"stream\":\"s\",\"type\":\"T\"}\n[1]\n",
            Chunking {
                lines: 10,
                bytes: 1 << 20,
            },
        );
        let error = chunker.next_chunk().err().unwrap();
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}
