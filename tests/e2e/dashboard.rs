//! The dashboard at `/ui`, in a real (headless) browser against the real
//! server: what a person running projections sees and can do. Each test
//! leaves screenshots in `target/ui-screenshots/`.

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::browser::Browser;
use crate::common::{TestServer, bank_workload, example_plugin, test_plugin};

/// The page, polling faster than its usual second so that tests are quick.
fn dashboard(server: &TestServer, fragment: &str) -> String {
    server.url(&format!("/ui?refresh=250{fragment}"))
}

const WAIT: Duration = Duration::from_secs(30);

/// A plugin card's state word on the overview.
fn card_state(plugin: &str) -> String {
    format!("document.querySelector('[data-plugin=\"{plugin}\"] header .badge')?.dataset.state")
}

fn file_hash(path: &std::path::Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// Wait until the plugin has applied the whole log.
async fn caught_up(server: &TestServer, plugin: &str) {
    let head = server.head().await;
    server
        .wait_plugin(plugin, Duration::from_secs(60), |p| {
            p["state"] == "live" && p["position"].as_u64() >= Some(head)
        })
        .await;
}

async fn append_products(server: &TestServer) {
    for (sku, stock) in [("apple", 3), ("pear", 12), ("plum", 1)] {
        server
            .append(
                &format!("product-{sku}"),
                &[(
                    "ProductAdded",
                    json!({"sku": sku, "name": sku.to_uppercase(), "stock": stock}),
                )],
            )
            .await;
    }
}

#[tokio::test]
async fn the_overview_shows_every_plugin_and_a_replay_until_it_is_live() {
    // Two events a batch over 20,000 events: a replay of a few seconds.
    let server = TestServer::start_with_config("[plugin.bank]\nmax_batch_events = 2\n").await;
    bank_workload(&server, 100, 199).await;
    append_products(&server).await;
    server
        .append(
            "customer-ada",
            &[
                (
                    "CustomerRegistered",
                    json!({"customer_id": "ada", "name": "Ada"}),
                ),
                (
                    "OrderPlaced",
                    json!({"order_id": "o-1", "customer_id": "ada", "total": 42}),
                ),
            ],
        )
        .await;
    server.install_file("orders", &example_plugin("order-summary"));
    server.install_file("stock", &example_plugin("product-stock"));
    caught_up(&server, "orders").await;
    caught_up(&server, "stock").await;

    let browser = Browser::start("overview").await;
    browser.goto(&dashboard(&server, "")).await;
    browser
        .wait_for(
            "stock live",
            &format!("{} === 'live'", card_state("stock")),
            WAIT,
        )
        .await;
    let kind = browser.text("[data-plugin=\"orders\"] .kind").await;
    assert!(
        kind.contains("wasm component, prism:projection@0.5.0"),
        "{kind}"
    );
    let head = browser.text("#log-head").await;
    assert!(head.contains("20,005"), "{head}");

    // A new plugin replays the log while the page watches.
    server.install_file("bank", &example_plugin("account-balance"));
    let progress = browser
        .wait_for(
            "a replay with progress and ETA",
            &format!(
                "{} === 'replaying' && (t => t.includes('ETA') && t)(document.querySelector('[data-plugin=\"bank\"] .progress-text').innerText)",
                card_state("bank")
            ),
            WAIT,
        )
        .await;
    assert!(
        progress.as_str().unwrap().starts_with("replay "),
        "{progress}"
    );
    let lag: u64 = browser
        .text("[data-plugin=\"bank\"] .lag")
        .await
        .replace(',', "")
        .parse()
        .unwrap();
    assert!(lag > 0, "a replaying plugin shows its lag");
    browser.screenshot("overview-replaying").await;
    browser
        .wait_for(
            "bank live, lag 0",
            &format!(
                "{} === 'live' && document.querySelector('[data-plugin=\"bank\"] .lag').innerText === '0'",
                card_state("bank")
            ),
            Duration::from_secs(60),
        )
        .await;

    // Appends go on from here (bounded: a minute at most); the header shows their rate.
    let ticker = {
        let http = server.http.clone();
        let url = server.url("/streams/account-ticker/events");
        tokio::spawn(async move {
            for _ in 0..600 {
                let events: Vec<Value> = (0..20)
                    .map(|_| json!({"type": "Deposited", "data": {"amount": 1}}))
                    .collect();
                let _ = http
                    .post(&url)
                    .json(&json!({ "events": events }))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    browser
        .wait_for(
            "an append rate",
            "!document.querySelector('#append-rate').innerText.startsWith('0/s')",
            WAIT,
        )
        .await;

    // A rebuild: the candidate's replay beside the serving generation.
    let (status, body) = server.post("/plugins/bank/rebuild", &json!({})).await;
    assert_eq!(status, 202, "{body}");
    let candidate = browser
        .wait_for(
            "the candidate replaying",
            "(t => t.includes('ETA') && t)(document.querySelector('[data-plugin=\"bank\"] .candidate').innerText)",
            WAIT,
        )
        .await;
    assert!(
        candidate.as_str().unwrap().contains("rebuild"),
        "{candidate}"
    );
    assert_eq!(
        browser
            .eval(&format!("return {}", card_state("bank")), vec![])
            .await,
        "live",
        "the serving generation stays live"
    );
    browser.screenshot("overview").await;
    browser
        .wait_for(
            "the rebuilt generation serving, the old one kept",
            "!document.querySelector('[data-plugin=\"bank\"] .candidate') && document.querySelector('[data-plugin=\"bank\"] .previous')?.innerText",
            Duration::from_secs(60),
        )
        .await;

    // A phone: one column, nothing wider than the screen.
    browser.resize(390, 844).await;
    browser
        .wait_for(
            "no sideways scrolling",
            "document.documentElement.scrollWidth <= window.innerWidth",
            WAIT,
        )
        .await;
    browser.screenshot("overview-phone").await;
    ticker.abort();
}

#[tokio::test]
async fn a_failed_plugin_shows_its_error_and_the_event_it_failed_on() {
    let server = TestServer::start().await;
    server
        .append(
            "patient-7",
            &[
                ("Admitted", json!({"ward": 3})),
                ("Poison", json!({"dose": 42})),
            ],
        )
        .await;
    server.install_file("trap", &test_plugin("trap-on-event"));
    server
        .wait_plugin("trap", WAIT, |p| p["state"] == "failed")
        .await;

    let browser = Browser::start("failed-plugin").await;
    browser.goto(&dashboard(&server, "")).await;
    browser
        .wait_for(
            "trap failed",
            &format!("{} === 'failed'", card_state("trap")),
            WAIT,
        )
        .await;
    let error = browser.text("[data-plugin=\"trap\"] .last-error").await;
    assert!(error.contains("Poison in patient-7"), "{error}");

    browser.click("[data-plugin=\"trap\"] h3 a").await;
    let event = browser.text(".last-error-box .event-box").await;
    for shown in ["patient-7", "Poison", "\"dose\": 42"] {
        assert!(event.contains(shown), "{shown} in {event}");
    }
    let message = browser.text(".last-error-box .error-headline").await;
    assert!(message.contains("trapped"), "{message}");
    browser.screenshot("failed-plugin").await;

    // The event, in the log browser.
    browser
        .click(".last-error-box .event-box a.event-link")
        .await;
    let focused = browser.text("#events details.event.focus").await;
    assert!(
        focused.contains("Poison") && focused.contains("\"dose\": 42"),
        "{focused}"
    );
    assert!(focused.contains("patient-7"), "{focused}");
    browser.screenshot("log-browser").await;
}

#[tokio::test]
async fn the_view_browser_opens_documents_runs_queries_and_follows_changes() {
    let server = TestServer::start().await;
    server
        .append(
            "account-1",
            &[
                ("AccountOpened", json!({"owner": "ann"})),
                ("Deposited", json!({"amount": 10})),
            ],
        )
        .await;
    server
        .append("_under", &[("AccountOpened", json!({"owner": "zed"}))])
        .await;
    append_products(&server).await;
    server.install_file("accounts", &example_plugin("account-balance"));
    server.install_file("stock", &example_plugin("product-stock"));
    caught_up(&server, "accounts").await;
    caught_up(&server, "stock").await;

    let browser = Browser::start("view-browser").await;
    browser.goto(&dashboard(&server, "#/views/accounts")).await;
    browser.click("a.key[data-key=\"account-1\"]").await;
    browser
        .wait_for(
            "account-1's document",
            "document.querySelector('#doc-json')?.innerText.includes('\"balance\": 10')",
            WAIT,
        )
        .await;
    // A key starting with `_` is read at `_doc/`.
    browser.click("a.key[data-key=\"_under\"]").await;
    browser
        .wait_for(
            "_under's document",
            "document.querySelector('#doc-json')?.innerText.includes('\"owner\": \"zed\"')",
            WAIT,
        )
        .await;

    // The change feed, live.
    browser.click("#watch-button").await;
    browser
        .wait_for(
            "the feed open",
            "document.querySelector('#feed-status').innerText === 'watching'",
            WAIT,
        )
        .await;
    server
        .append("account-1", &[("Deposited", json!({"amount": 5}))])
        .await;
    let change = browser
        .wait_for(
            "the change of account-1",
            "document.querySelector('#changes li[data-key=\"account-1\"]')?.innerText",
            WAIT,
        )
        .await;
    assert!(
        change.as_str().unwrap().contains("\"balance\":15"),
        "{change}"
    );

    // A query with a parameter.
    browser.goto(&dashboard(&server, "#/views/stock")).await;
    browser.type_into(".param-name", "below").await;
    browser.type_into(".param-value", "5").await;
    browser.click("#query-run").await;
    let result = browser.text("#query-json").await;
    let products: Value = serde_json::from_str(&result).unwrap();
    let text = products.to_string();
    assert!(
        text.contains("apple") && text.contains("plum") && !text.contains("pear"),
        "{text}"
    );

    // Readable in a dark room.
    browser.click("#theme-button").await;
    browser
        .wait_for(
            "a dark page",
            "getComputedStyle(document.body).backgroundColor === 'rgb(14, 17, 22)'",
            WAIT,
        )
        .await;
    browser.screenshot("view-browser-dark").await;
}

#[tokio::test]
async fn an_upload_on_the_plugin_page_hot_swaps_the_plugin() {
    let server = TestServer::start().await;
    bank_workload(&server, 5, 10).await;
    server.install_file("bank", &example_plugin("account-balance"));
    caught_up(&server, "bank").await;
    let new_content = test_plugin("deposits-only");
    let new_hash = file_hash(&new_content);

    let browser = Browser::start("upload").await;
    browser.goto(&dashboard(&server, "#/plugins/bank")).await;
    browser
        .wait_for(
            "the serving generation",
            "document.querySelector('#generations tr[data-role=serving]')",
            WAIT,
        )
        .await;
    browser.choose_file("#replace-file", &new_content).await;
    browser.click("#replace-button").await;
    let question = browser.text("#confirm-dialog[open] #confirm-body").await;
    assert!(question.contains("deposits-only.wasm"), "{question}");
    browser.click("#confirm-ok").await;
    browser
        .wait_for(
            "the new generation serving",
            &format!(
                "(r => r && r.innerText.includes('{}') && r.innerText.includes('live'))(document.querySelector('#generations tr[data-role=serving]'))",
                &new_hash[..12]
            ),
            Duration::from_secs(60),
        )
        .await;
    let banner = browser.text("#banner").await;
    assert!(banner.contains("Uploaded deposits-only.wasm"), "{banner}");
    let history = browser.text("#status-history").await;
    assert!(history.contains("took over"), "{history}");
    assert_eq!(server.plugin("bank").await["generation"], new_hash.as_str());
    browser.screenshot("upload").await;

    // Remove asks first; cancelling keeps the plugin.
    browser.click("#remove-button").await;
    browser.click("#confirm-dialog[open] #confirm-cancel").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(server.get("/plugins/bank").await.0, 200);
}

const TOKENS: &str = r#"
[[tokens]]
token = "reader-secret"
scopes = ["read"]
[[tokens]]
token = "admin-secret"
scopes = ["admin", "read"]
"#;

#[tokio::test]
async fn the_token_prompt_refuses_a_wrong_token_and_admin_actions_need_admin() {
    let server = TestServer::start_with_config(TOKENS).await;
    server.install_file("bank", &example_plugin("account-balance"));

    let browser = Browser::start("tokens").await;
    browser.goto(&dashboard(&server, "")).await;
    browser.text("#token-dialog[open] #token-reason").await;
    browser.type_into("#token-input", "not-a-token").await;
    browser.click("#token-submit").await;
    let refusal = browser.text("#token-error").await;
    assert!(refusal.contains("refused"), "{refusal}");
    assert_eq!(
        browser
            .eval(
                "return document.querySelector('#token-dialog').open",
                vec![]
            )
            .await,
        true
    );
    browser.screenshot("token-refused").await;

    browser.type_into("#token-input", "reader-secret").await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "the plugin list",
            "!document.querySelector('#token-dialog').open && document.querySelector('[data-plugin=\"bank\"]')",
            WAIT,
        )
        .await;

    // A read token may look but not act: the 403 is shown as such.
    browser.goto(&dashboard(&server, "#/plugins/bank")).await;
    browser.click("#rebuild-button").await;
    browser.click("#confirm-ok").await;
    let refused = browser
        .wait_for(
            "the 403",
            "(t => t.includes('403') && t)(document.querySelector('#banner').innerText)",
            WAIT,
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("admin scope"),
        "{refused}"
    );
    browser.screenshot("token-forbidden").await;

    // With an admin token the same action goes through.
    browser.click("#banner button:not(.ghost)").await;
    browser.type_into("#token-input", "admin-secret").await;
    browser.click("#token-submit").await;
    browser
        .wait_for(
            "the dialog closed",
            "!document.querySelector('#token-dialog').open",
            WAIT,
        )
        .await;
    browser.click("#rebuild-button").await;
    browser.click("#confirm-ok").await;
    browser
        .wait_for(
            "the rebuild accepted",
            "document.querySelector('#banner').innerText.includes('Rebuild bank: done')",
            WAIT,
        )
        .await;
}
