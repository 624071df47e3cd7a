//! Suspension and resumption: which steps of a run are suspended, whether resume data fits
//! the step it names, and what a resumed step's result keeps from its suspension.

use serde_json::{Map, Value, json};

use super::definition::{Action, Step};
use super::engine::{RunState, Status, now_ms};
use super::{Workflow, WorkflowError};

/// The step ids along an execution key: `sub>0/l1/0:approve` → `["sub", "approve"]`.
pub fn step_path(key: &str) -> Vec<String> {
    key.split('>')
        .map(|part| part.rsplit(':').next().unwrap_or(part).to_string())
        .collect()
}

/// The suspended steps of a run: execution key → `{path, resumeSchema}`. Runs stored before
/// suspensions were listed have only `halted_at`; their schema is looked up in the definition.
pub fn suspensions(workflow: Option<&Workflow>, state: &RunState) -> Map<String, Value> {
    if state.status != Status::Suspended {
        return Map::new();
    }
    if !state.suspended.is_empty() {
        return state.suspended.clone();
    }
    let Some(key) = state.halted_at.clone() else {
        return Map::new();
    };
    let path = step_path(&key);
    let mut schema = Value::Null;
    if let (Some(workflow), Some(id)) = (workflow, path.last()) {
        super::definition::walk(&workflow.steps, &mut |s| {
            if let Step::Leaf {
                id: sid,
                action:
                    Action::Suspend {
                        resume_schema: Some(r),
                        ..
                    },
                ..
            } = s
                && sid == id
            {
                schema = r.clone();
            }
        });
    }
    let mut out = Map::new();
    out.insert(key, json!({"path": path, "resumeSchema": schema}));
    out
}

/// Finds the suspended step `wanted` names (its full path, or its own or its outermost id) and
/// checks the resume data against its schema; returns its execution key.
pub fn check_resume(
    workflow: &Workflow,
    state: &RunState,
    wanted: &[String],
    data: &Value,
) -> Result<String, WorkflowError> {
    let suspended = suspensions(Some(workflow), state);
    if suspended.is_empty() {
        return Err(WorkflowError::Invalid(
            "This workflow run was not suspended".into(),
        ));
    }
    let path_of = |v: &Value| -> Vec<String> {
        v["path"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let found = suspended.iter().find(|(_, v)| {
        let path = path_of(v);
        path == wanted
            || (wanted.len() == 1
                && (path.last() == wanted.first() || path.first() == wanted.first()))
    });
    let Some((key, entry)) = found else {
        let available: Vec<String> = suspended.values().map(|v| path_of(v).join(".")).collect();
        return Err(WorkflowError::Invalid(format!(
            "This workflow step \"{}\" was not suspended. Available suspended steps: [{}]",
            wanted.join("."),
            available.join(", ")
        )));
    };
    if !entry["resumeSchema"].is_null() {
        let compiled = crate::tools::schema::Schema::compile(entry["resumeSchema"].clone())
            .map_err(WorkflowError::Invalid)?;
        compiled.validate(data).map_err(|problems| {
            WorkflowError::Invalid(format!("Invalid resume data: {}", problems.join("; ")))
        })?;
    }
    Ok(key.clone())
}

/// The fields a resumed step's results carry, as Mastra's do: the suspension it was resumed
/// from (its first `startedAt`, `suspendPayload`, `suspendedAt`) next to `resumePayload` and
/// `resumedAt`. `earlier` is the step's recorded result, if it is that suspension; `None` when
/// the step was not resumed.
pub fn resumption(earlier: Option<&Value>, resume: Option<Value>) -> Option<Map<String, Value>> {
    let resume = resume?;
    let mut fields = Map::new();
    if let Some(suspended) = earlier.filter(|r| r["status"] == "suspended") {
        for name in ["startedAt", "suspendPayload", "suspendedAt"] {
            if let Some(v) = suspended.get(name) {
                fields.insert(name.into(), v.clone());
            }
        }
    }
    fields.insert("resumePayload".into(), resume);
    fields.insert("resumedAt".into(), json!(now_ms()));
    Some(fields)
}
