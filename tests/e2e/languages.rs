//! The same projection in Rust, Python and JavaScript gives identical views,
//! and a Python or JavaScript plugin that raises is contained like a trap.

use std::time::Duration;

use serde_json::json;

use crate::common::{TestServer, assert_balances, bank_workload, example_plugin, test_plugin};

#[tokio::test]
async fn rust_python_and_javascript_views_are_identical() {
    let server = TestServer::start().await;
    let expected = bank_workload(&server, 30, 20).await;
    server.install_file("rust", &example_plugin("account-balance"));
    server.install_file("python", &example_plugin("account-balance-py"));
    server.install_file("javascript", &example_plugin("account-balance-js"));
    for plugin in ["rust", "python", "javascript"] {
        server.wait_caught_up(plugin).await;
    }
    // Live events after the replay reach all three as well.
    server
        .append("account-3", &[("Deposited", json!({"amount": 1000}))])
        .await;
    for plugin in ["rust", "python", "javascript"] {
        server.wait_caught_up(plugin).await;
    }
    let rust = server.all_docs("rust").await;
    assert_eq!(rust.len(), 30);
    assert_eq!(
        server.all_docs("python").await,
        rust,
        "Python view differs from Rust"
    );
    assert_eq!(
        server.all_docs("javascript").await,
        rust,
        "JavaScript view differs from Rust"
    );
    assert_balances(&server, "rust", &expected[..3]).await;
    assert_eq!(
        server.view("python", "account-3").await.unwrap()["balance"],
        expected[3].balance + 1000
    );
}

#[tokio::test]
async fn python_and_javascript_exceptions_are_contained() {
    let server = TestServer::start().await;
    server.install_file("bank", &example_plugin("account-balance"));
    server
        .append("account-1", &[("AccountOpened", json!({"owner": "ann"}))])
        .await;
    server
        .append("s-1", &[("Good", json!({})), ("Good", json!({}))])
        .await;
    let poison = server.append("s-1", &[("Poison", json!({}))]).await;
    let poison = poison["first_position"].as_u64().unwrap();
    server.install_file("py", &test_plugin("raise-py"));
    server.install_file("js", &test_plugin("raise-js"));
    for plugin in ["py", "js"] {
        let status = server
            .wait_plugin(plugin, Duration::from_secs(300), |p| p["state"] == "failed")
            .await;
        assert_eq!(
            status["last_error"]["position"], poison,
            "{plugin}: {status}"
        );
        assert!(
            status["last_error"]["message"]
                .as_str()
                .unwrap()
                .contains("Poison"),
            "{status}"
        );
        assert_eq!(
            server.view(plugin, "s-1").await.unwrap(),
            json!({"count": 2}),
            "{plugin}"
        );
    }
    server
        .append("account-1", &[("Deposited", json!({"amount": 5}))])
        .await;
    server.wait_caught_up("bank").await;
    assert_eq!(
        server.view("bank", "account-1").await.unwrap()["balance"],
        5
    );
}
