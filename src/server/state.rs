//! What every handler can reach: the project, the engines and the settings, in one `Arc`.

use std::sync::Arc;

use salvo::prelude::*;
use tokio::sync::watch;

use crate::config::Project;
use crate::inference::Models;
use crate::storage::Store;
use crate::tools::ToolRegistry;

pub struct AppState {
    pub project: Project,
    pub tools: ToolRegistry,
    pub agents: crate::agent::Agents,
    pub memory: Arc<crate::memory::engine::Memory>,
    pub runs: Arc<crate::workflow::runs::Runs>,
    /// MCP servers and their transports' sessions.
    pub mcp: Arc<crate::mcp::McpServers>,
    /// Scorers and score rows.
    pub scores: Arc<crate::scores::Scores>,
    /// Agent networks.
    pub networks: Arc<crate::network::Networks>,
    /// Generators and embedders by model name.
    pub models: Models,
    /// Vector stores by name.
    pub vectors: crate::vector::store::VectorStores,
    pub store: Store,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// `Some` when requests need `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Development mode (`--dev`): enables dev-only routes.
    pub dev: bool,
    /// `--metrics`: `GET /metrics` is served and requests are counted.
    pub metrics: bool,
    /// The log-capture instance whose span fields route this server's logs.
    pub instance: u64,
    /// Flips to `true` when the server shuts down, so long-lived streams can end.
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    /// The state injected by [`Inject`]; present on every request.
    pub fn get(depot: &Depot) -> &Arc<AppState> {
        depot
            .get_typed::<Arc<AppState>>()
            .expect("AppState is injected for every request")
    }
}

/// Service-level hoop that puts the state into the depot.
pub struct Inject(pub Arc<AppState>);

#[async_trait]
impl Handler for Inject {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.0.clone());
    }
}
