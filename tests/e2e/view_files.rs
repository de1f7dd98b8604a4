//! View files (`NAME.view.yaml`, `NAME.view.json`): projections written as
//! a spec, going through the same lifecycle as components — dropped in the
//! directory or uploaded, replaced blue/green (also from and to a
//! component), refused with a pointed error while the old version serves,
//! halting or dead-lettering what they cannot apply, and all of it across a
//! SIGKILL.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, assert_balances, bank_workload, example_plugin, repo_root};

/// An example view file of `plugins/views/`.
fn example_view(name: &str) -> PathBuf {
    repo_root()
        .join("plugins/views")
        .join(format!("{name}.view.yaml"))
}

fn account_balances() -> Vec<u8> {
    std::fs::read(example_view("account-balances")).unwrap()
}

/// Drop a view file into the watched directory atomically.
fn drop_view(server: &TestServer, file: &str, bytes: &[u8]) {
    let tmp = server.plugins_dir().join(format!(".{file}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, server.plugins_dir().join(file)).unwrap();
}

fn files_of(server: &TestServer) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(server.plugins_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

/// Wait until `name` serves a generation other than `old` and has no candidate.
async fn wait_swapped(server: &TestServer, name: &str, old: &Value) -> Value {
    server
        .wait_plugin(name, Duration::from_secs(60), |p| {
            p["generation"] != *old && p["candidate"].is_null() && p["state"] == "live"
        })
        .await
}

#[tokio::test]
async fn the_account_balances_view_file_equals_the_rust_component() {
    let server = TestServer::start().await;
    let expected = bank_workload(&server, 30, 40).await;
    // An account whose money moved before it was opened: the owner is null.
    server
        .append("account-early", &[("Deposited", json!({"amount": 5}))])
        .await;
    server.install_file("rust", &example_plugin("account-balance"));
    drop_view(&server, "declared.view.yaml", &account_balances());
    server.wait_caught_up("rust").await;
    let status = server.wait_caught_up("declared").await;
    assert_eq!(status["description"]["kind"], "view file", "{status}");
    assert_eq!(
        status["description"]["event_types"],
        json!(["AccountOpened", "Deposited", "Withdrawn"])
    );
    let rust = server.all_docs("rust").await;
    assert_eq!(rust.len(), 31);
    assert_eq!(server.all_docs("declared").await, rust);
    assert_balances(&server, "declared", &expected).await;
    assert_eq!(
        server.view("declared", "account-early").await.unwrap(),
        json!({"owner": null, "balance": 5, "transactions": 1})
    );
    // Listed like any plugin, with its kind.
    let list = server.get_ok("/plugins").await;
    let kinds: Vec<(String, String)> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["description"]["kind"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(kinds[0], ("declared".into(), "view file".into()));
    assert!(kinds[1].1.starts_with("wasm component"), "{kinds:?}");
}

#[tokio::test]
async fn a_component_is_replaced_by_a_view_file_then_by_a_changed_one_and_a_sigkill_keeps_it() {
    let mut server = TestServer::start().await;
    let expected = bank_workload(&server, 10, 20).await;
    let (status, body) = server
        .put_plugin("bank", &example_plugin("account-balance"))
        .await;
    assert_eq!(status, 201, "{body}");
    let component = server.wait_caught_up("bank").await;

    // A view file of the same name, uploaded: a candidate replays, then serves.
    let (status, body) = server.put_plugin_bytes("bank", account_balances()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "replacing");
    let view = wait_swapped(&server, "bank", &component["generation"]).await;
    assert_eq!(view["description"]["kind"], "view file");
    assert_eq!(files_of(&server), ["bank.view.yaml"]);
    assert_balances(&server, "bank", &expected).await;

    // A changed view file, dropped in the directory: replayed blue/green.
    let changed = String::from_utf8(account_balances()).unwrap().replace(
        "      owner: \"{data.owner}\"",
        "      owner: \"{data.owner}\"\n      opened_at: \"{version}\"",
    );
    drop_view(&server, "bank.view.yaml", changed.as_bytes());
    let swapped = wait_swapped(&server, "bank", &view["generation"]).await;
    let doc = server.view("bank", "account-3").await.unwrap();
    // The stream version of the account's first event.
    assert_eq!(doc["opened_at"], 0, "{doc}");
    assert_eq!(doc["balance"], expected[3].balance);
    assert_eq!(swapped["previous"]["generation"], view["generation"]);

    // After a SIGKILL the same generation serves at once and follows the log.
    server.kill();
    server.restart().await;
    let restarted = server.plugin("bank").await;
    assert_eq!(restarted["generation"], swapped["generation"]);
    assert_eq!(server.view("bank", "account-3").await.unwrap(), doc);
    let appended = server
        .append("account-3", &[("Deposited", json!({"amount": 1000}))])
        .await;
    let position = appended["last_position"].as_u64().unwrap();
    let (status, after) = server
        .get(&format!(
            "/views/bank/account-3?min_position={position}&timeout_ms=10000"
        ))
        .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(after["balance"], expected[3].balance + 1000);
    assert_eq!(after["transactions"], expected[3].transactions + 1);

    // Removing the file unloads it like any plugin.
    std::fs::remove_file(server.plugins_dir().join("bank.view.yaml")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while server.get("/plugins/bank").await.0 != 404 {
        assert!(
            std::time::Instant::now() < deadline,
            "bank was never removed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.get("/views/bank/account-3").await.0, 404);
}

#[tokio::test]
async fn invalid_view_files_are_refused_with_line_and_field_while_the_old_version_serves() {
    let mut server = TestServer::start().await;
    let expected = bank_workload(&server, 5, 10).await;
    let (status, body) = server.put_plugin_bytes("bank", account_balances()).await;
    assert_eq!(status, 201, "{body}");
    let serving = server.wait_caught_up("bank").await;

    let uploads: [(&str, &str); 4] = [
        (
            "key: \"{stream}\"\non:\n  Deposited:\n    add:\n      balance: \"{data.amount\"\n",
            "line 5, column 16: on.Deposited.add.balance",
        ),
        (
            "key: \"{stream}\"\non:\n  Deposited:\n    ad:\n      balance: 1\n",
            "line 4",
        ),
        (
            "key: \"{stream}\"\non:\n  Deposited:\n    add:\n      balance: \"{nowhere.amount}\"\n",
            "unknown path",
        ),
        ("{\"key\": \"{stream}\", \"on\": {}}", "names no event type"),
    ];
    for (text, mentions) in uploads {
        let (status, body) = server.put_plugin_bytes("bank", text.into()).await;
        assert_eq!(status, 422, "{text}: {body}");
        assert_eq!(body["error"]["code"], "invalid_plugin", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{text}: {message}");
    }
    // Nothing changed: same generation, same file, same documents.
    let after = server.plugin("bank").await;
    assert_eq!(after["generation"], serving["generation"]);
    assert!(after["failed_candidate"].is_null(), "{after}");
    assert_eq!(files_of(&server), ["bank.view.yaml"]);
    assert_balances(&server, "bank", &expected).await;

    // The same mistake dropped in the directory is reported as a failed
    // candidate, and stays so across a restart.
    drop_view(&server, "bank.view.yaml", uploads[0].0.as_bytes());
    let failed = server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            !p["failed_candidate"].is_null()
        })
        .await;
    let message = failed["failed_candidate"]["error"]["message"]
        .as_str()
        .unwrap();
    assert!(
        message.contains("bank.view.yaml: line 5, column 16: on.Deposited.add.balance"),
        "{message}"
    );
    assert_eq!(failed["generation"], serving["generation"]);
    assert_eq!(failed["state"], "live");
    server.kill();
    server.restart().await;
    let restarted = server
        .wait_plugin("bank", Duration::from_secs(30), |p| {
            !p["failed_candidate"].is_null()
        })
        .await;
    assert_eq!(restarted["generation"], serving["generation"]);
    assert_balances(&server, "bank", &expected).await;
}

/// Two accounts; account-1's second deposit has an amount that is not a
/// number. Returns its position.
async fn poisoned_bank(server: &TestServer) -> u64 {
    server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 10})),
            ],
        )
        .await;
    let poison = server
        .append("account-1", &[("Deposited", json!({"amount": "ten"}))])
        .await;
    server
        .append(
            "account-1",
            &[
                ("Withdrawn", json!({"amount": 3})),
                ("Deposited", json!({"amount": 1})),
            ],
        )
        .await;
    server
        .append("account-2", &[("Deposited", json!({"amount": 1.5}))])
        .await;
    poison["first_position"].as_u64().unwrap()
}

#[tokio::test]
async fn events_a_view_file_cannot_apply_halt_it_or_are_dead_lettered() {
    let server = TestServer::start().await;
    let poison = poisoned_bank(&server).await;
    drop_view(&server, "bank.view.yaml", &account_balances());
    let status = server
        .wait_plugin("bank", Duration::from_secs(30), |p| p["state"] == "failed")
        .await;
    assert_eq!(status["last_error"]["position"], poison, "{status}");
    assert_eq!(status["position"], poison - 1);
    let message = status["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("\"ten\" is not a number"), "{message}");
    assert_eq!(
        server.view("bank", "account-1").await.unwrap(),
        json!({"owner": "ann", "balance": 10, "transactions": 1})
    );

    let server = TestServer::start_with_config("[plugin.bank]\non_error = \"skip\"\n").await;
    let poison = poisoned_bank(&server).await;
    drop_view(&server, "bank.view.yaml", &account_balances());
    server.wait_caught_up("bank").await;
    assert_eq!(
        server.view("bank", "account-1").await.unwrap(),
        json!({"owner": "ann", "balance": 8, "transactions": 3})
    );
    // A fractional amount is refused, not rounded: no document for account-2.
    assert_eq!(server.view("bank", "account-2").await, None);
    let letters = server.get_ok("/plugins/bank/dead-letters").await;
    let letters = letters["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[0]["position"], poison);
    assert!(
        letters[1]["error"].as_str().unwrap().contains("is not one"),
        "{letters:?}"
    );
}
