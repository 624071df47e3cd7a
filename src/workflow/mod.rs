//! Workflows declared in the project file: their checked definitions ([`definition`]) and the
//! workflow objects clients list. Knows nothing of HTTP.

pub mod definition;

use indexmap::IndexMap;
use serde_json::{Value, json};

use crate::config::Project;
use crate::tools::schema::superjson;
use definition::Step;

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("Workflow with ID {0} not found")]
    NotFound(String),
    #[error("{0}")]
    Config(String),
}

/// One workflow, ready to run.
#[derive(Debug)]
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
    /// The workflow object (§3.3).
    pub fn to_wire(&self) -> Value {
        let (steps, all_steps) = definition::step_maps(&self.steps);
        let any = json!({});
        let mut v = json!({
            "name": self.name,
            "steps": steps,
            "allSteps": all_steps,
            "stepGraph": definition::graph(&self.steps),
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
}

impl Workflows {
    pub fn from_project(project: &Project) -> Result<Workflows, WorkflowError> {
        let mut workflows = IndexMap::new();
        for (key, cfg) in &project.workflows {
            let steps = definition::parse(&cfg.steps).map_err(|problems| {
                WorkflowError::Config(format!(
                    "workflow `{key}`: {}",
                    problems
                        .iter()
                        .map(|p| format!("{}: {}", p.pointer, p.message))
                        .collect::<Vec<_>>()
                        .join("; ")
                ))
            })?;
            workflows.insert(
                key.clone(),
                Workflow {
                    key: key.clone(),
                    name: cfg.name.clone().unwrap_or_else(|| key.clone()),
                    description: cfg.description.clone(),
                    input_schema: cfg.input_schema.clone(),
                    output_schema: cfg.output_schema.clone(),
                    steps,
                },
            );
        }
        Ok(Workflows { workflows })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Workflow> {
        self.workflows.values()
    }

    pub fn get(&self, key: &str) -> Result<&Workflow, WorkflowError> {
        self.workflows
            .get(key)
            .ok_or_else(|| WorkflowError::NotFound(key.to_string()))
    }
}
