//! A batch of events as `handle` of `prism:projection@0.5.0` takes it: one
//! byte buffer (the layout is the WIT's, next to `handle`), so that the
//! events cross into the plugin's memory in one copy. Handing them over as
//! a `list<event>` costs a call into the plugin (its `realloc`) for each of
//! an event's five strings, which was about a quarter of a replay's
//! projector thread.

use super::bindings::Event;

/// Pack `batch` into `out`, replacing what it held (the caller keeps the
/// buffer from batch to batch, so that it is allocated once).
pub(crate) fn pack(batch: &[Event], out: &mut Vec<u8>) {
    out.clear();
    let count = u32::try_from(batch.len()).expect("a batch has fewer than 2^32 events");
    out.extend_from_slice(&count.to_le_bytes());
    for event in batch {
        out.extend_from_slice(&event.position.to_le_bytes());
        out.extend_from_slice(&event.stream_version.to_le_bytes());
        out.extend_from_slice(&event.recorded_at.to_le_bytes());
        for text in [
            &event.stream_id,
            &event.event_type,
            &event.data,
            &event.metadata,
            &event.id,
        ] {
            let len = u32::try_from(text.len()).expect("a string of an event is under 4 GiB");
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(position: u64, stream: &str, data: &str) -> Event {
        Event {
            position,
            stream_id: stream.into(),
            stream_version: position * 2,
            event_type: "Deposited".into(),
            data: data.into(),
            metadata: "{}".into(),
            recorded_at: 1_700_000_000_000 + position,
            id: format!("00000000-0000-4000-8000-{position:012}"),
        }
    }

    /// The SDK's reader gives back exactly the events packed, strings of
    /// every size (empty, multi-byte UTF-8) included.
    #[test]
    fn the_sdk_unpacks_what_the_host_packs() {
        let batch = vec![
            event(1, "account-1", r#"{"amount":5}"#),
            event(2, "", ""),
            event(u64::MAX / 2, "κόσμε-🦀", &"x".repeat(70_000)),
        ];
        let mut packed = vec![9; 3];
        pack(&batch, &mut packed);
        let unpacked = prism_guest::packed::unpack(&packed).unwrap();
        assert_eq!(unpacked.len(), batch.len());
        for (got, want) in unpacked.iter().zip(&batch) {
            assert_eq!(got.position, want.position);
            assert_eq!(got.stream_id, want.stream_id);
            assert_eq!(got.stream_version, want.stream_version);
            assert_eq!(got.event_type, want.event_type);
            assert_eq!(got.data, want.data);
            assert_eq!(got.metadata, want.metadata);
            assert_eq!(got.recorded_at, want.recorded_at);
            assert_eq!(got.id, want.id);
        }
        pack(&[], &mut packed);
        assert_eq!(packed, 0u32.to_le_bytes());
        assert!(prism_guest::packed::unpack(&packed).unwrap().is_empty());
    }
}
