//! Events of types a plugin did not ask for never reach it, but its
//! position still advances past them to the head.

use serde_json::json;

use crate::common::{TestServer, example_plugin};

#[tokio::test]
async fn a_plugin_that_wants_some_types_still_reaches_the_head() {
    let server = TestServer::start().await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    for i in 0..50 {
        server
            .append("other", &[("SomethingElse", json!({"i": i}))])
            .await;
    }
    server
        .append("account-1", &[("Deposited", json!({"amount": 3}))])
        .await;
    let noise: Vec<_> = (0..500).map(|i| ("Noise", json!({"i": i}))).collect();
    server.append("other", &noise).await;
    let status = server.wait_caught_up("bank").await;
    assert_eq!(status["position"], server.head().await);
    assert_eq!(status["lag"], 0);
    assert_eq!(
        server.view("bank", "account-1").await.unwrap(),
        json!({"owner": "ann", "balance": 3, "transactions": 1})
    );
    assert_eq!(
        status["description"]["event_types"],
        json!(["AccountOpened", "Deposited", "Withdrawn"])
    );
}

#[tokio::test]
async fn two_plugins_writing_the_same_key_never_see_each_other() {
    let server = TestServer::start().await;
    server.install_file("balances", &example_plugin("account-balance"));
    server.install_file("counts", &crate::common::test_plugin("trap-on-event"));
    server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 2})),
            ],
        )
        .await;
    server.wait_caught_up("balances").await;
    server.wait_caught_up("counts").await;
    assert_eq!(
        server.view("balances", "account-1").await.unwrap(),
        json!({"owner": "ann", "balance": 2, "transactions": 1})
    );
    assert_eq!(
        server.view("counts", "account-1").await.unwrap(),
        json!({"count": 2})
    );
    assert_eq!(server.all_docs("balances").await.len(), 1);
    assert_eq!(server.all_docs("counts").await.len(), 1);
}
