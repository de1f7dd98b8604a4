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
//! compile of one plugin never delays another's file.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{PluginManager, PluginName, names};

/// How long a file must be left alone before it is loaded.
const QUIET: Duration = Duration::from_millis(300);

/// Start watching; the returned watcher must be kept alive.
pub fn watch(manager: PluginManager) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::unbounded_channel::<PluginName>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if let Some(name) = path
                .file_name()
                .and_then(|f| f.to_str())
                .and_then(names::plugin_of_file)
            {
                let _ = tx.send(name);
            }
        }
    })?;
    watcher.watch(manager.dir(), RecursiveMode::NonRecursive)?;
    tokio::spawn(debounce(manager, rx));
    Ok(watcher)
}

/// The size of the file that stands for `name`, if there is one.
fn size_of(dir: &Path, name: &PluginName) -> Option<u64> {
    let path = names::file_of(dir, name)?;
    std::fs::metadata(path).ok().map(|m| m.len())
}

async fn debounce(manager: PluginManager, mut rx: mpsc::UnboundedReceiver<PluginName>) {
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
            Some(Some(name)) => {
                let size = size_of(manager.dir(), &name);
                if size.is_some() && !pending.contains_key(&name) {
                    manager.file_seen(&name);
                }
                pending.insert(name, (Instant::now() + QUIET, size));
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
