//! The `prism` binary: parse the command line and run the command.

use anyhow::Context;
use clap::Parser;
use prism::client::segment;
use prism::config::Config;
use serde_json::{Value, json};

#[path = "cli/mod.rs"]
mod cli;

use cli::project::Project;
use cli::{Cli, Command, PluginAction};

fn print(value: &Value) {
    println!("{}", serde_json::to_string_pretty(value).expect("json"));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PRISM_LOG")
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Serve {
            config,
            data,
            cache,
            plugins,
            listen,
            tokens,
            max_body_bytes,
            header_read_timeout_secs,
            log_url,
            node,
        } => {
            let mut cfg = Config::locate(config.as_deref())?;
            if let Some(url) = log_url {
                cfg.log.url = Some(url);
            }
            if let Some(n) = node {
                cfg.node = Some(n);
            }
            if let Some(d) = data {
                cfg.data = d;
            }
            if let Some(c) = cache {
                cfg.cache = Some(c);
            }
            if let Some(p) = plugins {
                cfg.plugins = p;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            if let Some(m) = max_body_bytes {
                cfg.max_body_bytes = m;
            }
            if let Some(t) = header_read_timeout_secs {
                cfg.header_read_timeout_secs = t;
            }
            if let Some(t) = tokens {
                cfg.tokens
                    .extend(prism::api::auth::Tokens::parse_env(&t).map_err(anyhow::Error::msg)?);
            }
            // Refuse before binding, so the message is the first thing said.
            if let Some(problem) = cfg.exposure_problem(cfg.listen) {
                anyhow::bail!(problem);
            }
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .with_context(|| format!("listening on {}", cfg.listen))?;
            // Tests and scripts read this line to learn the port.
            println!("prism listening on http://{}", listener.local_addr()?);
            let shutdown = async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                        .expect("SIGTERM handler");
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            };
            prism::server::serve(cfg, listener, shutdown).await
        }
        Command::Append {
            stream,
            event_type,
            data,
            metadata,
            expected_version,
            id,
            client,
        } => {
            let client = client.client()?;
            let data: Value = match data {
                Some(d) => serde_json::from_str(&d).context("DATA is not JSON")?,
                None => json!({}),
            };
            let mut event = json!({ "type": event_type, "data": data });
            if let Some(m) = metadata {
                event["metadata"] = serde_json::from_str(&m).context("--metadata is not JSON")?;
            }
            if let Some(id) = id {
                event["id"] = json!(id);
            }
            let mut body = json!({ "events": [event] });
            if let Some(v) = expected_version {
                body["expected_version"] = match v.parse::<u64>() {
                    Ok(n) => json!(n),
                    Err(_) => json!(v),
                };
            }
            let answer = client
                .post_json(&format!("/streams/{}/events", segment(&stream)), &body)
                .await?;
            print(&answer);
            Ok(())
        }
        Command::Import {
            file,
            chunk_lines,
            max_request_bytes,
            client,
        } => {
            let client = client.client()?;
            let chunking = cli::import::Chunking {
                lines: chunk_lines,
                bytes: max_request_bytes,
            };
            let done = cli::import::run(&client, &file, chunking).await?;
            eprintln!(
                "imported {} events ({} appended now, {} already in the log)",
                done.appended + done.already_in,
                done.appended,
                done.already_in
            );
            Ok(())
        }
        Command::Events {
            from_position,
            from_version,
            limit,
            stream,
            client,
        } => {
            let client = client.client()?;
            let answer = match stream {
                Some(s) => {
                    client
                        .get(&format!(
                            "/streams/{}/events?from_version={from_version}&limit={limit}",
                            segment(&s)
                        ))
                        .await?
                }
                None => {
                    client
                        .get(&format!(
                            "/events?from_position={from_position}&limit={limit}"
                        ))
                        .await?
                }
            };
            for event in answer["events"].as_array().into_iter().flatten() {
                println!("{event}");
            }
            Ok(())
        }
        Command::Plugins { action, client } => {
            let client = client.client()?;
            let answer = match action {
                PluginAction::List => client.get("/plugins").await?,
                PluginAction::Show { name } => {
                    client.get(&format!("/plugins/{}", segment(&name))).await?
                }
                PluginAction::Install { name, file } => {
                    let bytes = std::fs::read(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    client
                        .put_bytes(&format!("/plugins/{}", segment(&name)), bytes)
                        .await?
                }
                PluginAction::Remove { name } => {
                    client
                        .delete(&format!("/plugins/{}", segment(&name)))
                        .await?;
                    json!({ "removed": name })
                }
                PluginAction::Rebuild { name } => {
                    client
                        .post(&format!("/plugins/{}/rebuild", segment(&name)))
                        .await?
                }
                PluginAction::Status { name } => {
                    let status = client.get(&format!("/plugins/{}", segment(&name))).await?;
                    print!("{}", cli::status::generations(&status));
                    return Ok(());
                }
                PluginAction::Diff { name, sample } => {
                    let diff = client
                        .get(&format!("/plugins/{}/diff?sample={sample}", segment(&name)))
                        .await?;
                    print!("{}", cli::status::diff(&diff));
                    return Ok(());
                }
                PluginAction::Promote { name } => {
                    client
                        .post(&format!("/plugins/{}/promote", segment(&name)))
                        .await?
                }
                PluginAction::Rollback { name } => {
                    client
                        .post(&format!("/plugins/{}/rollback", segment(&name)))
                        .await?
                }
                PluginAction::Discard { name } => {
                    client
                        .delete(&format!("/plugins/{}/candidate", segment(&name)))
                        .await?;
                    json!({ "discarded": name })
                }
                PluginAction::Resume { name } => {
                    client
                        .post(&format!("/plugins/{}/resume", segment(&name)))
                        .await?
                }
                PluginAction::Skip { name } => {
                    client
                        .post(&format!("/plugins/{}/skip", segment(&name)))
                        .await?
                }
                PluginAction::Outbox {
                    name,
                    state,
                    limit,
                    retry,
                    drop,
                } => {
                    let base = format!("/plugins/{}/outbox", segment(&name));
                    if let Some(id) = retry {
                        client
                            .post(&format!("{base}/{}/retry", segment(&id)))
                            .await?
                    } else if let Some(id) = drop {
                        client.delete(&format!("{base}/{}", segment(&id))).await?
                    } else {
                        let mut path = format!("{base}?limit={limit}");
                        if let Some(state) = state {
                            path.push_str(&format!("&state={}", segment(&state)));
                        }
                        print!("{}", cli::status::outbox(&client.get(&path).await?));
                        return Ok(());
                    }
                }
            };
            print(&answer);
            Ok(())
        }
        Command::New {
            name,
            lang,
            dir,
            sdk,
        } => {
            let made = cli::new::create(&name, lang, dir.as_deref(), sdk.as_deref())?;
            println!("created {} ({lang} projection {name})", made.display());
            println!("next: cd {} && prism test && prism build", made.display());
            Ok(())
        }
        Command::Test { dir, lang, args } => {
            let project = Project::open(&dir, lang)?;
            let status = cli::unit_tests::run(&project, &args)?;
            std::process::exit(status.code().unwrap_or(1));
        }
        Command::Build { dir, lang } => {
            let project = Project::open(&dir, lang)?;
            let tools = cli::toolchain::Tools::from_env()?;
            eprintln!("building {} ({})", project.name, project.lang);
            let built = cli::build::build(&project, &tools, cli::build::Output::Show)?;
            println!(
                "built {} ({}) in {:.1} s",
                built.wasm.display(),
                cli::build::size(built.bytes),
                built.took.as_secs_f64()
            );
            Ok(())
        }
        Command::Dev {
            dir,
            lang,
            plugin,
            client,
        } => {
            let project = Project::open(&dir, lang)?;
            let plugin = project.plugin_name(plugin.as_deref())?;
            cli::dev::run(project, plugin, client.client()?).await
        }
    }
}
