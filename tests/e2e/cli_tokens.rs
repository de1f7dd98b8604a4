//! The client commands against a server that wants bearer tokens: the token
//! comes from `--token`, `PRISM_TOKEN` or the config file's `[client]` table,
//! in that order of precedence, and never shows in `--help`.

use std::process::Output;

use serde_json::json;

use crate::common::{TestServer, example_plugin, prism_command};

const TOKENS: &str = r#"
[[tokens]]
token = "writer-secret"
scopes = ["write"]
[[tokens]]
token = "admin-secret"
scopes = ["admin", "read"]
"#;

/// `prism ARGS` against `server`, with extra environment variables.
fn run(server: &TestServer, args: &[&str], env: &[(&str, &str)]) -> Output {
    prism_command(server.dir.path())
        .args(args)
        .envs(env.iter().copied())
        .env("PRISM_SERVER", &server.base)
        .output()
        .unwrap()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn unauthorized(output: &Output) {
    assert!(!output.status.success(), "accepted without a valid token");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("401: unauthorized"), "{stderr}");
}

#[tokio::test]
async fn every_client_command_sends_the_token() {
    let server = TestServer::start_with_config(TOKENS).await;
    let file = server.dir.path().join("events.ndjson");
    std::fs::write(&file, r#"{"stream":"b","type":"E","data":{}}"#).unwrap();
    let wasm = example_plugin("account-balance");
    let (file, wasm) = (file.to_str().unwrap(), wasm.to_str().unwrap());

    let writes: [&[&str]; 2] = [&["append", "a", "E"], &["import", file]];
    for args in writes {
        unauthorized(&run(&server, args, &[]));
        succeeded(&run(
            &server,
            &[args, &["--token", "writer-secret"]].concat(),
            &[],
        ));
    }
    let reads_and_plugin_changes: [&[&str]; 5] = [
        &["events"],
        &["events", "--stream", "a"],
        &["plugins", "install", "bank", wasm],
        &["plugins", "list"],
        &["plugins", "show", "bank"],
    ];
    for args in reads_and_plugin_changes {
        unauthorized(&run(&server, args, &[]));
        succeeded(&run(
            &server,
            &[args, &["--token", "admin-secret"]].concat(),
            &[],
        ));
    }
    let printed = succeeded(&run(
        &server,
        &["events"],
        &[("PRISM_TOKEN", "admin-secret")],
    ));
    assert_eq!(printed.lines().count(), 2, "{printed}");
    succeeded(&run(
        &server,
        &["plugins", "rebuild", "bank"],
        &[("PRISM_TOKEN", "admin-secret")],
    ));
    succeeded(&run(
        &server,
        &["plugins", "remove", "bank", "--token", "admin-secret"],
        &[],
    ));
}

#[tokio::test]
async fn the_flag_beats_the_environment_which_beats_the_config_file() {
    let server = TestServer::start_with_config(TOKENS).await;
    server_append_with_token(&server).await;
    let client_file = server.dir.path().join("client.toml");
    std::fs::write(
        &client_file,
        format!(
            "[client]\nserver = {:?}\ntoken = \"admin-secret\"\n",
            server.base
        ),
    )
    .unwrap();
    let config = client_file.to_str().unwrap();

    // The file alone: its server and its token.
    let output = prism_command(server.dir.path())
        .args(["events", "--config", config])
        .output()
        .unwrap();
    assert_eq!(succeeded(&output).lines().count(), 1);
    let output = prism_command(server.dir.path())
        .args(["events"])
        .env("PRISM_CONFIG", config)
        .output()
        .unwrap();
    assert_eq!(succeeded(&output).lines().count(), 1);

    // The environment beats the file, the flag beats the environment.
    unauthorized(&run(
        &server,
        &["events", "--config", config],
        &[("PRISM_TOKEN", "wrong")],
    ));
    succeeded(&run(
        &server,
        &["events", "--config", config, "--token", "admin-secret"],
        &[("PRISM_TOKEN", "wrong")],
    ));
    unauthorized(&run(
        &server,
        &["events", "--config", config, "--token", "wrong"],
        &[("PRISM_TOKEN", "admin-secret")],
    ));
    // The flag's server beats the file's.
    let output = run(
        &server,
        &[
            "events",
            "--config",
            config,
            "--server",
            "http://127.0.0.1:1",
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("127.0.0.1:1"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // ./prism.toml is read when no file is named: here the server's own,
    // which has no [client] table, so no token is sent.
    unauthorized(&run(&server, &["events"], &[]));
    std::fs::copy(&client_file, server.dir.path().join("prism.toml")).unwrap();
    succeeded(&run(&server, &["events"], &[]));

    // A named file that is missing is an error, not a silent default.
    let output = run(
        &server,
        &[
            "events",
            "--config",
            "missing.toml",
            "--token",
            "admin-secret",
        ],
        &[],
    );
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing.toml"));
}

async fn server_append_with_token(server: &TestServer) {
    let response = server
        .http
        .post(server.url("/streams/s/events"))
        .bearer_auth("writer-secret")
        .json(&json!({"events": [{"type": "E", "data": {}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn help_does_not_show_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let output = prism_command(dir.path())
        .args(["events", "--help"])
        .env("PRISM_TOKEN", "very-secret-token")
        .output()
        .unwrap();
    let help = succeeded(&output);
    assert!(help.contains("--token"), "{help}");
    assert!(help.contains("PRISM_TOKEN"), "{help}");
    assert!(!help.contains("very-secret-token"), "{help}");
}
