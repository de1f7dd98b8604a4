//! `PRISM_PERFMAP=1`: the server lists every plugin function it loads in
//! `/tmp/perf-PID.map`, where Linux `perf` finds their names.

use std::path::PathBuf;
use std::time::Duration;

use crate::common::{TestServer, example_plugin};

/// The perf map of a process, removed when dropped (it lives in /tmp).
struct PerfMap(PathBuf);

impl PerfMap {
    fn of(server: &TestServer) -> PerfMap {
        PerfMap(PathBuf::from(format!("/tmp/perf-{}.map", server.pid())))
    }

    /// The names of the functions listed, each line checked to be
    /// `START SIZE NAME` with a hexadecimal start and size.
    fn names(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.0).unwrap_or_default();
        text.lines()
            .map(|line| {
                let mut parts = line.splitn(3, ' ');
                let start = parts.next().unwrap_or_default();
                let size = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default();
                assert!(
                    u64::from_str_radix(start.trim_start_matches("0x"), 16).is_ok()
                        && u64::from_str_radix(size, 16).is_ok_and(|n| n > 0)
                        && !name.is_empty(),
                    "not a perf map line: {line:?}"
                );
                name.to_string()
            })
            .collect()
    }
}

impl Drop for PerfMap {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn install_bank(server: &TestServer) {
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| p["state"] == "live")
        .await;
}

#[tokio::test]
async fn prism_perfmap_lists_plugin_functions_for_perf_compiled_or_from_the_cache() {
    let mut server = TestServer::start_with_env("", &[("PRISM_PERFMAP", "1")]).await;
    install_bank(&server).await;
    let compiled = PerfMap::of(&server);
    let names = compiled.names();
    assert!(
        names.iter().filter(|n| n.starts_with("wasm[")).count() > 100,
        "the component's functions are listed: {names:?}"
    );

    // Restarted, the component comes from the compile cache: listed too.
    server.restart().await;
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| p["state"] == "live")
        .await;
    let cached = PerfMap::of(&server);
    assert_ne!(cached.0, compiled.0);
    assert!(
        cached
            .names()
            .iter()
            .filter(|n| n.starts_with("wasm["))
            .count()
            > 100,
        "after a restart: {:?}",
        cached.names()
    );
}

#[tokio::test]
async fn without_prism_perfmap_no_perf_map_is_written() {
    let server = TestServer::start_with_env("", &[("PRISM_PERFMAP", "0")]).await;
    install_bank(&server).await;
    let map = PerfMap::of(&server);
    assert!(!map.0.exists(), "{} was written", map.0.display());
}
