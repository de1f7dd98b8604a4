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

    // A view file dropped beside the component of the same name replaces it
    // (the file modified last counts); removing the old file then changes nothing.
    let component = server.plugin("rust").await;
    drop_view(&server, "rust.view.yaml", &account_balances());
    let swapped = wait_swapped(&server, "rust", &component["generation"]).await;
    assert_eq!(swapped["description"]["kind"], "view file");
    assert_eq!(server.all_docs("rust").await, rust);
    std::fs::remove_file(server.plugins_dir().join("rust.wasm")).unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let after = server.plugin("rust").await;
    assert_eq!(after["generation"], swapped["generation"]);
    assert!(after["candidate"].is_null(), "{after}");
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

#[tokio::test]
async fn products_by_stock_equals_the_product_stock_component_and_answers_find() {
    let server = TestServer::start().await;
    for i in 0..40u64 {
        let sku = format!("p{i}");
        server
            .append(
                &format!("product-{sku}"),
                &[
                    (
                        "ProductAdded",
                        json!({"sku": sku, "name": format!("thing {i}"), "stock": i % 17 + 2}),
                    ),
                    ("StockReceived", json!({"sku": sku, "quantity": i % 5})),
                    ("StockRemoved", json!({"sku": sku, "quantity": i % 3})),
                ],
            )
            .await;
    }
    // Stock for a product never added: its name is null.
    server
        .append(
            "product-x",
            &[("StockReceived", json!({"sku": "x", "quantity": 4}))],
        )
        .await;
    server.install_file("rust", &example_plugin("product-stock"));
    drop_view(
        &server,
        "declared.view.yaml",
        &std::fs::read(example_view("products-by-stock")).unwrap(),
    );
    server.wait_caught_up("rust").await;
    server.wait_caught_up("declared").await;
    let rust = server.all_docs("rust").await;
    assert_eq!(rust.len(), 41);
    assert_eq!(server.all_docs("declared").await, rust);
    let find = "_find?index=by-stock&stock.lt=8&limit=1000";
    let from_rust = server.get_ok(&format!("/views/rust/{find}")).await;
    let from_view = server.get_ok(&format!("/views/declared/{find}")).await;
    assert!(from_rust["items"].as_array().unwrap().len() > 5);
    assert_eq!(from_view["items"], from_rust["items"]);

    // Removing more than is in stock stops the view there, as it stops the component.
    let poison = server
        .append(
            "product-p1",
            &[("StockRemoved", json!({"sku": "p1", "quantity": 1000}))],
        )
        .await;
    let poison = poison["first_position"].as_u64().unwrap();
    for name in ["rust", "declared"] {
        let status = server
            .wait_plugin(name, Duration::from_secs(30), |p| p["state"] == "failed")
            .await;
        assert_eq!(status["last_error"]["position"], poison, "{name}: {status}");
    }
}

#[tokio::test]
async fn the_join_updates_every_order_of_a_customer_when_the_customer_changes() {
    let server = TestServer::start().await;
    drop_view(
        &server,
        "orders.view.yaml",
        &std::fs::read(example_view("customer-orders")).unwrap(),
    );
    server
        .wait_plugin("orders", Duration::from_secs(30), |p| p["state"] == "live")
        .await;
    // An order placed before its customer registered, ids as numbers and text.
    server
        .append(
            "order-1",
            &[(
                "OrderPlaced",
                json!({"order_id": 1, "customer_id": 7, "total": 250}),
            )],
        )
        .await;
    server
        .append(
            "customer-7",
            &[(
                "CustomerRegistered",
                json!({"customer_id": "7", "name": "Ann"}),
            )],
        )
        .await;
    for o in 2..=5 {
        server
            .append(
                &format!("order-{o}"),
                &[(
                    "OrderPlaced",
                    json!({"order_id": o, "customer_id": "7", "total": o * 10}),
                )],
            )
            .await;
    }
    server
        .append(
            "order-9",
            &[(
                "OrderPlaced",
                json!({"order_id": 9, "customer_id": 8, "total": 1}),
            )],
        )
        .await;
    // Placed again: the first placement stands. Shipping an unknown order changes nothing.
    server
        .append(
            "order-2",
            &[(
                "OrderPlaced",
                json!({"order_id": 2, "customer_id": 8, "total": 5}),
            )],
        )
        .await;
    server
        .append("order-2", &[("OrderShipped", json!({"order_id": 2}))])
        .await;
    server
        .append("order-404", &[("OrderShipped", json!({"order_id": 404}))])
        .await;
    server.wait_caught_up("orders").await;
    assert_eq!(
        server.view("orders", "order-2").await.unwrap(),
        json!({"order_id": "2", "customer_id": "7", "customer_name": "Ann", "total": 20, "shipped": true})
    );
    assert_eq!(server.view("orders", "order-404").await, None);
    assert_eq!(
        server.view("orders", "order-9").await.unwrap()["customer_name"],
        Value::Null
    );

    let renamed = server
        .append(
            "customer-7",
            &[(
                "CustomerRenamed",
                json!({"customer_id": 7, "name": "Ann Lee"}),
            )],
        )
        .await;
    let at = renamed["last_position"].as_u64().unwrap();
    let found = server
        .get_ok(&format!(
            "/views/orders/_find?index=by-customer&customer_id.eq=7&limit=100&min_position={at}"
        ))
        .await;
    let names: Vec<(&str, &Value)> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap(), &i["value"]["customer_name"]))
        .collect();
    let ann_lee = json!("Ann Lee");
    assert_eq!(
        names,
        ["order-1", "order-2", "order-3", "order-4", "order-5"]
            .into_iter()
            .map(|k| (k, &ann_lee))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        server.view("orders", "order-9").await.unwrap()["customer_name"],
        Value::Null
    );
    assert_eq!(
        server.view("orders", "customer-7").await.unwrap(),
        json!({"customer_id": "7", "name": "Ann Lee"})
    );
}

#[tokio::test]
async fn revenue_by_day_groups_sales_per_product_and_day() {
    let server = TestServer::start().await;
    let sales = [
        ("a1", 2, 3000),
        ("a1", 1, 1500),
        ("b2", 5, 500),
        ("a1", 3, 4500),
    ];
    for (i, (sku, quantity, amount)) in sales.iter().enumerate() {
        server
            .append(
                &format!("shop-{i}"),
                &[(
                    "ProductSold",
                    json!({"sku": sku, "quantity": quantity, "amount": amount}),
                )],
            )
            .await;
    }
    // Not a shop stream: not counted.
    server
        .append(
            "test-1",
            &[(
                "ProductSold",
                json!({"sku": "a1", "quantity": 1, "amount": 1}),
            )],
        )
        .await;
    let events = server.all_events().await;
    // The UTC day each was recorded on (`recorded_at` is RFC 3339 in UTC).
    let days: Vec<String> = events
        .iter()
        .map(|e| e["recorded_at"].as_str().unwrap()[..10].to_string())
        .collect();
    drop_view(
        &server,
        "revenue.view.yaml",
        &std::fs::read(example_view("revenue-by-day")).unwrap(),
    );
    server.wait_caught_up("revenue").await;
    let docs = server.all_docs("revenue").await;
    if days[..4].iter().all(|d| *d == days[0]) {
        let today = &days[0];
        assert_eq!(
            docs,
            vec![
                (
                    format!("a1/{today}"),
                    json!({"sku": "a1", "day": today, "sales": 3, "units": 6, "revenue": 9000,
                           "sale": {"count": 3, "sum": 9000, "mean": 3000.0}, "largest_sale": 4500})
                ),
                (
                    format!("b2/{today}"),
                    json!({"sku": "b2", "day": today, "sales": 1, "units": 5, "revenue": 500,
                           "sale": {"count": 1, "sum": 500, "mean": 500.0}, "largest_sale": 500})
                ),
            ]
        );
    } else {
        // The sales straddled midnight: the totals still add up.
        let revenue: i64 = docs
            .iter()
            .map(|(_, d)| d["revenue"].as_i64().unwrap())
            .sum();
        assert_eq!(revenue, 9500);
    }
}
