//! What the log accepts: names, sizes, counts and payloads, checked before
//! anything is written so that bad input changes nothing.

use super::{LogError, NewEvent, json};

/// Longest stream name, in bytes.
pub const MAX_STREAM_NAME_BYTES: usize = 256;
/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE_BYTES: usize = 256;
/// Most events in one append request.
pub const MAX_EVENTS_PER_APPEND: usize = 10_000;

fn check_name(what: &str, value: &str, max: usize) -> Result<(), LogError> {
    if value.is_empty() {
        return Err(LogError::Invalid(format!("{what} must not be empty")));
    }
    if value.len() > max {
        return Err(LogError::Invalid(format!(
            "{what} is {} bytes long; the limit is {max}",
            value.len()
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(LogError::Invalid(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

pub fn check_stream_name(stream: &str) -> Result<(), LogError> {
    check_name("stream name", stream, MAX_STREAM_NAME_BYTES)
}

pub fn check_event_type(event_type: &str) -> Result<(), LogError> {
    check_name("event type", event_type, MAX_EVENT_TYPE_BYTES)
}

pub fn check_event_count(count: usize) -> Result<(), LogError> {
    if count == 0 {
        return Err(LogError::Invalid(
            "an append needs at least one event".into(),
        ));
    }
    if count > MAX_EVENTS_PER_APPEND {
        return Err(LogError::Invalid(format!(
            "{count} events in one append; the limit is {MAX_EVENTS_PER_APPEND}"
        )));
    }
    Ok(())
}

/// `data` and `metadata` must be JSON that every reader decodes alike (see
/// [`json`]).
pub fn check_payload(index: usize, event: &NewEvent) -> Result<(), LogError> {
    for (field, text) in [("data", &event.data), ("metadata", &event.metadata)] {
        json::check(text).map_err(|problem| LogError::InvalidJson {
            index,
            field,
            problem,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_control_characters_are_refused() {
        assert!(check_stream_name("a\nb").is_err());
        assert!(check_event_type("Deposited\u{7f}").is_err());
        assert!(check_stream_name("account-1").is_ok());
    }

    #[test]
    fn empty_and_overlong_names_are_refused() {
        assert!(check_stream_name("").is_err());
        assert!(check_stream_name(&"x".repeat(MAX_STREAM_NAME_BYTES + 1)).is_err());
        assert!(check_stream_name(&"x".repeat(MAX_STREAM_NAME_BYTES)).is_ok());
    }
}
