//! `vNextNetworks` and `networks` groups (spec §4.3): the project's networks, one routing step
//! (`generate`, `stream`) or a routing loop (`loop`, `loop-stream`), streamed as workflow v1
//! events (§3.10); the legacy group lists the same networks and calls them as the legacy
//! AgentNetwork did, answering like an agent (see `network::legacy`).

use std::convert::Infallible;
use std::sync::Arc;

use salvo::prelude::*;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use super::ApiError;
use super::agents::{RunningCall, data_stream_framer, generate_json, stream_call};
use super::request::json_object;
use super::state::AppState;
use crate::network::legacy::task_of_messages;
use crate::network::{
    Conversation, DEFAULT_MAX_ITERATIONS, Iteration, Network, Networks, Progress, conversation_of,
    task_of,
};

fn network_json(net: &Network, networks: &Networks) -> Value {
    let agents: Vec<Value> = net
        .agents
        .iter()
        .filter_map(|a| networks.agents().get(a).ok())
        .map(|a| json!({"name": a.name, "provider": a.model.provider(), "modelId": a.model.model_id()}))
        .collect();
    let workflows: Vec<Value> = net
        .workflows
        .iter()
        .filter_map(|w| networks.runs().workflows().get(w).ok())
        .map(|w| {
            let any = json!({});
            json!({
                "name": w.key,
                "description": w.description.clone().unwrap_or_default(),
                "inputSchema": crate::tools::schema::superjson(w.input_schema.as_ref().unwrap_or(&any)),
                "outputSchema": crate::tools::schema::superjson(w.output_schema.as_ref().unwrap_or(&any)),
            })
        })
        .collect();
    let tools: Vec<Value> = net
        .tools
        .iter()
        .map(|t| json!({"id": t.id, "description": t.description}))
        .collect();
    json!({
        "id": net.key,
        "name": net.name,
        "instructions": net.instructions,
        "tools": tools,
        "agents": agents,
        "workflows": workflows,
        "routingModel": {"provider": net.model.provider(), "modelId": net.model.model_id()},
    })
}

fn network<'a>(
    state: &'a AppState,
    req: &Request,
) -> Result<&'a std::sync::Arc<Network>, ApiError> {
    let id = req.param::<String>("networkId").unwrap_or_default();
    Ok(state.networks.get(&id)?)
}

/// Every network.
#[endpoint(tags("vNextNetworks"), operation_id = "getVNextNetworks")]
pub async fn list(depot: &mut Depot) -> Json<Vec<Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .networks
            .iter()
            .map(|n| network_json(n, &state.networks))
            .collect(),
    )
}

/// One network.
#[endpoint(tags("vNextNetworks"), operation_id = "getVNextNetworkById", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    Ok(Json(network_json(network(state, req)?, &state.networks)))
}

/// What a routing request asks: the network, the task, its conversation (for networks with
/// memory: `threadId`, `resourceId`), and the rest of the body.
struct Routing {
    net: Arc<Network>,
    task: String,
    conversation: Option<Conversation>,
    run_id: String,
    body: Map<String, Value>,
}

async fn routing_request(req: &mut Request, depot: &Depot) -> Result<Routing, ApiError> {
    let state = AppState::get(depot);
    let net = network(state, req)?.clone();
    let body = json_object(req, depot).await?;
    let task = task_of(&body)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let conversation = conversation_of(&net, &body, &run_id)?;
    Ok(Routing {
        net,
        task,
        conversation,
        run_id,
        body,
    })
}

fn ignore(_: Progress) {}

/// One routing step: `{task, result, resourceId, resourceType}`.
#[endpoint(tags("vNextNetworks"), operation_id = "generateVNextNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn generate(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = routing_request(req, depot).await?;
    let state = AppState::get(depot);
    let outcome = state
        .networks
        .run_loop(&r.net, &r.task, r.conversation.as_ref(), 1, &ignore)
        .await?;
    let Some(it) = outcome.iterations.first() else {
        return Err(ApiError::internal("the routing step did not run"));
    };
    Ok(Json(json!({
        "task": r.task,
        "result": it.result,
        "resourceId": it.decision.resource_id,
        "resourceType": it.decision.resource_type,
    })))
}

fn max_iterations(body: &Map<String, Value>) -> Result<usize, ApiError> {
    match body.get("maxIterations") {
        None | Some(Value::Null) => Ok(DEFAULT_MAX_ITERATIONS),
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .map(|n| n as usize)
            .ok_or_else(|| ApiError::bad_request("maxIterations must be a positive integer")),
    }
}

/// Routes until the task is complete; answers the loop's WorkflowResult.
#[endpoint(tags("vNextNetworks"), operation_id = "loopVNextNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn run_loop(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = routing_request(req, depot).await?;
    let (task, limit) = (r.task.clone(), max_iterations(&r.body)?);
    let state = AppState::get(depot);
    let outcome = state
        .networks
        .run_loop(&r.net, &task, r.conversation.as_ref(), limit, &ignore)
        .await?;
    let last = outcome.iterations.last().map(|i| i.decision.clone());
    let result = json!({
        "task": task,
        "resourceId": last.as_ref().map(|d| d.resource_id.clone()).unwrap_or_default(),
        "resourceType": last.as_ref().map(|d| d.resource_type.clone()).unwrap_or_default(),
        "prompt": last.as_ref().map(|d| d.prompt.clone()).unwrap_or_default(),
        "result": outcome.result,
        "iteration": outcome.iterations.len(),
        "isOneOff": false,
        "isComplete": outcome.is_complete,
        "completionReason": outcome.completion_reason,
    });
    let iterations: Vec<Value> = outcome.iterations.iter().map(iteration_json).collect();
    Ok(Json(json!({
        "status": "success",
        "result": result,
        "steps": {
            "input": {"task": task},
            "Agent-Network-Outer-Workflow": {"status": "success", "output": {"iterations": iterations}},
            "final-step": {"status": "success", "output": result},
        },
    })))
}

fn iteration_json(i: &Iteration) -> Value {
    json!({
        "resourceType": i.decision.resource_type,
        "resourceId": i.decision.resource_id,
        "prompt": i.decision.prompt,
        "input": i.decision.input,
        "isComplete": i.decision.is_complete,
        "reason": i.decision.reason,
        "result": i.result,
    })
}

/// The step id of a primitive in the event stream.
fn primitive_step(resource_type: &str) -> &'static str {
    match resource_type {
        "agent" => "agent-step",
        "workflow" => "workflow-step",
        "tool" => "toolStep",
        _ => "finish-step",
    }
}

/// v1 workflow events (§3.10) of routing progress.
fn progress_records(p: &Progress) -> Vec<Value> {
    let now = crate::workflow::engine::now_ms();
    match p {
        Progress::Routed(d) => {
            let decided = json!({"resourceType": d.resource_type, "resourceId": d.resource_id, "prompt": d.prompt, "input": d.input, "isComplete": d.is_complete, "reason": d.reason});
            let step = primitive_step(&d.resource_type);
            vec![
                json!({"type": "step-result", "payload": {"id": "routing-step", "status": "success", "output": decided, "endedAt": now}}),
                json!({"type": "step-finish", "payload": {"id": "routing-step", "metadata": {}}}),
                json!({"type": "step-start", "payload": {"id": step, "status": "running", "payload": decided, "startedAt": now}}),
            ]
        }
        Progress::Ran(i) => {
            let step = primitive_step(&i.decision.resource_type);
            vec![
                json!({"type": "step-result", "payload": {"id": step, "status": "success", "output": {"result": i.result}, "endedAt": now}}),
                json!({"type": "step-finish", "payload": {"id": step, "metadata": {}}}),
            ]
        }
    }
}

/// Streams routing as v1 workflow events: one step (`stream`) or a loop (`loop-stream`).
async fn stream_routing(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    looping: bool,
) -> Result<(), ApiError> {
    let Routing {
        net,
        task,
        conversation,
        run_id,
        body,
    } = routing_request(req, depot).await?;
    let limit = if looping { max_iterations(&body)? } else { 1 };
    let state = AppState::get(depot).clone();
    let (tx, rx) = mpsc::unbounded_channel::<Value>();
    let _ = tx.send(json!({"type": "start", "payload": {"runId": run_id}}));
    let started = json!({"type": "step-start", "payload": {"id": "routing-step", "status": "running", "startedAt": crate::workflow::engine::now_ms()}});
    let _ = tx.send(started);
    tokio::spawn(async move {
        let sender = tx.clone();
        let progress = move |p: Progress| {
            let routed_again = matches!(p, Progress::Ran(_));
            for record in progress_records(&p) {
                let _ = sender.send(record);
            }
            if routed_again {
                let _ = sender.send(json!({"type": "step-start", "payload": {"id": "routing-step", "status": "running", "startedAt": crate::workflow::engine::now_ms()}}));
            }
        };
        let outcome = state
            .networks
            .run_loop(&net, &task, conversation.as_ref(), limit, &progress)
            .await;
        let end = match outcome {
            Ok(o) => {
                json!({"type": "step-result", "payload": {"id": "final-step", "status": "success", "output": {"task": task, "result": o.result, "iteration": o.iterations.len(), "isComplete": o.is_complete, "completionReason": o.completion_reason}, "endedAt": crate::workflow::engine::now_ms()}})
            }
            Err(e) => {
                json!({"type": "step-result", "payload": {"id": "routing-step", "status": "failed", "error": e.to_string(), "endedAt": crate::workflow::engine::now_ms()}})
            }
        };
        let _ = tx.send(end);
        let _ = tx.send(json!({"type": "finish", "payload": {"runId": run_id}}));
    });
    res.headers_mut().insert(
        salvo::http::header::CONTENT_TYPE,
        salvo::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let records = futures_util::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, Infallible>(format!("{v}\u{1e}")), rx))
    });
    res.stream(records);
    Ok(())
}

/// One routing step, streamed.
#[endpoint(tags("vNextNetworks"), operation_id = "streamVNextNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn stream(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    stream_routing(req, depot, res, false).await
}

/// A routing loop, streamed.
#[endpoint(tags("vNextNetworks"), operation_id = "loopStreamVNextNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn loop_stream(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    stream_routing(req, depot, res, true).await
}

/// A legacy network id: the name with every character outside `[a-zA-Z0-9_-]` as `_`.
fn legacy_id(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn legacy_json(net: &Network, networks: &Networks) -> Value {
    let v = network_json(net, networks);
    json!({
        "id": legacy_id(&net.name),
        "name": net.name,
        "instructions": net.instructions,
        "agents": v["agents"],
        "routingModel": v["routingModel"],
    })
}

/// Every network, as legacy AgentNetworks.
#[endpoint(tags("networks"), operation_id = "getNetworks")]
pub async fn legacy_list(depot: &mut Depot) -> Json<Vec<Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .networks
            .iter()
            .map(|n| legacy_json(n, &state.networks))
            .collect(),
    )
}

/// The network a legacy route names by its legacy id.
fn legacy_network(state: &AppState, req: &Request) -> Result<Arc<Network>, ApiError> {
    let id = req.param::<String>("networkId").unwrap_or_default();
    state
        .networks
        .iter()
        .find(|n| legacy_id(&n.name) == id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Network not found"))
}

/// One network, as a legacy AgentNetwork (by its legacy id).
#[endpoint(tags("networks"), operation_id = "getNetworkById", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn legacy_get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let net = legacy_network(state, req)?;
    Ok(Json(legacy_json(&net, &state.networks)))
}

/// A legacy call: its network, its task (the last user message of `messages`, which takes
/// every form an agent call does) and its conversation.
async fn legacy_request(
    req: &mut Request,
    depot: &Depot,
) -> Result<(Arc<Network>, String, Option<Conversation>), ApiError> {
    let state = AppState::get(depot);
    let net = legacy_network(state, req)?;
    let body = json_object(req, depot).await?;
    let task = task_of_messages(&body)?;
    let run_id = uuid::Uuid::new_v4().to_string();
    let conversation = conversation_of(&net, &body, &run_id)?;
    Ok((net, task, conversation))
}

/// Routes the task as the legacy AgentNetwork did and answers like an agent's `generate`:
/// each primitive the router chose is a call of the tool `transmit`, the text is the answer.
#[endpoint(tags("networks"), operation_id = "generateNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn legacy_generate(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let (net, task, conversation) = legacy_request(req, depot).await?;
    let state = AppState::get(depot);
    let result = state
        .networks
        .converse(&net, &task, conversation.as_ref(), None)
        .await?;
    Ok(Json(generate_json(&result, false)))
}

/// As `generate`, streamed as the AI SDK data stream (§2.1).
#[endpoint(tags("networks"), operation_id = "streamNetwork", parameters(("networkId" = String, Path, description = "The network id")))]
pub async fn legacy_stream(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let (net, task, conversation) = legacy_request(req, depot).await?;
    let state = AppState::get(depot).clone();
    res.headers_mut().insert(
        "x-vercel-ai-data-stream",
        salvo::http::HeaderValue::from_static("v1"),
    );
    let call = RunningCall::spawn(move |tx| async move {
        Ok(state
            .networks
            .converse(&net, &task, conversation.as_ref(), Some(tx))
            .await?)
    });
    stream_call(
        res,
        call,
        Some("text/plain; charset=utf-8"),
        data_stream_framer(),
    )
    .await
}
