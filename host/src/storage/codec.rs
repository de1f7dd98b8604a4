//! Compact binary encoding of recorded events and big-endian keys.
//!
//! Events are stored as length-prefixed fields rather than JSON so that a
//! replay decodes them without a JSON parser; the JSON payload itself is kept
//! as the text the client sent.

use super::StorageError;

const EVENT_FORMAT: u8 = 1;

/// An event's fields as stored: owned when decoded, borrowed when the writer
/// encodes (so appending copies no string just to encode it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredEvent<S = String> {
    pub id: [u8; 16],
    pub recorded_at_ms: u64,
    pub stream_version: u64,
    pub stream: S,
    pub event_type: S,
    pub data: S,
    pub metadata: S,
}

pub(crate) fn encode_event<S: AsRef<str>>(e: &StoredEvent<S>) -> Vec<u8> {
    let (stream, event_type, data, metadata) = (
        e.stream.as_ref(),
        e.event_type.as_ref(),
        e.data.as_ref(),
        e.metadata.as_ref(),
    );
    let len = 1 + 16 + 8 + 8 + 16 + stream.len() + event_type.len() + data.len() + metadata.len();
    let mut out = Vec::with_capacity(len);
    out.push(EVENT_FORMAT);
    out.extend_from_slice(&e.id);
    out.extend_from_slice(&e.recorded_at_ms.to_le_bytes());
    out.extend_from_slice(&e.stream_version.to_le_bytes());
    for field in [stream, event_type, data, metadata] {
        out.extend_from_slice(&(field.len() as u32).to_le_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if self.bytes.len() < n {
            return Err(StorageError::Corrupt("truncated event record".into()));
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    fn len(&mut self) -> Result<usize, StorageError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")) as usize)
    }

    fn str(&mut self) -> Result<&'a str, StorageError> {
        let len = self.len()?;
        std::str::from_utf8(self.take(len)?)
            .map_err(|_| StorageError::Corrupt("event field is not UTF-8".into()))
    }
}

/// Only the stream and the event type of an encoded event, without copying
/// anything: lets a reader skip events nobody wants before paying for a
/// full decode.
pub(crate) fn stream_and_type(bytes: &[u8]) -> Result<(&str, &str), StorageError> {
    let mut r = Reader { bytes };
    r.take(1 + 16 + 8 + 8)?;
    Ok((r.str()?, r.str()?))
}

pub(crate) fn decode_event(bytes: &[u8]) -> Result<StoredEvent, StorageError> {
    let e = decode_event_ref(bytes)?;
    Ok(StoredEvent {
        id: e.id,
        recorded_at_ms: e.recorded_at_ms,
        stream_version: e.stream_version,
        stream: e.stream.to_owned(),
        event_type: e.event_type.to_owned(),
        data: e.data.to_owned(),
        metadata: e.metadata.to_owned(),
    })
}

/// An encoded event's fields borrowed from `bytes`: serving an event costs
/// no copy of its payload.
pub(crate) fn decode_event_ref(bytes: &[u8]) -> Result<StoredEvent<&str>, StorageError> {
    let mut r = Reader { bytes };
    let format = r.take(1)?[0];
    if format != EVENT_FORMAT {
        return Err(StorageError::Corrupt(format!(
            "unknown event format {format}"
        )));
    }
    let id: [u8; 16] = r.take(16)?.try_into().expect("16 bytes");
    Ok(StoredEvent {
        id,
        recorded_at_ms: r.u64()?,
        stream_version: r.u64()?,
        stream: r.str()?,
        event_type: r.str()?,
        data: r.str()?,
        metadata: r.str()?,
    })
}

pub(crate) fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

pub(crate) fn decode_u64(bytes: &[u8]) -> Result<u64, StorageError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StorageError::Corrupt("expected an 8-byte number".into()))?;
    Ok(u64::from_be_bytes(arr))
}

/// Key of a stream-index entry. Stream names never contain control
/// characters, so `0x00` cleanly separates the name from the version and a
/// stream's entries sort by version.
pub(crate) fn stream_key(stream: &str, version: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(stream.len() + 9);
    key.extend_from_slice(stream.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// A stream-index entry: a run of a stream's events with consecutive
/// versions at consecutive positions, as one append writes them, so an
/// append of a thousand events to one stream writes one entry rather than a
/// thousand. It is keyed by the run's last version ([`stream_key`]); a seek
/// to a version lands on the run that holds it. The value is the last
/// event's position, followed, for a run of more than one event, by the
/// run's length. An 8-byte value is a run of one event: every entry of a log
/// written before runs reads as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamRun {
    pub(crate) last_position: u64,
    pub(crate) len: u64,
}

impl StreamRun {
    pub(crate) fn encode(self) -> RunBytes {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.last_position.to_be_bytes());
        if self.len == 1 {
            return RunBytes { bytes, len: 8 };
        }
        bytes[8..].copy_from_slice(&self.len.to_be_bytes());
        RunBytes { bytes, len: 16 }
    }

    /// The entry under the key of `last_version`.
    pub(crate) fn decode(last_version: u64, value: &[u8]) -> Result<Self, StorageError> {
        let run = match value.len() {
            8 => StreamRun {
                last_position: decode_u64(value)?,
                len: 1,
            },
            16 => StreamRun {
                last_position: decode_u64(&value[..8])?,
                len: decode_u64(&value[8..])?,
            },
            n => {
                return Err(StorageError::Corrupt(format!(
                    "a stream index entry of {n} bytes"
                )));
            }
        };
        if run.len == 0 || run.len - 1 > last_version || run.len - 1 > run.last_position {
            return Err(StorageError::Corrupt(format!(
                "a stream index run of {} events ending at version {last_version}, position {}",
                run.len, run.last_position
            )));
        }
        Ok(run)
    }

    /// The run's events from `version` on (the first one's if `version` is
    /// before the run): each one's version and position.
    pub(crate) fn versions_from(
        self,
        last_version: u64,
        version: u64,
    ) -> impl Iterator<Item = (u64, u64)> {
        let first_version = last_version - (self.len - 1);
        let first_position = self.last_position - (self.len - 1);
        (version.max(first_version)..=last_version)
            .map(move |v| (v, first_position + (v - first_version)))
    }
}

/// An encoded [`StreamRun`], without an allocation.
pub(crate) struct RunBytes {
    bytes: [u8; 16],
    len: usize,
}

impl AsRef<[u8]> for RunBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_through_the_codec() {
        let event = StoredEvent {
            id: [7; 16],
            recorded_at_ms: 1_700_000_000_000,
            stream_version: 3,
            stream: "account-1".into(),
            event_type: "Deposited".into(),
            data: r#"{"amount":10}"#.into(),
            metadata: "{}".into(),
        };
        let bytes = encode_event(&event);
        assert_eq!(decode_event(&bytes).unwrap(), event);
        let borrowed = decode_event_ref(&bytes).unwrap();
        assert_eq!(
            (borrowed.stream, borrowed.data, borrowed.metadata),
            ("account-1", r#"{"amount":10}"#, "{}")
        );
        assert_eq!(stream_and_type(&bytes).unwrap(), ("account-1", "Deposited"));
    }

    #[test]
    fn truncated_record_is_reported_as_corrupt() {
        let bytes = encode_event(&StoredEvent {
            id: [0; 16],
            recorded_at_ms: 0,
            stream_version: 0,
            stream: "s",
            event_type: "t",
            data: "{}",
            metadata: "{}",
        });
        assert!(decode_event(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn stream_runs_round_trip_and_an_old_entry_is_a_run_of_one() {
        for run in [
            StreamRun {
                last_position: 41,
                len: 1,
            },
            StreamRun {
                last_position: 1041,
                len: 1000,
            },
        ] {
            let bytes = run.encode();
            assert_eq!(bytes.as_ref().len(), if run.len == 1 { 8 } else { 16 });
            assert_eq!(StreamRun::decode(999, bytes.as_ref()).unwrap(), run);
        }
        // Before runs, every entry was the event's position alone.
        let old = StreamRun::decode(7, &u64_key(12)).unwrap();
        assert_eq!(old.versions_from(7, 0).collect::<Vec<_>>(), [(7, 12)]);
        let run = StreamRun {
            last_position: 20,
            len: 3,
        };
        assert_eq!(
            run.versions_from(5, 0).collect::<Vec<_>>(),
            [(3, 18), (4, 19), (5, 20)]
        );
        assert_eq!(
            run.versions_from(5, 4).collect::<Vec<_>>(),
            [(4, 19), (5, 20)]
        );
        assert_eq!(run.versions_from(5, 6).count(), 0);
    }

    #[test]
    fn impossible_stream_runs_are_corrupt() {
        let bad = |last_version, last_position, len| {
            let mut value = u64_key(last_position).to_vec();
            value.extend_from_slice(&u64_key(len));
            StreamRun::decode(last_version, &value).is_err()
        };
        assert!(bad(5, 100, 0), "empty");
        assert!(bad(5, 100, 7), "more events than versions");
        assert!(bad(50, 3, 5), "more events than positions");
        assert!(!bad(4, 4, 5));
        assert!(StreamRun::decode(1, &[0; 12]).is_err());
    }

    #[test]
    fn stream_keys_sort_by_version() {
        assert!(stream_key("a", 2) < stream_key("a", 10));
        assert!(stream_key("a", u64::MAX) < stream_key("a-b", 0));
    }
}
