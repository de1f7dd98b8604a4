//! The contract moves on, old components keep working: components built
//! against `prism:projection@0.1.0`, `@0.2.0`, `@0.3.0` and `@0.4.0` load, project,
//! emit and answer queries beside components of the current version.

use serde_json::json;

use crate::common::{TestServer, example_plugin, test_plugin};

#[tokio::test]
async fn a_component_of_the_first_contract_still_loads_and_works() {
    let server = TestServer::start().await;
    server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 5})),
            ],
        )
        .await;
    server
        .append("account-2", &[("AccountOpened", json!({"owner": "bob"}))])
        .await;
    server.install_file("old", &test_plugin("old-world"));
    server.install_file("second", &test_plugin("second-world"));
    server.install_file("third", &test_plugin("third-world"));
    server.install_file("fourth", &test_plugin("fourth-world"));
    server.install_file("bank", &example_plugin("account-balance"));
    let old = server.wait_caught_up("old").await;
    let second = server.wait_caught_up("second").await;
    let third = server.wait_caught_up("third").await;
    let fourth = server.wait_caught_up("fourth").await;
    let bank = server.wait_caught_up("bank").await;
    assert_eq!(
        old["description"]["kind"],
        "wasm component, prism:projection@0.1.0"
    );
    assert_eq!(
        second["description"]["kind"],
        "wasm component, prism:projection@0.2.0"
    );
    assert_eq!(
        third["description"]["kind"],
        "wasm component, prism:projection@0.3.0"
    );
    assert_eq!(
        fourth["description"]["kind"],
        "wasm component, prism:projection@0.4.0"
    );
    assert_eq!(
        bank["description"]["kind"],
        "wasm component, prism:projection@0.5.0"
    );
    assert_eq!(
        server.get_ok("/views/fourth/_query/total").await,
        json!({"total": 3})
    );
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["balance"],
        json!(5)
    );
    assert_eq!(
        server.get_ok("/views/third/_query/total").await,
        json!({"total": 3})
    );
    assert_eq!(
        server.get_ok("/views/second/_query/total").await,
        json!({"total": 3})
    );
    assert_eq!(
        server.view("old", "account-1").await.unwrap(),
        json!({"count": 2})
    );
    assert_eq!(
        server.get_ok("/views/old/_query/total").await,
        json!({"total": 3})
    );
    // It keeps following the log like any other.
    server
        .append("account-2", &[("Deposited", json!({"amount": 1}))])
        .await;
    server.wait_caught_up("old").await;
    assert_eq!(
        server.view("old", "account-2").await.unwrap(),
        json!({"count": 2})
    );
    // Components of 0.3.0 and 0.4.0 still emit events.
    server.append("pings", &[("Ping", json!({}))]).await;
    server.wait_caught_up("third").await;
    server.wait_caught_up("fourth").await;
    let events = server.all_events().await;
    for (plugin, stream) in [("third", "third-echo"), ("fourth", "fourth-echo")] {
        let echoed: Vec<_> = events.iter().filter(|e| e["stream"] == stream).collect();
        assert_eq!(echoed.len(), 1, "{echoed:?}");
        assert_eq!(echoed[0]["metadata"]["emitted_by"], plugin);
    }
}
