//! The batch `handle` receives from the host (`prism:projection@0.5.0`):
//! events packed in one byte buffer, little-endian and unaligned — a count
//! (u32), then per event its position, stream version and recording time
//! (u64 each) and its stream, type, data, metadata and id (each a u32 byte
//! length, then that many bytes of UTF-8). The host packs it
//! (`host/src/runtime/packed.rs`); its tests unpack with this.

use crate::Event;

/// The fewest bytes an event takes: three u64s and five string lengths.
const MIN_EVENT_BYTES: usize = 3 * 8 + 5 * 4;

/// The events of a packed batch, or what is wrong with the buffer.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut reader = Reader { bytes, at: 0 };
    let count = reader.u32()? as usize;
    // Do not trust a count the buffer cannot hold.
    if count > bytes.len() / MIN_EVENT_BYTES {
        return Err(format!(
            "a packed batch of {} bytes cannot hold {count} events",
            bytes.len()
        ));
    }
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        events.push(Event {
            position: reader.u64()?,
            stream_version: reader.u64()?,
            recorded_at: reader.u64()?,
            stream_id: reader.string()?,
            event_type: reader.string()?,
            data: reader.string()?,
            metadata: reader.string()?,
            id: reader.string()?,
        });
    }
    if reader.at != bytes.len() {
        return Err(format!(
            "a packed batch has {} bytes after its last event",
            bytes.len() - reader.at
        ));
    }
    Ok(events)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let Some(end) = end else {
            return Err(format!(
                "a packed batch ends inside an event (at byte {} of {})",
                self.at,
                self.bytes.len()
            ));
        };
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes(bytes.try_into().expect("4 bytes")))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    fn string(&mut self) -> Result<String, String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok(text.to_owned()),
            Err(e) => Err(format!(
                "a packed batch holds a string that is not UTF-8: {e}"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packed(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn text(s: &str) -> Vec<u8> {
        [&(s.len() as u32).to_le_bytes()[..], s.as_bytes()].concat()
    }

    #[test]
    fn reads_the_events_in_order() {
        let bytes = packed(&[
            &1u32.to_le_bytes(),
            &7u64.to_le_bytes(),
            &2u64.to_le_bytes(),
            &99u64.to_le_bytes(),
            &text("account-1"),
            &text("Deposited"),
            &text(r#"{"amount":5}"#),
            &text("{}"),
            &text("00000000-0000-4000-8000-000000000007"),
        ]);
        let events = unpack(&bytes).unwrap();
        assert_eq!(
            events,
            [Event {
                position: 7,
                stream_id: "account-1".into(),
                stream_version: 2,
                event_type: "Deposited".into(),
                data: r#"{"amount":5}"#.into(),
                metadata: "{}".into(),
                recorded_at: 99,
                id: "00000000-0000-4000-8000-000000000007".into(),
            }]
        );
    }

    #[test]
    fn refuses_a_buffer_that_is_not_a_batch() {
        let event = packed(&[
            &7u64.to_le_bytes(),
            &2u64.to_le_bytes(),
            &99u64.to_le_bytes(),
            &text("s"),
            &text("T"),
            &text("{}"),
            &text("{}"),
            &text("id"),
        ]);
        let one = packed(&[&1u32.to_le_bytes(), &event]);
        assert!(unpack(&one).is_ok());
        // Cut short, inside the count or inside the event.
        assert!(unpack(&one[..2]).unwrap_err().contains("ends inside"));
        assert!(
            unpack(&one[..one.len() - 1])
                .unwrap_err()
                .contains("ends inside")
        );
        // More than it says, or a count it cannot hold.
        let extra = packed(&[&one, b"x"]);
        assert!(unpack(&extra).unwrap_err().contains("after its last event"));
        let many = packed(&[&u32::MAX.to_le_bytes(), &event]);
        assert!(unpack(&many).unwrap_err().contains("cannot hold"));
        // A string that is not UTF-8.
        let mut bad = one.clone();
        let at = bad.len() - 1;
        bad[at] = 0xff;
        assert!(unpack(&bad).unwrap_err().contains("not UTF-8"));
        // A length past the end.
        let mut long = one;
        let at = 4 + 24;
        long[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(unpack(&long).unwrap_err().contains("ends inside"));
    }
}
