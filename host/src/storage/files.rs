//! Whole files written so that a reader — or a restart after a crash — sees
//! the old content or the new, never a part: plugin files, stored
//! components, compiled-component cache entries.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path`: into a temporary file of this writer's own in
/// the same directory (`.incoming-*.tmp`, which the plugin directory's
/// watcher ignores), synced, renamed over `path`, and the directory synced
/// so the rename itself survives a crash. Concurrent writers of one path
/// never share a temporary file; the last rename wins.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".incoming-")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_whole_file_and_leaves_no_temporary_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wasm");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two, longer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two, longer");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["a.wasm"]);
    }
}
