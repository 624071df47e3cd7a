//! Agent networks declared under `networks:` (spec §4.3): a routing model that, step by step,
//! hands a task to one of the network's agents, workflows or tools and decides when the task is
//! done. Each decision is constrained to a JSON Schema listing exactly the network's primitives,
//! so even a small local model can only pick one that exists. Knows nothing of HTTP.

use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::agent::Agents;
use crate::config::Project;
use crate::inference::{ChatMessage, GenerateRequest, Generator, Models};
use crate::tools::schema::Schema;
use crate::tools::{Tool, ToolContext, ToolRegistry};
use crate::workflow::engine::{Status, StepServices};
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
}

impl Networks {
    pub fn from_project(
        project: &Project,
        models: &Models,
        tools: &ToolRegistry,
        agents: Agents,
        runs: Arc<Runs>,
    ) -> Result<Networks, NetworkError> {
        let mut networks = IndexMap::new();
        for (key, cfg) in &project.networks {
            let model = models.generator(&cfg.model).ok_or_else(|| {
                NetworkError::Config(format!(
                    "network `{key}`: model `{}` is not available",
                    cfg.model
                ))
            })?;
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
                        .filter_map(|t| tools.by_key(t).cloned())
                        .collect(),
                }),
            );
        }
        Ok(Networks {
            networks,
            agents,
            runs,
        })
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

    /// The primitives a router may choose: (type, id, description).
    fn primitives(&self, net: &Network) -> Vec<(&'static str, String, String)> {
        let mut out = Vec::new();
        for a in &net.agents {
            if let Ok(agent) = self.agents.get(a) {
                let about: String = agent.instructions().chars().take(200).collect();
                out.push(("agent", a.clone(), format!("{}: {about}", agent.name)));
            }
        }
        for w in &net.workflows {
            if let Ok(workflow) = self.runs.workflows().get(w) {
                let input = workflow
                    .input_schema
                    .as_ref()
                    .map(|s| format!(" Input: {s}"))
                    .unwrap_or_default();
                let about = workflow.description.clone().unwrap_or_default();
                out.push(("workflow", w.clone(), format!("{about}{input}")));
            }
        }
        for t in &net.tools {
            let input = t.input_schema.raw();
            out.push((
                "tool",
                t.key.clone(),
                format!("{} Input: {input}", t.description),
            ));
        }
        out
    }

    /// Asks the routing model for the next step of `task`, given what has been done.
    pub async fn route(
        &self,
        net: &Network,
        task: &str,
        done: &[Iteration],
    ) -> Result<Decision, NetworkError> {
        let primitives = self.primitives(net);
        let mut types: Vec<&str> = primitives.iter().map(|(t, _, _)| *t).collect();
        types.dedup();
        types.push("none");
        let mut ids: Vec<String> = primitives.iter().map(|(_, id, _)| id.clone()).collect();
        ids.push(String::new());
        let schema = json!({
            "type": "object",
            "properties": {
                "resourceType": {"type": "string", "enum": types},
                "resourceId": {"type": "string", "enum": ids},
                "prompt": {"type": "string"},
                "input": {"type": "object"},
                "isComplete": {"type": "boolean"},
                "reason": {"type": "string"},
            },
            "required": ["resourceType", "resourceId", "prompt", "input", "isComplete", "reason"],
        });
        let listing: String = primitives
            .iter()
            .map(|(t, id, about)| format!("- {t} `{id}`: {about}\n"))
            .collect();
        let system = format!(
            "{}\n\nYou route a task to the one primitive best suited for its next step:\n{listing}\
             Answer with JSON: resourceType and resourceId name the primitive; prompt is what an \
             agent is asked; input is a workflow's or tool's input. When the results so far \
             complete the task, answer resourceType \"none\", resourceId \"\" and isComplete true, \
             with the final answer in prompt.",
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
        let user = if history.is_empty() {
            format!("Task: {task}")
        } else {
            format!("Task: {task}\nDone so far:\n{history}")
        };
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
        Ok(Decision {
            resource_type: text("resourceType"),
            resource_id: text("resourceId"),
            prompt: text("prompt"),
            input: decided["input"].clone(),
            is_complete: decided["isComplete"].as_bool().unwrap_or(false),
            reason: text("reason"),
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
                let services = crate::workflow::ProjectServices {
                    tools: Default::default(),
                    agents: self.agents.clone(),
                };
                let answer = services
                    .call_agent(&d.resource_id, d.prompt.clone(), None, &run_id)
                    .await
                    .map_err(NetworkError::Failed)?;
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

    /// One routing step and its primitive.
    pub async fn step(
        &self,
        net: &Network,
        task: &str,
        done: &[Iteration],
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<Iteration, NetworkError> {
        let decision = self.route(net, task, done).await?;
        progress(Progress::Routed(decision.clone()));
        let result = self.execute(net, &decision).await?;
        let iteration = Iteration { decision, result };
        progress(Progress::Ran(iteration.clone()));
        Ok(iteration)
    }

    /// Routes until the router says the task is complete (or `max_iterations` steps).
    pub async fn run_loop(
        &self,
        net: &Network,
        task: &str,
        max_iterations: usize,
        progress: &(dyn Fn(Progress) + Send + Sync),
    ) -> Result<LoopOutcome, NetworkError> {
        let mut done: Vec<Iteration> = Vec::new();
        for _ in 0..max_iterations.max(1) {
            let iteration = self.step(net, task, &done, progress).await?;
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

/// Checks a request's task (`message`, required).
pub fn task_of(body: &serde_json::Map<String, Value>) -> Result<String, NetworkError> {
    match body.get("message") {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        _ => Err(NetworkError::Invalid(
            "Argument \"message\" is required".into(),
        )),
    }
}
