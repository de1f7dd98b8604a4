//! `prism dev`: the edit–build–install loop against a running server.
//!
//! The project's sources are watched (`notify`, tool folders such as
//! `target/` and `node_modules/` left out); a change, once the folder has
//! been quiet for a moment, rebuilds the component and installs it with
//! `PUT /plugins/NAME`. The server replays it beside the serving generation
//! and swaps it in once it has caught up; a build that fails is printed and
//! installs nothing, so the running generation keeps serving. Meanwhile the
//! plugin's status (`GET /plugins/NAME`) is followed and printed one line
//! per change — generations loading, replaying, serving, failing (with the
//! event that failed, from the log) — together with the lines the plugin
//! logs. It runs until Ctrl-C.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use notify::{EventKind, RecursiveMode, Watcher};
use prism::client::{Client, ClientError, segment};
use prism::plugins::PluginName;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::build::{self, Built, Output};
use super::project::Project;
use super::toolchain::Tools;

/// How long the sources must be quiet before a change is built: editors
/// write a file in several steps, and save several files at once.
const QUIET: Duration = Duration::from_millis(250);
/// How often the plugin's status and log are read.
const POLL: Duration = Duration::from_millis(400);
/// Replay progress is printed at most this often per generation.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Most log lines printed at once (the rest are counted).
const LOG_BURST: usize = 40;

/// Runs the loop until Ctrl-C.
pub async fn run(project: Project, plugin: PluginName, client: Client) -> anyhow::Result<()> {
    let tools = Tools::from_env()?;
    client
        .get("/healthz")
        .await
        .context("prism dev needs a running server (--server URL)")?;
    say(format!(
        "watching {} ({} projection), installing it as plugin {plugin} on {}",
        project.dir.display(),
        project.lang,
        client.url("")
    ));
    let dev = Dev {
        follower: Follower::new(client.clone(), plugin.clone()),
        project,
        plugin,
        client,
        tools: std::sync::Arc::new(tools),
    };
    tokio::select! {
        result = dev.run() => result,
        _ = tokio::signal::ctrl_c() => {
            say("stopped");
            // A build still running is the toolchain's, in our process
            // group: Ctrl-C reached it too. Do not wait for it.
            std::process::exit(0);
        }
    }
}

struct Dev {
    project: Project,
    plugin: PluginName,
    client: Client,
    tools: std::sync::Arc<Tools>,
    follower: Follower,
}

impl Dev {
    async fn run(mut self) -> anyhow::Result<()> {
        let (changes, mut changed) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = changes.send(path);
                    }
                }
            })
            .context("watching the sources")?;
        watch_tree(&mut watcher, &self.project.dir)?;

        // The change that started the pending build, and when the sources
        // last changed.
        let mut pending: Option<(String, Instant)> = Some(("first build".into(), Instant::now()));
        let mut building: Option<JoinHandle<anyhow::Result<Built>>> = None;
        let mut poll = tokio::time::interval(POLL);
        let mut debounce = tokio::time::interval(QUIET / 5);
        loop {
            tokio::select! {
                Some(path) = changed.recv() => {
                    let Some(relative) = self.source_path(&path) else { continue };
                    if path.is_dir() {
                        // A new folder: watch what will appear in it.
                        let _ = watch_tree(&mut watcher, &path);
                    }
                    // The last file written names the change: an editor's
                    // temporary file comes before the file it becomes.
                    pending = Some((relative, Instant::now()));
                }
                result = async { building.as_mut().expect("guarded").await }, if building.is_some() => {
                    building = None;
                    let built = result.context("the build task")?;
                    self.install(built).await;
                }
                _ = debounce.tick(), if building.is_none() => {
                    if let Some((reason, at)) = &pending
                        && at.elapsed() >= QUIET
                    {
                        say(format!("{reason}: building"));
                        pending = None;
                        let (project, tools) = (self.project.clone(), self.tools.clone());
                        building = Some(tokio::task::spawn_blocking(move || {
                            build::build(&project, &tools, Output::Keep)
                        }));
                    }
                }
                _ = poll.tick() => self.follower.poll().await,
            }
        }
    }

    /// `path` relative to the project when it is one of its sources.
    fn source_path(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.project.dir).ok()?;
        if relative.as_os_str().is_empty() {
            return None;
        }
        let mut parts = relative.components().peekable();
        while let Some(part) = parts.next() {
            let part = part.as_os_str().to_str()?;
            let last = parts.peek().is_none();
            if !last && build::is_ignored_dir(part) {
                return None;
            }
            if last && !is_source_file(part) {
                return None;
            }
        }
        Some(relative.display().to_string())
    }

    async fn install(&mut self, built: anyhow::Result<Built>) {
        let built = match built {
            Ok(built) => built,
            Err(error) => {
                let serving = match self.follower.serving() {
                    Some(generation) => format!("generation {} keeps serving", short(generation)),
                    None => "nothing was installed".into(),
                };
                say(format!("build failed ({serving}): {error:#}"));
                return;
            }
        };
        let bytes = match std::fs::read(&built.wasm) {
            Ok(bytes) => bytes,
            Err(error) => {
                say(format!("cannot read {}: {error}", built.wasm.display()));
                return;
            }
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        say(format!(
            "built {} ({}) in {:.1} s",
            built.wasm.display(),
            build::size(built.bytes),
            built.took.as_secs_f64()
        ));
        // The server compiles the component before it answers: seconds for
        // a Rust one, up to a minute for a Python or JavaScript one.
        say(format!(
            "installing generation {} (the server compiles it first)",
            short(&hash)
        ));
        match self
            .client
            .put_bytes(
                &format!("/plugins/{}", segment(self.plugin.as_str())),
                bytes,
            )
            .await
        {
            Ok(answer) => {
                let outcome = match answer["outcome"].as_str() {
                    Some("started") => "a new plugin",
                    Some("replacing") => "replaying beside the serving generation",
                    Some("unchanged") => "the server has it already",
                    _ => "installed",
                };
                say(format!("installed generation {}: {outcome}", short(&hash)));
            }
            Err(ClientError::Api { message, .. }) => {
                say(format!("the server refused the build: {message}"));
            }
            Err(error) => say(format!("installing failed: {error}")),
        }
        self.follower.poll().await;
    }
}

/// Watches `dir` and every folder below it that can hold sources.
fn watch_tree(watcher: &mut impl Watcher, dir: &Path) -> anyhow::Result<()> {
    watcher
        .watch(dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", dir.display()))?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && !build::is_ignored_dir(&entry.file_name().to_string_lossy())
        {
            watch_tree(watcher, &entry.path())?;
        }
    }
    Ok(())
}

/// Whether a changed file is a source, not an editor's or a tool's file.
fn is_source_file(name: &str) -> bool {
    !(name.starts_with('.')
        || name.starts_with('#')
        || name.ends_with('~')
        || name.ends_with(".swp")
        || name.ends_with(".swx")
        || name.ends_with(".tmp")
        // vim's probe whether it may write in a folder
        || name == "4913"
        // written by the tools themselves
        || name == "Cargo.lock"
        || name == "package-lock.json")
}

/// One line of output. Lines go out whole, so a reader (a person or a
/// script) sees each state change as one line.
fn say(line: impl AsRef<str>) {
    println!("{}", line.as_ref());
}

fn short(hash: &str) -> &str {
    &hash[..12.min(hash.len())]
}

/// What was last said about one generation.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    role: String,
    state: String,
    error: Option<String>,
}

/// Follows a plugin's status and log, and says what changed.
struct Follower {
    client: Client,
    plugin: PluginName,
    /// By content hash.
    generations: HashMap<String, Seen>,
    /// Failures said, by generation and message.
    failures: HashSet<(String, String)>,
    /// When replay progress was last said, and at which position.
    progress: HashMap<String, (Instant, u64)>,
    /// The serving generation and how many of its log lines were said.
    log: Option<(String, u64)>,
    serving: Option<String>,
    dead_letters: u64,
    unreachable: bool,
}

impl Follower {
    fn new(client: Client, plugin: PluginName) -> Self {
        Follower {
            client,
            plugin,
            generations: HashMap::new(),
            failures: HashSet::new(),
            progress: HashMap::new(),
            log: None,
            serving: None,
            dead_letters: 0,
            unreachable: false,
        }
    }

    fn serving(&self) -> Option<&str> {
        self.serving.as_deref()
    }

    fn path(&self, tail: &str) -> String {
        format!("/plugins/{}{tail}", segment(self.plugin.as_str()))
    }

    async fn poll(&mut self) {
        let status = match self.client.get(&self.path("")).await {
            Ok(status) => status,
            // Not installed yet (or removed).
            Err(ClientError::Api { status: 404, .. }) => return,
            Err(error) => {
                if !self.unreachable {
                    say(format!("cannot read the plugin's status: {error}"));
                    self.unreachable = true;
                }
                return;
            }
        };
        if std::mem::take(&mut self.unreachable) {
            say("the server answers again");
        }
        let head = status["head"].as_u64().unwrap_or(0);
        for generation in status["generations"].as_array().into_iter().flatten() {
            self.generation(generation, head).await;
        }
        self.serving = status["generation"].as_str().map(str::to_owned);
        let dead = status["dead_letters"].as_u64().unwrap_or(0);
        if dead > self.dead_letters {
            say(format!(
                "{} events dead-lettered so far: GET {}",
                dead,
                self.path("/dead-letters")
            ));
        }
        self.dead_letters = dead;
        if self.serving.is_some() && status["state"] != "loading" {
            self.logs().await;
        }
    }

    /// Says what changed about one line of `generations`.
    async fn generation(&mut self, generation: &Value, head: u64) {
        let Some(hash) = generation["generation"].as_str() else {
            return;
        };
        let seen = Seen {
            role: generation["role"].as_str().unwrap_or("?").to_owned(),
            state: generation["state"].as_str().unwrap_or("?").to_owned(),
            error: generation["error"]["message"].as_str().map(str::to_owned),
        };
        let position = generation["position"].as_u64().unwrap_or(0);
        let id = short(hash).to_owned();
        if self.generations.get(hash) == Some(&seen) {
            if seen.state == "replaying" {
                self.replay_progress(hash, position, head);
            }
            return;
        }
        self.generations.insert(hash.to_owned(), seen.clone());
        match (seen.role.as_str(), seen.state.as_str()) {
            (_, "failed") | (_, "quarantined") | ("failed", _) => {
                let message = seen.error.as_deref().unwrap_or("no reason given");
                // A failed candidate moves to the role `failed`: said once.
                if !self.failures.insert((hash.to_owned(), message.to_owned())) {
                    return;
                }
                let verb = if seen.role == "serving" {
                    "stopped"
                } else {
                    "failed"
                };
                say(format!("generation {id} {verb}: {message}"));
                if let Some(at) = generation["error"]["position"].as_u64() {
                    say(format!("  the event: {}", self.event(at).await));
                }
                if seen.role != "serving"
                    && let Some(serving) = &self.serving
                {
                    say(format!("generation {} keeps serving", short(serving)));
                }
            }
            ("previous", _) => say(format!("generation {id} retired, kept for a rollback")),
            ("serving", "live") => say(format!(
                "generation {id} serving, live at position {position}"
            )),
            ("candidate", "live") => say(format!(
                "generation {id} caught up at position {position}, beside the serving one"
            )),
            (role, "replaying") => {
                let beside = if role == "candidate" {
                    " beside the serving generation"
                } else {
                    ""
                };
                say(format!(
                    "generation {id} replaying{beside}: {}",
                    progress(position, head)
                ));
                self.progress
                    .insert(hash.to_owned(), (Instant::now(), position));
            }
            (_, state) => say(format!("generation {id} {state}")),
        }
    }

    fn replay_progress(&mut self, hash: &str, position: u64, head: u64) {
        let (said_at, said_position) = self
            .progress
            .get(hash)
            .copied()
            .unwrap_or((Instant::now(), 0));
        if said_at.elapsed() >= PROGRESS_EVERY && position > said_position {
            say(format!(
                "generation {} replaying: {}",
                short(hash),
                progress(position, head)
            ));
            self.progress
                .insert(hash.to_owned(), (Instant::now(), position));
        }
    }

    /// The event at `position`, in one line.
    async fn event(&self, position: u64) -> String {
        let page = self
            .client
            .get(&format!("/events?from_position={position}&limit=1"))
            .await;
        match page {
            Ok(page) => match page["events"].get(0) {
                Some(event) if event["position"] == position => {
                    let mut data = event["data"].to_string();
                    if data.len() > 300 {
                        let mut cut = 300;
                        while !data.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        data.truncate(cut);
                        data.push('…');
                    }
                    format!(
                        "position {position}, {} on stream {}: {data}",
                        event["type"].as_str().unwrap_or("?"),
                        event["stream"].as_str().unwrap_or("?")
                    )
                }
                _ => format!("position {position} (no longer in the log)"),
            },
            Err(error) => format!("position {position} (cannot read it: {error})"),
        }
    }

    /// Says the serving generation's log lines that were not said yet. The
    /// log names its generation: the serving one may have changed since the
    /// status was read, and a new one's lines are all new.
    async fn logs(&mut self) {
        let Ok(log) = self.client.get(&self.path("/logs")).await else {
            return;
        };
        let generation = log["generation"].as_str().unwrap_or_default().to_owned();
        let lines = log["lines"].as_array().cloned().unwrap_or_default();
        let total = log["dropped"].as_u64().unwrap_or(0) + lines.len() as u64;
        let said = match &self.log {
            Some((said_for, said)) if *said_for == generation && *said <= total => *said,
            _ => 0,
        };
        let new = usize::try_from(total - said).unwrap_or(usize::MAX);
        let shown = new.min(lines.len()).min(LOG_BURST);
        if new > shown {
            say(format!("log: … {} earlier lines", new - shown));
        }
        for line in &lines[lines.len() - shown..] {
            say(format!(
                "log {}: {}",
                line["level"].as_str().unwrap_or("?"),
                line["message"].as_str().unwrap_or("")
            ));
        }
        self.log = Some((generation, total));
    }
}

fn progress(position: u64, head: u64) -> String {
    if head == 0 {
        return "the log is empty".into();
    }
    format!(
        "{position} of {head} events ({}%)",
        position.min(head) * 100 / head
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_and_tool_files_are_not_sources() {
        for name in [
            ".lib.rs.swp",
            "lib.rs~",
            "4913",
            "#app.py#",
            "Cargo.lock",
            "x.tmp",
        ] {
            assert!(!is_source_file(name), "{name}");
        }
        for name in ["lib.rs", "app.py", "projection.js", "Cargo.toml"] {
            assert!(is_source_file(name), "{name}");
        }
    }

    #[test]
    fn progress_reads_as_a_fraction_of_the_log() {
        assert_eq!(progress(50, 200), "50 of 200 events (25%)");
        assert_eq!(progress(0, 0), "the log is empty");
    }
}
