//! `tools` group: list, get by id, execute.

use salvo::prelude::*;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::request::{json_object, runtime_context, truthy};
use super::state::AppState;
use crate::tools::{Tool, ToolContext};

/// A tool as Mastra clients see it (§3.2): schemas as superjson strings.
pub fn wire(tool: &Tool) -> Value {
    let mut v = json!({
        "id": tool.id,
        "description": tool.description,
        "inputSchema": tool.input_schema.superjson(),
    });
    if let Some(out) = &tool.output_schema {
        v["outputSchema"] = Value::String(out.superjson());
    }
    v
}

/// All tools, by the name they are declared under.
#[endpoint(tags("tools"), operation_id = "getTools")]
pub async fn list(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .tools
            .iter()
            .map(|t| (t.key.clone(), wire(t)))
            .collect(),
    )
}

/// One tool, by id.
#[endpoint(tags("tools"), operation_id = "getToolById", parameters(("toolId" = String, Path, description = "The tool id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let tool_id = req.param::<String>("toolId").unwrap_or_default();
    let tool = state
        .tools
        .by_id(&tool_id)
        .ok_or_else(|| ApiError::not_found("Tool not found"))?;
    Ok(Json(wire(tool)))
}

/// Runs a tool with `{data, runtimeContext?}`; answers the raw result.
#[endpoint(tags("tools"), operation_id = "executeTool", parameters(("toolId" = String, Path, description = "The tool id")))]
pub async fn execute(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let tool_id = req.param::<String>("toolId").unwrap_or_default();
    let tool = state
        .tools
        .by_id(&tool_id)
        .ok_or_else(|| ApiError::not_found("Tool not found"))?
        .clone();
    let run_id = req.query::<String>("runId");
    run(req, depot, &tool, run_id).await
}

/// Runs `tool` with the request's `{data, runtimeContext?}` and answers the raw result (shared
/// by `/api/tools/{toolId}/execute` and the agent tool route).
pub async fn run(
    req: &mut Request,
    depot: &Depot,
    tool: &Tool,
    run_id: Option<String>,
) -> Result<Json<Value>, ApiError> {
    let mut body = json_object(req, depot).await?;
    if !truthy(body.get("data")) {
        return Err(ApiError::required("data"));
    }
    let data = body.remove("data").unwrap_or(Value::Null);
    let ctx = ToolContext {
        runtime_context: runtime_context(depot),
        run_id,
    };
    tracing::info!(tool = %tool.id, run_id = ctx.run_id.as_deref(), "executing tool");
    let result = tool.execute(data, &ctx).await;
    if let Err(e) = &result {
        tracing::warn!(tool = %tool.id, run_id = ctx.run_id.as_deref(), error = %e, "tool failed");
    }
    Ok(Json(result?))
}
