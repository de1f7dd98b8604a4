//! Starting and stopping the server: open storage, load plugins, watch the
//! plugin directory, serve HTTP until the shutdown future resolves.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::api::auth::Tokens;
use crate::api::{self, ApiLimits, AppState, Metrics};
use crate::config::Config;
use crate::log::EventLog;
use crate::plugins::{PluginManager, PluginsConfig, watcher};
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

/// Run the server on `listener` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if let Some(problem) = config.exposure_problem(listener.local_addr()?) {
        anyhow::bail!(problem);
    }
    std::fs::create_dir_all(&config.data)?;
    let db = storage::open(&config.data.join("db"))?;
    let log = EventLog::open(db.clone(), config.min_free_mb << 20)?;
    let views = ViewStore::new(db.clone());
    let cache = config
        .cache
        .clone()
        .unwrap_or_else(|| config.data.join("cache"));
    let runtime = Runtime::new(&cache)?;
    let plugins = PluginManager::new(
        runtime,
        log.clone(),
        views,
        PluginsConfig {
            dir: config.plugins.clone(),
            defaults: config.plugin_defaults.clone(),
            per_plugin: config.plugin.clone(),
            stall_after: Duration::from_secs(config.stall_after_secs),
        },
        tokio::runtime::Handle::current(),
    );
    plugins.start(&config.data).await?;
    let _watcher = watcher::watch(plugins.clone())?;
    let state = AppState {
        log,
        plugins: plugins.clone(),
        metrics: Arc::new(Metrics::default()),
    };
    let app = api::router(
        state,
        ApiLimits {
            max_body_bytes: config.max_body_bytes,
            max_plugin_bytes: config.max_plugin_bytes,
        },
        Tokens::new(&config.tokens),
    );
    tracing::info!(address = %listener.local_addr()?, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    plugins.shutdown().await;
    Ok(())
}
