//! Starting and stopping the server: open storage, load plugins, watch the
//! plugin directory, serve HTTP until the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::api::auth::Tokens;
use crate::api::{self, ApiLimits, AppState, Metrics};
use crate::config::Config;
use crate::log::EventLog;
use crate::plugins::{ComponentStore, PluginManager, PluginsConfig, watcher};
use crate::runtime::Runtime;
use crate::storage;
use crate::views::ViewStore;

/// The log and the view store over one database in `data_dir` (for tools
/// and benchmarks that work below the HTTP API).
pub fn open_stores(data_dir: &std::path::Path) -> anyhow::Result<(EventLog, ViewStore)> {
    std::fs::create_dir_all(data_dir)?;
    let db = storage::open(&data_dir.join("db"))?;
    let min_free_bytes = Config::default().min_free_mb << 20;
    Ok((
        EventLog::open(db.clone(), min_free_bytes)?,
        ViewStore::new(db),
    ))
}

/// Everything the server runs, opened and started, without a socket: the
/// HTTP router to serve (or to call in-process with `oneshot`), and the
/// parts behind it.
pub struct App {
    pub router: axum::Router,
    pub state: AppState,
    /// Keeps the plugin directory watched while the app lives.
    _watcher: notify::RecommendedWatcher,
    /// The database, without keeping it open: [`App::close`] waits on it.
    store: storage::WeakStore,
}

impl App {
    /// Open storage under `config.data`, restore the plugins (they load in
    /// the background) and watch the plugin directory.
    pub async fn open(config: &Config) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data)?;
        let db = storage::open(&config.data.join("db"))?;
        let log = match &config.log.url {
            None => EventLog::open(db.clone(), config.min_free_mb << 20)?,
            Some(url) => {
                let mut js = crate::cluster::jetstream::JetStreamConfig::new(url.clone());
                js.stream = config.log.stream.clone();
                js.replicas = config.log.replicas;
                js.duplicate_window = Duration::from_secs(config.log.duplicate_window_secs);
                let log = EventLog::open_replicated(db.clone(), js)?;
                // Usually the cluster answers at once; if not, the node
                // serves its copy meanwhile and keeps trying.
                if !log.connected(Duration::from_secs(3)).await {
                    tracing::warn!(servers = %url, "starting without the JetStream cluster; appends wait for it");
                }
                log
            }
        };
        let outbox = crate::outbox::Outbox::start(
            crate::outbox::store::OutboxStore::new(db.clone()),
            log.outbox_enqueued(),
            config.outbox.clone(),
            &config.targets,
        )
        .map_err(anyhow::Error::msg)?;
        let views = ViewStore::new(db.clone());
        // Projections stop writing well before appends would: the last of
        // the disk is the log's.
        views.reserve_for_the_log(2 * (config.min_free_mb << 20));
        let cache = config
            .cache
            .clone()
            .unwrap_or_else(|| config.data.join("cache"));
        let runtime = Runtime::new(&cache)?;
        let components = ComponentStore::open(&config.data.join("components"))?;
        let plugins = PluginManager::new(
            runtime,
            log.clone(),
            views,
            components.clone(),
            PluginsConfig {
                dir: config.plugins.clone(),
                defaults: config.plugin_defaults.clone(),
                per_plugin: config.plugin.clone(),
                stall_after: Duration::from_secs(config.stall_after_secs),
            },
            tokio::runtime::Handle::current(),
        );
        // A plugin call that takes the process down is noted, and its
        // generation quarantined at the next start.
        crate::projector::crash::install(&config.data)?;
        let crashed = crate::projector::crash::take_note(&config.data);
        // Returns at once: plugins load in the background while HTTP serves.
        plugins.start(crashed).await?;
        let watcher = watcher::watch(plugins.clone())?;
        let node = node_name(config);
        let cluster = config.log.url.as_ref().map(|url| {
            crate::cluster::sync::Cluster::start(
                crate::cluster::sync::SyncConfig {
                    servers: url.clone(),
                    node: node.clone(),
                    replicas: config.log.replicas,
                    plugins_dir: config.plugins.clone(),
                    url: format!("http://{}", config.listen),
                },
                plugins.clone(),
                components.clone(),
                log.clone(),
            )
        });
        let state = AppState {
            log,
            plugins,
            metrics: Arc::new(Metrics::default()),
            outbox,
            node: node.into(),
            cluster,
        };
        let router = api::router(
            state.clone(),
            ApiLimits {
                max_body_bytes: config.max_body_bytes,
                max_plugin_bytes: config.max_plugin_bytes,
            },
            Tokens::new(&config.tokens),
        );
        Ok(App {
            router,
            state,
            _watcher: watcher,
            store: db.downgrade(),
        })
    }

    /// Stop every projector and wait for them.
    pub async fn shutdown(&self) {
        self.state.plugins.shutdown().await;
    }

    /// Stop everything and wait until the database is closed, so that the
    /// same data directory can be opened again in this process. Fails if
    /// something still holds the database after `patience`.
    pub async fn close(self, patience: Duration) -> anyhow::Result<()> {
        self.shutdown().await;
        let closed = self.store.clone();
        drop(self);
        tokio::time::timeout(patience, closed.closed())
            .await
            .map_err(|_| anyhow::anyhow!("the database is still in use after {patience:?}"))
    }
}

/// This node's name: configured, or the host name and the listen port.
pub fn node_name(config: &Config) -> String {
    config.node.clone().unwrap_or_else(|| {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is ours and its length is passed.
        let host = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
        let end = buf.iter().position(|b| *b == 0).unwrap_or(0);
        let host = if host && end > 0 {
            String::from_utf8_lossy(&buf[..end]).into_owned()
        } else {
            "prism".into()
        };
        format!("{host}:{}", config.listen.port())
    })
}

/// Run the server on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(problem) = config.exposure_problem(listener.local_addr()?) {
        anyhow::bail!(problem);
    }
    anyhow::ensure!(
        config.header_read_timeout_secs > 0,
        "header_read_timeout_secs must be at least 1"
    );
    // The address actually bound (a port of 0 is chosen now) names the node.
    let mut config = config;
    config.listen = listener.local_addr()?;
    let app = App::open(&config).await?;
    tracing::info!(address = %listener.local_addr()?, "listening");
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(config.header_read_timeout_secs));
    serve_http(listener, app.router.clone(), http, shutdown).await;
    // Return only once the database is closed: RocksDB's background work
    // must not outlive the process's own teardown (the runtime and the
    // library's statics), which aborts the process at exit.
    if let Err(e) = app.close(CLOSE_PATIENCE).await {
        tracing::warn!(error = %e, "shutting down");
    }
    Ok(())
}

/// How long shutting down waits for the last users of the database
/// (requests being answered, projectors finishing a batch) to let go.
const CLOSE_PATIENCE: Duration = Duration::from_secs(30);

/// Accept connections and serve `app` on each until `shutdown` resolves,
/// then wait for the requests in flight. `axum::serve` does the same but
/// cannot be given the header-read timeout that `http` carries, so this
/// loop is ours; the connection handling is hyper's.
async fn serve_http(
    listener: TcpListener,
    app: axum::Router,
    http: http1::Builder,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    if !is_connection_error(&e) {
                        tracing::error!(error = %e, "accepting a connection");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let connection =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection closed");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that failed while being accepted, which say
/// nothing about the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
