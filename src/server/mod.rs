//! The HTTP layer (salvo): routing, conventions shared by every route (errors, body limit, CORS,
//! auth, request ids), and one module per API group with thin handlers that call the engines.

mod a2a;
mod agents;
pub mod bench;
mod error;
mod health;
mod legacy_workflows;
mod listener;
mod logs;
mod mcp;
mod memory;
mod metrics;
mod middleware;
mod networks;
mod openai;
mod playground;
pub mod request;
mod scores;
mod state;
mod system;
mod telemetry;
mod tools;
mod vector;
mod workflows;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use salvo::catcher::Catcher;
use salvo::conn::tcp::TcpAcceptor;
use salvo::cors::{AllowHeaders, Cors};
use salvo::http::Method;
use salvo::oapi::OpenApi;
use salvo::prelude::*;
use salvo::server::ServerHandle;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use state::AppState;

use crate::config::{CorsSetting, Project};
use crate::storage::Store;
use crate::telemetry::LogCapture;
use crate::tools::ToolRegistry;

/// Mastra's default body limit: 4.5 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 4_718_592;

/// How the server is started (CLI flags, already merged with the project's `server:` section
/// by [`ServeOptions::resolve`]).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub host: String,
    pub port: u16,
    pub data_dir: PathBuf,
    pub api_key: Option<String>,
    pub dev: bool,
    /// Serve `GET /metrics` and record what it reports.
    pub metrics: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Tools(#[from] crate::tools::ToolError),
    #[error(transparent)]
    Models(#[from] crate::inference::InferenceError),
    #[error(transparent)]
    Agents(#[from] crate::agent::AgentError),
    #[error(transparent)]
    Workflows(#[from] crate::workflow::WorkflowError),
    #[error(transparent)]
    Scores(#[from] crate::scores::ScoreError),
    #[error(transparent)]
    Networks(#[from] crate::network::NetworkError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// A running server; [`RunningServer::stop`] shuts it down gracefully.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    handle: ServerHandle,
    shutdown: watch::Sender<bool>,
    /// Ends the wait of connections that have not sent a request yet.
    stopping: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    capture: Option<LogCapture>,
}

impl RunningServer {
    /// Stops accepting connections, lets requests in flight finish (up to 10 s), then closes the
    /// log writer after it has stored everything it was given.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        self.stopping.cancel();
        self.handle.stop_graceful(Some(Duration::from_secs(10)));
        let _ = (&mut self.task).await;
        self.state.tools.close().await;
        // Connection tasks that were idle at the stop may still hold the state (and with it the
        // data file) for a moment; wait for them so that the data directory is free on return.
        for _ in 0..250 {
            if Arc::strong_count(&self.state) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Some(capture) = self.capture.take() {
            let _ = tokio::task::spawn_blocking(move || drop(capture)).await;
        }
    }

    /// Waits until the server stops by itself (it does not, unless its task fails).
    pub async fn wait(&mut self) {
        let _ = (&mut self.task).await;
    }
}

/// Opens storage, builds the engines and starts listening.
pub async fn start(project: Project, opts: ServeOptions) -> Result<RunningServer, ServerError> {
    crate::telemetry::install(None);
    let data_dir = opts.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&data_dir))
        .await
        .expect("storage open task")?;
    let capture = LogCapture::start(store.clone(), &project.server.logs);
    let models = crate::inference::Models::from_project(&project)?;
    let vectors =
        crate::vector::store::VectorStores::new(project.vector_stores.keys().cloned(), &store);
    let services = crate::tools::ToolServices {
        models: models.clone(),
        vectors: vectors.clone(),
    };
    let mut tools = ToolRegistry::from_project(&project, &services)?;
    // Within the instance's span, so that what the MCP servers log reaches this server's log.
    tracing::Instrument::instrument(
        tools.connect_mcp_clients(&project),
        tracing::info_span!("mcp_clients", instance = capture.instance),
    )
    .await?;
    // Saved messages are embedded only when some agent or network recalls by meaning.
    let semantic = project
        .agents
        .values()
        .filter_map(|a| a.memory.as_ref())
        .chain(project.networks.values().filter_map(|n| n.memory.as_ref()))
        .any(|m| {
            crate::memory::config::MemoryConfig::default()
                .apply(m)
                .is_ok_and(|c| c.semantic_recall.is_some())
        });
    let memory = Arc::new(crate::memory::engine::Memory::new(
        store.clone(),
        models.embedder(crate::inference::embedded::EMBEDDING_MODEL),
        semantic,
    ));
    let span_retention = (
        project.server.telemetry.max_rows,
        project.server.telemetry.max_age_hours * 3_600_000,
    );
    let agents = crate::agent::Agents::from_project(
        &project,
        &tools,
        &models,
        crate::agent::RunServices {
            store: store.clone(),
            memory: memory.clone(),
            span_retention,
        },
    )?;
    let workflows = Arc::new(crate::workflow::Workflows::from_project(&project)?);
    let runs = crate::workflow::runs::Runs::new(
        store.clone(),
        workflows,
        Arc::new(crate::workflow::ProjectServices {
            tools: tools.clone(),
            agents: agents.clone(),
        }),
        Some(span_retention),
    );
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let scores = Arc::new(crate::scores::Scores::from_project(
        &project,
        store.clone(),
    )?);
    agents.observe_with(Arc::new(crate::scores::LiveScoring {
        scores: scores.clone(),
    }));
    let mcp = Arc::new(crate::mcp::McpServers::from_project(
        &project,
        &tools,
        agents.clone(),
        runs.clone(),
    ));
    let networks = Arc::new(crate::network::Networks::from_project(
        &project,
        &models,
        &tools,
        agents.clone(),
        runs.clone(),
        memory.clone(),
    )?);
    let state = Arc::new(AppState {
        mcp,
        scores,
        networks,
        body_limit: project.server.body_limit.unwrap_or(DEFAULT_BODY_LIMIT),
        api_key: opts.api_key.clone().filter(|k| !k.is_empty()),
        dev: opts.dev,
        metrics: opts.metrics,
        instance: capture.instance,
        shutdown: shutdown_rx,
        tools,
        agents,
        memory,
        runs: runs.clone(),
        models,
        vectors,
        store,
        project,
    });

    // Runs an earlier process left running or waiting continue now.
    {
        let runs = runs.clone();
        let span = tracing::info_span!("recovery", instance = capture.instance);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                match runs.recover().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(runs = n, "continuing interrupted workflow runs"),
                    Err(e) => tracing::error!(error = %e, "could not look for interrupted runs"),
                }
            },
            span,
        ));
    }
    let addr = format!("{}:{}", opts.host, opts.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: addr.clone(),
        source,
    })?;
    let acceptor =
        TcpAcceptor::try_from(listener).map_err(|source| ServerError::Bind { addr, source })?;
    let stopping = CancellationToken::new();
    let server = Server::new(listener::StoppableAcceptor::new(acceptor, stopping.clone()));
    let handle = server.handle();
    let service = service(state.clone());
    let task = tokio::spawn(async move {
        server.serve(service).await;
    });
    Ok(RunningServer {
        addr: local,
        state,
        handle,
        shutdown: shutdown_tx,
        stopping,
        task,
        capture: Some(capture),
    })
}

/// The API routes, in precedence order (static segments before parameters).
fn api_router() -> Router {
    let router = Router::new()
        .push(Router::with_path("api").get(system::root))
        .push(Router::with_path(".well-known/{agentId}/agent.json").get(a2a::card))
        .push(Router::with_path(".well-known/{agentId}/agent-card.json").get(a2a::card))
        .push(Router::with_path("a2a/{agentId}").post(a2a::rpc))
        .push(Router::with_path("api/agents").get(agents::list))
        .push(Router::with_path("api/agents/{agentId}").get(agents::get))
        .push(Router::with_path("api/agents/{agentId}/evals/ci").get(agents::evals_ci))
        .push(Router::with_path("api/agents/{agentId}/evals/live").get(agents::evals_live))
        .push(Router::with_path("api/agents/{agentId}/generate").post(agents::generate))
        .push(Router::with_path("api/agents/{agentId}/stream").post(agents::stream))
        .push(Router::with_path("api/agents/{agentId}/streamVNext").post(agents::stream_vnext))
        .push(
            Router::with_path("api/agents/{agentId}/tools/{toolId}/execute")
                .post(agents::execute_tool),
        )
        .push(
            Router::with_path("api/agents/{agentId}/instructions")
                .post(agents::update_instructions),
        )
        .push(
            Router::with_path("api/agents/{agentId}/instructions/enhance")
                .post(agents::enhance_instructions),
        )
        .push(Router::with_path("api/agents/{agentId}/voice/speakers").get(agents::speakers))
        .push(Router::with_path("api/agents/{agentId}/voice/speak").post(agents::speak))
        .push(Router::with_path("api/agents/{agentId}/voice/listener").get(agents::listener))
        .push(Router::with_path("api/agents/{agentId}/voice/listen").post(agents::listen))
        .push(
            Router::with_path("api/agents/{agentId}/speakers")
                .hoop(agents::deprecated)
                .get(agents::speakers),
        )
        .push(
            Router::with_path("api/agents/{agentId}/speak")
                .hoop(agents::deprecated)
                .post(agents::speak),
        )
        .push(
            Router::with_path("api/agents/{agentId}/listen")
                .hoop(agents::deprecated)
                .post(agents::listen),
        )
        .push(Router::with_path("api/memory/network/status").get(memory::get_status))
        .push(
            Router::with_path("api/memory/network/threads")
                .get(memory::list_threads)
                .post(memory::create_thread),
        )
        .push(
            Router::with_path("api/memory/network/threads/{threadId}")
                .get(memory::get_thread)
                .patch(memory::update_thread)
                .delete(memory::delete_thread),
        )
        .push(
            Router::with_path("api/memory/network/threads/{threadId}/messages")
                .get(memory::thread_messages),
        )
        .push(Router::with_path("api/memory/network/save-messages").post(memory::save_messages))
        .push(Router::with_path("api/memory/network/messages/delete").post(memory::delete_messages))
        .push(Router::with_path("api/memory/status").get(memory::get_status))
        .push(Router::with_path("api/memory/config").get(memory::get_config))
        .push(Router::with_path("api/memory/search").get(memory::search))
        .push(Router::with_path("api/memory/save-messages").post(memory::save_messages))
        .push(Router::with_path("api/memory/messages/delete").post(memory::delete_messages))
        .push(
            Router::with_path("api/memory/threads")
                .get(memory::list_threads)
                .post(memory::create_thread),
        )
        .push(Router::with_path("api/memory/threads/paginated").get(memory::threads_paginated))
        .push(
            Router::with_path("api/memory/threads/{threadId}")
                .get(memory::get_thread)
                .patch(memory::update_thread)
                .delete(memory::delete_thread),
        )
        .push(
            Router::with_path("api/memory/threads/{threadId}/messages")
                .get(memory::thread_messages),
        )
        .push(
            Router::with_path("api/memory/threads/{threadId}/messages/paginated")
                .get(memory::thread_messages_paginated),
        )
        .push(
            Router::with_path("api/memory/threads/{threadId}/working-memory")
                .get(memory::get_working_memory)
                .post(memory::set_working_memory),
        )
        .push(Router::with_path("api/workflows").get(workflows::list))
        .push(Router::with_path("api/tools").get(tools::list))
        .push(Router::with_path("api/tools/{toolId}").get(tools::get))
        .push(Router::with_path("api/tools/{toolId}/execute").post(tools::execute))
        .push(Router::with_path("api/logs").get(logs::list))
        .push(Router::with_path("api/logs/transports").get(logs::transports))
        .push(Router::with_path("api/logs/{runId}").get(logs::by_run))
        .push(
            Router::with_path("api/telemetry")
                .get(telemetry::list)
                .post(telemetry::ingest),
        )
        .push(Router::with_path("api/vector/{vectorName}/upsert").post(vector::upsert))
        .push(Router::with_path("api/vector/{vectorName}/create-index").post(vector::create_index))
        .push(Router::with_path("api/vector/{vectorName}/query").post(vector::query))
        .push(Router::with_path("api/vector/{vectorName}/indexes").get(vector::list))
        .push(
            Router::with_path("api/vector/{vectorName}/indexes/{indexName}")
                .get(vector::describe)
                .delete(vector::delete),
        );
    let router = router
        .push(Router::with_path("api/networks").get(networks::legacy_list))
        .push(Router::with_path("api/networks/v-next").get(networks::list))
        .push(Router::with_path("api/networks/v-next/{networkId}").get(networks::get))
        .push(
            Router::with_path("api/networks/v-next/{networkId}/generate").post(networks::generate),
        )
        .push(Router::with_path("api/networks/v-next/{networkId}/loop").post(networks::run_loop))
        .push(
            Router::with_path("api/networks/v-next/{networkId}/loop-stream")
                .post(networks::loop_stream),
        )
        .push(Router::with_path("api/networks/v-next/{networkId}/stream").post(networks::stream))
        .push(Router::with_path("api/networks/{networkId}").get(networks::legacy_get))
        .push(
            Router::with_path("api/networks/{networkId}/generate").post(networks::legacy_generate),
        )
        .push(Router::with_path("api/networks/{networkId}/stream").post(networks::legacy_stream))
        .push(Router::with_path("api/scores").post(scores::save))
        .push(Router::with_path("api/scores/scorers").get(scores::list_scorers))
        .push(Router::with_path("api/scores/scorers/{scorerId}").get(scores::get_scorer))
        .push(Router::with_path("api/scores/run/{runId}").get(scores::by_run))
        .push(Router::with_path("api/scores/scorer/{scorerId}").get(scores::by_scorer))
        .push(Router::with_path("api/scores/entity/{entityType}/{entityId}").get(scores::by_entity))
        .push(Router::with_path("api/mcp/v0/servers").get(mcp::list_servers))
        .push(Router::with_path("api/mcp/v0/servers/{id}").get(mcp::server_details))
        .push(
            Router::with_path("api/mcp/{serverId}/mcp")
                .post(mcp::streamable_post)
                .get(mcp::streamable_get),
        )
        .push(Router::with_path("api/mcp/{serverId}/sse").get(mcp::sse))
        .push(Router::with_path("api/mcp/{serverId}/messages").post(mcp::post_message))
        .push(Router::with_path("api/mcp/{serverId}/tools").get(mcp::list_tools))
        .push(Router::with_path("api/mcp/{serverId}/tools/{toolId}").get(mcp::get_tool))
        .push(Router::with_path("api/mcp/{serverId}/tools/{toolId}/execute").post(mcp::execute));
    // Before the workflow routes: `/api/workflows/legacy` must not read as a workflow id.
    let router = router
        .push(Router::with_path("api/workflows/legacy").get(legacy_workflows::list))
        .push(Router::with_path("api/workflows/legacy/{workflowId}").get(legacy_workflows::get))
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/runs")
                .get(legacy_workflows::list_runs),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/create-run")
                .post(legacy_workflows::create_run),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/start")
                .post(legacy_workflows::start),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/start-async")
                .post(legacy_workflows::start_async),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/resume")
                .post(legacy_workflows::resume),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/resume-async")
                .post(legacy_workflows::resume_async),
        )
        .push(
            Router::with_path("api/workflows/legacy/{workflowId}/watch")
                .get(legacy_workflows::watch),
        );
    router
        .push(Router::with_path("api/workflows/{workflowId}").get(workflows::get))
        .push(Router::with_path("api/workflows/{workflowId}/runs").get(workflows::list_runs))
        .push(Router::with_path("api/workflows/{workflowId}/runs/{runId}").get(workflows::get_run))
        .push(
            Router::with_path("api/workflows/{workflowId}/runs/{runId}/execution-result")
                .get(workflows::execution_result),
        )
        .push(
            Router::with_path("api/workflows/{workflowId}/runs/{runId}/cancel")
                .post(workflows::cancel),
        )
        .push(
            Router::with_path("api/workflows/{workflowId}/runs/{runId}/send-event")
                .post(workflows::send_event),
        )
        .push(
            Router::with_path("api/workflows/{workflowId}/create-run").post(workflows::create_run),
        )
        .push(Router::with_path("api/workflows/{workflowId}/start").post(workflows::start))
        .push(
            Router::with_path("api/workflows/{workflowId}/start-async")
                .post(workflows::start_async),
        )
        .push(Router::with_path("api/workflows/{workflowId}/resume").post(workflows::resume))
        .push(
            Router::with_path("api/workflows/{workflowId}/resume-async")
                .post(workflows::resume_async),
        )
        .push(Router::with_path("api/workflows/{workflowId}/watch").get(workflows::watch))
        .push(Router::with_path("api/workflows/{workflowId}/stream").post(workflows::stream))
        .push(
            Router::with_path("api/workflows/{workflowId}/streamVNext")
                .post(workflows::stream_vnext),
        )
}

/// The OpenAPI document of exactly the routes [`api_router`] serves.
pub fn openapi() -> OpenApi {
    OpenApi::new("Mastra API", "1.0.0").merge_router(&api_router())
}

fn cors(project: &Project) -> Option<salvo::cors::CorsHandler> {
    let custom = match &project.server.cors {
        Some(CorsSetting::Enabled(false)) => return None,
        Some(CorsSetting::Custom(c)) => Some(c.clone()),
        _ => None,
    };
    let mut headers = vec![
        "content-type".to_string(),
        "authorization".into(),
        "x-mastra-client-type".into(),
        openai::THREAD_HEADER.into(),
    ];
    let mut origins = vec!["*".to_string()];
    if let Some(c) = custom {
        headers.extend(c.allow_headers.iter().map(|h| h.to_ascii_lowercase()));
        if !c.origins.is_empty() {
            origins = c.origins.clone();
        }
    }
    let cors = Cors::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(AllowHeaders::list(
            headers.iter().filter_map(|h| h.parse().ok()),
        ))
        .expose_headers(vec!["content-length", "x-requested-with", "x-request-id"])
        .max_age(3600u64);
    let cors = if origins.iter().any(|o| o == "*") {
        cors.allow_origin(salvo::cors::Any)
    } else {
        cors.allow_origin(origins.iter().map(String::as_str).collect::<Vec<_>>())
    };
    Some(cors.into_handler())
}

fn service(state: Arc<AppState>) -> Service {
    let doc = openapi();
    let router = Router::new()
        .hoop(middleware::auth)
        .hoop(middleware::body_and_context)
        .push(api_router())
        .push(Router::with_path("openapi.json").get(doc))
        .push(Router::with_path("health").get(health::health))
        .push(Router::with_path("ready").get(health::ready))
        .push(openai::router())
        .push(Router::with_path("metrics").get(metrics::metrics))
        .push(Router::with_path("refresh-events").get(system::refresh_events))
        .push(Router::with_path("{**path}").get(playground::serve));
    let mut service = Service::new(router)
        .hoop(state::Inject(state.clone()))
        .hoop(middleware::request_span)
        .hoop(middleware::record_metrics)
        .hoop(openai::openai_errors);
    if let Some(cors) = cors(&state.project) {
        service = service.hoop(cors);
    }
    hardened(service)
}

/// `service` with its failures answered as JSON: a handler that panics gets a 500 (the
/// panic is caught at the root, logged, and the connection kept), and every error status
/// without a body of its own gets the API's error body.
pub(crate) fn hardened(service: Service) -> Service {
    service
        .hoop(salvo::catch_panic::CatchPanic::new())
        .catcher(Catcher::default().hoop(middleware::json_errors))
}
