//! A2A routes: the agent card (both paths) and the JSON-RPC endpoint, with 0x1E-streamed
//! answers for the streaming methods. The JSON-RPC answer echoes the request's `id` (Mastra
//! 0.13 answers a fresh one).

use std::convert::Infallible;

use salvo::prelude::*;
use serde_json::{Value, json};

use super::ApiError;
use super::request::json_object;
use super::state::AppState;
use crate::agent::a2a::{self, RpcError};

fn agent_id(req: &Request) -> String {
    req.param::<String>("agentId").unwrap_or_default()
}

/// The agent card.
#[endpoint(tags("agents"), operation_id = "getAgentCard", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn card(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    Ok(Json(a2a::card(state.agents.get(&agent_id(req))?)))
}

fn rpc_answer(id: &Value, outcome: Result<Value, RpcError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => {
            json!({"jsonrpc": "2.0", "id": id, "error": {"code": e.code, "message": e.message}})
        }
    }
}

/// A2A JSON-RPC: `tasks/send|sendSubscribe|get|cancel`, `message/send|stream`.
#[endpoint(tags("agents"), operation_id = "a2aRequest", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn rpc(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let agent = state.agents.get(&agent_id(req))?.clone();
    let body = json_object(req, depot).await?;
    let method = body
        .get("method")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if !a2a::METHODS.contains(&method.as_str()) {
        res.status_code(StatusCode::BAD_REQUEST);
        res.render(Json(json!({"error": {"message": format!("Unsupported method: {method}"), "code": "invalid_method"}})));
        return Ok(());
    }
    let id = body
        .get("id")
        .filter(|v| !v.is_null())
        .cloned()
        .unwrap_or_else(|| Value::String(uuid::Uuid::new_v4().to_string()));
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    tracing::info!(agent = %agent.key, method, "a2a request");
    if !a2a::streams(&method) {
        let outcome = a2a::handle(&state.agents, &agent, &state.store, &method, &params).await;
        res.render(Json(rpc_answer(&id, outcome)));
        return Ok(());
    }
    let first = format!(
        "{}\u{1e}",
        json!({"jsonrpc": "2.0", "id": id, "result": a2a::working(&method)})
    );
    let last = async move {
        let outcome = a2a::handle(&state.agents, &agent, &state.store, &method, &params).await;
        Ok::<_, Infallible>(format!("{}\u{1e}", rpc_answer(&id, outcome)))
    };
    res.headers_mut().insert(
        salvo::http::header::CONTENT_TYPE,
        salvo::http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res.stream(futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, Infallible>(first) }),
        futures_util::stream::once(last),
    ));
    Ok(())
}
