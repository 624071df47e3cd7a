//! MCP servers declared under `mcp_servers:`: what each one exposes — project tools by key,
//! agents as `ask_<agent>`, workflows as `run_<workflow>` (spec §4.4) — and how those are called.
//! [`protocol`] answers MCP's JSON-RPC and [`sessions`] keeps the transports' sessions; the HTTP
//! transports themselves are in `server/mcp.rs`.

pub mod protocol;
pub mod sessions;

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::agent::Agents;
use crate::config::Project;
use crate::tools::schema::Schema;
use crate::tools::{Tool, ToolContext, ToolError, ToolRegistry};
use crate::workflow::runs::Runs;

#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("MCP server with ID '{0}' not found")]
    ServerNotFound(String),
    #[error("Tool with ID '{tool}' not found on MCP server '{server}'")]
    ToolNotFound { tool: String, server: String },
    #[error("Invalid tool arguments")]
    InvalidArguments(Vec<String>),
    #[error("{0}")]
    Failed(String),
}

/// What an exposed tool runs.
#[derive(Debug, Clone)]
pub enum Target {
    Tool(Arc<Tool>),
    Agent(String),
    Workflow(String),
}

/// A tool as an MCP server exposes it.
#[derive(Debug, Clone)]
pub struct ExposedTool {
    /// Its name on the server (the tool key, `ask_<agent>` or `run_<workflow>`).
    pub name: String,
    pub description: String,
    pub input_schema: Value,
    pub output_schema: Option<Value>,
    pub target: Target,
}

impl ExposedTool {
    /// `agent` or `workflow` for those, nothing for plain tools.
    pub fn tool_type(&self) -> Option<&'static str> {
        match self.target {
            Target::Tool(_) => None,
            Target::Agent(_) => Some("agent"),
            Target::Workflow(_) => Some("workflow"),
        }
    }
}

/// One MCP server.
#[derive(Debug)]
pub struct McpServer {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: Option<String>,
    /// When this server process started serving it (the registry's `release_date`).
    pub release_date: String,
    pub tools: IndexMap<String, ExposedTool>,
}

impl McpServer {
    pub fn tool(&self, name: &str) -> Result<&ExposedTool, McpError> {
        self.tools.get(name).ok_or_else(|| McpError::ToolNotFound {
            tool: name.to_string(),
            server: self.id.clone(),
        })
    }
}

/// The project's MCP servers and what their tools call.
pub struct McpServers {
    servers: IndexMap<String, Arc<McpServer>>,
    /// The transports' open sessions.
    pub sessions: sessions::Sessions,
    agents: Agents,
    runs: Arc<Runs>,
}

impl McpServers {
    pub fn from_project(
        project: &Project,
        tools: &ToolRegistry,
        agents: Agents,
        runs: Arc<Runs>,
    ) -> McpServers {
        let started = crate::memory::engine::iso(crate::workflow::engine::now_ms());
        let mut servers = IndexMap::new();
        for (key, cfg) in &project.mcp_servers {
            let mut exposed = IndexMap::new();
            for tool in cfg.tools.iter().filter_map(|r| tools.resolve(r)).flatten() {
                {
                    exposed.insert(
                        tool.key.clone(),
                        ExposedTool {
                            name: tool.key.clone(),
                            description: tool.description.clone(),
                            input_schema: tool.input_schema.raw().clone(),
                            output_schema: tool.output_schema.as_ref().map(|s| s.raw().clone()),
                            target: Target::Tool(tool.clone()),
                        },
                    );
                }
            }
            for name in &cfg.agents {
                if let Ok(agent) = agents.get(name) {
                    let tool = format!("ask_{name}");
                    // Agents have no description of their own: their instructions say what they do.
                    let about: String = agent.instructions().chars().take(300).collect();
                    exposed.insert(
                        tool.clone(),
                        ExposedTool {
                            name: tool,
                            description: format!(
                                "Ask agent '{}' a question. Agent description: {about}",
                                agent.name
                            ),
                            input_schema: json!({
                                "type": "object",
                                "properties": {"message": {"type": "string", "description": "The question or request for the agent."}},
                                "required": ["message"],
                            }),
                            output_schema: None,
                            target: Target::Agent(name.clone()),
                        },
                    );
                }
            }
            for name in &cfg.workflows {
                if let Ok(workflow) = runs.workflows().get(name) {
                    let tool = format!("run_{name}");
                    exposed.insert(
                        tool.clone(),
                        ExposedTool {
                            name: tool,
                            description: format!(
                                "Run workflow '{name}'. Workflow description: {}",
                                workflow.description.clone().unwrap_or_default()
                            ),
                            input_schema: workflow
                                .input_schema
                                .clone()
                                .unwrap_or_else(|| json!({"type": "object"})),
                            output_schema: workflow.output_schema.clone(),
                            target: Target::Workflow(name.clone()),
                        },
                    );
                }
            }
            servers.insert(
                key.clone(),
                Arc::new(McpServer {
                    id: key.clone(),
                    name: cfg.name.clone().unwrap_or_else(|| key.clone()),
                    version: cfg.version.clone().unwrap_or_else(|| "1.0.0".into()),
                    description: cfg.description.clone(),
                    release_date: started.clone(),
                    tools: exposed,
                }),
            );
        }
        McpServers {
            servers,
            sessions: Default::default(),
            agents,
            runs,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<McpServer>> {
        self.servers.values()
    }

    pub fn get(&self, id: &str) -> Result<&Arc<McpServer>, McpError> {
        self.servers
            .get(id)
            .ok_or_else(|| McpError::ServerNotFound(id.to_string()))
    }

    /// Runs an exposed tool with `args` (checked against its input schema) and answers its
    /// result: the tool's output, the agent's `{text}`, or the workflow's result (§3.8).
    pub async fn call(&self, tool: &ExposedTool, args: Value) -> Result<Value, McpError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        tracing::info!(tool = %tool.name, run_id = %run_id, "MCP tool call");
        match &tool.target {
            Target::Tool(t) => {
                let ctx = ToolContext {
                    runtime_context: Default::default(),
                    run_id: Some(run_id),
                };
                t.execute(args, &ctx).await.map_err(|e| match e {
                    ToolError::InvalidInput(problems) => McpError::InvalidArguments(problems),
                    other => McpError::Failed(other.to_string()),
                })
            }
            Target::Agent(agent) => {
                check(&tool.input_schema, &args)?;
                let message = args["message"].as_str().unwrap_or_default().to_string();
                self.agents
                    .ask(agent, message, None, &run_id)
                    .await
                    .map_err(|e| McpError::Failed(e.to_string()))
            }
            Target::Workflow(name) => {
                check(&tool.input_schema, &args)?;
                let workflow = self
                    .runs
                    .workflows()
                    .get(name)
                    .map_err(|e| McpError::Failed(e.to_string()))?;
                let failed = |e: crate::workflow::WorkflowError| McpError::Failed(e.to_string());
                let run = self
                    .runs
                    .create(workflow, Some(run_id.clone()), None)
                    .await
                    .map_err(failed)?;
                self.runs
                    .start(workflow, run, args, Default::default())
                    .await
                    .map_err(failed)?;
                let state = self.runs.wait(&run_id).await.map_err(failed)?;
                Ok(crate::workflow::runs::result_json(&state))
            }
        }
    }
}

/// Checks arguments against an exposed tool's schema.
fn check(schema: &Value, args: &Value) -> Result<(), McpError> {
    let compiled = Schema::compile(schema.clone()).map_err(McpError::Failed)?;
    compiled.validate(args).map_err(McpError::InvalidArguments)
}
