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
//! sharing the cache directory compiles without it. A pack that has grown
//! past [`MAX_PACK_BYTES`] takes no more functions; one found past it when
//! opening is started afresh.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// The pack's file name in the cache directory.
const PACK: &str = "functions.pack";

/// Size past which the pack takes no more functions (and is started afresh
/// the next time it is opened). A Python component's functions take about
/// a tenth of this.
pub(crate) const MAX_PACK_BYTES: u64 = 1 << 30;

/// Bytes before a record's key: two lengths and the digest.
const HEADER: usize = 4 + 4 + 32;

/// Where a value is in the pack.
#[derive(Debug, Clone, Copy)]
struct Place {
    offset: u64,
    len: u32,
    digest: [u8; 32],
}

/// The pack, open for reading and appending.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    file: File,
    state: Mutex<State>,
    /// Functions handed out and functions kept, since opening.
    found: AtomicU64,
    kept: AtomicU64,
}

#[derive(Debug)]
struct State {
    index: HashMap<Vec<u8>, Place>,
    /// Where the next record goes.
    end: u64,
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
        match Self::try_open(dir) {
            Ok(cache) => cache,
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "compiled functions are not kept: the function cache cannot be opened");
                None
            }
        }
    }

    fn try_open(dir: &Path) -> std::io::Result<Option<FunctionCache>> {
        let path = dir.join(PACK);
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
            tracing::info!(path = %path.display(), "another process uses the function cache; compiling without it");
            return Ok(None);
        }
        let size = file.metadata()?.len();
        let mut index = HashMap::new();
        let mut end = 0u64;
        if size <= MAX_PACK_BYTES {
            let mut reader = std::io::BufReader::new(&file);
            while let Some((key, place)) = next_record(&mut reader, end, size)? {
                end = place.offset + u64::from(place.len);
                index.insert(key, place);
            }
        }
        if end < size {
            // A record cut short (or a pack started afresh): drop the rest.
            file.set_len(end)?;
        }
        Ok(Some(FunctionCache {
            file,
            state: Mutex::new(State { index, end }),
            found: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        }))
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
        },
    )))
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<Cow<'_, [u8]>> {
        let place = *self.state.lock().expect("function cache").index.get(key)?;
        let mut value = vec![0; place.len as usize];
        self.file.read_exact_at(&mut value, place.offset).ok()?;
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
        let mut state = self.state.lock().expect("function cache");
        if state.index.contains_key(key) || state.end + record.len() as u64 > MAX_PACK_BYTES {
            return false;
        }
        let at = state.end;
        if self.file.write_all_at(&record, at).is_err() {
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
}
