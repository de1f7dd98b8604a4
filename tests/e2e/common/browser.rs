//! A headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, installed by `scripts/setup-browser.sh`), to look at
//! the dashboard as a person would. chromedriver listens on a free loopback
//! port; the browser gets a fresh profile and no network beyond loopback.
//! Dropping a `Browser` kills chromedriver and every browser process it
//! started, and a failed wait leaves a screenshot in `target/ui-screenshots`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::repo_root;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Longest any one WebDriver command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// Where screenshots go.
pub fn screenshot_dir() -> PathBuf {
    repo_root().join("target/ui-screenshots")
}

pub struct Browser {
    /// chromedriver, leader of its own process group.
    driver: Child,
    /// The browser's profile: fresh for every browser, and how its processes
    /// are told apart from any other Chromium on the machine.
    profile: tempfile::TempDir,
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT/session/ID`
    session: String,
    /// Names the screenshots of a failed wait.
    name: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Browser {
    /// A browser with a laptop-sized window.
    pub async fn start(name: &str) -> Browser {
        Self::start_sized(name, 1280, 900).await
    }

    pub async fn start_sized(name: &str, width: u32, height: u32) -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: install the browser with scripts/setup-browser.sh"
            );
        }
        std::fs::create_dir_all(screenshot_dir()).unwrap();
        let port = free_port();
        let log = std::fs::File::create(screenshot_dir().join(format!("{name}.chromedriver.log")))
            .unwrap();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let http = reqwest::Client::builder()
            .timeout(COMMAND_TIMEOUT)
            .no_proxy()
            .build()
            .unwrap();
        let mut browser = Browser {
            driver,
            profile,
            http,
            session: format!("http://127.0.0.1:{port}"),
            name: name.to_string(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let ready = browser
                .http
                .get(format!("{}/status", browser.session))
                .send()
                .await;
            if let Ok(r) = ready
                && let Ok(status) = r.json::<Value>().await
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", browser.profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let created = browser
            .http
            .post(format!("{}/session", browser.session))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
                "timeouts": {"script": 20000, "pageLoad": 20000},
            }}}))
            .send()
            .await
            .expect("create a WebDriver session");
        let body: Value = created.json().await.unwrap();
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {body}"));
        browser.session = format!("{}/session/{id}", browser.session);
        browser
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.session));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Run `script` (a function body: `return …`) in the page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.command(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Wait until `expression` (JavaScript) is truthy and return its value.
    /// On timeout: a screenshot `NAME-timeout.png` and a panic that says
    /// what was awaited and what the page showed.
    pub async fn wait_for(&self, what: &str, expression: &str, timeout: Duration) -> Value {
        let script =
            format!("try {{ return ({expression}) || null; }} catch (e) {{ return null; }}");
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(&script, vec![]).await;
            if !value.is_null() && value != false {
                return value;
            }
            if Instant::now() > deadline {
                let shot = self.screenshot(&format!("{}-timeout", self.name)).await;
                let text = self.eval("return document.body.innerText", vec![]).await;
                panic!(
                    "waited {timeout:?} for {what} ({expression}); screenshot {}; the page showed:\n{}",
                    shot.display(),
                    text.as_str().unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait for an element and return its visible text.
    pub async fn text(&self, css: &str) -> String {
        let value = self
            .wait_for(
                &format!("element {css}"),
                &format!("document.querySelector({})?.innerText", json!(css)),
                Duration::from_secs(20),
            )
            .await;
        value.as_str().unwrap_or_default().to_string()
    }

    async fn element(&self, css: &str) -> String {
        self.wait_for(
            &format!("a visible {css}"),
            &format!(
                "(e => e && e.getClientRects().length > 0)(document.querySelector({}))",
                json!(css)
            ),
            Duration::from_secs(20),
        )
        .await;
        let found = self
            .command(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Click as a person would (the element must be visible). A page that
    /// redraws may replace the element between finding and clicking it:
    /// then it is found again.
    pub async fn click(&self, css: &str) {
        for _ in 0..5 {
            let id = self.element(css).await;
            let response = self
                .http
                .post(format!("{}/element/{id}/click", self.session))
                .json(&json!({}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("WebDriver click {css}: {e}"));
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                return;
            }
            assert_eq!(
                body["value"]["error"], "stale element reference",
                "click {css}: {status} {body}"
            );
        }
        panic!("{css} was replaced before every click");
    }

    /// Type into an input.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/clear"),
            Some(json!({})),
        )
        .await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Choose a file in an `<input type=file>`.
    pub async fn choose_file(&self, css: &str, file: &Path) {
        let id = self.element(css).await;
        self.command(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            Some(json!({ "text": file.display().to_string() })),
        )
        .await;
    }

    pub async fn resize(&self, width: u32, height: u32) {
        self.command(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({ "width": width, "height": height })),
        )
        .await;
    }

    /// Save what the page shows as `target/ui-screenshots/NAME.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let encoded = self
            .command(reqwest::Method::GET, "/screenshot", None)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .expect("a base64 screenshot");
        let path = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and what it started share its process group; any
        // browser process that left the group is found by its profile.
        let group = self.driver.id() as i32;
        // SAFETY: kill(2) with a negative pid signals that process group,
        // which is chromedriver's own (process_group(0) at spawn).
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        let profile = self.profile.path().display().to_string();
        for pid in processes_mentioning(&profile) {
            // SAFETY: signals one process by id: a browser started with this
            // browser's own profile directory.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}
