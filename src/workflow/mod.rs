//! Workflows declared in the project file: their checked definitions ([`definition`]) and the
//! workflow objects clients list. Knows nothing of HTTP.

pub mod bench;
pub mod definition;
pub mod engine;
pub mod legacy;
pub mod resume;
pub mod runs;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::config::Project;
use crate::tools::schema::superjson;
use definition::Step;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("Workflow not found")]
    NotFound(String),
    #[error("Workflow run not found")]
    RunNotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Config(String),
}

/// One workflow, ready to run.
#[derive(Debug, Clone)]
pub struct Workflow {
    /// The key under `workflows:` (the id in every `/api/workflows/{workflowId}` path).
    pub key: String,
    pub name: String,
    pub description: Option<String>,
    pub input_schema: Option<Value>,
    pub output_schema: Option<Value>,
    pub steps: Vec<Step>,
}

impl Workflow {
    /// The workflow object (§3.3); nested workflows are looked up in `all`.
    pub fn to_wire(&self, all: &Workflows) -> Value {
        let (steps, all_steps) = definition::step_maps(&self.steps, &|k| all.steps_of(k));
        let any = json!({});
        let mut v = json!({
            "name": self.name,
            "steps": steps,
            "allSteps": all_steps,
            "stepGraph": all.graph(self),
            "inputSchema": superjson(self.input_schema.as_ref().unwrap_or(&any)),
            "outputSchema": superjson(self.output_schema.as_ref().unwrap_or(&any)),
        });
        if let Some(d) = &self.description {
            v["description"] = json!(d);
        }
        v
    }
}

/// All workflows of a project, in declaration order.
#[derive(Debug, Default)]
pub struct Workflows {
    workflows: IndexMap<String, Workflow>,
    /// `legacy_workflows:`, keyed `legacy:<name>` (their runs' `workflow`).
    legacy: IndexMap<String, Workflow>,
}

/// The key a legacy workflow's runs are stored under.
pub fn legacy_key(name: &str) -> String {
    format!("legacy:{name}")
}

fn build(
    key: String,
    name: &Option<String>,
    description: &Option<String>,
    schemas: (&Option<Value>, &Option<Value>),
    steps: &[Value],
) -> Result<Workflow, WorkflowError> {
    let steps = definition::parse(steps).map_err(|problems| {
        WorkflowError::Config(format!(
            "workflow `{key}`: {}",
            problems
                .iter()
                .map(|p| format!("{}: {}", p.pointer, p.message))
                .collect::<Vec<_>>()
                .join("; ")
        ))
    })?;
    Ok(Workflow {
        name: name.clone().unwrap_or_else(|| key.clone()),
        key,
        description: description.clone(),
        input_schema: schemas.0.clone(),
        output_schema: schemas.1.clone(),
        steps,
    })
}

impl Workflows {
    pub fn from_project(project: &Project) -> Result<Workflows, WorkflowError> {
        let mut workflows = IndexMap::new();
        for (key, cfg) in &project.workflows {
            let schemas = (&cfg.input_schema, &cfg.output_schema);
            let w = build(
                key.clone(),
                &cfg.name,
                &cfg.description,
                schemas,
                &cfg.steps,
            )?;
            workflows.insert(key.clone(), w);
        }
        let mut legacy = IndexMap::new();
        for (name, cfg) in &project.legacy_workflows {
            let schemas = (&cfg.trigger_schema, &None);
            let mut w = build(
                legacy_key(name),
                &cfg.name,
                &cfg.description,
                schemas,
                &cfg.steps,
            )?;
            if cfg.name.is_none() {
                w.name = name.clone();
            }
            legacy.insert(name.clone(), w);
        }
        Ok(Workflows { workflows, legacy })
    }

    /// Legacy workflows by name.
    pub fn legacy(&self) -> impl Iterator<Item = (&String, &Workflow)> {
        self.legacy.iter()
    }

    /// A legacy workflow by name, or 404 `Workflow with ID X not found`.
    pub fn legacy_by_name(&self, name: &str) -> Result<&Workflow, WorkflowError> {
        self.legacy
            .get(name)
            .ok_or_else(|| WorkflowError::NotFound(name.to_string()))
    }

    /// The workflow a run belongs to (either kind).
    pub fn of_run(&self, key: &str) -> Option<&Workflow> {
        match key.strip_prefix("legacy:") {
            Some(name) => self.legacy.get(name),
            None => self.workflows.get(key),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows.values()
    }

    /// The steps of a workflow, for nested workflow steps.
    pub fn steps_of(&self, key: &str) -> Option<&[Step]> {
        self.workflows.get(key).map(|w| w.steps.as_slice())
    }

    /// A workflow's serialized step graph (§3.4), nested workflows drawn inside.
    pub fn graph(&self, workflow: &Workflow) -> Vec<Value> {
        definition::graph(&workflow.steps, &|k| self.steps_of(k))
    }

    pub fn get(&self, key: &str) -> Result<&Workflow, WorkflowError> {
        self.workflows
            .get(key)
            .ok_or_else(|| WorkflowError::NotFound(key.to_string()))
    }
}

/// Leaf steps run the project's tools and agents.
pub struct ProjectServices {
    pub tools: crate::tools::ToolRegistry,
    pub agents: crate::agent::Agents,
}

#[async_trait::async_trait]
impl engine::StepServices for ProjectServices {
    async fn call_tool(&self, tool: &str, input: Value, run_id: &str) -> Result<Value, String> {
        let tool = self
            .tools
            .by_key(tool)
            .ok_or_else(|| format!("tool `{tool}` is not defined"))?;
        let ctx = crate::tools::ToolContext {
            runtime_context: Default::default(),
            run_id: Some(run_id.to_string()),
        };
        tool.execute(input, &ctx).await.map_err(|e| e.to_string())
    }

    async fn call_agent(
        &self,
        agent: &str,
        prompt: String,
        output_schema: Option<Value>,
        run_id: &str,
    ) -> Result<Value, String> {
        self.agents
            .ask(agent, prompt, output_schema, run_id)
            .await
            .map_err(|e| e.to_string())
    }
}
