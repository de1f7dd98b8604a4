//! Views queried like a document store: `_find` over a declared index,
//! paged while the view changes, and `_bulk_get`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin, test_plugin};

/// A GET with the position and generation headers of the answer.
async fn get_at(server: &TestServer, path: &str) -> (u16, Value, u64, String) {
    let response = server.http.get(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let position = header("prism-position").parse().unwrap_or(0);
    let generation = header("prism-generation");
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, position, generation)
}

async fn add_products(server: &TestServer, count: usize) -> BTreeMap<String, u64> {
    let mut stock = BTreeMap::new();
    for n in 0..count {
        let sku = format!("p{n:03}");
        let level = (n * 7 % 23) as u64;
        server
            .append(
                &format!("product-{sku}"),
                &[(
                    "ProductAdded",
                    json!({"sku": sku, "name": format!("thing {n}"), "stock": level}),
                )],
            )
            .await;
        stock.insert(sku, level);
    }
    stock
}

/// Stock levels after every event of the log up to `position`.
async fn stock_at(server: &TestServer, position: u64) -> BTreeMap<String, u64> {
    let mut stock = BTreeMap::new();
    for e in server.all_events().await {
        if e["position"].as_u64().unwrap() > position {
            break;
        }
        let sku = e["data"]["sku"].as_str().unwrap().to_string();
        match e["type"].as_str().unwrap() {
            "ProductAdded" => {
                stock.insert(sku, e["data"]["stock"].as_u64().unwrap());
            }
            "StockReceived" => {
                *stock.entry(sku).or_default() += e["data"]["quantity"].as_u64().unwrap()
            }
            "StockRemoved" => {
                *stock.get_mut(&sku).unwrap() -= e["data"]["quantity"].as_u64().unwrap()
            }
            _ => {}
        }
    }
    stock
}

#[tokio::test]
async fn low_stock_pages_are_exact_at_one_position_while_stock_changes() {
    let server = Arc::new(TestServer::start().await);
    server.install_file("stock", &example_plugin("product-stock"));
    let mut levels = add_products(&server, 200).await;
    server.wait_caught_up("stock").await;

    // A writer moves stock up and down all the time, across the threshold
    // both ways, never below zero.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, stop) = (server.clone(), stop.clone());
        tokio::spawn(async move {
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && n < 20_000 {
                let sku = format!("p{:03}", (n * 37) % 200);
                let level = levels[&sku];
                let (event, quantity) = if n.is_multiple_of(2) && level > 0 {
                    ("StockRemoved", (n as u64 % 9 + 1).min(level))
                } else {
                    ("StockReceived", n as u64 % 9 + 1)
                };
                server
                    .append(
                        &format!("product-{sku}"),
                        &[(event, json!({"sku": sku, "quantity": quantity}))],
                    )
                    .await;
                let level = levels.get_mut(&sku).unwrap();
                if event == "StockRemoved" {
                    *level -= quantity;
                } else {
                    *level += quantity;
                }
                n += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut walked: Vec<(String, u64)> = Vec::new();
    let (status, mut page, position, generation) = get_at(
        &server,
        "/views/stock/_find?index=by-stock&stock.lt=10&limit=7",
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let mut pages = 0;
    loop {
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            walked.push((
                item["key"].as_str().unwrap().to_string(),
                item["value"]["stock"].as_u64().unwrap(),
            ));
        }
        let Some(cursor) = page["cursor"].as_str() else {
            break;
        };
        // Let the view move on between pages.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, next, at, by) = get_at(
            &server,
            &format!("/views/stock/_find?index=by-stock&stock.lt=10&limit=7&cursor={cursor}"),
        )
        .await;
        assert_eq!(status, 200, "{next}");
        assert_eq!(
            (at, &by),
            (position, &generation),
            "every page reads the walk's position"
        );
        page = next;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(pages > 3, "{pages} pages");
    assert!(
        server.head().await > position,
        "the stock changed during the walk"
    );

    // Exactly the products below 10 at that position, each once, at its
    // level then, lowest first (ties by key).
    let mut expected: Vec<(String, u64)> = stock_at(&server, position)
        .await
        .into_iter()
        .filter(|(_, level)| *level < 10)
        .map(|(sku, level)| (format!("product-{sku}"), level))
        .collect();
    expected.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    assert_eq!(walked, expected);

    // A new walk reads the view as it is now.
    server.wait_caught_up("stock").await;
    let now = server
        .get_ok("/views/stock/_find?index=by-stock&stock.lt=10&limit=1000")
        .await;
    let now: Vec<u64> = now["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"]["stock"].as_u64().unwrap())
        .collect();
    let head = server.head().await;
    let mut want: Vec<u64> = stock_at(&server, head)
        .await
        .into_values()
        .filter(|l| *l < 10)
        .collect();
    want.sort();
    assert_eq!(now, want);
}

#[tokio::test]
async fn counts_projections_orders_and_filters_answer_from_the_index() {
    let server = TestServer::start().await;
    server.install_file("stock", &example_plugin("product-stock"));
    let levels = add_products(&server, 60).await;
    server.wait_caught_up("stock").await;
    let below = |n: u64| levels.values().filter(|l| **l < n).count();
    let count = server
        .get_ok("/views/stock/_find?index=by-stock&stock.lt=10&count=true")
        .await;
    assert_eq!(count, json!({"count": below(10)}));
    let desc = server
        .get_ok("/views/stock/_find?index=by-stock&stock.gte=20&order=desc&fields=sku,stock")
        .await;
    let items = desc["items"].as_array().unwrap();
    assert_eq!(items.len(), levels.values().filter(|l| **l >= 20).count());
    assert_eq!(items[0]["value"].as_object().unwrap().len(), 2, "{desc}");
    assert!(
        items
            .windows(2)
            .all(|w| w[0]["value"]["stock"].as_u64() >= w[1]["value"]["stock"].as_u64())
    );
    // A filter on a field the index does not hold.
    let named = server
        .get_ok("/views/stock/_find?index=by-stock&stock.lt=5&name.prefix=thing%201")
        .await;
    for item in named["items"].as_array().unwrap() {
        assert!(
            item["value"]["name"]
                .as_str()
                .unwrap()
                .starts_with("thing 1")
        );
        assert!(item["value"]["stock"].as_u64().unwrap() < 5);
    }
    // A small view may be scanned without an index; the low-stock query agrees with _find.
    let scanned = server.get_ok("/views/stock/_find?stock.eq=0").await;
    assert_eq!(scanned["items"].as_array().unwrap().len(), below(1));
    let low = server
        .get_ok("/views/stock/_query/low-stock?below=10&limit=1000")
        .await;
    let found = server
        .get_ok("/views/stock/_find?index=by-stock&stock.lt=10&limit=1000")
        .await;
    let found: Vec<Value> = found["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].clone())
        .collect();
    assert_eq!(low, Value::Array(found));
}

#[tokio::test]
async fn index_entries_follow_changed_fields_and_vanish_with_deleted_documents() {
    let server = TestServer::start().await;
    server.install_file("users", &test_plugin("unique-email"));
    server
        .append("user-1", &[("UserRegistered", json!({"email": "ann@x"}))])
        .await;
    server
        .append("user-2", &[("UserRegistered", json!({"email": "bob@x"}))])
        .await;
    server
        .append("user-1", &[("EmailChanged", json!({"email": "ann@y"}))])
        .await;
    server.append("user-2", &[("UserDeleted", json!({}))]).await;
    server.wait_caught_up("users").await;
    let find = |q: &'static str| {
        let server = &server;
        async move {
            let page = server
                .get_ok(&format!("/views/users/_find?index=by-email&{q}"))
                .await;
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["key"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(find("email.eq=ann@y").await, ["user-1"]);
    assert!(
        find("email.eq=ann@x").await.is_empty(),
        "the old value's entry is gone"
    );
    assert!(
        find("email.eq=bob@x").await.is_empty(),
        "a deleted document's entry is gone"
    );
    assert_eq!(find("email.prefix=").await, ["user-1"]);
    // The freed address can be taken again.
    server
        .append("user-3", &[("UserRegistered", json!({"email": "ann@x"}))])
        .await;
    server.wait_caught_up("users").await;
    assert_eq!(find("email.in=ann@x,ann@y").await, ["user-3", "user-1"]);
}

#[tokio::test]
async fn a_unique_index_violation_halts_or_dead_letters_as_configured() {
    for policy in ["halt", "skip"] {
        let server =
            TestServer::start_with_config(&format!("[plugin.users]\non_error = \"{policy}\"\n"))
                .await;
        server
            .append("user-1", &[("UserRegistered", json!({"email": "ann@x"}))])
            .await;
        let clash = server
            .append("user-2", &[("UserRegistered", json!({"email": "ann@x"}))])
            .await;
        let clash = clash["first_position"].as_u64().unwrap();
        server
            .append("user-3", &[("UserRegistered", json!({"email": "cy@x"}))])
            .await;
        server.install_file("users", &test_plugin("unique-email"));
        if policy == "halt" {
            let status = server
                .wait_plugin("users", Duration::from_secs(60), |p| p["state"] == "failed")
                .await;
            assert_eq!(status["last_error"]["position"], clash, "{status}");
            let message = status["last_error"]["message"].as_str().unwrap();
            assert!(message.contains("unique index \"by-email\""), "{message}");
            assert_eq!(status["position"], clash - 1);
        } else {
            server.wait_caught_up("users").await;
            let letters = server.get_ok("/plugins/users/dead-letters").await;
            let letters = letters["dead_letters"].as_array().unwrap();
            assert_eq!(letters.len(), 1);
            assert_eq!(letters[0]["position"], clash);
            assert!(letters[0]["error"].as_str().unwrap().contains("user-1"));
            assert!(server.view("users", "user-2").await.is_none());
            assert!(
                server.view("users", "user-3").await.is_some(),
                "later events are applied"
            );
        }
    }
}

#[tokio::test]
async fn bulk_get_answers_a_thousand_keys_in_request_order_with_absent_ones_marked() {
    let server = TestServer::start().await;
    server.install_file("stock", &example_plugin("product-stock"));
    let mut events = Vec::new();
    for n in 0..900 {
        events.push(json!({"type": "ProductAdded", "data": {"sku": format!("{n:04}"), "name": "x", "stock": n}}));
    }
    let (status, body) = server
        .post("/streams/catalog/events", &json!({"events": events}))
        .await;
    assert_eq!(status, 201, "{body}");
    let last = body["last_position"].as_u64().unwrap();
    // 1,000 keys, newest first: 900 present, 100 absent.
    let keys: Vec<String> = (0..1000).rev().map(|n| format!("product-{n:04}")).collect();
    let (status, body) = server
        .post(
            &format!("/views/stock/_bulk_get?min_position={last}"),
            &json!({"keys": keys}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1000);
    for (row, key) in rows.iter().zip(&keys) {
        assert_eq!(row["key"], *key);
        let n: u64 = key["product-".len()..].parse().unwrap();
        if n < 900 {
            assert_eq!(row["value"]["stock"], n, "{row}");
        } else {
            assert_eq!(row["error"], "not_found", "{row}");
        }
    }
    let too_many: Vec<String> = (0..1001).map(|n| n.to_string()).collect();
    let (status, body) = server
        .post("/views/stock/_bulk_get", &json!({"keys": too_many}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("too_many_keys")),
        "{body}"
    );
    let (status, body) = server
        .post("/views/stock/_bulk_get", &json!({"keys": ["ok", ""]}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_key")),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keys[1]")
    );
}

#[tokio::test]
async fn malformed_queries_are_refused_with_what_is_wrong() {
    let server = TestServer::start().await;
    server.install_file("stock", &example_plugin("product-stock"));
    add_products(&server, 3).await;
    server.wait_caught_up("stock").await;
    for (query, code, mentions) in [
        ("index=by-name", "unknown_index", "by-stock"),
        ("index=by-stock&stock.below=3", "unknown_operator", "below"),
        (
            "index=by-stock&stock=3",
            "unknown_parameter",
            "FIELD.OP=VALUE",
        ),
        ("index=by-stock&stock.lt=few", "invalid_condition", "number"),
        (
            "index=by-stock&stock.prefix=1",
            "invalid_condition",
            "prefix",
        ),
        ("index=by-stock&limit=0", "invalid_limit", "limit"),
        (
            "index=by-stock&order=sideways",
            "invalid_parameter",
            "order",
        ),
        ("index=by-stock&cursor=zz", "invalid_cursor", "cursor"),
        ("index=by-stock&count=maybe", "invalid_parameter", "count"),
    ] {
        let (status, body) = server.get(&format!("/views/stock/_find?{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(mentions), "{query}: {message}");
    }
    // A cursor of an unknown walk has expired.
    let (status, body) = server
        .get("/views/stock/_find?index=by-stock&cursor=00000000000000010203")
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (410, Some("cursor_expired")),
        "{body}"
    );
    let (status, _) = server.get("/views/nothing/_find?index=x").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_changed_index_declaration_is_a_new_generation_and_the_old_index_serves_until_cutover() {
    let server = TestServer::start_with_config("[plugin.bank]\ncutover = \"manual\"\n").await;
    for n in 0..20 {
        server
            .append(
                &format!("account-{n}"),
                &[
                    ("AccountOpened", json!({"owner": "o"})),
                    ("Deposited", json!({"amount": n * 10})),
                ],
            )
            .await;
    }
    server.install_file("bank", &test_plugin("indexed-balance"));
    let first = server.wait_caught_up("bank").await;
    let rich = "/views/bank/_find?index=by-balance&balance.gte=150&count=true";
    assert_eq!(server.get_ok(rich).await, json!({"count": 5}));
    // The same documents without the index: a new generation.
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["candidate"]["ready"] == true
        })
        .await;
    let (status, body, _, generation) = get_at(&server, rich).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(generation, first["generation"].as_str().unwrap());
    server
        .append("account-3", &[("Deposited", json!({"amount": 1000}))])
        .await;
    server
        .wait_plugin("bank", Duration::from_secs(60), |p| {
            p["candidate"]["ready"] == true
        })
        .await;
    let head = server.head().await;
    assert_eq!(
        server.get_ok(&format!("{rich}&min_position={head}")).await,
        json!({"count": 6})
    );
    let (status, body) = server.post("/plugins/bank/promote", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get(rich).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("unknown_index")),
        "{body}"
    );
}
