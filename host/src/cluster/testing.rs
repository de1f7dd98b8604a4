//! A JetStream cluster of real `nats-server` processes on loopback, for
//! tests: N nodes with free ports and a temporary store directory each,
//! clustered by routes, ready once every node's `/healthz` says JetStream is
//! current with an elected meta leader and a stream can be placed on all of
//! them (a fresh 3-node cluster takes well under a second here). Nodes can
//! be SIGKILLed and restarted with the same name, ports and store, as a
//! crashed server comes back.
//!
//! Every server dies with the cluster value (its `Drop`, also while a test
//! unwinds from a panic) and, should the test process itself be killed, with
//! the thread that started it (`PR_SET_PDEATHSIG`): so start and restart
//! nodes from the test itself, not from a thread that ends before it (such
//! as `spawn_blocking`'s).
//!
//! The binary is `$PRISM_NATS_SERVER` if set, else the one
//! `scripts/setup-nats.sh` installs into `target/tools/nats/bin/`.
//!
//! ```no_run
//! # async fn example() {
//! use prism::cluster::jetstream::{JetStreamConfig, JetStreamLog};
//! use prism::cluster::testing::NatsCluster;
//!
//! let mut cluster = NatsCluster::start(3).await;
//! let log = JetStreamLog::connect(JetStreamConfig::new(cluster.servers()))
//!     .await
//!     .unwrap();
//! let leader = cluster.stream_leader(log.stream_name()).await.unwrap();
//! cluster.kill(leader);
//! // ... appends retry until a new leader is elected ...
//! cluster.restart(leader).await;
//! # }
//! ```

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node (or a whole fresh cluster) may take to become healthy.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running JetStream cluster; dropping it kills every node.
pub struct NatsCluster {
    /// Holds every node's store, config and log; removed on drop.
    dir: tempfile::TempDir,
    nodes: Vec<Node>,
}

struct Node {
    /// Stable across restarts: JetStream identifies a peer by its name.
    name: String,
    client_port: u16,
    cluster_port: u16,
    /// `/healthz`, to know when the node is ready.
    monitor_port: u16,
    child: Option<Child>,
}

impl NatsCluster {
    /// Start `nodes` servers (1: a single server, no clustering) and wait
    /// until JetStream is ready on every one of them.
    pub async fn start(nodes: usize) -> NatsCluster {
        assert!(nodes >= 1, "a cluster needs at least one node");
        let binary = nats_server_binary();
        let mut failures = String::new();
        // A port picked as free can be taken by another process before the
        // server binds it: then start over with new ports.
        for _ in 0..3 {
            let mut cluster = NatsCluster {
                dir: tempfile::tempdir().expect("temporary directory"),
                nodes: (1..=nodes)
                    .map(|i| Node {
                        name: format!("n{i}"),
                        client_port: free_port(),
                        cluster_port: free_port(),
                        monitor_port: free_port(),
                        child: None,
                    })
                    .collect(),
            };
            for i in 0..nodes {
                cluster.spawn(&binary, i);
            }
            match cluster.wait_all_ready().await {
                Ok(()) => return cluster,
                Err(why) => {
                    let _ = writeln!(failures, "{why}");
                    if !why.contains("address already in use") {
                        break;
                    }
                }
            }
        }
        panic!("the JetStream cluster did not start:\n{failures}");
    }

    /// Every node's client URL, comma-separated (what a client connects to).
    pub fn servers(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The client URL of node `node` (0-based).
    pub fn url(&self, node: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[node].client_port)
    }

    /// The server name of node `node`, as JetStream reports it (`n1`, `n2`, ...).
    pub fn name(&self, node: usize) -> &str {
        &self.nodes[node].name
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn is_running(&self, node: usize) -> bool {
        self.nodes[node].child.is_some()
    }

    /// SIGKILL node `node`: no shutdown code runs, as in a crash.
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start node `node` again with its name, ports and store, and wait
    /// until it is healthy (caught up with the meta leader and its streams).
    pub async fn restart(&mut self, node: usize) {
        assert!(!self.is_running(node), "node {node} is running");
        let binary = nats_server_binary();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.spawn(&binary, node);
            match self.wait_ready(node, deadline).await {
                Ok(()) => return,
                // The old process's ports may still be held for a moment.
                Err(why) if why.contains("address already in use") && Instant::now() < deadline => {
                    self.kill(node);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(why) => panic!("node {node} did not come back: {why}"),
            }
        }
    }

    /// The node leading JetStream stream `stream` now, if it has a leader.
    pub async fn stream_leader(&self, stream: &str) -> Option<usize> {
        let leader = self.stream_info(stream).await?.cluster?.leader?;
        self.nodes.iter().position(|n| n.name == leader)
    }

    /// Wait up to `timeout` for stream `stream` to have a leader among the
    /// running nodes; that node.
    pub async fn wait_for_stream_leader(&self, stream: &str, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(node) = self.stream_leader(stream).await
                && self.is_running(node)
            {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "stream {stream} has no leader after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Node `node`'s log so far (for a failing test's message).
    pub fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.node_file(node, "log")).unwrap_or_default()
    }

    async fn stream_info(&self, stream: &str) -> Option<async_nats::jetstream::stream::Info> {
        let js = async_nats::jetstream::new(self.client().await.ok()?);
        js.get_stream(stream)
            .await
            .ok()
            .map(|s| s.cached_info().clone())
    }

    fn node_file(&self, node: usize, extension: &str) -> PathBuf {
        self.dir
            .path()
            .join(format!("{}.{extension}", self.nodes[node].name))
    }

    fn config(&self, node: usize) -> String {
        let n = &self.nodes[node];
        let store = self.dir.path().join(&n.name);
        let mut config = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{client}\nhttp: 127.0.0.1:{monitor}\n\
             jetstream {{ store_dir: {store:?} }}\n",
            name = n.name,
            client = n.client_port,
            monitor = n.monitor_port,
            store = store.display().to_string(),
        );
        if self.nodes.len() > 1 {
            let routes: Vec<String> = self
                .nodes
                .iter()
                .map(|other| format!("nats://127.0.0.1:{}", other.cluster_port))
                .collect();
            let _ = write!(
                config,
                "cluster {{\n  name: prism-test\n  listen: 127.0.0.1:{}\n  routes: [{}]\n}}\n",
                n.cluster_port,
                routes.join(", ")
            );
        }
        config
    }

    fn spawn(&mut self, binary: &Path, node: usize) {
        let config_path = self.node_file(node, "conf");
        std::fs::write(&config_path, self.config(node)).expect("write the node's config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.node_file(node, "log"))
            .expect("open the node's log");
        let mut command = Command::new(binary);
        command
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log);
        // SAFETY: the closure runs in the child between fork and exec and
        // makes a single prctl system call, which is async-signal-safe.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "starting {}: {e} (run scripts/setup-nats.sh)",
                binary.display()
            )
        });
        self.nodes[node].child = Some(child);
    }

    /// Wait until every node is healthy and the meta leader can place a
    /// stream on all of them (it may see a peer as offline for a moment
    /// after electing itself): a stream with one replica per node is
    /// created and deleted again.
    async fn wait_all_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        for node in 0..self.nodes.len() {
            self.wait_ready(node, deadline).await?;
        }
        let mut last_error = String::new();
        while Instant::now() < deadline {
            match self.place_a_stream_on_every_node().await {
                Ok(()) => return Ok(()),
                Err(e) => last_error = e,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(format!(
            "no stream could be placed on all {} nodes within {READY_TIMEOUT:?}: {last_error}",
            self.nodes.len()
        ))
    }

    async fn place_a_stream_on_every_node(&self) -> Result<(), String> {
        let js = async_nats::jetstream::new(self.client().await.map_err(|e| e.to_string())?);
        let name = "PRISM_HARNESS_READY";
        js.create_stream(async_nats::jetstream::stream::Config {
            name: name.into(),
            subjects: vec!["prism-harness.ready".into()],
            num_replicas: self.nodes.len(),
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .map_err(|e| e.to_string())?;
        js.delete_stream(name).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// A client connected to the running nodes.
    async fn client(&self) -> Result<async_nats::Client, async_nats::ConnectError> {
        let urls: Vec<async_nats::ServerAddr> = (0..self.nodes.len())
            .filter(|i| self.is_running(*i))
            .filter_map(|i| self.url(i).parse().ok())
            .collect();
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(1))
            .request_timeout(Some(Duration::from_secs(2)))
            .connect(urls)
            .await
    }

    /// Wait until node `node` answers `/healthz` with ok; its log if it exits
    /// or the deadline passes first.
    async fn wait_ready(&mut self, node: usize, deadline: Instant) -> Result<(), String> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .expect("HTTP client");
        let url = format!("http://127.0.0.1:{}/healthz", self.nodes[node].monitor_port);
        loop {
            let exited = match self.nodes[node].child.as_mut() {
                Some(child) => child.try_wait().ok().flatten().is_some(),
                None => true,
            };
            if exited {
                self.nodes[node].child = None;
                return Err(format!(
                    "node {} exited; its log:\n{}",
                    self.nodes[node].name,
                    self.log(node)
                ));
            }
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {} was not healthy within {READY_TIMEOUT:?}; its log:\n{}",
                    self.nodes[node].name,
                    self.log(node)
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in 0..self.nodes.len() {
            self.kill(node);
        }
    }
}

/// The `nats-server` binary the tests run.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PRISM_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tools/nats/bin/nats-server")
        .to_path_buf();
    assert!(
        path.exists(),
        "{} is missing: install it with scripts/setup-nats.sh (scripts/setup.sh does)",
        path.display()
    );
    path
}

/// A loopback port that was free a moment ago and that no other cluster of
/// this process has been given.
fn free_port() -> u16 {
    static GIVEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let given = given.get_or_insert_with(HashSet::new);
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind a loopback port")
            .port();
        if given.insert(port) {
            return port;
        }
    }
}
