//! Watches the plugin directory and turns file changes into installs and
//! removals.
//!
//! File events are debounced per plugin: a file is looked at only after it
//! has been quiet for `QUIET` and its size has stopped changing, so a slow
//! `cp` is loaded once, complete. Editor temp files and dotfiles are not
//! plugin names and are ignored. (`cp x.wasm dir/.x.tmp && mv dir/.x.tmp
//! dir/NAME.wasm` is still the safe way: the rename is atomic; likewise for
//! `NAME.view.yaml`.) A plugin whose file is replaced by one of another
//! kind (`NAME.wasm` by `NAME.view.yaml`) gets events for both names, and
//! acts once both have settled, on the file modified last. A settled file
//! is handed to its plugin's task without waiting for the task, so a slow
//! compile of one plugin never delays another's file. A file renamed into
//! the directory is complete the moment it appears, so it is looked at
//! once, without the quiet period (unless it is written to afterwards).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{PluginManager, PluginName, names};

/// How long a file must be left alone before it is loaded.
const QUIET: Duration = Duration::from_millis(300);

/// Start watching; the returned watcher must be kept alive.
pub fn watch(manager: PluginManager) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::unbounded_channel::<Seen>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            for seen in seen(&event) {
                let _ = tx.send(seen);
            }
        }
    })?;
    watcher.watch(manager.dir(), RecursiveMode::NonRecursive)?;
    tokio::spawn(debounce(manager, rx));
    Ok(watcher)
}

/// A change to the file of a plugin.
struct Seen {
    name: PluginName,
    /// The file was renamed into place: complete as it is.
    renamed_in: bool,
}

/// The plugin files a file event is about.
fn seen(event: &notify::Event) -> Vec<Seen> {
    if matches!(event.kind, EventKind::Access(_)) {
        return Vec::new();
    }
    // A rename names its destination last.
    let renamed_to = matches!(
        event.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
    .then(|| event.paths.len().saturating_sub(1));
    event
        .paths
        .iter()
        .enumerate()
        .filter_map(|(i, path)| {
            let name = names::plugin_of_file(path.file_name()?.to_str()?)?;
            Some(Seen {
                name,
                renamed_in: renamed_to == Some(i),
            })
        })
        .collect()
}

/// The size of the file that stands for `name`, if there is one.
fn size_of(dir: &Path, name: &PluginName) -> Option<u64> {
    let path = names::file_of(dir, name)?;
    std::fs::metadata(path).ok().map(|m| m.len())
}

async fn debounce(manager: PluginManager, mut rx: mpsc::UnboundedReceiver<Seen>) {
    // Plugin → (when it may be looked at, its size when last seen).
    let mut pending: HashMap<PluginName, (Instant, Option<u64>)> = HashMap::new();
    loop {
        let next = pending.values().map(|(at, _)| *at).min();
        let received = match next {
            Some(at) => tokio::select! {
                r = rx.recv() => r.map(Some),
                _ = tokio::time::sleep_until(at) => Some(None),
            },
            None => rx.recv().await.map(Some),
        };
        match received {
            None => return,
            Some(Some(Seen { name, renamed_in })) => {
                let size = size_of(manager.dir(), &name);
                if size.is_some() && !pending.contains_key(&name) {
                    manager.file_seen(&name);
                }
                let quiet = if renamed_in { Duration::ZERO } else { QUIET };
                pending.insert(name, (Instant::now() + quiet, size));
            }
            Some(None) => {
                let now = Instant::now();
                let due: Vec<PluginName> = pending
                    .iter()
                    .filter(|(_, (at, _))| *at <= now)
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in due {
                    let (_, seen) = pending.remove(&name).expect("due entry");
                    let size = size_of(manager.dir(), &name);
                    if size != seen {
                        // Still being written: look again later.
                        pending.insert(name, (Instant::now() + QUIET, size));
                        continue;
                    }
                    manager.file_changed(&name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, CreateKind, DataChange};

    use super::*;

    fn seen_of(kind: EventKind, paths: &[&str]) -> Vec<(String, bool)> {
        let mut event = notify::Event::new(kind);
        for p in paths {
            event = event.add_path(format!("/plugins/{p}").into());
        }
        seen(&event)
            .into_iter()
            .map(|s| (s.name.to_string(), s.renamed_in))
            .collect()
    }

    #[test]
    fn only_a_file_renamed_into_place_skips_the_quiet_period() {
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let moved = |mode| EventKind::Modify(ModifyKind::Name(mode));
        // `mv .bank.tmp bank.wasm`: the temp file is no plugin's.
        assert_eq!(
            seen_of(both, &[".bank.tmp", "bank.wasm"]),
            [("bank".to_string(), true)]
        );
        assert_eq!(
            seen_of(moved(RenameMode::To), &["bank.wasm"]),
            [("bank".to_string(), true)]
        );
        // Renamed away, or renamed to another plugin's name: the source
        // is gone, not complete.
        assert_eq!(
            seen_of(moved(RenameMode::From), &["bank.wasm"]),
            [("bank".to_string(), false)]
        );
        assert_eq!(
            seen_of(both, &["old.wasm", "bank.wasm"]),
            [("old".to_string(), false), ("bank".to_string(), true)]
        );
        // Written in place (`cp`): it may still be growing.
        for kind in [
            EventKind::Create(CreateKind::File),
            EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        ] {
            assert_eq!(seen_of(kind, &["bank.wasm"]), [("bank".to_string(), false)]);
        }
        assert!(seen_of(EventKind::Access(AccessKind::Any), &["bank.wasm"]).is_empty());
    }
}
