//! The tool registry: tools declared in the project file (built-in, jq, HTTP, command, vector
//! query) and the tools of external MCP servers, their input validation, and their execution.
//! Knows nothing of HTTP serving.

pub mod builtin;
mod command;
mod http;
pub mod mcp;
pub mod schema;
pub mod vector_query;

use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};

use crate::config::{Project, ToolConfig};
use crate::expr::{Expr, ExprError};
use schema::Schema;
pub use vector_query::ToolServices;

/// Longest a tool may run when the project file sets no timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("Tool not found")]
    NotFound,
    #[error("Invalid tool input: {}", .0.join("; "))]
    InvalidInput(Vec<String>),
    #[error("tool timed out after {0} ms")]
    Timeout(u64),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Config(String),
}

impl From<ExprError> for ToolError {
    fn from(e: ExprError) -> Self {
        ToolError::Failed(e.to_string())
    }
}

/// What a tool receives besides its input.
#[derive(Debug, Clone, Default)]
pub struct ToolContext {
    /// The request's `runtimeContext` entries.
    pub runtime_context: Map<String, Value>,
    pub run_id: Option<String>,
}

enum Kind {
    Builtin(String),
    Jq(Arc<Expr>),
    Http(http::HttpTool),
    Command(command::CommandTool),
    VectorQuery(vector_query::VectorQueryTool),
    /// The tool `name` of an external MCP server.
    Mcp {
        client: Arc<mcp::McpClient>,
        name: String,
    },
}

/// A tool ready to run.
pub struct Tool {
    /// The key under `tools:` in the project file (the export name on the wire).
    pub key: String,
    pub id: String,
    pub description: String,
    pub input_schema: Schema,
    pub output_schema: Option<Schema>,
    /// Requests the tool is for (`examples:` in the project file, or the built-in's own).
    pub examples: Vec<String>,
    kind: Kind,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("key", &self.key)
            .field("id", &self.id)
            .finish()
    }
}

impl Tool {
    fn build(
        key: &str,
        cfg: &ToolConfig,
        client: &reqwest::Client,
        project: &Project,
        services: &ToolServices,
    ) -> Result<Tool, ToolError> {
        let bad = |what: &str, e: String| ToolError::Config(format!("tool `{key}`: {what}: {e}"));
        let builtin = cfg.builtin.as_deref().and_then(builtin::spec);
        let input_raw = cfg
            .input_schema
            .clone()
            .or_else(|| builtin.as_ref().map(|b| (b.input_schema)()))
            .or_else(|| {
                cfg.vector_query
                    .as_ref()
                    .map(|_| vector_query::input_schema())
            })
            .unwrap_or_else(|| json!({"type": "object"}));
        let output_raw = cfg
            .output_schema
            .clone()
            .or_else(|| builtin.as_ref().map(|b| (b.output_schema)()));
        let description = cfg
            .description
            .clone()
            .or_else(|| builtin.as_ref().map(|b| b.description.to_string()))
            .unwrap_or_default();
        let kind = if let Some(name) = &cfg.builtin {
            if builtin.is_none() {
                return Err(bad("builtin", format!("`{name}` is not a built-in tool")));
            }
            Kind::Builtin(name.clone())
        } else if let Some(code) = &cfg.jq {
            Kind::Jq(Arc::new(
                Expr::compile(code).map_err(|e| bad("jq", e.to_string()))?,
            ))
        } else if let Some(h) = &cfg.http {
            Kind::Http(http::HttpTool::new(h, client.clone()).map_err(|e| bad("http", e))?)
        } else if let Some(c) = &cfg.command {
            Kind::Command(command::CommandTool::new(c))
        } else if let Some(v) = &cfg.vector_query {
            Kind::VectorQuery(
                vector_query::VectorQueryTool::new(v, project, services)
                    .map_err(|e| bad("vector_query", e))?,
            )
        } else {
            return Err(ToolError::Config(format!("tool `{key}` has no kind")));
        };
        Ok(Tool {
            key: key.to_string(),
            id: cfg.id.clone().unwrap_or_else(|| key.to_string()),
            description,
            input_schema: Schema::compile(input_raw).map_err(|e| bad("input_schema", e))?,
            output_schema: output_raw
                .map(Schema::compile)
                .transpose()
                .map_err(|e| bad("output_schema", e))?,
            examples: if cfg.examples.is_empty() {
                builtin
                    .as_ref()
                    .map(|b| b.examples.iter().map(|e| e.to_string()).collect())
                    .unwrap_or_default()
            } else {
                cfg.examples.clone()
            },
            kind,
        })
    }

    /// Validates `input` against the input schema and runs the tool.
    pub async fn execute(&self, input: Value, ctx: &ToolContext) -> Result<Value, ToolError> {
        self.input_schema
            .validate(&input)
            .map_err(ToolError::InvalidInput)?;
        tracing::debug!(tool = %self.id, run_id = ctx.run_id.as_deref().unwrap_or(""), "executing tool");
        match &self.kind {
            Kind::Builtin(name) => builtin::run(name, &input),
            Kind::Jq(expr) => {
                // jq can loop forever; evaluate off the executor and stop waiting at the timeout.
                let expr = expr.clone();
                with_timeout(DEFAULT_TIMEOUT, async move {
                    tokio::task::spawn_blocking(move || expr.eval(&input))
                        .await
                        .map_err(|e| ToolError::Failed(format!("the jq evaluation failed: {e}")))?
                        .map_err(ToolError::from)
                })
                .await
            }
            Kind::Http(h) => h.call(&input).await,
            Kind::Command(c) => c.run(&input, ctx).await,
            Kind::VectorQuery(v) => v.run(&input).await,
            Kind::Mcp { client, name } => client.call(name, input).await,
        }
    }

    /// The project tool for `remote`, a tool of the MCP server `client`.
    fn remote(client: &Arc<mcp::McpClient>, remote: &rmcp::model::Tool) -> Tool {
        let key = mcp::tool_key(&client.name, &remote.name);
        let raw = Value::Object((*remote.input_schema).clone());
        // A schema this validator cannot compile is left to the server to enforce.
        let input_schema = Schema::compile(raw.clone()).unwrap_or_else(|e| {
            tracing::warn!(tool = %key, error = %e, "the MCP tool's input schema is not checked here");
            Schema::unchecked(raw)
        });
        Tool {
            id: key.clone(),
            key,
            description: remote
                .description
                .as_deref()
                .unwrap_or_default()
                .to_string(),
            input_schema,
            output_schema: None,
            examples: Vec::new(),
            kind: Kind::Mcp {
                client: client.clone(),
                name: remote.name.to_string(),
            },
        }
    }
}

/// All tools of a project, by key, findable by id.
#[derive(Debug, Default, Clone)]
pub struct ToolRegistry {
    tools: IndexMap<String, Arc<Tool>>,
    /// The keys of each MCP client's tools (none for a client that could not be reached).
    clients: IndexMap<String, Vec<String>>,
    sessions: Vec<Arc<mcp::McpClient>>,
}

impl ToolRegistry {
    pub fn from_project(
        project: &Project,
        services: &ToolServices,
    ) -> Result<ToolRegistry, ToolError> {
        let client = crate::net::http_client().map_err(ToolError::Config)?;
        let mut tools = IndexMap::new();
        for (key, cfg) in &project.tools {
            tools.insert(
                key.clone(),
                Arc::new(Tool::build(key, cfg, &client, project, services)?),
            );
        }
        Ok(ToolRegistry {
            tools,
            clients: project
                .mcp_clients
                .keys()
                .map(|name| (name.clone(), Vec::new()))
                .collect(),
            sessions: Vec::new(),
        })
    }

    /// Connects to the project's MCP clients and adds their tools. A tool whose key a project
    /// tool already has is left out (the project's own wins), with a warning.
    pub async fn connect_mcp_clients(&mut self, project: &Project) -> Result<(), ToolError> {
        if project.mcp_clients.is_empty() {
            return Ok(());
        }
        let http = crate::net::http_client().map_err(ToolError::Config)?;
        for (client, listed) in mcp::connect_all(&project.mcp_clients, &http).await {
            let mut keys = Vec::new();
            for remote in &listed {
                let tool = Tool::remote(&client, remote);
                if self.tools.contains_key(&tool.key) {
                    tracing::warn!(tool = %tool.key, "a project tool has this name; the MCP tool is left out");
                    continue;
                }
                keys.push(tool.key.clone());
                self.tools.insert(tool.key.clone(), Arc::new(tool));
            }
            self.clients.insert(client.name.clone(), keys);
            self.sessions.push(client);
        }
        Ok(())
    }

    /// Ends the MCP sessions (and the processes of stdio servers).
    pub async fn close(&self) {
        for client in &self.sessions {
            client.close().await;
        }
    }

    /// The tools a project reference names: a tool key, or an MCP client's name for all of
    /// its tools. `None` when it names nothing; a tool of an MCP client that did not offer it
    /// (the server was unreachable at start or has no such tool) resolves to no tools, with a
    /// warning, so that the server still starts.
    pub fn resolve(&self, reference: &str) -> Option<Vec<Arc<Tool>>> {
        if let Some(tool) = self.tools.get(reference) {
            return Some(vec![tool.clone()]);
        }
        if let Some(keys) = self.clients.get(reference) {
            return Some(
                keys.iter()
                    .filter_map(|k| self.tools.get(k).cloned())
                    .collect(),
            );
        }
        let client = self.clients.keys().find(|client| {
            reference
                .strip_prefix(client.as_str())
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('_'))
        })?;
        tracing::warn!(tool = %reference, mcp_client = %client, "the MCP server did not offer this tool; it is not available");
        Some(Vec::new())
    }

    /// Tools in declaration order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tool>> {
        self.tools.values()
    }

    /// The tool declared under `key`.
    pub fn by_key(&self, key: &str) -> Option<&Arc<Tool>> {
        self.tools.get(key)
    }

    /// The tool whose id is `id` (what `/api/tools/{toolId}` looks up).
    pub fn by_id(&self, id: &str) -> Option<&Arc<Tool>> {
        self.tools.values().find(|t| t.id == id)
    }
}

/// Runs `fut` with a deadline, turning expiry into [`ToolError::Timeout`].
async fn with_timeout<T>(
    timeout: Duration,
    fut: impl std::future::Future<Output = Result<T, ToolError>>,
) -> Result<T, ToolError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(ToolError::Timeout(timeout.as_millis() as u64)),
    }
}

/// The last `max` characters of `text`, for error messages.
fn tail(text: &str, max: usize) -> String {
    let t = text.trim();
    let n = t.chars().count();
    if n <= max {
        t.to_string()
    } else {
        format!("…{}", t.chars().skip(n - max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(yaml: &str) -> ToolRegistry {
        let project = crate::config::check(yaml, &|_| None).unwrap();
        ToolRegistry::from_project(&project, &ToolServices::default()).unwrap()
    }

    #[tokio::test]
    async fn builtin_and_jq_tools_run_and_validate_input() {
        let r = registry(
            "tools:\n  calc: { builtin: calculator }\n  double: { id: dbl, jq: '{value: (.value * 2)}', input_schema: {type: object, properties: {value: {type: number}}, required: [value]} }\n",
        );
        let ctx = ToolContext::default();
        let calc = r.by_key("calc").unwrap();
        assert_eq!(calc.id, "calc");
        assert!(!calc.description.is_empty());
        assert_eq!(
            calc.execute(json!({"expression": "1+1"}), &ctx)
                .await
                .unwrap()["result"],
            2.0
        );

        let dbl = r.by_id("dbl").unwrap();
        assert_eq!(
            dbl.execute(json!({"value": 4}), &ctx).await.unwrap(),
            json!({"value": 8})
        );
        let err = dbl.execute(json!({"value": "x"}), &ctx).await.unwrap_err();
        assert!(matches!(err, ToolError::InvalidInput(_)), "{err}");
        assert!(r.by_id("double").is_none(), "lookup by id, not key");
    }

    #[test]
    fn references_name_tools_or_mcp_clients() {
        // The client is declared but not connected: it offers no tools (yet).
        let r = registry(
            "tools:\n  calc: { builtin: calculator }\nmcp_clients:\n  files: { command: mcp-fs }\n",
        );
        let keys = |reference: &str| {
            r.resolve(reference)
                .map(|tools| tools.iter().map(|t| t.key.clone()).collect::<Vec<_>>())
        };
        assert_eq!(keys("calc"), Some(vec!["calc".to_string()]));
        assert_eq!(keys("files"), Some(vec![]));
        assert_eq!(keys("files_read_file"), Some(vec![]));
        assert_eq!(keys("files_"), None);
        assert_eq!(keys("filesystem"), None);
        assert_eq!(keys("nope"), None);
    }
}
