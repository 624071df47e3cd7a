//! Agents: a model, instructions and tools declared in the project file, and the loop that runs
//! them (generate → call tools → feed results back → answer). Knows nothing of HTTP: callers get
//! [`run::AgentEvent`]s as the run proceeds and a [`run::RunResult`] at the end, and choose how to
//! put them on the wire.

pub mod a2a;
pub mod enhance;
pub mod evals;
pub mod options;
pub mod router;
pub mod run;
pub mod title;

use std::sync::{Arc, RwLock};

use indexmap::IndexMap;
use serde_json::Value;

use crate::config::{AgentConfig, Project};
use crate::inference::{Embedder, Generator, InferenceError, Models};
use crate::memory::config::MemoryConfig;
use crate::memory::engine::{Memory, MemoryError};
use crate::storage::Store;
use crate::tools::{Tool, ToolError, ToolRegistry};

/// Steps an agent call may take when neither the project nor the request says.
pub const DEFAULT_MAX_STEPS: u32 = 5;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Agent with name {0} not found")]
    NotFound(String),
    #[error("The model `{0}` does not exist")]
    ModelNotFound(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error(transparent)]
    Inference(#[from] InferenceError),
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("{0}")]
    Config(String),
}

/// One agent of the project, ready to run.
pub struct Agent {
    /// The key under `agents:` (the id in every `/api/agents/{agentId}` path).
    pub key: String,
    /// Display name.
    pub name: String,
    instructions: RwLock<String>,
    pub model: Arc<dyn Generator>,
    /// Tools by the key the agent knows them under (the `toolName` the model uses).
    pub tools: IndexMap<String, Arc<Tool>>,
    /// Keys of the workflows the agent may use.
    pub workflows: Vec<String>,
    /// Memory settings, when the agent has memory.
    pub memory_config: Option<MemoryConfig>,
    pub max_steps: u32,
    pub default_generate_options: Value,
    pub default_stream_options: Value,
    router: router::ToolRouter,
}

impl Agent {
    fn build(
        key: &str,
        cfg: &AgentConfig,
        tools: &ToolRegistry,
        models: &Models,
        embedder: Option<Arc<dyn Embedder>>,
    ) -> Result<Agent, AgentError> {
        let model = models.generator(&cfg.model).ok_or_else(|| {
            AgentError::Config(format!(
                "agent `{key}`: `{}` is not a chat model",
                cfg.model
            ))
        })?;
        let mut agent_tools = IndexMap::new();
        for name in &cfg.tools {
            let resolved = tools.resolve(name).ok_or_else(|| {
                AgentError::Config(format!("agent `{key}`: tool `{name}` is not declared"))
            })?;
            for tool in resolved {
                agent_tools.insert(tool.key.clone(), tool);
            }
        }
        Ok(Agent {
            key: key.to_string(),
            name: cfg.name.clone().unwrap_or_else(|| key.to_string()),
            instructions: RwLock::new(cfg.instructions.clone()),
            model,
            tools: agent_tools,
            workflows: cfg.workflows.clone(),
            memory_config: cfg
                .memory
                .as_ref()
                .filter(|m| **m != Value::Bool(false))
                .map(|m| MemoryConfig::default().apply(m))
                .transpose()
                .map_err(|e| AgentError::Config(format!("agent `{key}`: memory: {e}")))?,
            max_steps: cfg.max_steps.unwrap_or(DEFAULT_MAX_STEPS).max(1),
            default_generate_options: cfg
                .default_generate_options
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
            default_stream_options: cfg
                .default_stream_options
                .clone()
                .unwrap_or_else(|| Value::Object(Default::default())),
            router: router::ToolRouter::new(embedder),
        })
    }

    /// An agent that is only `model`: no instructions, tools or memory. Callers that address a
    /// model itself (the OpenAI-compatible API) run it, so that a model call gets the same
    /// request checks, client-tool handling, tool routing, tracing and logs as an agent call.
    fn bare(name: &str, model: Arc<dyn Generator>, embedder: Option<Arc<dyn Embedder>>) -> Agent {
        Agent {
            key: name.to_string(),
            name: name.to_string(),
            instructions: RwLock::new(String::new()),
            model,
            tools: IndexMap::new(),
            workflows: Vec::new(),
            memory_config: None,
            max_steps: DEFAULT_MAX_STEPS,
            default_generate_options: Value::Object(Default::default()),
            default_stream_options: Value::Object(Default::default()),
            router: router::ToolRouter::new(embedder),
        }
    }

    /// The system instructions as they stand (they can be changed at run time in dev mode).
    pub fn instructions(&self) -> String {
        self.instructions
            .read()
            .map(|i| i.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Replaces the instructions until the server restarts.
    pub fn set_instructions(&self, text: String) {
        match self.instructions.write() {
            Ok(mut i) => *i = text,
            Err(p) => *p.into_inner() = text,
        }
    }

    /// The agent's tool whose id (not key) is `id`.
    pub fn tool_by_id(&self, id: &str) -> Option<&Arc<Tool>> {
        self.tools.values().find(|t| t.id == id)
    }
}

/// Where runs record what they did.
#[derive(Clone)]
pub struct RunServices {
    pub store: Store,
    pub memory: Arc<Memory>,
    /// Span retention (rows, age in ms).
    pub span_retention: (u64, u64),
}

/// Told about every agent call that finishes (e.g. to score it). It gets the agents to call
/// them itself: holding them would keep them (and their storage) alive in a cycle.
pub trait CallObserver: Send + Sync {
    fn finished(
        &self,
        agents: &Agents,
        agent: &Arc<Agent>,
        opts: &options::CallOptions,
        result: &run::RunResult,
    );
}

/// All agents of a project, in declaration order, and what their runs need.
#[derive(Clone)]
pub struct Agents {
    agents: IndexMap<String, Arc<Agent>>,
    /// A bare agent (see [`Agent::bare`]) per chat model the project can name: its `models:`
    /// entries and the embedded models, by model name.
    bare: IndexMap<String, Arc<Agent>>,
    services: RunServices,
    /// Set once, after the parts that observe calls (which may call agents themselves) exist.
    observer: Arc<std::sync::OnceLock<Arc<dyn CallObserver>>>,
}

impl Agents {
    pub fn from_project(
        project: &Project,
        tools: &ToolRegistry,
        models: &Models,
        services: RunServices,
    ) -> Result<Agents, AgentError> {
        // Deciding when a small local model should call a tool needs sentence embeddings.
        let embedder = models.embedder(crate::inference::embedded::EMBEDDING_MODEL);
        let mut agents = IndexMap::new();
        for (key, cfg) in &project.agents {
            let agent = Agent::build(key, cfg, tools, models, embedder.clone())?;
            agents.insert(key.clone(), Arc::new(agent));
        }
        let model_names = project.models.keys().cloned().chain(
            crate::inference::embedded::manifest()
                .into_iter()
                .map(|m| m.name),
        );
        let mut bare = IndexMap::new();
        for name in model_names {
            if let Some(model) = models.generator(&name) {
                bare.entry(name.clone())
                    .or_insert_with(|| Arc::new(Agent::bare(&name, model, embedder.clone())));
            }
        }
        Ok(Agents {
            agents,
            bare,
            services,
            observer: Default::default(),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Agent>> {
        self.agents.values()
    }

    pub fn get(&self, key: &str) -> Result<&Arc<Agent>, AgentError> {
        self.agents
            .get(key)
            .ok_or_else(|| AgentError::NotFound(key.to_string()))
    }

    /// The bare agent over the chat model `name` (see [`Agent::bare`]).
    pub fn model(&self, name: &str) -> Result<&Arc<Agent>, AgentError> {
        self.bare
            .get(name)
            .ok_or_else(|| AgentError::ModelNotFound(name.to_string()))
    }

    /// The chat models [`Agents::model`] knows, in the project's order, then the embedded ones.
    pub fn model_names(&self) -> impl Iterator<Item = &str> {
        self.bare.keys().map(String::as_str)
    }

    /// Asks `agent` one question (with its generate defaults): its structured answer under
    /// `output_schema`, else `{text}`. Workflow steps, networks, MCP tools and judges ask this way.
    pub async fn ask(
        &self,
        agent: &str,
        prompt: String,
        output_schema: Option<Value>,
        run_id: &str,
    ) -> Result<Value, AgentError> {
        let agent = self.get(agent)?.clone();
        let mut body = serde_json::Map::new();
        body.insert("messages".into(), Value::String(prompt));
        body.insert("runId".into(), Value::String(run_id.to_string()));
        if let Some(s) = output_schema {
            body.insert("output".into(), s);
        }
        let opts = options::CallOptions::from_body(
            &agent,
            &body,
            &agent.default_generate_options,
            Default::default(),
        )?;
        let result = self.call(&agent, &opts, None).await?;
        Ok(match result.object {
            Some(object) => object,
            None => serde_json::json!({"text": result.text}),
        })
    }

    /// Tells `observer` about every call that finishes from now on (the first one set stays).
    pub fn observe_with(&self, observer: Arc<dyn CallObserver>) {
        let _ = self.observer.set(observer);
    }

    /// Runs a call of `agent` (see [`run::run`]), with its memory when it has one.
    pub async fn call(
        &self,
        agent: &Arc<Agent>,
        opts: &options::CallOptions,
        events: Option<tokio::sync::mpsc::UnboundedSender<run::AgentEvent>>,
    ) -> Result<run::RunResult, AgentError> {
        let result = self.call_with_memory(agent, opts, events).await?;
        if let Some(observer) = self.observer.get() {
            observer.finished(self, agent, opts, &result);
        }
        Ok(result)
    }

    async fn call_with_memory(
        &self,
        agent: &Arc<Agent>,
        opts: &options::CallOptions,
        events: Option<tokio::sync::mpsc::UnboundedSender<run::AgentEvent>>,
    ) -> Result<run::RunResult, AgentError> {
        let Some((target, config)) = opts.memory.as_ref().zip(agent.memory_config.as_ref()) else {
            return run::run(agent, opts, run::Context::default(), &self.services, events).await;
        };
        let config = match &target.options {
            Some(o) => config.apply(o).map_err(AgentError::InvalidRequest)?,
            None => config.clone(),
        };
        let memory = &self.services.memory;
        if let Some(thread) = memory.thread(&target.thread_id).await?
            && thread.resource_id != target.resource_id
        {
            return Err(AgentError::InvalidRequest(format!(
                "thread {} belongs to another resource",
                target.thread_id
            )));
        }
        let query = opts.last_user_text();
        let recalled = memory
            .recall(&config, &target.thread_id, &target.resource_id, &query)
            .await?;
        let context = run::Context {
            history: recalled.history,
            system: recalled.system,
            memory: Some(run::MemoryContext {
                memory: memory.clone(),
                config: config.clone(),
                thread_id: target.thread_id.clone(),
                resource_id: target.resource_id.clone(),
            }),
        };
        let result = run::run(agent, opts, context, &self.services, events).await?;
        let mut turn = result.input_messages.clone();
        turn.extend(result.response_messages.iter().cloned());
        let thread = memory
            .remember(&target.thread_id, &target.resource_id, &turn)
            .await?;
        if config.generate_title && thread.title.starts_with("New Thread") {
            let (agent, memory, id) = (agent.clone(), memory.clone(), thread.id.clone());
            let first = query.clone();
            tokio::spawn(async move { title::generate(&agent, &memory, &id, &first).await });
        }
        Ok(result)
    }
}
