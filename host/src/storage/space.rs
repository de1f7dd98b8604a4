//! Disk space: how much the database's filesystem has free, measured the way
//! RocksDB measures it, and telling RocksDB's out-of-space errors from others.
//!
//! When a write finds the disk full, RocksDB (7.8, the version we link)
//! stops taking writes: every later write returns the same error, reads go
//! on. Its `SstFileManager` then checks the free space every 5 seconds and
//! resumes by itself (flushing every memtable to a fresh write-ahead log)
//! once [`RESUME_FREE_BYTES`] are free. Nothing of the failed write is
//! applied. Neither the C API of 7.8 nor rust-rocksdb 0.21 offers
//! `DB::Resume()`, so that automatic recovery is the one we rely on; see
//! `crate::log` for what the event log does around it.

use std::io;
use std::path::Path;

use super::WRITE_BUFFER_BYTES;

/// Free bytes RocksDB waits for before resuming writes after running out:
/// its `SstFileManager` reserves the largest write buffer of any column
/// family, so that the flush that recovery starts with has room.
pub const RESUME_FREE_BYTES: u64 = WRITE_BUFFER_BYTES as u64;

/// Free bytes on the filesystem holding `path`, as RocksDB counts them: the
/// blocks free to root when running as root, else those free to anyone.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    let blocks = if rustix::process::geteuid().is_root() {
        stat.f_bfree
    } else {
        stat.f_bavail
    };
    Ok(blocks.saturating_mul(stat.f_bsize))
}

/// Whether RocksDB failed for lack of space: `ENOSPC` from the filesystem
/// (`Status::NoSpace`) or the `SstFileManager`'s own space limit. Later
/// writes repeat the error RocksDB stopped on, so they are recognised too.
pub(crate) fn is_out_of_space(e: &rocksdb::Error) -> bool {
    // rust-rocksdb keeps only the status text; RocksDB spells the sub-code
    // of both statuses the same way in every version.
    is_out_of_space_message(e.as_ref())
}

fn is_out_of_space_message(message: &str) -> bool {
    message.starts_with("IO error: No space left on device")
        || message.starts_with("IO error: Space limit reached")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_space_statuses_are_recognised_and_others_are_not() {
        assert!(is_out_of_space_message(
            "IO error: No space left on device: While appending to file: /d/000004.log: No space left on device"
        ));
        assert!(is_out_of_space_message(
            "IO error: Space limit reached: Max allowed space was reached"
        ));
        assert!(!is_out_of_space_message(
            "IO error: While open a file for appending: /d/LOCK: Permission denied"
        ));
        assert!(!is_out_of_space_message(
            "Corruption: block checksum mismatch"
        ));
    }

    #[test]
    fn free_space_of_an_existing_directory_is_measured() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).unwrap() > 0);
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
