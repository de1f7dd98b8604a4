//! `sleepy-describe`: a plugin whose `describe` waits for half a minute, for
//! the host's tests. It demonstrates that loading a plugin is bounded by its
//! call deadline, whether the plugin computes or waits, and that no other
//! plugin, and not the server's start, waits for it.

use prism_guest::{Description, Error, Event, Projection, View};

#[derive(Default)]
pub struct SleepyDescribe;

impl Projection for SleepyDescribe {
    fn describe() -> Description {
        std::thread::sleep(std::time::Duration::from_secs(30));
        Description::new("sleepy-describe", env!("CARGO_PKG_VERSION"))
    }

    fn handle(&mut self, view: &mut View, event: &Event) -> Result<(), Error> {
        view.put(&event.stream_id, "{}")
    }
}

prism_guest::export_projection!(SleepyDescribe);
