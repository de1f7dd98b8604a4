//! A projection made with `prism new`, anywhere on disk, in each language:
//! its own unit test passes with `prism test`, `prism build` makes a
//! component, and installed on a running server it answers its view and its
//! query. Mistakes come back as failing exit codes with the tool's words.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, output_within, project_command, repo_root};

/// Long enough for a first Rust build that compiles the dependencies on a
/// busy two-core machine.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// Runs `prism ARGS` in `dir`; its stdout, or a panic with its stderr.
fn prism(dir: &Path, args: &[&str], timeout: Duration) -> String {
    let output = output_within(project_command(dir).args(args), timeout);
    assert!(
        output.status.success(),
        "prism {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `prism new NAME --lang LANG` in a fresh folder outside the repository.
fn new_project(place: &Path, name: &str, lang: &str) -> PathBuf {
    let dir = place.join(name);
    prism(
        place,
        &["new", name, "--lang", lang, "--dir", dir.to_str().unwrap()],
        Duration::from_secs(30),
    );
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert_eq!(readme.lines().count(), 3, "{readme}");
    dir
}

/// `prism build` and the component it reports.
fn build(dir: &Path) -> PathBuf {
    let printed = prism(dir, &["build"], BUILD_TIMEOUT);
    let wasm = printed
        .lines()
        .find_map(|line| line.strip_prefix("built "))
        .and_then(|rest| rest.split(" (").next())
        .unwrap_or_else(|| panic!("no `built PATH (SIZE)` line in {printed:?}"));
    let wasm = PathBuf::from(wasm);
    assert!(
        std::fs::metadata(&wasm).unwrap().len() > 0,
        "{}",
        wasm.display()
    );
    assert!(
        printed.contains("KiB") || printed.contains("MiB"),
        "the size is shown: {printed}"
    );
    wasm
}

/// Installs `wasm` as plugin `name` with the CLI and checks the skeleton's
/// view and query over events appended before.
async fn serves_the_skeleton(server: &TestServer, name: &str, wasm: &Path) {
    prism(
        server.dir.path(),
        &[
            "plugins",
            "install",
            name,
            wasm.to_str().unwrap(),
            "--server",
            &server.base,
        ],
        Duration::from_secs(120),
    );
    server.wait_caught_up(name).await;
    assert_eq!(
        server.view(name, "order-1").await,
        Some(json!({"events": 2, "last_type": "OrderShipped"}))
    );
    assert_eq!(
        server
            .get_ok(&format!("/views/{name}/_query/events?stream=order-1"))
            .await,
        json!(2)
    );
    let described = server.plugin(name).await;
    assert_eq!(
        described["description"]["queries"],
        json!(["events"]),
        "{described}"
    );
}

async fn server_with_orders() -> TestServer {
    let server = TestServer::start().await;
    server
        .append(
            "order-1",
            &[
                ("OrderPlaced", json!({"total": 30})),
                ("OrderShipped", json!({})),
            ],
        )
        .await;
    server
        .append("order-2", &[("OrderPlaced", json!({"total": 5}))])
        .await;
    server
}

/// No file of the project names the repository: it works wherever it is.
fn independent_of_the_repository(dir: &Path) {
    let root = repo_root().display().to_string();
    for entry in walk(dir) {
        let text = std::fs::read(&entry).unwrap();
        assert!(
            !String::from_utf8_lossy(&text).contains(&root),
            "{} names the repository",
            entry.display()
        );
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() && entry.file_name() != "target" {
            files.extend(walk(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

#[tokio::test]
async fn a_new_rust_projection_is_tested_built_and_served() {
    let server = server_with_orders().await;
    let place = tempfile::tempdir().unwrap();
    let dir = new_project(place.path(), "orders-rs", "rust");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let sdk = repo_root().join("guest-sdk").canonicalize().unwrap();
    assert!(
        manifest.contains(&format!("prism-guest = {{ path = \"{}\" }}", sdk.display())),
        "{manifest}"
    );

    let tested = prism(&dir, &["test"], BUILD_TIMEOUT);
    assert!(
        tested.contains("counts_the_events_of_each_stream ... ok"),
        "{tested}"
    );
    let wasm = build(&dir);
    assert!(wasm.ends_with("wasm32-wasip2/release/orders_rs.wasm"));
    serves_the_skeleton(&server, "orders-rs", &wasm).await;

    // With --sdk GIT-URL the SDK is a git dependency, which cargo finds
    // inside the repository (here the checkout's own commits).
    let url = format!("file://{}", repo_root().canonicalize().unwrap().display());
    let dir = place.path().join("orders-git");
    prism(
        place.path(),
        &[
            "new",
            "orders-git",
            "--lang",
            "rust",
            "--dir",
            dir.to_str().unwrap(),
            "--sdk",
            &url,
        ],
        Duration::from_secs(30),
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&format!("prism-guest = {{ git = \"{url}\" }}")),
        "{manifest}"
    );
    let tested = prism(&dir, &["test"], BUILD_TIMEOUT);
    assert!(
        tested.contains("counts_the_events_of_each_stream ... ok"),
        "{tested}"
    );
}

#[tokio::test]
async fn a_new_python_projection_is_tested_built_and_served() {
    let server = server_with_orders().await;
    let place = tempfile::tempdir().unwrap();
    let dir = new_project(place.path(), "orders-py", "python");
    independent_of_the_repository(&dir);

    let tested = output_within(project_command(&dir).arg("test"), Duration::from_secs(60));
    assert!(tested.status.success());
    assert!(
        String::from_utf8_lossy(&tested.stderr).contains("Ran 1 test"),
        "{tested:?}"
    );
    let wasm = build(&dir);
    assert_eq!(
        wasm,
        dir.canonicalize().unwrap().join("target/orders-py.wasm")
    );
    serves_the_skeleton(&server, "orders-py", &wasm).await;

    // A failing test is a failing exit code.
    let test_file = dir.join("test_app.py");
    let text = std::fs::read_to_string(&test_file).unwrap();
    std::fs::write(&test_file, text.replace("\"events\": 2", "\"events\": 3")).unwrap();
    let failed = output_within(project_command(&dir).arg("test"), Duration::from_secs(60));
    assert!(!failed.status.success());
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("FAILED (failures=1)"),
        "{failed:?}"
    );
}

#[tokio::test]
async fn a_new_javascript_projection_is_tested_built_and_served() {
    let server = server_with_orders().await;
    let place = tempfile::tempdir().unwrap();
    let dir = new_project(place.path(), "orders-js", "js");
    independent_of_the_repository(&dir);

    let tested = prism(&dir, &["test"], Duration::from_secs(60));
    assert!(tested.contains("# pass 1"), "{tested}");
    let wasm = build(&dir);
    assert_eq!(
        wasm,
        dir.canonicalize().unwrap().join("target/orders-js.wasm")
    );
    serves_the_skeleton(&server, "orders-js", &wasm).await;

    // A build that fails says why, in the tool's words, and exits non-zero.
    let source = dir.join("projection.js");
    let text = std::fs::read_to_string(&source).unwrap();
    std::fs::write(
        &source,
        text.replace("keys: (event) =>", "keys: (event) =>>"),
    )
    .unwrap();
    let failed = output_within(project_command(&dir).arg("build"), BUILD_TIMEOUT);
    assert!(!failed.status.success());
    let said = String::from_utf8_lossy(&failed.stderr);
    assert!(said.contains("projection.js"), "{said}");
    assert!(said.contains("componentize-js failed"), "{said}");
}
