//! The safety net for a plugin call that takes the whole process down.
//!
//! A plugin must never be able to crash the server, and every such way
//! found is a bug to fix; this catches the ones not found yet. While a
//! projector calls into a plugin, its thread holds a note of what it is
//! doing (which keyspace, which events). If the process aborts (`SIGABRT`:
//! an allocation failure, a foreign exception, a stack overflow, a panic
//! while panicking), a signal handler writes the note of the aborting
//! thread to a file, using only async-signal-safe calls, before the process
//! dies. At the next start the server reads the file and quarantines that
//! generation instead of replaying the same batch into the same abort
//! forever. A `SIGKILL` from outside is not a plugin's doing: it leaves no
//! note, and the generation resumes as usual.

use std::cell::Cell;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::log::Position;

/// What a projector was doing when the process died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InFlight {
    /// The column family of the generation (`view.PLUGIN.KEYSPACE`).
    pub family: String,
    /// The positions of the first and last event of the batch.
    pub from: Position,
    pub to: Position,
}

impl InFlight {
    /// The note of handing `events` (not empty) to the generation whose
    /// column family is `family`.
    pub fn batch(family: &str, events: &[crate::runtime::bindings::Event]) -> InFlight {
        InFlight {
            family: family.to_string(),
            from: Position(events[0].position),
            to: Position(events[events.len() - 1].position),
        }
    }
}

/// The note file's path, set once at start, read by the signal handler.
static NOTE_PATH: OnceLock<CString> = OnceLock::new();

thread_local! {
    /// The note of the call this thread is in: a pointer and length into
    /// a buffer the caller keeps alive for the call. Constant-initialised,
    /// so reading it from a signal handler allocates nothing.
    static CURRENT: Cell<(*const u8, usize)> = const { Cell::new((std::ptr::null(), 0)) };
}

fn note_path(data_dir: &Path) -> PathBuf {
    data_dir.join("crashed-in-plugin.json")
}

/// Arm the safety net for a server whose data lives in `data_dir`.
pub fn install(data_dir: &Path) -> std::io::Result<()> {
    let path = CString::new(note_path(data_dir).into_os_string().into_encoded_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    if NOTE_PATH.set(path).is_err() {
        return Ok(());
    }
    // SAFETY: `on_abort` only reads a constant-initialised thread-local and
    // a static, and calls open/write/fsync/close/signal/raise, which are
    // async-signal-safe.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as *const () as usize;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

extern "C" fn on_abort(_signal: libc::c_int) {
    let (ptr, len) = CURRENT.with(Cell::get);
    if let Some(path) = NOTE_PATH.get()
        && !ptr.is_null()
    {
        // SAFETY: `ptr`/`len` point into the note the aborting thread keeps
        // alive for the whole call (see `during`); the calls are
        // async-signal-safe.
        unsafe {
            let fd = libc::open(
                path.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC,
                0o644,
            );
            if fd >= 0 {
                libc::write(fd, ptr.cast(), len);
                libc::fsync(fd);
                libc::close(fd);
            }
        }
    }
    // SAFETY: back to the default action, then die of the same signal.
    unsafe {
        libc::signal(libc::SIGABRT, libc::SIG_DFL);
        libc::raise(libc::SIGABRT);
    }
}

/// Run `call` with `note` as this thread's note, should the process abort.
pub fn during<T>(note: &InFlight, call: impl FnOnce() -> T) -> T {
    let text = serde_json::to_vec(note).expect("a note serializes");
    CURRENT.with(|c| c.set((text.as_ptr(), text.len())));
    let result = call();
    CURRENT.with(|c| c.set((std::ptr::null(), 0)));
    drop(text);
    result
}

/// The note left by a process that aborted inside a plugin call, taken (the
/// file is removed) so that it is acted on once.
pub fn take_note(data_dir: &Path) -> Option<InFlight> {
    let path = note_path(data_dir);
    let text = std::fs::read(&path).ok()?;
    let _ = std::fs::remove_file(&path);
    match serde_json::from_slice(&text) {
        Ok(note) => Some(note),
        Err(e) => {
            tracing::error!(error = %e, "unreadable note of a crash inside a plugin call");
            None
        }
    }
}
