//! The component store: the bytes of every plugin generation the server
//! may have to run again (components and view files), by content hash, in
//! `<data>/components/`.
//!
//! The plugin directory says what the operator wants; this store holds what
//! the server is running. After a restart the serving generation is loaded
//! from here, never from the directory, so a rejected file sitting in the
//! directory cannot take a working generation's place. A file is written
//! under a unique temporary name, synced and renamed, so a crash never
//! leaves half a component under its hash.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::record::ContentHash;
use crate::declarative::Kind;

/// Component bytes by content hash.
#[derive(Debug, Clone)]
pub struct ComponentStore {
    dir: PathBuf,
}

impl ComponentStore {
    /// Open (creating if needed) the store in `dir`.
    pub fn open(dir: &Path) -> std::io::Result<ComponentStore> {
        std::fs::create_dir_all(dir)?;
        Ok(ComponentStore {
            dir: dir.to_path_buf(),
        })
    }

    /// Where the bytes of `hash` are kept, by kind: `HASH.wasm` for a
    /// component, `HASH.view` for a view file.
    fn path(&self, hash: &ContentHash, kind: Kind) -> PathBuf {
        self.dir.join(format!("{hash}.{}", suffix(kind)))
    }

    /// Keep `bytes` under `hash` durably. Storing bytes already kept is free.
    pub fn put(&self, hash: &ContentHash, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(hash, Kind::of(bytes));
        if path.exists() {
            return Ok(());
        }
        crate::storage::files::write_atomically(&path, bytes)
    }

    /// The bytes kept under `hash`.
    pub fn get(&self, hash: &ContentHash) -> std::io::Result<Vec<u8>> {
        match std::fs::read(self.path(hash, Kind::Component)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::read(self.path(hash, Kind::ViewFile))
            }
            read => read,
        }
    }

    /// Delete every component not in `keep`, and leftovers of interrupted writes.
    pub fn retain(&self, keep: &HashSet<ContentHash>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let wanted = [Kind::Component, Kind::ViewFile]
                .iter()
                .find_map(|k| name.strip_suffix(suffix(*k))?.strip_suffix('.'))
                .and_then(ContentHash::parse)
                .is_some_and(|h| keep.contains(&h));
            if !wanted {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

fn suffix(kind: Kind) -> &'static str {
    match kind {
        Kind::Component => "wasm",
        Kind::ViewFile => "view",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_round_trip_and_unreferenced_ones_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ComponentStore::open(dir.path()).unwrap();
        let a = ContentHash::of(b"a");
        let b = ContentHash::of(b"b");
        let c = ContentHash::of(b"\0asm");
        store.put(&a, b"a").unwrap();
        store.put(&b, b"b").unwrap();
        store.put(&c, b"\0asm").unwrap();
        store.put(&a, b"a").unwrap();
        std::fs::write(dir.path().join(".incoming-x.tmp"), b"half").unwrap();
        assert_eq!(store.get(&a).unwrap(), b"a");
        assert_eq!(store.get(&c).unwrap(), b"\0asm");
        store
            .retain(&HashSet::from([b.clone(), c.clone()]))
            .unwrap();
        assert!(store.get(&a).is_err());
        assert_eq!(store.get(&b).unwrap(), b"b");
        assert_eq!(store.get(&c).unwrap(), b"\0asm");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
