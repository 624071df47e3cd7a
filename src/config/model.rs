//! The typed project file: what a user declares (models, tools, agents, workflows, networks,
//! MCP servers and clients, scorers, vector stores, server settings). Every struct rejects unknown
//! keys, so a typo is reported with its location instead of being silently ignored.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The whole project file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub models: IndexMap<String, ModelConfig>,
    #[serde(default)]
    pub tools: IndexMap<String, ToolConfig>,
    #[serde(default)]
    pub agents: IndexMap<String, AgentConfig>,
    #[serde(default)]
    pub workflows: IndexMap<String, WorkflowConfig>,
    #[serde(default)]
    pub legacy_workflows: IndexMap<String, LegacyWorkflowConfig>,
    #[serde(default)]
    pub networks: IndexMap<String, NetworkConfig>,
    #[serde(default)]
    pub mcp_servers: IndexMap<String, McpServerConfig>,
    #[serde(default)]
    pub mcp_clients: IndexMap<String, McpClientConfig>,
    #[serde(default)]
    pub scorers: IndexMap<String, ScorerConfig>,
    #[serde(default)]
    pub vector_stores: IndexMap<String, VectorStoreConfig>,
}

/// `server:` — listening, security and housekeeping settings. CLI flags override them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub host: Option<String>,
    pub port: Option<u16>,
    /// When set, `/api/*` and `/a2a/*` need `Authorization: Bearer <key>` (or `?apiKey=`).
    pub api_key: Option<String>,
    /// Largest accepted request body in bytes (default 4.5 MiB).
    pub body_limit: Option<usize>,
    /// `false` turns CORS headers off; an object adjusts them.
    pub cors: Option<CorsSetting>,
    #[serde(default)]
    pub logs: LogsConfig,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CorsSetting {
    Enabled(bool),
    Custom(CorsConfig),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Allowed origins; `["*"]` (the default) allows any.
    #[serde(default)]
    pub origins: Vec<String>,
    /// Headers allowed in addition to `Content-Type, Authorization, x-mastra-client-type`.
    #[serde(default)]
    pub allow_headers: Vec<String>,
}

/// Retention of the stored log records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogsConfig {
    /// Keep at most this many records (oldest dropped first).
    #[serde(default = "LogsConfig::default_max_rows")]
    pub max_rows: u64,
    /// Drop records older than this many hours.
    #[serde(default = "LogsConfig::default_max_age_hours")]
    pub max_age_hours: u64,
    /// Lowest level kept in storage: trace, debug, info, warn or error.
    #[serde(default = "LogsConfig::default_level")]
    pub level: String,
}

impl LogsConfig {
    fn default_max_rows() -> u64 {
        100_000
    }
    fn default_max_age_hours() -> u64 {
        24 * 7
    }
    fn default_level() -> String {
        "info".into()
    }
}

impl Default for LogsConfig {
    fn default() -> Self {
        LogsConfig {
            max_rows: Self::default_max_rows(),
            max_age_hours: Self::default_max_age_hours(),
            level: Self::default_level(),
        }
    }
}

/// Retention of stored trace spans.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    #[serde(default = "TelemetryConfig::default_max_rows")]
    pub max_rows: u64,
    #[serde(default = "LogsConfig::default_max_age_hours")]
    pub max_age_hours: u64,
}

impl TelemetryConfig {
    fn default_max_rows() -> u64 {
        100_000
    }
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            max_rows: Self::default_max_rows(),
            max_age_hours: LogsConfig::default_max_age_hours(),
        }
    }
}

/// `models:` — a built-in local model, a model file on disk, or an OpenAI-compatible endpoint.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Name of a model embedded in the binary (`smollm2-135m-instruct`, `all-minilm-l6-v2`).
    pub local: Option<String>,
    /// Path of a GGUF (chat) or safetensors folder (embeddings) on disk.
    pub path: Option<String>,
    pub openai: Option<OpenAiModelConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAiModelConfig {
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// `tools:` — what a tool is called, what it accepts, and how it runs (exactly one kind).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// The tool id (defaults to the key).
    pub id: Option<String>,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    /// Requests the tool is for, in users' words: local agents recognise it by them as well as
    /// by its description.
    #[serde(default)]
    pub examples: Vec<String>,
    /// A tool built into edgestra: `calculator`, `datetime`.
    pub builtin: Option<String>,
    /// A jq expression over the input whose (first) output is the result.
    pub jq: Option<String>,
    pub http: Option<HttpToolConfig>,
    pub command: Option<CommandToolConfig>,
    /// Semantic search over a vector index (RAG): the input `query` is embedded and the nearest
    /// chunks are returned.
    pub vector_query: Option<VectorQueryToolConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorQueryToolConfig {
    /// A name under `vector_stores:` (default `default`).
    #[serde(default = "VectorQueryToolConfig::default_store")]
    pub store: String,
    pub index: String,
    /// Results returned when the input does not say (default 5).
    pub top_k: Option<usize>,
}

impl VectorQueryToolConfig {
    fn default_store() -> String {
        "default".into()
    }
}

/// An HTTP call; `url` and `body` are jq expressions over the tool input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToolConfig {
    #[serde(default = "HttpToolConfig::default_method")]
    pub method: String,
    pub url: String,
    pub body: Option<String>,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    pub timeout_ms: Option<u64>,
}

impl HttpToolConfig {
    fn default_method() -> String {
        "GET".into()
    }
}

/// A program run with the tool input as JSON on stdin; its stdout must be JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandToolConfig {
    pub program: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    pub cwd: Option<String>,
    pub timeout_ms: Option<u64>,
}

/// `agents:` — an agent's prompt, model, tools and memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Display name (defaults to the key).
    pub name: Option<String>,
    #[serde(default)]
    pub instructions: String,
    /// Key of an entry under `models:`.
    pub model: String,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub workflows: Vec<String>,
    pub memory: Option<Value>,
    #[serde(default)]
    pub scorers: Vec<AgentScorerConfig>,
    pub max_steps: Option<u32>,
    pub default_generate_options: Option<Value>,
    pub default_stream_options: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentScorerConfig {
    pub scorer: String,
    pub sampling_rate: Option<f64>,
}

/// `workflows:` — a declarative step graph; each step is checked by the workflow engine.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowConfig {
    pub name: Option<String>,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    #[serde(default)]
    pub steps: Vec<Value>,
}

/// `legacy_workflows:` — Mastra's v1 workflows, served by the `legacyWorkflows` routes. They use
/// the step grammar of `workflows:` (a step's `when` skips it unless the condition holds) and are
/// started with trigger data, which their expressions see as `.input`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyWorkflowConfig {
    pub name: Option<String>,
    pub description: Option<String>,
    pub trigger_schema: Option<Value>,
    #[serde(default)]
    pub steps: Vec<Value>,
}

/// `networks:` — a routing agent over agents, workflows and tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkConfig {
    pub name: Option<String>,
    #[serde(default)]
    pub instructions: String,
    pub model: String,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub workflows: Vec<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    pub memory: Option<Value>,
}

/// `mcp_servers:` — MCP servers edgestra exposes over HTTP.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    #[serde(default)]
    pub tools: Vec<String>,
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub workflows: Vec<String>,
}

/// `mcp_clients:` — external MCP servers whose tools become usable tools.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpClientConfig {
    pub command: Option<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: IndexMap<String, String>,
    pub url: Option<String>,
    /// HTTP headers sent with every request to `url` (e.g. `Authorization`).
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    /// Longest one request may take (default 60 s).
    pub timeout_ms: Option<u64>,
}

/// `scorers:` — how agent answers are scored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerConfig {
    pub name: Option<String>,
    pub description: Option<String>,
    /// A jq expression over `{input, output}` giving the score (a number).
    pub jq: Option<String>,
    /// An agent (key under `agents:`) that judges the answer.
    pub judge: Option<String>,
}

/// `vector_stores:` — named vector stores; `embedder` names a model under `models:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VectorStoreConfig {
    pub embedder: Option<String>,
}
