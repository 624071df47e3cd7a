//! Agent networks declared under `networks:` (spec §4.3): a routing model that, step by step,
//! hands a task to one of the network's agents, workflows or tools and decides when the task is
//! done. A model that decides on its own (a remote one) answers each decision as JSON constrained
//! to a schema listing exactly the network's primitives. A small local model does not choose
//! well (DESIGN.md §3), so for it the task is compared with each primitive's description by
//! sentence embeddings, as agents pick tools, and the model only writes the chosen workflow's or
//! tool's input, under that input's own schema. A network with `memory` keeps each
//! conversation as a thread (the task as a user message, each primitive's answer as an assistant
//! message, as Mastra's networks do) and shows the routing model the thread's recent messages.
//! Knows nothing of HTTP.

pub mod legacy;

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::agent::Agents;
use crate::agent::router::ToolRouter;
use crate::config::Project;
use crate::inference::{ChatMessage, GenerateRequest, Generator, Models, ToolSpec};
use crate::memory::config::MemoryConfig;
use crate::memory::engine::Memory;
use crate::memory::messages::{CoreMessage, Role};
use crate::tools::schema::Schema;
use crate::tools::{Tool, ToolContext, ToolRegistry};
use crate::workflow::engine::Status;
use crate::workflow::runs::Runs;

/// Most routing steps a loop takes unless told otherwise.
pub const DEFAULT_MAX_ITERATIONS: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("Network not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Failed(String),
    #[error("{0}")]
    Config(String),
}

/// One network.
pub struct Network {
    pub key: String,
    pub name: String,
    pub instructions: String,
    pub model: Arc<dyn Generator>,
    pub agents: Vec<String>,
    pub workflows: Vec<String>,
    pub tools: Vec<Arc<Tool>>,
    /// `Some` when the network keeps its conversations.
    pub memory: Option<MemoryConfig>,
}

/// The thread a network call belongs to (only for networks with memory).
#[derive(Debug, Clone)]
pub struct Conversation {
    pub thread_id: String,
    pub resource_id: String,
}

/// What the router decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// `agent`, `workflow`, `tool`, or `none` when nothing more is to be done.
    pub resource_type: String,
    pub resource_id: String,
    /// What the chosen agent is asked.
    pub prompt: String,
    /// The input of a chosen workflow or tool.
    pub input: Value,
    pub is_complete: bool,
    pub reason: String,
}

/// One routing step and what its primitive answered.
#[derive(Debug, Clone)]
pub struct Iteration {
    pub decision: Decision,
    pub result: String,
}

/// Where a loop stands, for streams.
#[derive(Debug, Clone)]
pub enum Progress {
    Routed(Decision),
    Ran(Iteration),
}

/// The end of a loop.
#[derive(Debug, Clone)]
pub struct LoopOutcome {
    pub iterations: Vec<Iteration>,
    pub result: String,
    pub is_complete: bool,
    pub completion_reason: String,
}

/// The project's networks and what their primitives run on.
pub struct Networks {
    networks: IndexMap<String, Arc<Network>>,
    agents: Agents,
    runs: Arc<Runs>,
    memory: Arc<Memory>,
    /// Compares tasks with primitives for models that do not decide themselves.
    similarity: ToolRouter,
}

impl Networks {
    pub fn from_project(
        project: &Project,
        models: &Models,
        tools: &ToolRegistry,
        agents: Agents,
        runs: Arc<Runs>,
        memory: Arc<Memory>,
    ) -> Result<Networks, NetworkError> {
        let mut networks = IndexMap::new();
        for (key, cfg) in &project.networks {
            let model = models.generator(&cfg.model).ok_or_else(|| {
                NetworkError::Config(format!(
                    "network `{key}`: model `{}` is not available",
                    cfg.model
                ))
            })?;
            let memory_config = cfg
                .memory
                .as_ref()
                .filter(|m| **m != Value::Bool(false))
                .map(|m| MemoryConfig::default().apply(m))
                .transpose()
                .map_err(|e| NetworkError::Config(format!("network `{key}`: memory: {e}")))?;
            networks.insert(
                key.clone(),
                Arc::new(Network {
                    key: key.clone(),
                    name: cfg.name.clone().unwrap_or_else(|| key.clone()),
                    instructions: cfg.instructions.clone(),
                    model,
                    agents: cfg.agents.clone(),
                    workflows: cfg.workflows.clone(),
                    tools: cfg
                        .tools
                        .iter()
                        .filter_map(|t| tools.resolve(t))
                        .flatten()
                        .collect(),
                    memory: memory_config,
                }),
            );
        }
        let embedder = models.embedder(crate::inference::embedded::EMBEDDING_MODEL);
        Ok(Networks {
            networks,
            agents,
            runs,
            memory,
            similarity: ToolRouter::new(embedder),
        })
    }

    /// The thread's recent messages as text for the router ("" for a new thread).
    async fn recall(
        &self,
        net: &Network,
        conversation: &Conversation,
        task: &str,
    ) -> Result<String, NetworkError> {
        let Some(config) = &net.memory else {
            return Ok(String::new());
        };
        let recalled = self
            .memory
            .recall(
                config,
                &conversation.thread_id,
                &conversation.resource_id,
                task,
            )
            .await
            .map_err(|e| NetworkError::Failed(format!("memory: {e}")))?;
        Ok(recalled
            .history
            .iter()
            .map(|m| format!("- {}: {}\n", m.role.as_str(), m.text_content()))
            .collect())
    }

    async fn remember(
        &self,
        conversation: &Conversation,
        role: Role,
        text: &str,
    ) -> Result<(), NetworkError> {
        self.memory
            .remember(
                &conversation.thread_id,
                &conversation.resource_id,
                &[CoreMessage::text(role, text)],
            )
            .await
            .map(|_| ())
            .map_err(|e| NetworkError::Failed(format!("memory: {e}")))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Network>> {
        self.networks.values()
    }

    pub fn get(&self, key: &str) -> Result<&Arc<Network>, NetworkError> {
        self.networks
            .get(key)
            .ok_or_else(|| NetworkError::NotFound(key.to_string()))
    }

    pub fn agents(&self) -> &Agents {
        &self.agents
    }

    pub fn runs(&self) -> &Arc<Runs> {
        &self.runs
    }

    /// The primitives a router may choose: (type, id, description, input schema).
    fn primitives(&self, net: &Network) -> Vec<(&'static str, String, String, Value)> {
        let mut out = Vec::new();
        for a in &net.agents {
            if let Ok(agent) = self.agents.get(a) {
                let about: String = agent.instructions().chars().take(200).collect();
                let input = json!({"type": "object"});
                out.push((
                    "agent",
                    a.clone(),
                    format!("{}: {about}", agent.name),
                    input,
                ));
            }
        }
        for w in &net.workflows {
            if let Ok(workflow) = self.runs.workflows().get(w) {
                let schema = workflow
                    .input_schema
                    .clone()
                    .unwrap_or_else(|| json!({"type": "object"}));
                let about = workflow.description.clone().unwrap_or_default();
                out.push(("workflow", w.clone(), about, schema));
            }
        }
        for t in &net.tools {
            let schema = t.input_schema.raw().clone();
            out.push(("tool", t.key.clone(), t.description.clone(), schema));
        }
        out
    }

    /// Asks the routing model for the next step of `task`, given what has been done.
    pub async fn route(
        &self,
        net: &Network,
        task: &str,
        earlier: &str,
        done: &[Iteration],
    ) -> Result<Decision, NetworkError> {
        if !net.model.decides_tool_use() {
            return self.route_by_similarity(net, task, done).await;
        }
        let primitives = self.primitives(net);
        // One field names type and id together (`workflow:double`), so a decision cannot pair a
        // type with another type's id.
        let mut names: Vec<String> = primitives
            .iter()
            .map(|(t, id, _, _)| format!("{t}:{id}"))
            .collect();
        names.push("none".into());
        let schema = json!({
            "type": "object",
            "properties": {
                "primitive": {"type": "string", "enum": names},
                "prompt": {"type": "string"},
                "input": {"type": "object"},
                "isComplete": {"type": "boolean"},
                "reason": {"type": "string"},
            },
            "required": ["primitive", "prompt", "input", "isComplete", "reason"],
        });
        let listing: String = primitives
            .iter()
            .map(|(t, id, about, schema)| {
                if *t == "agent" {
                    format!("- `{t}:{id}`: {about}\n")
                } else {
                    format!("- `{t}:{id}`: {about} Input: {schema}\n")
                }
            })
            .collect();
        let system = format!(
            "{}\n\nYou route a task to the one primitive best suited for its next step:\n{listing}\
             Answer with JSON: primitive names it; prompt is what an agent is asked; input is a \
             workflow's or tool's input. When the results so far complete the task, answer \
             primitive \"none\" and isComplete true, with the final answer in prompt.",
            net.instructions
        );
        let history: String = done
            .iter()
            .map(|i| {
                format!(
                    "- {} `{}` answered: {}\n",
                    i.decision.resource_type, i.decision.resource_id, i.result
                )
            })
            .collect();
        let mut user = String::new();
        if !earlier.is_empty() {
            user.push_str(&format!("Earlier in this conversation:\n{earlier}\n"));
        }
        user.push_str(&format!("Task: {task}"));
        if !history.is_empty() {
            user.push_str(&format!("\nDone so far:\n{history}"));
        }
        let mut req = GenerateRequest::new(vec![
            ChatMessage::new("system", system),
            ChatMessage::new("user", user),
        ]);
        req.json_schema = Some(schema.clone());
        req.max_tokens = 512;
        let generation = net
            .model
            .generate(req, None)
            .await
            .map_err(|e| NetworkError::Failed(format!("routing failed: {e}")))?;
        let decided: Value = serde_json::from_str(generation.text.trim()).map_err(|e| {
            NetworkError::Failed(format!(
                "the routing model did not answer with JSON ({e}): {}",
                generation.text
            ))
        })?;
        Schema::compile(schema)
            .map_err(NetworkError::Failed)?
            .validate(&decided)
            .map_err(|p| NetworkError::Failed(format!("routing answer: {}", p.join("; "))))?;
        let text = |k: &str| decided[k].as_str().unwrap_or_default().to_string();
        let primitive = text("primitive");
        let (kind, id) = primitive.split_once(':').unwrap_or(("none", ""));
        Ok(Decision {
            resource_type: kind.to_string(),
            resource_id: id.to_string(),
            prompt: text("prompt"),
            input: decided["input"].clone(),
            is_complete: decided["isComplete"].as_bool().unwrap_or(false),
            reason: text("reason"),
        })
    }

    /// Routing for models that do not decide themselves: the primitive closest to the task by
    /// sentence embeddings; one primitive answers the task, so a second step completes it.
    async fn route_by_similarity(
        &self,
        net: &Network,
        task: &str,
        done: &[Iteration],
    ) -> Result<Decision, NetworkError> {
        if let Some(last) = done.last() {
            return Ok(Decision {
                resource_type: "none".into(),
                resource_id: String::new(),
                prompt: last.result.clone(),
                input: json!({}),
                is_complete: true,
                reason: format!(
                    "{} `{}` answered the task",
                    last.decision.resource_type, last.decision.resource_id
                ),
            });
        }
        let primitives = self.primitives(net);
        let specs: Vec<ToolSpec> = primitives
            .iter()
            .map(|(_, id, about, schema)| ToolSpec {
                name: id.clone(),
                description: about.clone(),
                parameters: schema.clone(),
                examples: Vec::new(),
            })
            .collect();
        let scores = self
            .similarity
            .scores(task, &specs)
            .await
            .map_err(|e| NetworkError::Failed(format!("routing failed: {e}")))?;
        let Some((mut best, score)) = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(i, s)| (i, *s))
        else {
            return Err(NetworkError::Failed(
                "the network has no agents, workflows or tools".into(),
            ));
        };
        // A task not clearly about a workflow or tool goes to the (first) agent, the generalist.
        if score < crate::agent::router::SIMILARITY_ONLY_THRESHOLD
            && let Some(agent) = primitives.iter().position(|p| p.0 == "agent")
        {
            best = agent;
        }
        let (kind, id, about, schema) = &primitives[best];
        let input = if *kind == "agent" {
            json!({})
        } else {
            let mut req = GenerateRequest::new(vec![
                ChatMessage::new(
                    "system",
                    format!("{about}. Reply with the JSON input for this request."),
                ),
                ChatMessage::new("user", task.to_string()),
            ]);
            req.json_schema = Some(schema.clone());
            // Copying the task's values into the input wants the likeliest tokens.
            req.sampling.temperature = 0.0;
            let generation = net
                .model
                .generate(req, None)
                .await
                .map_err(|e| NetworkError::Failed(format!("writing the input failed: {e}")))?;
            serde_json::from_str(generation.text.trim()).map_err(|e| {
                NetworkError::Failed(format!("the input for `{id}` is not JSON ({e})"))
            })?
        };
        Ok(Decision {
            resource_type: kind.to_string(),
            resource_id: id.clone(),
            prompt: task.to_string(),
            input,
            is_complete: false,
            reason: format!("the closest to the task (similarity {score:.2})"),
        })
    }

    /// Runs the primitive a decision names; answers its result as text.
    pub async fn execute(&self, net: &Network, d: &Decision) -> Result<String, NetworkError> {
        let run_id = uuid::Uuid::new_v4().to_string();
        let text = |v: Value| match v {
            Value::String(s) => s,
            other => other.to_string(),
        };
        match d.resource_type.as_str() {
            "agent" if net.agents.contains(&d.resource_id) => {
                let answer = self
                    .agents
                    .ask(&d.resource_id, d.prompt.clone(), None, &run_id)
                    .await
                    .map_err(|e| NetworkError::Failed(e.to_string()))?;
                Ok(text(answer["text"].clone()))
            }
            "workflow" if net.workflows.contains(&d.resource_id) => {
                let failed =
                    |e: crate::workflow::WorkflowError| NetworkError::Failed(e.to_string());
                let workflow = self.runs.workflows().get(&d.resource_id).map_err(failed)?;
                let run = self
                    .runs
                    .create(workflow, Some(run_id.clone()), None)
                    .await
                    .map_err(failed)?;
                self.runs
                    .start(workflow, run, d.input.clone(), Default::default())
                    .await
                    .map_err(failed)?;
                let state = self.runs.wait(&run_id).await.map_err(failed)?;
                match state.status {
                    Status::Success => Ok(text(state.result.unwrap_or(Value::Null))),
                    Status::Suspended => Err(NetworkError::Failed("Workflow suspended".into())),
                    other => Err(NetworkError::Failed(format!(
                        "workflow `{}` ended {}: {}",
                        d.resource_id,
                        other.as_str(),
                        state.error.unwrap_or_default()
                    ))),
                }
            }
            "tool" => {
                let tool = net
                    .tools
                    .iter()
                    .find(|t| t.key == d.resource_id)
                    .ok_or_else(|| {
                        NetworkError::Failed(format!("no tool `{}` in the network", d.resource_id))
                    })?;
                let ctx = ToolContext {
                    runtime_context: Default::default(),
                    run_id: Some(run_id),
                };
                let out = tool
                    .execute(d.input.clone(), &ctx)
                    .await
                    .map_err(|e| NetworkError::Failed(e.to_string()))?;
                Ok(text(out))
            }
            "none" => Ok(d.prompt.clone()),
            other => Err(NetworkError::Failed(format!(
                "the router chose {other} `{}`, which is not in the network",
                d.resource_id
            ))),
        }
    }

    /// Routes until the router says the task is complete (or `max_iterations` steps; one for
    /// a single routing step). With a conversation, the task and each primitive's answer are
    /// saved on its thread as they happen.
    pub async fn run_loop(
        &self,
        net: &Network,
        task: &str,
        conversation: Option<&Conversation>,
        max_iterations: usize,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<LoopOutcome, NetworkError> {
        let earlier = match conversation {
            Some(c) => {
                let earlier = self.recall(net, c, task).await?;
                self.remember(c, Role::User, task).await?;
                earlier
            }
            None => String::new(),
        };
        let mut done: Vec<Iteration> = Vec::new();
        for _ in 0..max_iterations.max(1) {
            let decision = self.route(net, task, &earlier, &done).await?;
            progress(Progress::Routed(decision.clone()));
            let result = self.execute(net, &decision).await?;
            if let Some(c) = conversation
                && decision.resource_type != "none"
            {
                self.remember(c, Role::Assistant, &result).await?;
            }
            let iteration = Iteration { decision, result };
            progress(Progress::Ran(iteration.clone()));
            let finished =
                iteration.decision.is_complete || iteration.decision.resource_type == "none";
            done.push(iteration);
            if finished {
                let last = done.last().cloned();
                let (result, reason) = last
                    .map(|i| (i.result, i.decision.reason))
                    .unwrap_or_default();
                return Ok(LoopOutcome {
                    iterations: done,
                    result,
                    is_complete: true,
                    completion_reason: reason,
                });
            }
        }
        let result = done.last().map(|i| i.result.clone()).unwrap_or_default();
        Ok(LoopOutcome {
            iterations: done,
            result,
            is_complete: false,
            completion_reason: format!("stopped after {max_iterations} routing steps"),
        })
    }
}

/// The thread of a call to `net` from a request's `threadId` and `resourceId`: the thread
/// asked for, else a new one named by the call (`run_id`); the resource asked for, else the
/// network. `None` for networks without memory.
pub fn conversation_of(
    net: &Network,
    body: &serde_json::Map<String, Value>,
    run_id: &str,
) -> Result<Option<Conversation>, NetworkError> {
    let text = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
        Some(_) => Err(NetworkError::Invalid(format!(
            "`{key}` must be a non-empty string"
        ))),
    };
    let (thread_id, resource_id) = (text("threadId")?, text("resourceId")?);
    if net.memory.is_none() {
        return Ok(None);
    }
    Ok(Some(Conversation {
        thread_id: thread_id.unwrap_or_else(|| run_id.to_string()),
        resource_id: resource_id.unwrap_or_else(|| net.key.clone()),
    }))
}

/// Checks a request's task (`message`, required).
pub fn task_of(body: &serde_json::Map<String, Value>) -> Result<String, NetworkError> {
    match body.get("message") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(NetworkError::Invalid(
            "Argument \"message\" is required".into(),
        )),
    }
}
