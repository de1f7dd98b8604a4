//! The sandbox seen from its API: `Runtime::compile` and `instantiate` with
//! purpose-made components (written here in WAT, or the test plugins of
//! `tests/plugins/` built into `target/test-plugins/`).

use std::path::PathBuf;

use tempfile::TempDir;

use super::bindings::Event;
use super::view::ViewAccess;
use super::*;
use crate::views::{Transaction, ViewStore};

const PAGE: usize = 64 << 10;

/// A `projector` component with two core modules, each with its own linear
/// memory of one page. `describe` grows each memory by `grow_pages` pages,
/// trapping if a growth is refused, then describes itself as
/// `twin-memories` 1.0. The other exports trap.
fn twin_memory_component(grow_pages: u32) -> Vec<u8> {
    let text = format!(
        r#"
(component
  (core module $spare
    (memory 1)
    (func (export "grow") (param i32) (result i32)
      (memory.grow (local.get 0))))
  (core instance $spare (instantiate $spare))
  (core module $main
    (import "spare" "grow" (func $grow_spare (param i32) (result i32)))
    (memory (export "memory") 1)
    ;; The description record at 0: name (64, 13), version (80, 3), no event
    ;; types, no queries.
    (data (i32.const 0) "\40\00\00\00\0d\00\00\00\50\00\00\00\03\00\00\00")
    (data (i32.const 64) "twin-memories")
    (data (i32.const 80) "1.0")
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) unreachable)
    (func (export "describe") (result i32)
      (if (i32.eq (memory.grow (i32.const {grow_pages})) (i32.const -1)) (then unreachable))
      (if (i32.eq (call $grow_spare (i32.const {grow_pages})) (i32.const -1)) (then unreachable))
      (i32.const 0))
    (func (export "handle") (param i32 i32) (result i32) unreachable)
    (func (export "query") (param i32 i32 i32 i32) (result i32) unreachable))
  (core instance $main (instantiate $main (with "spare" (instance $spare))))
  (type $event (record
    (field "position" u64) (field "stream-id" string) (field "stream-version" u64)
    (field "event-type" string) (field "data" string) (field "metadata" string)
    (field "recorded-at" u64) (field "id" string)))
  (type $description (record
    (field "name" string) (field "version" string)
    (field "event-types" (list string)) (field "queries" (list string))))
  (type $handle-error (record (field "index" (option u32)) (field "message" string)))
  (type $query-error (variant
    (case "unknown-query" string) (case "invalid-params" string) (case "failed" string)))
  (func $describe (result $description)
    (canon lift (core func $main "describe")
      (memory $main "memory") (realloc (func $main "realloc"))))
  (func $handle (param "batch" (list $event)) (result (result (error $handle-error)))
    (canon lift (core func $main "handle")
      (memory $main "memory") (realloc (func $main "realloc"))))
  (func $query (param "name" string) (param "params" string)
    (result (result string (error $query-error)))
    (canon lift (core func $main "query")
      (memory $main "memory") (realloc (func $main "realloc"))))
  (instance $projection
    (export "event" (type $event))
    (export "description" (type $description))
    (export "handle-error" (type $handle-error))
    (export "query-error" (type $query-error))
    (export "describe" (func $describe))
    (export "handle" (func $handle))
    (export "query" (func $query)))
  (export "prism:projection/projection@0.1.0" (instance $projection)))
"#
    );
    wat::parse_str(text).expect("valid component text")
}

fn test_plugin(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/test-plugins")
        .join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the plugins first with scripts/build-plugins.sh",
            path.display()
        )
    })
}

/// A runtime with its own compile cache and a database for view access.
struct Sandbox {
    dir: TempDir,
    runtime: Runtime,
    views: ViewStore,
}

impl Sandbox {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Runtime::new(&dir.path().join("cache")).unwrap();
        let db = crate::storage::open(&dir.path().join("db")).unwrap();
        Sandbox {
            dir,
            runtime,
            views: ViewStore::new(db),
        }
    }

    /// The compiled components in the cache (not the function cache's pack).
    fn cache_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.dir.path().join("cache"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name != "functions.pack")
            .collect();
        names.sort();
        names
    }

    fn start(&self, bytes: &[u8], memory_bytes: usize) -> Result<PluginInstance, RuntimeError> {
        let compiled = self.runtime.compile(bytes)?;
        let limits = PluginLimits {
            memory_bytes,
            ..PluginLimits::default()
        };
        let view = ViewAccess::new(self.views.detached("view.test"));
        self.runtime
            .instantiate(&compiled, view, Arc::new(PluginLog::new()), limits)
    }

    fn compile_error(&self, bytes: &[u8]) -> String {
        match self.runtime.compile(bytes) {
            Err(e @ RuntimeError::Compile(_)) => e.to_string(),
            Err(e) => panic!("expected a compile error, got {e}"),
            Ok(_) => panic!("expected a compile error, got a plugin"),
        }
    }
}

fn one_event() -> Event {
    Event {
        position: 1,
        stream_id: "s".into(),
        stream_version: 0,
        event_type: "Happened".into(),
        data: "{}".into(),
        metadata: "{}".into(),
        recorded_at: 0,
        id: "00000000-0000-0000-0000-000000000001".into(),
    }
}

#[test]
fn concurrent_compiles_of_the_same_component_share_one_cache_entry() {
    let component = twin_memory_component(0);
    // Every compile of the round finishes at about the same moment, so the
    // writes into the cache overlap; a few rounds make a lucky one unlikely.
    for _round in 0..5 {
        let sandbox = Sandbox::new();
        let threads = 16;
        let start = std::sync::Barrier::new(threads);
        let results: Vec<Result<CompiledPlugin, RuntimeError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        sandbox.runtime.compile(&component)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for result in &results {
            if let Err(e) = result {
                panic!("a concurrent compile failed: {e}");
            }
        }

        let entries = sandbox.cache_entries();
        assert_eq!(
            entries.len(),
            1,
            "one cache entry, no leftovers: {entries:?}"
        );
        assert!(entries[0].ends_with(".cwasm"), "{entries:?}");
        let cached = sandbox.runtime.compile(&component).unwrap();
        assert!(cached.from_cache);
        let mut instance = sandbox.start(&component, 4 << 20).unwrap();
        assert_eq!(instance.describe().unwrap().name, "twin-memories");
    }
}

/// `bytes` with a custom section added: another file, the same code.
fn with_custom_section(bytes: &[u8], text: &str) -> Vec<u8> {
    let name = b"prism-test";
    let payload_len = 1 + name.len() + text.len();
    assert!(payload_len < 128 && name.len() < 128);
    let mut out = bytes.to_vec();
    out.extend_from_slice(&[0, payload_len as u8, name.len() as u8]);
    out.extend_from_slice(name);
    out.extend_from_slice(text.as_bytes());
    out
}

#[test]
fn a_new_version_of_a_component_reuses_the_functions_compiled_for_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let first = test_plugin("deposits-only");
    let functions = {
        let runtime = Runtime::new(dir.path()).unwrap();
        assert!(!runtime.compile(&first).unwrap().from_cache);
        // Some functions are found already: a component's modules share some.
        let (found, kept) = runtime.function_counts();
        assert!(kept > 100, "{kept} functions kept");
        let functions = found + kept;
        // Another file (not in the component cache) with the same code:
        // every function is found, none compiled again.
        let second = with_custom_section(&first, "v2");
        let compiled = runtime.compile(&second).unwrap();
        assert!(!compiled.from_cache);
        // Nearly every function is found; a few get other cache keys from
        // one compile to the next (about 5 in 100 here).
        let (found_again, kept_again) = runtime.function_counts();
        assert!(
            (found_again - found) * 10 >= functions * 9,
            "{} of {functions} found",
            found_again - found
        );
        assert!((kept_again - kept) * 10 <= functions, "{kept_again}");
        // What is reused runs as what was compiled.
        let db = crate::storage::open(&dir.path().join("db")).unwrap();
        let view = ViewAccess::new(ViewStore::new(db).detached("view.test"));
        let mut instance = runtime
            .instantiate(
                &compiled,
                view,
                Arc::new(PluginLog::new()),
                PluginLimits::default(),
            )
            .unwrap();
        assert_eq!(instance.describe().unwrap().name, "deposits-only");
        // A different plugin built with the same SDK finds part of its code.
        runtime.compile(&test_plugin("indexed-balance")).unwrap();
        let (found_other, kept_other) = runtime.function_counts();
        assert!(
            (found_other - found_again) * 2 > functions,
            "{} found",
            found_other - found_again
        );
        assert!(kept_other > kept_again, "{kept_other} kept");
        functions
    };
    // A runtime opened later on the same directory finds them too.
    let again = Runtime::new(dir.path()).unwrap();
    again.compile(&with_custom_section(&first, "v3")).unwrap();
    let (found, kept) = again.function_counts();
    assert!(found * 10 >= functions * 9, "{found} of {functions} found");
    assert!(kept * 10 <= functions, "{kept} compiled again");
}

#[test]
fn memories_of_one_plugin_share_its_memory_limit() {
    let sandbox = Sandbox::new();
    // Each memory grows to 60 pages (3.75 MiB), under the 4 MiB limit on its
    // own; the second growth would bring the two to 7.5 MiB.
    let mut instance = sandbox.start(&twin_memory_component(59), 4 << 20).unwrap();
    let error = instance.describe().unwrap_err().to_string();
    assert_eq!(
        error,
        "the plugin exceeded its memory limit of 4 MiB (asked to grow by 3.7 MiB to 7.5 MiB)"
    );
}

#[test]
fn memories_within_the_limit_together_may_grow() {
    let sandbox = Sandbox::new();
    let mut instance = sandbox.start(&twin_memory_component(20), 4 << 20).unwrap();
    assert_eq!(instance.describe().unwrap().name, "twin-memories");
    assert_eq!(instance.memory_bytes(), 2 * 21 * PAGE);
}

#[test]
fn a_memory_bomb_is_stopped_at_its_limit_and_told_how_far_it_reached() {
    let sandbox = Sandbox::new();
    let mut instance = sandbox.start(&test_plugin("memory-bomb"), 8 << 20).unwrap();
    let mut txn = Transaction::new();
    let error = instance
        .handle(&[one_event()], &mut txn)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("the plugin exceeded its memory limit of 8 MiB (asked to grow by "),
        "{error}"
    );
    assert!(error.contains(" MiB to "), "{error}");
    assert!(txn.is_empty());
}

#[test]
fn garbage_is_reported_in_one_line_naming_its_first_bytes() {
    let error = Sandbox::new().compile_error(b"garbage, not wasm");
    assert_eq!(
        error,
        r#"not a WebAssembly component: the file starts with 67 61 72 62 ("garb"), not the WebAssembly magic \0asm"#
    );
}

#[test]
fn an_empty_file_is_reported_as_empty() {
    let error = Sandbox::new().compile_error(b"");
    assert_eq!(error, "not a WebAssembly component: the file is empty");
}

#[test]
fn a_truncated_component_is_reported_in_one_line_with_its_offset() {
    let component = twin_memory_component(0);
    let half = &component[..component.len() / 2];
    let error = Sandbox::new().compile_error(half);
    // The message itself is the parser's; where it stopped is ours.
    assert_eq!(error.lines().count(), 1, "{error}");
    assert!(
        error.starts_with("not a WebAssembly component: "),
        "{error}"
    );
    assert!(
        error.ends_with(&format!(" of {})", half.len())) && error.contains(" (at byte "),
        "{error}"
    );
}

#[test]
fn a_core_module_is_told_to_become_a_component() {
    let module = wat::parse_str("(module (memory 1))").unwrap();
    let error = Sandbox::new().compile_error(&module);
    assert!(
        error.contains("a core WebAssembly module, not a component"),
        "{error}"
    );
}
