//! `workflows` group: workflow objects, runs (create, start, start-async, resume, cancel,
//! send-event, list, get, execution result) and the three run streams (`watch` double-encoded
//! watch events, `stream` v1 events, `streamVNext` chunks), all 0x1E-framed.

use std::convert::Infallible;
use std::sync::Arc;

use salvo::prelude::*;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

use super::ApiError;
use super::request::{json_object, query_date_ms, query_u64, runtime_context};
use super::state::AppState;
use crate::storage::{Order, Window};
use crate::workflow::engine::{RunState, Status};
use crate::workflow::runs::{RunEvent, result_json, snapshot_json};
use crate::workflow::{Workflow, Workflows};

fn workflow<'a>(state: &'a AppState, req: &Request) -> Result<&'a Workflow, ApiError> {
    let id = req.param::<String>("workflowId").unwrap_or_default();
    Ok(state.runs.workflows().get(&id)?)
}

pub(super) fn run_id_query(req: &Request) -> Option<String> {
    req.query::<String>("runId").filter(|s| !s.is_empty())
}

fn iso(ms: u64) -> String {
    crate::memory::engine::iso(ms)
}

/// A stored run as the runs endpoints answer it.
fn run_json(s: &RunState, workflows: &Workflows) -> Value {
    let mut v = json!({
        "workflowName": s.workflow,
        "runId": s.run_id,
        "snapshot": snapshot_json(s, workflows),
        "createdAt": iso(s.created_ms),
        "updatedAt": iso(s.updated_ms),
    });
    if let Some(r) = &s.resource_id {
        v["resourceId"] = json!(r);
    }
    v
}

/// All workflows, by key.
#[endpoint(tags("workflows"), operation_id = "getWorkflows")]
pub async fn list(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .runs
            .workflows()
            .iter()
            .map(|w| (w.key.clone(), w.to_wire(state.runs.workflows())))
            .collect(),
    )
}

/// One workflow.
#[endpoint(tags("workflows"), operation_id = "getWorkflowById", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    Ok(Json(workflow(state, req)?.to_wire(state.runs.workflows())))
}

/// Runs of a workflow, newest first (`fromDate`, `toDate`, `limit`, `offset`, `resourceId`).
#[endpoint(tags("workflows"), operation_id = "getWorkflowRuns", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn list_runs(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let w = workflow(state, req)?;
    let all = state.runs.workflows();
    runs_page(state, req, w, |r| run_json(r, all)).await
}

/// `{runs, total}`: a page of a workflow's runs, filtered by the query, newest first.
pub(super) async fn runs_page(
    state: &AppState,
    req: &Request,
    w: &Workflow,
    to_json: impl Fn(&RunState) -> Value,
) -> Result<Json<Value>, ApiError> {
    let from = query_date_ms(req, "fromDate")?;
    let to = query_date_ms(req, "toDate")?;
    let resource = req.query::<String>("resourceId").filter(|s| !s.is_empty());
    let offset = query_u64(req, "offset")?.unwrap_or(0) as usize;
    let limit = query_u64(req, "limit")?
        .map(|l| l as usize)
        .unwrap_or(usize::MAX);
    let window = Window::new(Order::Newest, offset, limit).between(from, to);
    let page = state.runs.page(&w.key, window, resource).await?;
    let runs: Vec<Value> = page.items.iter().map(to_json).collect();
    Ok(Json(json!({"runs": runs, "total": page.total})))
}

/// One run.
#[endpoint(tags("workflows"), operation_id = "getWorkflowRunById", parameters(("workflowId" = String, Path, description = "The workflow id"), ("runId" = String, Path, description = "The run id")))]
pub async fn get_run(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let w = workflow(state, req)?;
    let id = req.param::<String>("runId").unwrap_or_default();
    let s = state.runs.get(w, &id).await?;
    Ok(Json(run_json(&s, state.runs.workflows())))
}

/// A run's status, result and step results.
#[endpoint(tags("workflows"), operation_id = "getWorkflowRunExecutionResult", parameters(("workflowId" = String, Path, description = "The workflow id"), ("runId" = String, Path, description = "The run id")))]
pub async fn execution_result(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let key = req.param::<String>("workflowId").unwrap_or_default();
    let w = state
        .runs
        .workflows()
        .get(&key)
        .map_err(|_| ApiError::not_found(format!("Workflow with ID {key} not found")))?;
    let id = req.param::<String>("runId").unwrap_or_default();
    let s = state
        .runs
        .get(w, &id)
        .await
        .map_err(|_| ApiError::not_found("Workflow run execution result not found"))?;
    let mut v = result_json(&s);
    v["payload"] = s.input.clone();
    Ok(Json(v))
}

/// Creates a pending run (`?runId=` to choose its id).
#[endpoint(tags("workflows"), operation_id = "createWorkflowRun", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn create_run(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let w = workflow(state, req)?;
    let s = state
        .runs
        .create(w, run_id_query(req), req.query::<String>("resourceId"))
        .await?;
    Ok(Json(json!({"runId": s.run_id})))
}

/// `{inputData, runtimeContext}` of a start body.
async fn start_body(
    req: &mut Request,
    depot: &Depot,
) -> Result<(Value, Map<String, Value>), ApiError> {
    let mut body = json_object(req, depot).await?;
    let input = body.remove("inputData").unwrap_or_else(|| json!({}));
    Ok((input, runtime_context(depot)))
}

/// Starts an existing run in the background.
#[endpoint(tags("workflows"), operation_id = "startWorkflowRun", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn start(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let id =
        run_id_query(req).ok_or_else(|| ApiError::bad_request("runId required to start run"))?;
    let run = state.runs.get(w, &id).await?;
    let (input, rc) = start_body(req, depot).await?;
    state.runs.start(w, run, input, rc).await?;
    Ok(Json(json!({"message": "Workflow run started"})))
}

/// Starts a run (created if needed) and answers its result once it halts.
#[endpoint(tags("workflows"), operation_id = "startAsyncWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn start_async(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let run = state.runs.create(w, run_id_query(req), None).await?;
    let (input, rc) = start_body(req, depot).await?;
    let id = run.run_id.clone();
    state.runs.start(w, run, input, rc).await?;
    Ok(Json(result_json(&state.runs.wait(&id).await?)))
}

/// `{step, resumeData}` of a resume body, with the run id.
async fn resume_request(
    req: &mut Request,
    depot: &Depot,
) -> Result<(String, Value, Value), ApiError> {
    let id = run_id_query(req)
        .ok_or_else(|| ApiError::bad_request("runId required to resume workflow"))?;
    let mut body = json_object(req, depot).await?;
    let step = body
        .remove("step")
        .filter(|s| s.is_string() || s.is_array())
        .ok_or_else(|| ApiError::bad_request("step required to resume workflow"))?;
    Ok((
        id,
        step,
        body.remove("resumeData").unwrap_or_else(|| json!({})),
    ))
}

/// Resumes a suspended run in the background.
#[endpoint(tags("workflows"), operation_id = "resumeWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn resume(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let (id, step, data) = resume_request(req, depot).await?;
    state.runs.resume(w, &id, &step, data).await?;
    Ok(Json(json!({"message": "Workflow run resumed"})))
}

/// Resumes a suspended run and answers its result once it halts again.
#[endpoint(tags("workflows"), operation_id = "resumeAsyncWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn resume_async(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let (id, step, data) = resume_request(req, depot).await?;
    state.runs.resume(w, &id, &step, data).await?;
    Ok(Json(result_json(&state.runs.wait(&id).await?)))
}

/// Cancels a run.
#[endpoint(tags("workflows"), operation_id = "cancelWorkflowRun", parameters(("workflowId" = String, Path, description = "The workflow id"), ("runId" = String, Path, description = "The run id")))]
pub async fn cancel(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let id = req.param::<String>("runId").unwrap_or_default();
    state.runs.cancel(w, &id).await?;
    Ok(Json(json!({"message": "Workflow run cancelled"})))
}

/// Delivers `{event, data}` to a run.
#[endpoint(tags("workflows"), operation_id = "sendWorkflowRunEvent", parameters(("workflowId" = String, Path, description = "The workflow id"), ("runId" = String, Path, description = "The run id")))]
pub async fn send_event(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let id = req.param::<String>("runId").unwrap_or_default();
    let body = json_object(req, depot).await?;
    let event = body
        .get("event")
        .and_then(Value::as_str)
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::required("event"))?
        .to_string();
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    state.runs.send_event(w, &id, &event, data).await?;
    Ok(Json(json!({"message": "Workflow run event sent"})))
}

/// How a run's events are written.
#[derive(Clone)]
pub(super) enum Framing {
    Watch,
    V1,
    VNext,
    /// Legacy watch records (not double-encoded), which need the definition for their results.
    Legacy(Arc<Workflow>),
}

fn step_records(
    framing: &Framing,
    run_id: &str,
    id: &str,
    result: &Value,
    state: &RunState,
    call: &str,
) -> Vec<Value> {
    let status = result["status"].as_str().unwrap_or_default();
    match framing {
        Framing::Watch => {
            // As Mastra's: the current step is its whole result, also listed among the steps
            // while it runs (top-level steps; nested ones are named by their path).
            let mut steps = result_json(state)["steps"].clone();
            if !id.contains('.') {
                steps[id] = result.clone();
            }
            let current = with_fields(json!({"id": id}), result);
            vec![json!({
                "type": "watch",
                "payload": {
                    "currentStep": current,
                    "workflowState": {"status": "running", "steps": steps, "result": null, "error": null},
                },
                "eventTimestamp": crate::workflow::engine::now_ms(),
                "runId": run_id,
            })]
        }
        Framing::V1 => match status {
            // The running result whole: a resumed step's start carries its suspension and
            // `resumePayload`, which Mastra's playground shows as the step's resume data.
            "running" => vec![
                json!({"type": "step-start", "payload": with_fields(json!({"id": id, "stepCallId": call}), result)}),
            ],
            "suspended" => vec![
                json!({"type": "step-suspended", "payload": {"id": id, "stepCallId": call, "status": "suspended", "suspendPayload": result["suspendPayload"], "suspendedAt": result["suspendedAt"]}}),
            ],
            "waiting" => vec![
                json!({"type": "step-waiting", "payload": {"id": id, "stepCallId": call, "status": "waiting", "payload": result["payload"], "startedAt": result["startedAt"]}}),
            ],
            _ => vec![
                json!({"type": "step-result", "payload": with_fields(json!({"id": id, "stepCallId": call, "status": status}), &picked(result, &["output", "error", "endedAt"]))}),
                json!({"type": "step-finish", "payload": {"id": id, "stepCallId": call, "metadata": {}}}),
            ],
        },
        Framing::Legacy(w) => vec![crate::workflow::legacy::watch_record(
            w,
            state,
            Some((id, result)),
        )],
        Framing::VNext => {
            let rec = |kind: &str, payload: Value| json!({"type": kind, "runId": run_id, "from": "WORKFLOW", "payload": payload});
            match status {
                "running" => vec![rec(
                    "step-start",
                    json!({"stepName": id, "args": result["payload"], "stepCallId": call, "status": "running", "startedAt": result["startedAt"]}),
                )],
                "suspended" => vec![rec(
                    "step-suspended",
                    json!({"stepName": id, "stepCallId": call, "suspendPayload": result["suspendPayload"]}),
                )],
                "waiting" => vec![rec(
                    "step-waiting",
                    json!({"stepName": id, "stepCallId": call}),
                )],
                _ => vec![
                    rec(
                        "step-result",
                        json!({"stepName": id, "result": result.get("output"), "error": result.get("error"), "stepCallId": call, "status": status, "endedAt": result.get("endedAt")}),
                    ),
                    rec(
                        "step-finish",
                        json!({"stepName": id, "stepCallId": call, "metadata": {}}),
                    ),
                ],
            }
        }
    }
}

/// `base` with every field of the object `more` added.
fn with_fields(mut base: Value, more: &Value) -> Value {
    if let (Some(b), Some(m)) = (base.as_object_mut(), more.as_object()) {
        b.extend(m.clone());
    }
    base
}

/// The fields of `result` named in `names` that it has.
fn picked(result: &Value, names: &[&str]) -> Value {
    let fields = names
        .iter()
        .filter_map(|n| result.get(*n).map(|v| (n.to_string(), v.clone())))
        .collect();
    Value::Object(fields)
}

fn halted_records(framing: &Framing, s: &RunState) -> Vec<Value> {
    match framing {
        Framing::Watch => {
            let r = result_json(s);
            vec![json!({
                "type": "watch",
                "payload": {"workflowState": {"status": s.status.as_str(), "steps": r["steps"], "result": s.result, "error": s.error}},
                "eventTimestamp": crate::workflow::engine::now_ms(),
                "runId": s.run_id,
            })]
        }
        Framing::V1 => vec![json!({"type": "finish", "payload": {"runId": s.run_id}})],
        Framing::Legacy(w) => vec![crate::workflow::legacy::watch_record(w, s, None)],
        Framing::VNext => vec![
            json!({"type": "finish", "runId": s.run_id, "from": "WORKFLOW", "payload": {"totalUsage": {"promptTokens": 0, "completionTokens": 0, "totalTokens": 0}}}),
        ],
    }
}

fn frame(framing: &Framing, v: &Value) -> String {
    match framing {
        // The faithful double encoding of `watch` (§2.3): each record is a JSON string.
        Framing::Watch => format!("{}\u{1e}", Value::String(v.to_string())),
        _ => format!("{v}\u{1e}"),
    }
}

/// Streams a run's events until it ends; `stream` and `streamVNext` stay open while suspended.
fn follow(
    res: &mut Response,
    feed: broadcast::Receiver<RunEvent>,
    run_id: String,
    framing: Framing,
    first: Vec<Value>,
) {
    res.headers_mut().insert(
        salvo::http::header::CONTENT_TYPE,
        salvo::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let head_framing = framing.clone();
    let head = futures_util::stream::iter(
        first
            .into_iter()
            .map(move |v| Ok::<_, Infallible>(frame(&head_framing, &v))),
    );
    let calls: std::collections::HashMap<String, String> = Default::default();
    let rest = futures_util::stream::unfold(
        (feed, calls, false, run_id),
        move |(mut feed, mut calls, done, run_id)| {
            let framing = framing.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    match feed.recv().await {
                        Ok(RunEvent::Step { id, result, state }) => {
                            let status = result["status"].as_str().unwrap_or_default().to_string();
                            let call = calls
                                .entry(id.clone())
                                .or_insert_with(|| uuid::Uuid::new_v4().to_string())
                                .clone();
                            if status != "running" {
                                calls.remove(&id);
                            }
                            let text: String =
                                step_records(&framing, &run_id, &id, &result, &state, &call)
                                    .iter()
                                    .map(|v| frame(&framing, v))
                                    .collect();
                            return Some((Ok::<_, Infallible>(text), (feed, calls, false, run_id)));
                        }
                        Ok(RunEvent::Halted(s)) => {
                            let keep_open = matches!(framing, Framing::V1 | Framing::VNext)
                                && s.status == Status::Suspended;
                            if keep_open {
                                continue; // a resume continues this stream
                            }
                            let text: String = halted_records(&framing, &s)
                                .iter()
                                .map(|v| frame(&framing, v))
                                .collect();
                            return Some((Ok(text), (feed, calls, true, run_id)));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        },
    );
    res.stream(futures_util::StreamExt::chain(head, rest));
}

/// Double-encoded watch events of a run until it stops running.
#[endpoint(tags("workflows"), operation_id = "watchWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn watch(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let id = run_id_query(req)
        .ok_or_else(|| ApiError::bad_request("runId required to watch workflow"))?;
    let feed = state.runs.subscribe(&id);
    let run = state.runs.get(w, &id).await?;
    watch_run(res, feed, &run, Framing::Watch);
    Ok(())
}

/// Follows a run's events; a run that is not going anywhere gets its current state at once.
pub(super) fn watch_run(
    res: &mut Response,
    feed: broadcast::Receiver<RunEvent>,
    run: &RunState,
    framing: Framing,
) {
    if matches!(
        run.status,
        Status::Success | Status::Failed | Status::Canceled | Status::Suspended
    ) {
        res.headers_mut().insert(
            salvo::http::header::CONTENT_TYPE,
            salvo::http::HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        let text: String = halted_records(&framing, run)
            .iter()
            .map(|v| frame(&framing, v))
            .collect();
        res.body(text);
        return;
    }
    follow(res, feed, run.run_id.clone(), framing, Vec::new());
}

async fn start_streaming(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    framing: Framing,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let w = workflow(&state, req)?;
    let run = state.runs.create(w, run_id_query(req), None).await?;
    let (input, rc) = start_body(req, depot).await?;
    let id = run.run_id.clone();
    let feed = state.runs.subscribe(&id);
    state.runs.start(w, run, input, rc).await?;
    let first = match framing {
        Framing::VNext => {
            vec![json!({"type": "start", "runId": id, "from": "WORKFLOW", "payload": {}})]
        }
        _ => vec![json!({"type": "start", "payload": {"runId": id}})],
    };
    follow(res, feed, id, framing, first);
    Ok(())
}

/// Starts a run and streams v1 events (§3.10).
#[endpoint(tags("workflows"), operation_id = "streamWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn stream(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    start_streaming(req, depot, res, Framing::V1).await
}

/// Starts a run and streams vNext chunks (§3.11).
#[endpoint(tags("workflows"), operation_id = "streamVNextWorkflow", parameters(("workflowId" = String, Path, description = "The workflow id")))]
pub async fn stream_vnext(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    start_streaming(req, depot, res, Framing::VNext).await
}
