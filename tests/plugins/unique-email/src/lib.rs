//! `unique-email`: users with a unique index on their email address, for
//! the host's tests of unique indexes. A registration or change that gives
//! two users one address breaks the index: the batch fails like a plugin
//! error, so the plugin halts or dead-letters the event, as configured.
//!
//! Events (stream `user-<id>`): `UserRegistered {"email"}`, `EmailChanged
//! {"email"}`, `UserDeleted {}`. Documents: `user-<id>`: `{"email"}`.

use prism_guest::{Description, Error, Event, FieldKind, Index, Projection, View};
use serde::{Deserialize, Serialize};

#[derive(Default)]
pub struct UniqueEmail;

#[derive(Serialize, Deserialize)]
struct User {
    email: String,
}

impl Projection for UniqueEmail {
    fn describe() -> Description {
        Description::new("unique-email", env!("CARGO_PKG_VERSION"))
            .event_types(["UserRegistered", "EmailChanged", "UserDeleted"])
            .index(
                Index::new("by-email")
                    .field("email", FieldKind::String)
                    .unique(),
            )
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        let key = &event.stream_id;
        match event.event_type.as_str() {
            "UserRegistered" | "EmailChanged" => view.put_json(key, &event.data::<User>()?),
            "UserDeleted" => view.delete(key),
            _ => Ok(()),
        }
    }
}

prism_guest::export_projection!(UniqueEmail);
