//! Mastra's v1 ("legacy") workflows: how their definitions, runs and results look on the wire
//! (spec §4.8). They run on the same durable engine as current workflows; only the shapes
//! differ: step results are `success | failed | suspended | waiting | skipped`, the run's input is
//! its trigger data, and the graph is a map of step lists.

use serde_json::{Map, Value, json};

use super::Workflow;
use super::definition::{Action, Step, walk};
use super::engine::{RunState, Status};
use crate::tools::schema::superjson;

/// The legacy workflow object (`GET /api/workflows/legacy/{id}`).
pub fn definition_json(w: &Workflow) -> Value {
    let mut steps = Map::new();
    walk(&w.steps, &mut |s| {
        if let Step::Leaf {
            id,
            description,
            input_schema,
            output_schema,
            action,
        } = s
        {
            let mut v = json!({"id": id, "description": description});
            if let Some(schema) = input_schema {
                v["inputSchema"] = json!(superjson(schema));
            }
            if let Some(schema) = output_schema {
                v["outputSchema"] = json!(superjson(schema));
            }
            if let Action::Workflow { workflow, .. } = action {
                v["workflowId"] = json!(workflow);
            }
            steps.insert(id.clone(), v);
        }
    });
    let graph = step_graph(&w.steps);
    let mut v = json!({
        "name": w.name,
        "steps": steps,
        "stepGraph": graph,
        "stepSubscriberGraph": {},
        "serializedStepGraph": graph,
        "serializedStepSubscriberGraph": {},
    });
    if let Some(schema) = &w.input_schema {
        v["triggerSchema"] = json!(superjson(schema));
    }
    if let Some(d) = &w.description {
        v["description"] = json!(d);
    }
    v
}

/// The graph nodes an entry of the step list starts with.
fn nodes(step: &Step, when: Option<&str>) -> Vec<Value> {
    match step {
        Step::Leaf {
            id, description, ..
        } => {
            let mut config = json!({"id": id, "data": {}});
            if let Some(w) = when {
                config["when"] = json!(w);
                config["serializedWhen"] = json!(w);
            }
            vec![json!({"step": {"id": id, "description": description}, "config": config})]
        }
        // A step with `when` is a branch of one arm.
        Step::Branch(arms) => arms
            .iter()
            .flat_map(|(cond, steps)| {
                steps
                    .first()
                    .map(|s| nodes(s, Some(cond.source())))
                    .unwrap_or_default()
            })
            .collect(),
        Step::Parallel(inner) => inner.iter().flat_map(|s| nodes(s, when)).collect(),
        Step::Loop { steps, .. } => steps.first().map(|s| nodes(s, when)).unwrap_or_default(),
        Step::Foreach { id, .. } => {
            vec![json!({"step": {"id": id, "description": ""}, "config": {"id": id, "data": {}}})]
        }
    }
}

/// `{initial: [first nodes], <step id>: [nodes that follow it]}`.
fn step_graph(steps: &[Step]) -> Value {
    let mut graph = Map::new();
    let entries: Vec<Vec<Value>> = steps.iter().map(|s| nodes(s, None)).collect();
    graph.insert(
        "initial".into(),
        Value::Array(entries.first().cloned().unwrap_or_default()),
    );
    for pair in entries.windows(2) {
        for node in &pair[0] {
            if let Some(id) = node["step"]["id"].as_str() {
                graph.insert(id.to_string(), Value::Array(pair[1].clone()));
            }
        }
    }
    Value::Object(graph)
}

/// Every leaf step id of a workflow, in order.
fn step_ids(w: &Workflow) -> Vec<String> {
    let mut ids = Vec::new();
    walk(&w.steps, &mut |s| {
        if let Step::Leaf { id, .. } = s {
            ids.push(id.clone());
        }
    });
    ids
}

/// Legacy step results: every step the run reached, and — once the run has ended — the steps
/// it passed over as `skipped`.
pub fn results(w: &Workflow, s: &RunState) -> Map<String, Value> {
    let mut out = Map::new();
    for id in step_ids(w) {
        let v = match s.steps.get(&id) {
            Some(r) => match r["status"].as_str().unwrap_or_default() {
                "success" => json!({"status": "success", "output": r["output"]}),
                "failed" => json!({"status": "failed", "error": r["error"]}),
                "suspended" => {
                    json!({"status": "suspended", "suspendPayload": r["suspendPayload"]})
                }
                "waiting" => json!({"status": "waiting"}),
                _ => continue,
            },
            None if matches!(s.status, Status::Success | Status::Failed) => {
                json!({"status": "skipped"})
            }
            None => continue,
        };
        out.insert(id, v);
    }
    out
}

/// LegacyWorkflowRunResult (`start-async`, `resume-async`).
pub fn run_result(w: &Workflow, s: &RunState) -> Value {
    json!({"runId": s.run_id, "timestamp": s.updated_ms, "results": results(w, s), "activePaths": {}})
}

/// A legacy path status, from a step result's status.
fn path_status(step_status: &str) -> &'static str {
    match step_status {
        "running" => "executing",
        "success" => "completed",
        "failed" => "failed",
        "suspended" => "suspended",
        "waiting" => "waiting",
        _ => "skipped",
    }
}

/// The active paths of a run: every step it reached (and `current`, a step in progress).
fn active_paths(s: &RunState, current: Option<(&str, &Value)>) -> Map<String, Value> {
    let mut paths = Map::new();
    let reached = s
        .steps
        .iter()
        .map(|(id, r)| (id.as_str(), r))
        .chain(current);
    for (id, r) in reached {
        let mut p = json!({"status": path_status(r["status"].as_str().unwrap_or_default()), "stepPath": [id]});
        if let Some(sp) = r.get("suspendPayload") {
            p["suspendPayload"] = sp.clone();
        }
        paths.insert(id.to_string(), p);
    }
    paths
}

/// One `watch` record.
pub fn watch_record(w: &Workflow, s: &RunState, current: Option<(&str, &Value)>) -> Value {
    json!({
        "activePaths": active_paths(s, current),
        "runId": s.run_id,
        "timestamp": super::engine::now_ms(),
        "results": results(w, s),
    })
}

/// The legacy snapshot of a stored run (`runs` route).
pub fn snapshot(w: &Workflow, s: &RunState) -> Value {
    let value: Map<String, Value> = s
        .steps
        .iter()
        .map(|(id, r)| (id.clone(), r["status"].clone()))
        .collect();
    let steps: Map<String, Value> = s
        .steps
        .iter()
        .map(|(id, r)| {
            let mut v = r.clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("payload");
            }
            (id.clone(), v)
        })
        .collect();
    let active: Vec<Value> = active_paths(s, None)
        .into_iter()
        .map(|(id, p)| json!({"stepPath": [id], "stepId": id, "status": p["status"]}))
        .collect();
    let suspended: Map<String, Value> = super::resume::suspensions(Some(w), s)
        .values()
        .filter_map(|e| e["path"][0].as_str().map(|id| (id.to_string(), json!([0]))))
        .collect();
    json!({
        "value": value,
        "context": {"steps": steps, "triggerData": s.input, "attempts": {}},
        "activePaths": active,
        "suspendedPaths": suspended,
        "runId": s.run_id,
        "timestamp": s.updated_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(yaml: &str) -> Workflow {
        let p = crate::config::load_str(
            &format!("legacy_workflows:\n  w:\n    steps:\n{yaml}"),
            "test",
        )
        .unwrap();
        super::super::Workflows::from_project(&p)
            .unwrap()
            .legacy_by_name("w")
            .unwrap()
            .clone()
    }

    #[test]
    fn graph_chains_steps_and_keeps_conditions() {
        let w = workflow(
            "      - { id: a, map: '1' }\n      - { id: b, map: '2', when: '.prev > 0' }\n      - { id: c, map: '3' }\n",
        );
        let v = definition_json(&w);
        assert_eq!(v["name"], "w");
        assert_eq!(v["stepGraph"]["initial"][0]["step"]["id"], "a");
        assert_eq!(v["stepGraph"]["a"][0]["step"]["id"], "b");
        assert_eq!(v["stepGraph"]["a"][0]["config"]["when"], ".prev > 0");
        assert_eq!(v["stepGraph"]["b"][0]["step"]["id"], "c");
        assert_eq!(v["steps"]["c"]["id"], "c");
        assert!(v.get("triggerSchema").is_none());
    }

    #[test]
    fn ended_runs_list_passed_over_steps_as_skipped() {
        let w =
            workflow("      - { id: a, map: '1' }\n      - { id: b, map: '2', when: 'false' }\n");
        let mut s = RunState::new(&w.key, "r".into(), json!({}), None);
        s.steps.insert(
            "a".into(),
            json!({"status": "success", "output": 1, "payload": {}}),
        );
        s.status = Status::Running;
        assert_eq!(
            results(&w, &s).len(),
            1,
            "a running run has not skipped b yet"
        );
        s.status = Status::Success;
        let r = results(&w, &s);
        assert_eq!(r["a"], json!({"status": "success", "output": 1}));
        assert_eq!(r["b"], json!({"status": "skipped"}));
        let snap = snapshot(&w, &s);
        assert_eq!(snap["value"]["a"], "success");
        assert_eq!(
            snap["activePaths"][0],
            json!({"stepPath": ["a"], "stepId": "a", "status": "completed"})
        );
    }
}
