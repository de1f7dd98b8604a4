//! The example projections, loaded into the real server, build the views
//! their documentation promises.

use serde_json::{Value, json};

use crate::common::{TestServer, example_plugin};

#[tokio::test]
async fn order_summary_joins_customers_orders_and_shipments() {
    let server = TestServer::start().await;
    server.install_file("orders", &example_plugin("order-summary"));
    server
        .append(
            "customer-7",
            &[(
                "CustomerRegistered",
                json!({"customer_id": "7", "name": "Ada"}),
            )],
        )
        .await;
    server
        .append(
            "order-1",
            &[(
                "OrderPlaced",
                json!({"order_id": "1", "customer_id": "7", "total": 1200}),
            )],
        )
        .await;
    server
        .append(
            "order-2",
            &[(
                "OrderPlaced",
                json!({"order_id": "2", "customer_id": "7", "total": 300}),
            )],
        )
        .await;
    server
        .append("order-1", &[("OrderShipped", json!({"order_id": "1"}))])
        .await;
    server.wait_caught_up("orders").await;
    let customer = server.view("orders", "customer-7").await.unwrap();
    assert_eq!(customer["name"], "Ada");
    assert_eq!(customer["orders"], 2);
    assert_eq!(customer["total_spent"], 1500);
    assert_eq!(customer["open_orders"], json!(["2"]));
    assert_eq!(customer["shipped_orders"], 1);
}

#[tokio::test]
async fn product_stock_lists_by_stock_level_and_answers_low_stock() {
    let server = TestServer::start().await;
    server.install_file("stock", &example_plugin("product-stock"));
    for (sku, name, stock) in [
        ("a1", "Anvil", 3),
        ("b2", "Bucket", 40),
        ("c3", "Chisel", 12),
        ("d4", "Drill", 7),
    ] {
        server
            .append(
                &format!("product-{sku}"),
                &[(
                    "ProductAdded",
                    json!({"sku": sku, "name": name, "stock": stock}),
                )],
            )
            .await;
    }
    server
        .append(
            "product-b2",
            &[("StockRemoved", json!({"sku": "b2", "quantity": 38}))],
        )
        .await;
    server
        .append(
            "product-a1",
            &[("StockReceived", json!({"sku": "a1", "quantity": 20}))],
        )
        .await;
    server.wait_caught_up("stock").await;

    // The declared index lists products by stock level; the view holds
    // only the product documents.
    let page = server.get_ok("/views/stock/_find?index=by-stock").await;
    let skus: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"]["sku"].as_str().unwrap())
        .collect();
    assert_eq!(skus, vec!["b2", "d4", "c3", "a1"]);
    let keys: Vec<String> = server
        .all_docs("stock")
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        ["product-a1", "product-b2", "product-c3", "product-d4"]
    );
    assert_eq!(
        server.view("stock", "product-a1").await.unwrap()["stock"],
        23
    );

    let low: Value = server
        .get_ok("/views/stock/_query/low-stock?below=10")
        .await;
    let low: Vec<(&str, u64)> = low
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["sku"].as_str().unwrap(), p["stock"].as_u64().unwrap()))
        .collect();
    assert_eq!(low, vec![("b2", 2), ("d4", 7)]);
    let (status, body) = server.get("/views/stock/_query/low-stock?below=lots").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_params")),
        "{body}"
    );
}
