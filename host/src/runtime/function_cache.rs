//! Compiled functions kept between compilations of different components.
//!
//! A new version of a plugin is a new file, so the whole-component cache
//! (`Runtime::compile`) cannot help it. But most of its functions are the
//! ones the last version had: the SDK, serde, the standard library — and a
//! Python or JavaScript component is an interpreter of several megabytes
//! around a little user code. Cranelift's incremental cache finds a
//! function it compiled before by a hash of its code and skips compiling it
//! again; this module is where those functions are kept.
//!
//! # The pack
//! One append-only file in the cache directory, `functions.pack`, of
//! records `key length (u32 LE) · value length (u32 LE) · SHA-256 of key
//! and value · key · value`. On opening, the records' keys are indexed in
//! memory (key → where the value is); a value is read from the file when
//! asked for and handed out only if its digest matches. It is a cache, so
//! nothing is synced: a record cut short by a crash is cut off when the
//! pack is next opened, and a function whose record is lost or damaged is
//! simply compiled again.
//!
//! One process uses a pack at a time (an exclusive `flock`); a second one
//! sharing the cache directory compiles without it.
//!
//! # Bounded
//! Each compile adds the functions it did not find, and some functions of
//! unchanged code get another key from one compile to the next, so the pack
//! grows with every new version. When a function would take it past
//! [`MAX_PACK_BYTES`], it is compacted: rewritten beside the old one (then
//! renamed over it) with the functions found or added since it was opened,
//! then the most recently added others, up to half that size. A pack found
//! past the bound when opening is compacted the same way. A pack that
//! cannot be compacted (a full disk) takes no more functions until it is
//! next opened.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

/// The pack's file name in the cache directory.
const PACK: &str = "functions.pack";

/// What a pack is compacted into before it is renamed over the pack.
const COMPACTING: &str = "functions.pack.compacting";

/// Size past which the pack is compacted to half of it. A Python
/// component's functions take about 30 MB.
pub(crate) const MAX_PACK_BYTES: u64 = 512 << 20;

/// Bytes before a record's key: two lengths and the digest.
const HEADER: usize = 4 + 4 + 32;

/// Where a value is in the pack.
#[derive(Debug, Clone, Copy)]
struct Place {
    offset: u64,
    len: u32,
    digest: [u8; 32],
    /// Found or added since the pack was opened: kept first when compacting.
    used: bool,
}

/// The pack, open for reading and appending.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    dir: PathBuf,
    /// Size past which the pack is compacted ([`MAX_PACK_BYTES`]).
    limit: u64,
    state: Mutex<State>,
    /// Functions handed out and functions kept, since opening.
    found: AtomicU64,
    kept: AtomicU64,
}

#[derive(Debug)]
struct State {
    /// The pack (replaced when compacted; a reader may still hold the old
    /// one, whose records stay where its place said).
    file: Arc<File>,
    index: HashMap<Vec<u8>, Place>,
    /// Where the next record goes.
    end: u64,
    /// Compacting failed: the pack takes no more functions.
    full: bool,
}

fn digest(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u32).to_le_bytes());
    hasher.update(key);
    hasher.update(value);
    hasher.finalize().into()
}

impl FunctionCache {
    /// Open (or create) the pack in `dir`. `None`, after a warning, when it
    /// cannot be used: compiling then works as without it.
    pub(crate) fn open(dir: &Path) -> Option<FunctionCache> {
        Self::open_with_limit(dir, MAX_PACK_BYTES)
    }

    fn open_with_limit(dir: &Path, limit: u64) -> Option<FunctionCache> {
        match Self::try_open(dir, limit) {
            Ok(cache) => cache,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "compiled functions are not kept: the function cache cannot be opened");
                None
            }
        }
    }

    fn try_open(dir: &Path, limit: u64) -> std::io::Result<Option<FunctionCache>> {
        let path = dir.join(PACK);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if lock(&file).is_err() {
            tracing::info!(path = %path.display(), "another process uses the function cache; compiling without it");
            return Ok(None);
        }
        let size = file.metadata()?.len();
        let mut index = HashMap::new();
        let mut end = 0u64;
        {
            let mut reader = std::io::BufReader::new(&file);
            while let Some((key, place)) = next_record(&mut reader, end, size)? {
                end = place.offset + u64::from(place.len);
                index.insert(key, place);
            }
        }
        if end < size {
            // A record cut short by a crash: drop it.
            file.set_len(end)?;
        }
        // What a compaction cut short by a crash left.
        let _ = std::fs::remove_file(dir.join(COMPACTING));
        let cache = FunctionCache {
            dir: dir.to_path_buf(),
            limit,
            state: Mutex::new(State {
                file: Arc::new(file),
                index,
                end,
                full: false,
            }),
            found: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        };
        {
            let mut state = cache.state.lock().expect("function cache");
            if state.end > limit {
                cache.compact(&mut state);
            }
        }
        Ok(Some(cache))
    }

    /// How many functions the pack holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.state.lock().expect("function cache").index.len()
    }

    /// Functions found in the pack and functions added to it, so far.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.found.load(Ordering::Relaxed),
            self.kept.load(Ordering::Relaxed),
        )
    }

    /// Rewrite the pack with the functions in use, then the most recently
    /// added ones, up to half its limit. On failure keep it as it is, taking
    /// no more functions.
    fn compact(&self, state: &mut State) {
        let before = state.end;
        match self.try_compact(state) {
            Ok(()) => tracing::info!(
                before,
                after = state.end,
                functions = state.index.len(),
                "function cache compacted"
            ),
            Err(e) => {
                let _ = std::fs::remove_file(self.dir.join(COMPACTING));
                tracing::warn!(error = %e, "the function cache could not be compacted; it takes no more functions");
                state.full = true;
            }
        }
    }

    fn try_compact(&self, state: &mut State) -> std::io::Result<()> {
        let record_len =
            |key: &[u8], place: &Place| (HEADER + key.len()) as u64 + u64::from(place.len);
        let mut order: Vec<(&Vec<u8>, &Place)> = state.index.iter().collect();
        // In use first, then the newest.
        order.sort_by_key(|(_, place)| (!place.used, std::cmp::Reverse(place.offset)));
        let mut budget = self.limit / 2;
        let mut kept: Vec<(&Vec<u8>, &Place)> = Vec::new();
        for (key, place) in order {
            let len = record_len(key, place);
            if len <= budget {
                budget -= len;
                kept.push((key, place));
            }
        }
        // Records keep their order, so the pack still reads oldest first.
        kept.sort_by_key(|(_, place)| place.offset);

        let path = self.dir.join(COMPACTING);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        // Locked before it is renamed into place, so that no other process
        // takes the new pack in between.
        lock(&file)?;
        let mut index = HashMap::with_capacity(kept.len());
        let mut end = 0u64;
        let mut record = Vec::new();
        for (key, place) in kept {
            let start = place.offset - (HEADER + key.len()) as u64;
            record.resize(record_len(key, place) as usize, 0);
            state.file.read_exact_at(&mut record, start)?;
            file.write_all_at(&record, end)?;
            let offset = end + (HEADER + key.len()) as u64;
            index.insert(key.clone(), Place { offset, ..*place });
            end += record.len() as u64;
        }
        std::fs::rename(&path, self.dir.join(PACK))?;
        state.file = Arc::new(file);
        state.index = index;
        state.end = end;
        Ok(())
    }
}

/// Take the pack for this process, or fail at once if another has it.
fn lock(file: &File) -> std::io::Result<()> {
    Ok(rustix::fs::flock(
        file,
        rustix::fs::FlockOperation::NonBlockingLockExclusive,
    )?)
}

/// The record at `at` (read by `reader`, which is there) if the pack holds
/// all of it: its key and where its value is. Values are checked against
/// their digest when read.
fn next_record(
    reader: &mut std::io::BufReader<&File>,
    at: u64,
    size: u64,
) -> std::io::Result<Option<(Vec<u8>, Place)>> {
    let mut header = [0u8; HEADER];
    if at + HEADER as u64 > size {
        return Ok(None);
    }
    reader.read_exact(&mut header)?;
    let key_len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let digest: [u8; 32] = header[8..40].try_into().expect("32 bytes");
    let offset = at + HEADER as u64 + u64::from(key_len);
    if offset + u64::from(len) > size {
        return Ok(None);
    }
    let mut key = vec![0; key_len as usize];
    reader.read_exact(&mut key)?;
    reader.seek_relative(i64::from(len))?;
    Ok(Some((
        key,
        Place {
            offset,
            len,
            digest,
            used: false,
        },
    )))
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let (place, file) = {
            let mut state = self.state.lock().expect("function cache");
            let place = state.index.get_mut(key)?;
            place.used = true;
            (*place, state.file.clone())
        };
        let mut value = vec![0; place.len as usize];
        file.read_exact_at(&mut value, place.offset).ok()?;
        if digest(key, &value) != place.digest {
            return None;
        }
        self.found.fetch_add(1, Ordering::Relaxed);
        Some(Cow::Owned(value))
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let (Ok(key_len), Ok(len)) = (u32::try_from(key.len()), u32::try_from(value.len())) else {
            return false;
        };
        let digest = digest(key, &value);
        let mut record = Vec::with_capacity(HEADER + key.len() + value.len());
        record.extend_from_slice(&key_len.to_le_bytes());
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(&digest);
        record.extend_from_slice(key);
        record.extend_from_slice(&value);
        if record.len() as u64 > self.limit / 2 {
            // More than a compacted pack may hold.
            return false;
        }
        let mut state = self.state.lock().expect("function cache");
        if state.index.contains_key(key) || state.full {
            return false;
        }
        if state.end + record.len() as u64 > self.limit {
            self.compact(&mut state);
            if state.full || state.end + record.len() as u64 > self.limit {
                return false;
            }
        }
        let at = state.end;
        if state.file.write_all_at(&record, at).is_err() {
            // Whatever part was written is cut off when the pack is next
            // opened; the next record goes over it.
            return false;
        }
        state.end = at + record.len() as u64;
        let offset = at + (HEADER + key.len()) as u64;
        state.index.insert(
            key.to_vec(),
            Place {
                offset,
                len,
                digest,
                used: true,
            },
        );
        self.kept.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use wasmtime::CacheStore;

    #[test]
    fn functions_are_found_again_after_reopening_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = FunctionCache::open(dir.path()).unwrap();
            assert!(cache.insert(b"k1", b"compiled one".to_vec()));
            assert!(cache.insert(b"k2", vec![7; 5000]));
            assert!(
                !cache.insert(b"k1", b"again".to_vec()),
                "a key is kept once"
            );
            assert_eq!(cache.get(b"k1").unwrap().as_ref(), b"compiled one");
            assert!(cache.get(b"k3").is_none());
            // A second process sharing the directory does without.
            assert!(FunctionCache::open(dir.path()).is_none());
        }
        let pack = dir.path().join(PACK);
        let whole = std::fs::metadata(&pack).unwrap().len();
        // A crash in the middle of writing a third record.
        let mut file = File::options().append(true).open(&pack).unwrap();
        file.write_all(&[9, 0, 0, 0, 200, 0, 0, 0, 1, 2, 3])
            .unwrap();
        drop(file);
        {
            let cache = FunctionCache::open(dir.path()).unwrap();
            assert_eq!(cache.len(), 2);
            assert_eq!(std::fs::metadata(&pack).unwrap().len(), whole);
            assert_eq!(cache.get(b"k2").unwrap().as_ref(), &[7; 5000][..]);
            assert!(cache.insert(b"k3", b"three".to_vec()));
        }
        // A value changed on disk is not handed out; the others still are.
        let mut bytes = std::fs::read(&pack).unwrap();
        let at = bytes
            .windows(12)
            .position(|w| w == b"compiled one")
            .unwrap();
        bytes[at] = b'C';
        std::fs::write(&pack, &bytes).unwrap();
        let cache = FunctionCache::open(dir.path()).unwrap();
        assert!(cache.get(b"k1").is_none());
        assert_eq!(cache.get(b"k3").unwrap().as_ref(), b"three");
    }

    fn key(n: usize) -> Vec<u8> {
        format!("k{n:02}").into_bytes()
    }

    fn value(n: usize) -> Vec<u8> {
        vec![n as u8; 1000]
    }

    /// Bytes a record of `key(n)` and `value(n)` takes.
    const RECORD: u64 = (HEADER + 3 + 1000) as u64;

    #[test]
    fn a_full_pack_keeps_the_functions_in_use_then_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let pack = dir.path().join(PACK);
        {
            let cache = FunctionCache::open_with_limit(dir.path(), 10 * RECORD).unwrap();
            for n in 0..10 {
                assert!(cache.insert(&key(n), value(n)));
            }
            assert_eq!(std::fs::metadata(&pack).unwrap().len(), 10 * RECORD);
            // Larger than a compacted pack may hold: not kept, and the
            // pack is left as it is.
            assert!(!cache.insert(b"huge", vec![0; 5 * RECORD as usize]));
            assert_eq!(cache.len(), 10);
        }
        {
            let cache = FunctionCache::open_with_limit(dir.path(), 10 * RECORD).unwrap();
            assert_eq!(cache.len(), 10);
            // In use in this process: k00 and k01.
            assert_eq!(cache.get(&key(0)).unwrap().as_ref(), &value(0)[..]);
            assert_eq!(cache.get(&key(1)).unwrap().as_ref(), &value(1)[..]);
            // The pack is full: compacted to half (k00, k01, then the newest
            // k09, k08, k07), then k10 goes in.
            assert!(cache.insert(&key(10), value(10)));
            assert_eq!(cache.len(), 6);
            assert_eq!(std::fs::metadata(&pack).unwrap().len(), 6 * RECORD);
            for n in [0, 1, 7, 8, 9, 10] {
                assert_eq!(
                    cache.get(&key(n)).unwrap().as_ref(),
                    &value(n)[..],
                    "k{n:02}"
                );
            }
            for n in 2..7 {
                assert!(cache.get(&key(n)).is_none(), "k{n:02} was dropped");
            }
            // The compacted pack is the one locked.
            assert!(FunctionCache::open_with_limit(dir.path(), 10 * RECORD).is_none());
            assert!(!dir.path().join(COMPACTING).exists());
        }
        let cache = FunctionCache::open_with_limit(dir.path(), 10 * RECORD).unwrap();
        assert_eq!(cache.len(), 6);
        for n in [0, 1, 7, 8, 9, 10] {
            assert_eq!(
                cache.get(&key(n)).unwrap().as_ref(),
                &value(n)[..],
                "k{n:02}"
            );
        }
    }

    #[test]
    fn a_pack_past_its_bound_when_opened_keeps_its_newest_half() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = FunctionCache::open_with_limit(dir.path(), 100 * RECORD).unwrap();
            for n in 0..10 {
                assert!(cache.insert(&key(n), value(n)));
            }
        }
        // A compaction a crash cut short left its file behind.
        std::fs::write(dir.path().join(COMPACTING), b"partial").unwrap();
        let cache = FunctionCache::open_with_limit(dir.path(), 8 * RECORD).unwrap();
        assert_eq!(cache.len(), 4);
        assert!(!dir.path().join(COMPACTING).exists());
        for n in 6..10 {
            assert_eq!(
                cache.get(&key(n)).unwrap().as_ref(),
                &value(n)[..],
                "k{n:02}"
            );
        }
        assert!(cache.get(&key(5)).is_none());
        assert!(cache.insert(&key(10), value(10)));
    }
}
