//! Shared helpers: start the real `prism` binary on `127.0.0.1:0` with
//! temporary directories, talk to it over HTTP, kill it, restart it.

#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The repository root (the build scripts put plugins under its `target/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn example_plugin(name: &str) -> PathBuf {
    wasm_at("target/plugins", name)
}

pub fn test_plugin(name: &str) -> PathBuf {
    wasm_at("target/test-plugins", name)
}

fn wasm_at(dir: &str, name: &str) -> PathBuf {
    let path = repo_root().join(dir).join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with scripts/build-plugins.sh",
        path.display()
    );
    path
}

/// Compiled components are shared between test servers so that each plugin
/// is compiled once per test run, not once per test.
fn shared_cache() -> PathBuf {
    repo_root().join("target/test-cache")
}

/// The `prism` binary as a client command, run in `dir` (so it finds no
/// `prism.toml` but the test's) and blind to the caller's `PRISM_*` settings.
pub fn prism_command(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_prism"));
    command
        .current_dir(dir)
        .env_remove("PRISM_SERVER")
        .env_remove("PRISM_TOKEN")
        .env_remove("PRISM_CONFIG");
    command
}

/// The `prism` binary as a command on a projection project in `dir`:
/// toolchains from a cache the test run shares (`target/e2e-tools`, which
/// reuses what `scripts/setup.sh` installed in the checkout), and Rust
/// builds in one target folder (`target/e2e-projects`), so that only a
/// run's first build compiles the dependencies.
pub fn project_command(dir: &Path) -> Command {
    let mut command = prism_command(dir);
    command
        .env("PRISM_TOOLS", repo_root().join("target/e2e-tools"))
        .env("CARGO_TARGET_DIR", repo_root().join("target/e2e-projects"))
        .env_remove("PRISM_SDK");
    command
}

/// Runs `command` to its end with its output kept; kills it and panics
/// with what it printed if it takes longer than `timeout`.
pub fn output_within(command: &mut Command, timeout: Duration) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the command");
    let mut pipes = [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    ]
    .map(|pipe| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            pipe.unwrap().read_to_end(&mut text).unwrap();
            text
        })
    })
    .into_iter();
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            let stdout = pipes.next().unwrap().join().unwrap();
            let stderr = pipes.next().unwrap().join().unwrap();
            panic!(
                "{command:?} ran longer than {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: pipes.next().unwrap().join().unwrap(),
        stderr: pipes.next().unwrap().join().unwrap(),
    }
}

/// The tests' HTTP client. It lets go of a pooled connection well before
/// the server closes an idle one (after `header_read_timeout_secs`, 10 s):
/// a test that blocks its runtime for longer (waiting for a build, say)
/// would otherwise be handed a connection the server has already closed.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

pub struct TestServer {
    pub dir: tempfile::TempDir,
    pub base: String,
    pub http: reqwest::Client,
    child: Option<Child>,
    extra_args: Vec<String>,
    /// The data directory when it is not `dir/data` (e.g. on a filesystem of its own).
    data: Option<PathBuf>,
    /// Extra environment variables of the server process.
    env: Vec<(String, String)>,
}

pub type Reply = (u16, Value);

async fn reply(response: reqwest::Response) -> Reply {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

impl TestServer {
    /// A fresh server with empty data and plugin directories.
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// A fresh server with extra `serve` arguments.
    pub async fn start_with(extra_args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let mut server = TestServer {
            dir,
            base: String::new(),
            http: http_client(),
            child: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
            data: None,
            env: Vec::new(),
        };
        server.spawn();
        server
    }

    /// A fresh server reading `prism.toml` with this content.
    pub async fn start_with_config(toml: &str) -> TestServer {
        Self::start_with_config_in(toml, None).await
    }

    /// A fresh server reading `prism.toml` with this content and keeping its
    /// data in `data` (which may be on a filesystem of its own).
    pub async fn start_with_data_dir(data: &Path, toml: &str) -> TestServer {
        Self::start_with_config_in(toml, Some(data.to_path_buf())).await
    }

    async fn start_with_config_in(toml: &str, data: Option<PathBuf>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let config = dir.path().join("prism.toml");
        std::fs::write(&config, toml).unwrap();
        let mut server = TestServer {
            dir,
            base: String::new(),
            http: http_client(),
            child: None,
            extra_args: vec!["--config".into(), config.display().to_string()],
            data,
            env: Vec::new(),
        };
        server.spawn();
        server
    }

    /// A fresh server with this `prism.toml` and extra environment variables.
    pub async fn start_with_env(toml: &str, env: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
        let config = dir.path().join("prism.toml");
        std::fs::write(&config, toml).unwrap();
        let mut server = TestServer {
            dir,
            base: String::new(),
            http: http_client(),
            child: None,
            extra_args: vec!["--config".into(), config.display().to_string()],
            data: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        server.spawn();
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The server's resident memory, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Whether the server process has ended (and how), without waiting.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut()?.try_wait().unwrap()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data
            .clone()
            .unwrap_or_else(|| self.dir.path().join("data"))
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.dir.path().join("plugins")
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_prism"))
            .arg("serve")
            .arg("--data")
            .arg(self.data_dir())
            .arg("--plugins")
            .arg(self.plugins_dir())
            .arg("--cache")
            .arg(shared_cache())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.extra_args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("PRISM_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start prism");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let Some(address) = line.trim().strip_prefix("prism listening on ") else {
            panic!(
                "unexpected first line {line:?}; log:\n{}",
                self.server_log()
            );
        };
        self.base = address.to_string();
        self.child = Some(child);
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then wait up to `timeout` for the server to exit; its exit
    /// status, or `None` if it was still running (it is then killed).
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let sent = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success(), "kill -TERM");
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        None
    }

    /// Start again on the same directories (killing first if running).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Reply {
        reply(self.http.get(self.url(path)).send().await.unwrap()).await
    }

    /// GET with the body as the server sent it, unparsed.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    }

    pub async fn get_ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        reply(
            self.http
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> Reply {
        let request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        reply(request.send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        reply(self.http.delete(self.url(path)).send().await.unwrap()).await
    }

    /// Append events `[(type, data)]` to `stream`; panics unless 201.
    pub async fn append(&self, stream: &str, events: &[(&str, Value)]) -> Value {
        let events: Vec<Value> = events
            .iter()
            .map(|(t, d)| json!({"type": t, "data": d}))
            .collect();
        let (status, body) = self
            .post(
                &format!("/streams/{stream}/events"),
                &json!({ "events": events }),
            )
            .await;
        assert_eq!(status, 201, "append to {stream}: {body}");
        body
    }

    pub async fn head(&self) -> u64 {
        self.get_ok("/healthz").await["head"].as_u64().unwrap()
    }

    /// All events of the global log, oldest first.
    pub async fn all_events(&self) -> Vec<Value> {
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self
                .get_ok(&format!("/events?from_position={from}&limit=10000"))
                .await;
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return out;
            }
            from = events.last().unwrap()["position"].as_u64().unwrap() + 1;
            out.extend(events);
        }
    }

    /// Drop a plugin file into the watched directory atomically.
    pub fn install_file(&self, name: &str, wasm: &Path) {
        let tmp = self.plugins_dir().join(format!(".{name}.tmp"));
        std::fs::copy(wasm, &tmp).unwrap();
        std::fs::rename(&tmp, self.plugins_dir().join(format!("{name}.wasm"))).unwrap();
    }

    /// Install through `PUT /plugins/{name}`.
    pub async fn put_plugin(&self, name: &str, wasm: &Path) -> Reply {
        self.put_plugin_bytes(name, std::fs::read(wasm).unwrap())
            .await
    }

    pub async fn put_plugin_bytes(&self, name: &str, bytes: Vec<u8>) -> Reply {
        let request = self
            .http
            .put(self.url(&format!("/plugins/{name}")))
            .body(bytes);
        reply(request.send().await.unwrap()).await
    }

    pub async fn plugin(&self, name: &str) -> Value {
        self.get_ok(&format!("/plugins/{name}")).await
    }

    /// Wait until the plugin's status satisfies `pred`; panic with the status after `timeout`.
    pub async fn wait_plugin(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (status, body) = self.get(&format!("/plugins/{name}")).await;
            if status == 200 && pred(&body) {
                return body;
            }
            if Instant::now() > deadline {
                panic!(
                    "plugin {name} never got there; status {status}: {body}\nserver log:\n{}",
                    self.server_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until the plugin is live and has applied everything in the log.
    pub async fn wait_caught_up(&self, name: &str) -> Value {
        let head = self.head().await;
        self.wait_plugin(name, Duration::from_secs(180), |p| {
            p["state"] == "live" && p["position"].as_u64() >= Some(head)
        })
        .await
    }

    /// GET a view document; `None` on 404.
    pub async fn view(&self, plugin: &str, key: &str) -> Option<Value> {
        let (status, body) = self.get(&format!("/views/{plugin}/{key}")).await;
        match status {
            200 => Some(body),
            404 => None,
            _ => panic!("GET view {plugin}/{key}: {status} {body}"),
        }
    }

    /// Every document of a plugin's view, walking the scan's pages.
    pub async fn all_docs(&self, plugin: &str) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/views/{plugin}?limit=1000&cursor={c}"),
                None => format!("/views/{plugin}?limit=1000"),
            };
            let page = self.get_ok(&path).await;
            for item in page["items"].as_array().unwrap() {
                out.push((
                    item["key"].as_str().unwrap().to_string(),
                    item["value"].clone(),
                ));
            }
            match page["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return out,
            }
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One account's expected view document.
pub struct Account {
    pub stream: String,
    pub owner: String,
    pub balance: i64,
    pub transactions: u64,
}

/// Events of a deterministic bank workload: `accounts` accounts with
/// `per_account` deposits and withdrawals each, and the expected views.
pub fn bank_events(
    accounts: usize,
    per_account: usize,
) -> (Vec<(String, Vec<Value>)>, Vec<Account>) {
    let mut appends = Vec::new();
    let mut expected = Vec::new();
    for a in 0..accounts {
        let stream = format!("account-{a}");
        let owner = format!("owner-{a}");
        let mut events = vec![json!({"type": "AccountOpened", "data": {"owner": owner}})];
        let mut balance = 0i64;
        for i in 0..per_account {
            let amount = ((a * 7 + i * 13) % 50 + 1) as i64;
            if i % 3 == 2 {
                events.push(json!({"type": "Withdrawn", "data": {"amount": amount}}));
                balance -= amount;
            } else {
                events.push(json!({"type": "Deposited", "data": {"amount": amount}}));
                balance += amount;
            }
        }
        appends.push((stream.clone(), events));
        expected.push(Account {
            stream,
            owner,
            balance,
            transactions: per_account as u64,
        });
    }
    (appends, expected)
}

/// Append the bank workload and return the expected views.
pub async fn bank_workload(
    server: &TestServer,
    accounts: usize,
    per_account: usize,
) -> Vec<Account> {
    let (appends, expected) = bank_events(accounts, per_account);
    for (stream, events) in appends {
        for chunk in events.chunks(5000) {
            let (status, body) = server
                .post(
                    &format!("/streams/{stream}/events"),
                    &json!({ "events": chunk }),
                )
                .await;
            assert_eq!(status, 201, "{body}");
        }
    }
    expected
}

/// Assert that the `account-balance`-shaped view `plugin` holds exactly `expected`.
pub async fn assert_balances(server: &TestServer, plugin: &str, expected: &[Account]) {
    for account in expected {
        let doc = server
            .view(plugin, &account.stream)
            .await
            .unwrap_or_else(|| panic!("{plugin} has no {}", account.stream));
        assert_eq!(
            doc,
            json!({"owner": account.owner, "balance": account.balance, "transactions": account.transactions}),
            "{plugin}/{}",
            account.stream
        );
    }
}

/// An event of a log read with `data` and `metadata` exactly as the
/// response spelled them.
#[derive(Deserialize)]
pub struct RawEvent {
    pub position: u64,
    pub stream: String,
    pub stream_version: u64,
    #[serde(rename = "type")]
    pub event_type: String,
    pub data: Box<RawValue>,
    pub metadata: Box<RawValue>,
}

/// A page of `GET /events` or `GET /streams/{stream}/events`, its events'
/// payloads unparsed.
#[derive(Deserialize)]
pub struct RawPage {
    pub events: Vec<RawEvent>,
    pub head: Option<u64>,
    pub next_position: Option<u64>,
    pub last_version_read: Option<u64>,
    pub next_version: Option<u64>,
}

impl RawPage {
    pub fn parse(text: &str) -> RawPage {
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text:.300}"))
    }
}

/// `wasm` with a custom section appended: a valid component that behaves
/// the same, with another content hash (a new version to deploy).
pub fn with_custom_section(wasm: &[u8], marker: &str) -> Vec<u8> {
    let name = b"prism-test";
    let mut payload = vec![name.len() as u8];
    payload.extend_from_slice(name);
    payload.extend_from_slice(marker.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    out.push(u8::try_from(payload.len()).unwrap());
    out.extend_from_slice(&payload);
    out
}
