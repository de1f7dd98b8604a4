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
    fn stream_keys_sort_by_version() {
        assert!(stream_key("a", 2) < stream_key("a", 10));
        assert!(stream_key("a", u64::MAX) < stream_key("a-b", 0));
    }
}
