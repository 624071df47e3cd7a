//! The `legacyWorkflows` group (spec §4.8): Mastra's v1 workflow routes over the project's
//! `legacy_workflows`. Runs go through the same durable engine and storage as current workflows,
//! so unlike Mastra's in-memory legacy runs they survive a restart.

use std::sync::Arc;

use salvo::prelude::*;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::request::json_object;
use super::state::AppState;
use super::workflows::{Framing, run_id_query, runs_page, watch_run};
use crate::workflow::Workflow;
use crate::workflow::legacy;

fn legacy_workflow<'a>(state: &'a AppState, req: &Request) -> Result<&'a Workflow, ApiError> {
    let id = req.param::<String>("workflowId").unwrap_or_default();
    state
        .runs
        .workflows()
        .legacy_by_name(&id)
        .map_err(|_| ApiError::not_found(format!("Workflow with ID {id} not found")))
}

/// All legacy workflows, by name.
#[endpoint(tags("legacyWorkflows"), operation_id = "getLegacyWorkflows")]
pub async fn list(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .runs
            .workflows()
            .legacy()
            .map(|(name, w)| (name.clone(), legacy::definition_json(w)))
            .collect(),
    )
}

/// One legacy workflow.
#[endpoint(tags("legacyWorkflows"), operation_id = "getLegacyWorkflowById", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    Ok(Json(legacy::definition_json(legacy_workflow(state, req)?)))
}

/// Runs of a legacy workflow, newest first, with legacy snapshots.
#[endpoint(tags("legacyWorkflows"), operation_id = "getLegacyWorkflowRuns", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn list_runs(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let w = legacy_workflow(state, req)?;
    let name = req.param::<String>("workflowId").unwrap_or_default();
    runs_page(state, req, w, |r| {
        let mut v = json!({
            "workflowName": name,
            "runId": r.run_id,
            "snapshot": legacy::snapshot(w, r),
            "createdAt": crate::memory::engine::iso(r.created_ms),
            "updatedAt": crate::memory::engine::iso(r.updated_ms),
        });
        if let Some(id) = &r.resource_id {
            v["resourceId"] = json!(id);
        }
        v
    })
    .await
}

/// Creates a run (`?runId=` to choose its id).
#[endpoint(tags("legacyWorkflows"), operation_id = "createLegacyWorkflowRun", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn create_run(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let w = legacy_workflow(state, req)?;
    let run = state.runs.create(w, run_id_query(req), None).await?;
    Ok(Json(json!({"runId": run.run_id})))
}

/// The trigger data: the whole body (an object; empty means `{}`).
async fn trigger_data(req: &mut Request, depot: &Depot) -> Result<Value, ApiError> {
    Ok(Value::Object(json_object(req, depot).await?))
}

/// Starts a created run in the background.
#[endpoint(tags("legacyWorkflows"), operation_id = "startLegacyWorkflowRun", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn start(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = legacy_workflow(&state, req)?;
    let id =
        run_id_query(req).ok_or_else(|| ApiError::bad_request("runId required to start run"))?;
    let run = state.runs.get(w, &id).await?;
    let trigger = trigger_data(req, depot).await?;
    state.runs.start(w, run, trigger, Map::new()).await?;
    Ok(Json(json!({"message": "Workflow run started"})))
}

/// Starts a run (a new one without `runId`; with it, a created one) and answers its result.
#[endpoint(tags("legacyWorkflows"), operation_id = "startAsyncLegacyWorkflow", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn start_async(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = legacy_workflow(&state, req)?;
    let run = match run_id_query(req) {
        Some(id) => state.runs.get(w, &id).await?,
        None => state.runs.create(w, None, None).await?,
    };
    let trigger = trigger_data(req, depot).await?;
    let id = run.run_id.clone();
    state.runs.start(w, run, trigger, Map::new()).await?;
    Ok(Json(legacy::run_result(w, &state.runs.wait(&id).await?)))
}

/// `{stepId, context}` of a resume body, with the run id.
async fn resume_request(
    req: &mut Request,
    depot: &Depot,
) -> Result<(String, Value, Value), ApiError> {
    let id = run_id_query(req)
        .ok_or_else(|| ApiError::bad_request("runId required to resume workflow"))?;
    let mut body = json_object(req, depot).await?;
    let step = body
        .remove("stepId")
        .filter(|s| s.as_str().is_some_and(|s| !s.is_empty()))
        .ok_or_else(|| ApiError::bad_request("stepId required to resume workflow"))?;
    let context = body.remove("context").unwrap_or_else(|| json!({}));
    Ok((id, step, context))
}

/// Resumes a suspended step in the background.
#[endpoint(tags("legacyWorkflows"), operation_id = "resumeLegacyWorkflow", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn resume(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = legacy_workflow(&state, req)?;
    let (id, step, context) = resume_request(req, depot).await?;
    state.runs.resume(w, &id, &step, context).await?;
    Ok(Json(json!({"message": "Workflow run resumed"})))
}

/// Resumes a suspended step and answers the run's result once it halts again.
#[endpoint(tags("legacyWorkflows"), operation_id = "resumeAsyncLegacyWorkflow", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn resume_async(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = legacy_workflow(&state, req)?;
    let (id, step, context) = resume_request(req, depot).await?;
    state.runs.resume(w, &id, &step, context).await?;
    Ok(Json(legacy::run_result(w, &state.runs.wait(&id).await?)))
}

/// `\x1E` records of a run's paths and results until no step is executing.
#[endpoint(tags("legacyWorkflows"), operation_id = "watchLegacyWorkflow", parameters(("workflowId" = String, Path, description = "The legacy workflow id")))]
pub async fn watch(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let w = legacy_workflow(&state, req)?;
    let id = run_id_query(req)
        .ok_or_else(|| ApiError::bad_request("runId required to watch workflow"))?;
    let feed = state.runs.subscribe(&id);
    let run = state.runs.get(w, &id).await?;
    watch_run(res, feed, &run, Framing::Legacy(Arc::new(w.clone())));
    Ok(())
}
