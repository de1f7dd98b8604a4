//! Plugins and nodes across a cluster, through JetStream's own stores: no
//! protocol of ours.
//!
//! - **The cluster's desired plugins** are a key-value bucket
//!   (`prism_plugins`): key = plugin name, value = the content hash the
//!   plugin should run; removing a plugin deletes its key. The component
//!   bytes are in an object store (`prism_components`), by content hash.
//! - **A change on any node** — a file dropped into its plugin directory, an
//!   upload, a removal, a rollback — changes that plugin's desired content
//!   there (the plugin's task reports it, see `plugins`), and this module
//!   stores the bytes and the key. Every node watches the bucket and makes
//!   its own plugin directory say the same (writing the file, atomically,
//!   from the object store, or deleting it); from there each node's plugin
//!   lifecycle does what it does for any file: replay blue/green, take over,
//!   keep the old version serving if the new one fails. A node that joins
//!   late, or was down, gets every key's last value when it starts watching.
//! - **Nodes** put a heartbeat into `prism_nodes` (entries expire after
//!   [`NODE_TTL`]): name, address, log head, and each plugin's generation,
//!   state, position and lag. `GET /cluster` lists them.
//!
//! A change the cluster already knows (a node installing what the bucket
//! says) is not published again, so changes do not echo around.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::object_store;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;
use tokio::sync::{OnceCell, mpsc};

use crate::log::EventLog;
use crate::plugins::record::ContentHash;
use crate::plugins::{ComponentStore, PluginManager, PluginName};

const PLUGINS_BUCKET: &str = "prism_plugins";
const COMPONENTS_BUCKET: &str = "prism_components";
const NODES_BUCKET: &str = "prism_nodes";

/// A node that has not said anything for this long is gone.
pub const NODE_TTL: Duration = Duration::from_secs(15);
/// How often a node says it is there.
const HEARTBEAT: Duration = Duration::from_secs(3);

/// How a node takes part in the cluster.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub servers: String,
    pub node: String,
    /// Replicas of the buckets (as of the log's stream).
    pub replicas: usize,
    /// The plugin directory this node keeps in line with the cluster.
    pub plugins_dir: PathBuf,
    /// How other nodes and operators reach this node's API.
    pub url: String,
}

/// A plugin as the cluster wants it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Desired {
    hash: ContentHash,
    /// Which node asked for it, and when.
    node: String,
    at_ms: u64,
}

struct Stores {
    plugins: kv::Store,
    components: object_store::ObjectStore,
    nodes: kv::Store,
}

/// This node's part in the cluster.
pub struct Cluster {
    config: SyncConfig,
    stores: Arc<OnceCell<Stores>>,
    /// Desired-content changes of local plugins, to publish.
    changes: mpsc::UnboundedSender<(PluginName, Option<ContentHash>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Cluster {
    /// Connect (retrying until the cluster answers), then keep this node's
    /// plugins in line with the cluster's and say this node is there.
    pub fn start(
        config: SyncConfig,
        manager: PluginManager,
        components: ComponentStore,
        log: EventLog,
    ) -> Arc<Cluster> {
        let (changes, mut pending) = mpsc::unbounded_channel();
        manager.report_desired_changes(changes.clone());
        let stores: Arc<OnceCell<Stores>> = Arc::new(OnceCell::new());
        let mut cluster = Cluster {
            config: config.clone(),
            stores: stores.clone(),
            changes,
            tasks: Vec::new(),
        };
        let (cfg, ready) = (config.clone(), stores.clone());
        let (watch_manager, watch_components) = (manager.clone(), components.clone());
        cluster.tasks.push(tokio::spawn(async move {
            let stores = ready.get_or_init(|| connect(&cfg)).await;
            // The latest change of each plugin, kept until published (a
            // bucket just created may not take writes for a moment).
            let publisher = async {
                let mut waiting: std::collections::BTreeMap<PluginName, Option<ContentHash>> =
                    Default::default();
                loop {
                    if waiting.is_empty() {
                        match pending.recv().await {
                            Some((name, hash)) => waiting.insert(name, hash),
                            None => return,
                        };
                    }
                    while let Ok((name, hash)) = pending.try_recv() {
                        waiting.insert(name, hash);
                    }
                    let (name, hash) = waiting.pop_first().expect("not empty");
                    if let Err(e) = publish(stores, &cfg, &components, &name, hash.as_ref()).await {
                        tracing::warn!(plugin = %name, error = %e, "publishing a plugin change to the cluster; trying again");
                        waiting.entry(name).or_insert(hash);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                }
            };
            let watcher = follow_desired(stores, &cfg, &watch_manager, &watch_components);
            let heartbeat = heartbeats(stores, &cfg, &manager, &log);
            tokio::join!(publisher, watcher, heartbeat);
        }));
        Arc::new(cluster)
    }

    pub fn node(&self) -> &str {
        &self.config.node
    }

    /// The nodes that said they are there within [`NODE_TTL`].
    pub async fn nodes(&self) -> Result<Vec<Value>, String> {
        let stores = self
            .stores
            .get()
            .ok_or("not connected to the cluster yet")?;
        let mut keys = stores
            .nodes
            .keys()
            .await
            .map_err(|e| format!("listing nodes: {e}"))?;
        let mut out = Vec::new();
        while let Some(key) = keys.next().await {
            let Ok(key) = key else { continue };
            if let Ok(Some(value)) = stores.nodes.get(&key).await
                && let Ok(node) = serde_json::from_slice::<Value>(&value)
            {
                out.push(node);
            }
        }
        out.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
        Ok(out)
    }

    /// Keep the channel alive for as long as the cluster is.
    pub fn changes(&self) -> &mpsc::UnboundedSender<(PluginName, Option<ContentHash>)> {
        &self.changes
    }
}

/// Connect and open (or create) the buckets, retrying until it works.
async fn connect(config: &SyncConfig) -> Stores {
    let mut pause = Duration::from_millis(200);
    loop {
        match try_connect(config).await {
            Ok(stores) => return stores,
            Err(e) => {
                tracing::warn!(error = %e, "the cluster's plugin stores are not reachable yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn try_connect(config: &SyncConfig) -> Result<Stores, String> {
    let addresses = config
        .servers
        .split(',')
        .map(|s| s.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("servers {:?}: {e}", config.servers))?;
    let client = async_nats::ConnectOptions::new()
        .name("prism-plugins")
        .connect(addresses)
        .await
        .map_err(|e| format!("connecting to {}: {e}", config.servers))?;
    let js = jetstream::new(client);
    let plugins = match js.get_key_value(PLUGINS_BUCKET).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: PLUGINS_BUCKET.into(),
                description: "the plugins every Prism node runs: name -> content hash".into(),
                history: 1,
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating {PLUGINS_BUCKET}: {e}"))?,
    };
    let nodes = match js.get_key_value(NODES_BUCKET).await {
        Ok(store) => store,
        Err(_) => js
            .create_key_value(kv::Config {
                bucket: NODES_BUCKET.into(),
                description: "Prism nodes and their plugins, from heartbeats".into(),
                history: 1,
                max_age: NODE_TTL,
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating {NODES_BUCKET}: {e}"))?,
    };
    let components = match js.get_object_store(COMPONENTS_BUCKET).await {
        Ok(store) => store,
        Err(_) => js
            .create_object_store(object_store::Config {
                bucket: COMPONENTS_BUCKET.into(),
                description: Some("plugin components by content hash".into()),
                num_replicas: config.replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("creating {COMPONENTS_BUCKET}: {e}"))?,
    };
    tracing::info!(node = %config.node, "joined the cluster's plugin stores");
    Ok(Stores {
        plugins,
        components,
        nodes,
    })
}

async fn desired_of(stores: &Stores, name: &PluginName) -> Option<Desired> {
    let value = stores.plugins.get(name.as_str()).await.ok()??;
    serde_json::from_slice(&value).ok()
}

/// Tell the cluster that `name` should run `hash` (or be removed).
async fn publish(
    stores: &Stores,
    config: &SyncConfig,
    components: &ComponentStore,
    name: &PluginName,
    hash: Option<&ContentHash>,
) -> Result<(), String> {
    let current = desired_of(stores, name).await;
    let result: Result<(), String> = async {
        match hash {
            None => {
                if current.is_some() {
                    stores
                        .plugins
                        .delete(name.as_str())
                        .await
                        .map_err(|e| e.to_string())?;
                }
            }
            Some(hash) if current.as_ref().is_some_and(|d| &d.hash == hash) => {}
            Some(hash) => {
                if stores.components.info(hash.as_str()).await.is_err() {
                    let bytes = components.get(hash).map_err(|e| e.to_string())?;
                    stores
                        .components
                        .put(hash.as_str(), &mut bytes.as_slice())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                let desired = Desired {
                    hash: hash.clone(),
                    node: config.node.clone(),
                    at_ms: crate::clock::now_ms(),
                };
                stores
                    .plugins
                    .put(
                        name.as_str(),
                        serde_json::to_vec(&desired).expect("json").into(),
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
    .await;
    if result.is_ok() {
        tracing::info!(plugin = %name, hash = ?hash.map(ContentHash::short), "published to the cluster");
    }
    result
}

/// Make this node's plugin directory say what the cluster wants, for ever.
async fn follow_desired(
    stores: &Stores,
    config: &SyncConfig,
    manager: &PluginManager,
    components: &ComponentStore,
) {
    loop {
        let mut watch = match stores.plugins.watch_with_history(">").await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(error = %e, "watching the cluster's plugins");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(entry) = watch.next().await {
            let Ok(entry) = entry else { break };
            let Ok(name) = PluginName::parse(&entry.key) else {
                continue;
            };
            let local = manager
                .snapshot(&name)
                .and_then(|s| s.record.desired.clone());
            let result = match entry.operation {
                Operation::Put => match serde_json::from_slice::<Desired>(&entry.value) {
                    Ok(desired) if local.as_ref() == Some(&desired.hash) => Ok(()),
                    Ok(desired) => install(stores, config, components, &name, &desired.hash).await,
                    Err(e) => Err(format!("unreadable entry: {e}")),
                },
                Operation::Delete | Operation::Purge => {
                    if local.is_some() {
                        remove_file(config, &name).await
                    } else {
                        Ok(())
                    }
                }
            };
            match result {
                Ok(()) => manager.file_changed(&name),
                Err(e) => {
                    tracing::error!(plugin = %name, error = %e, "could not follow the cluster's plugin")
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Write the plugin file of `hash`, from the local store or the cluster's.
async fn install(
    stores: &Stores,
    config: &SyncConfig,
    components: &ComponentStore,
    name: &PluginName,
    hash: &ContentHash,
) -> Result<(), String> {
    let bytes = match components.get(hash) {
        Ok(bytes) => bytes,
        Err(_) => {
            let mut object = stores
                .components
                .get(hash.as_str())
                .await
                .map_err(|e| format!("fetching component {}: {e}", hash.short()))?;
            let mut bytes = Vec::new();
            object
                .read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("reading component {}: {e}", hash.short()))?;
            if ContentHash::of(&bytes) != *hash {
                return Err(format!("component {} arrived damaged", hash.short()));
            }
            bytes
        }
    };
    let dir = config.plugins_dir.clone();
    let plugin = name.clone();
    tokio::task::spawn_blocking(move || plugin.install_file(&dir, &bytes))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    tracing::info!(plugin = %name, hash = hash.short(), "installed from the cluster");
    Ok(())
}

async fn remove_file(config: &SyncConfig, name: &PluginName) -> Result<(), String> {
    let mut removed = false;
    for file in name.file_names() {
        match tokio::fs::remove_file(config.plugins_dir.join(file)).await {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    if removed {
        tracing::info!(plugin = %name, "removed by the cluster");
    }
    Ok(())
}

/// A KV key for a node name (keys take letters, digits, `-`, `_`, `=`, `.`, `/`).
fn node_key(node: &str) -> String {
    node.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                (b as char).to_string()
            } else {
                format!("={b:02X}")
            }
        })
        .collect()
}

/// Say every [`HEARTBEAT`] that this node is there, with its plugins.
async fn heartbeats(stores: &Stores, config: &SyncConfig, manager: &PluginManager, log: &EventLog) {
    let key = node_key(&config.node);
    let started_at_ms = crate::clock::now_ms();
    loop {
        let plugins: Vec<Value> = manager
            .list()
            .into_iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "generation": p.generation,
                    "state": p.state,
                    "position": p.status.as_ref().map(|s| s.position),
                    "lag": p.status.as_ref().map(|s| s.lag),
                })
            })
            .collect();
        let beat = json!({
            "node": config.node,
            "url": config.url,
            "started_at_ms": started_at_ms,
            "at_ms": crate::clock::now_ms(),
            "head": log.head(),
            "plugins": plugins,
        });
        let pause = match stores
            .nodes
            .put(&key, serde_json::to_vec(&beat).expect("json").into())
            .await
        {
            Ok(_) => HEARTBEAT,
            Err(e) => {
                // A bucket another node is still creating, or a leader
                // election: say it again soon rather than a period later.
                tracing::debug!(error = %e, "a heartbeat did not reach the cluster");
                Duration::from_millis(500)
            }
        };
        tokio::time::sleep(pause).await;
    }
}
