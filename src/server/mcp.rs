//! `mcp` group (spec §4.4): the registry-style server list, each server's tool routes, and the
//! two MCP transports — streamable HTTP (`/mcp`) and the older HTTP+SSE pair (`/sse` with
//! `/messages`). Both transports hand every JSON-RPC message to [`protocol::answer`].

use std::sync::Arc;
use std::time::Duration;

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::ApiError;
use super::request::{json_body, json_object, query_u64};
use super::state::AppState;
use super::system::event_stream;
use crate::mcp::{McpServer, protocol};

/// The registry entry of a server (§4.4.3).
fn server_info(s: &McpServer) -> Value {
    let mut v = json!({
        "id": s.id,
        "name": s.name,
        "version_detail": {"version": s.version, "release_date": s.release_date, "is_latest": true},
    });
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    v
}

/// A server of the registry routes (404 `MCP server with ID 'x' not found`).
fn registered<'a>(
    state: &'a AppState,
    req: &Request,
    param: &str,
) -> Result<&'a Arc<McpServer>, ApiError> {
    let id = req.param::<String>(param).unwrap_or_default();
    Ok(state.mcp.get(&id)?)
}

/// A server of the transport routes (404 `MCP server 'x' not found`).
fn transport_server(state: &AppState, req: &Request) -> Result<Arc<McpServer>, ApiError> {
    let id = req.param::<String>("serverId").unwrap_or_default();
    state
        .mcp
        .get(&id)
        .cloned()
        .map_err(|_| ApiError::not_found(format!("MCP server '{id}' not found")))
}

/// MCP servers, a page at a time (`limit`, default 50; `offset`).
#[endpoint(tags("mcp"), operation_id = "getMcpServers")]
pub async fn list_servers(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let limit = query_u64(req, "limit")?.unwrap_or(50) as usize;
    let offset = query_u64(req, "offset")?.unwrap_or(0) as usize;
    let total = state.mcp.iter().count();
    let servers: Vec<Value> = state
        .mcp
        .iter()
        .skip(offset)
        .take(limit)
        .map(|s| server_info(s))
        .collect();
    let next = (offset + limit < total).then(|| {
        let host = req
            .header::<String>("host")
            .unwrap_or_else(|| "localhost".into());
        format!(
            "http://{host}{}?limit={limit}&offset={}",
            req.uri().path(),
            offset + limit
        )
    });
    Ok(Json(
        json!({"servers": servers, "next": next, "total_count": total}),
    ))
}

/// One MCP server (`?version=` must match its version).
#[endpoint(tags("mcp"), operation_id = "getMcpServerDetails", parameters(("id" = String, Path, description = "The MCP server id")))]
pub async fn server_details(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let s = registered(state, req, "id")?;
    if let Some(wanted) = req.query::<String>("version").filter(|v| !v.is_empty())
        && wanted != s.version
    {
        return Err(ApiError::not_found(format!(
            "MCP server with ID '{}' found, but not version '{wanted}'. Available version is '{}'.",
            s.id, s.version
        )));
    }
    Ok(Json(server_info(s)))
}

fn tool_json(t: &crate::mcp::ExposedTool) -> Value {
    let mut v =
        json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema});
    if let Some(out) = &t.output_schema {
        v["outputSchema"] = out.clone();
    }
    if let Some(kind) = t.tool_type() {
        v["toolType"] = json!(kind);
    }
    v
}

/// The tools a server exposes.
#[endpoint(tags("mcp"), operation_id = "getMcpServerTools", parameters(("serverId" = String, Path, description = "The MCP server id")))]
pub async fn list_tools(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let s = registered(state, req, "serverId")?;
    let tools: Vec<Value> = s
        .tools
        .iter()
        .map(|(id, t)| {
            let mut v = tool_json(t);
            v["id"] = json!(id);
            v
        })
        .collect();
    Ok(Json(json!({ "tools": tools })))
}

/// One tool of a server.
#[endpoint(tags("mcp"), operation_id = "getMcpServerTool", parameters(("serverId" = String, Path, description = "The MCP server id"), ("toolId" = String, Path, description = "The tool id")))]
pub async fn get_tool(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let s = registered(state, req, "serverId")?;
    let id = req.param::<String>("toolId").unwrap_or_default();
    Ok(Json(tool_json(s.tool(&id)?)))
}

/// Runs a tool of a server with `{data}`; answers `{result}`.
#[endpoint(tags("mcp"), operation_id = "executeMcpServerTool", parameters(("serverId" = String, Path, description = "The MCP server id"), ("toolId" = String, Path, description = "The tool id")))]
pub async fn execute(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let s = registered(&state, req, "serverId")?.clone();
    let id = req.param::<String>("toolId").unwrap_or_default();
    let tool = s.tool(&id)?;
    let mut body = json_object(req, depot).await?;
    let data = match body.remove("data") {
        None | Some(Value::Null) => json!({}),
        Some(d) => d,
    };
    let result = state.mcp.call(tool, data).await?;
    Ok(Json(json!({ "result": result })))
}

/// A JSON-RPC error as the whole response.
fn rpc_error(res: &mut Response, status: StatusCode, id: Value, code: i64, message: &str) {
    res.status_code(status);
    res.render(Json(protocol::error(id, code, message)));
}

/// One server-sent event carrying a JSON-RPC message.
fn message_event(v: &Value) -> String {
    format!("event: message\ndata: {v}\n\n")
}

fn accepts(req: &Request, media: &str) -> bool {
    req.header::<String>("accept")
        .is_some_and(|a| a.contains(media))
}

/// Streamable HTTP: an `initialize` opens a session (its id comes back in `mcp-session-id`);
/// later messages carry it. Requests are answered as server-sent events; notifications and
/// responses alone get 202.
#[endpoint(tags("mcp"), operation_id = "postMcpStreamableHttp", parameters(("serverId" = String, Path, description = "The MCP server id")))]
pub async fn streamable_post(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let server = transport_server(&state, req)?;
    if !(accepts(req, "application/json") && accepts(req, "text/event-stream")) {
        rpc_error(
            res,
            StatusCode::NOT_ACCEPTABLE,
            Value::Null,
            -32000,
            "Not Acceptable: Client must accept both application/json and text/event-stream",
        );
        return Ok(());
    }
    let messages = match json_body(req, depot).await {
        Ok(Value::Array(batch)) if !batch.is_empty() => batch,
        Ok(one @ Value::Object(_)) => vec![one],
        Ok(_) => {
            let msg = "Invalid Request: expected a JSON-RPC message or batch";
            rpc_error(
                res,
                StatusCode::BAD_REQUEST,
                Value::Null,
                protocol::INVALID_REQUEST,
                msg,
            );
            return Ok(());
        }
        Err(e) if e.status == StatusCode::PAYLOAD_TOO_LARGE => return Err(e),
        Err(_) => {
            let msg = "Parse error: Invalid JSON";
            rpc_error(
                res,
                StatusCode::BAD_REQUEST,
                Value::Null,
                protocol::PARSE_ERROR,
                msg,
            );
            return Ok(());
        }
    };
    let first_id = messages
        .iter()
        .find_map(|m| m.get("id").cloned())
        .unwrap_or(Value::Null);
    let header = req
        .header::<String>("mcp-session-id")
        .filter(|s| !s.is_empty());
    let session = if messages.iter().any(protocol::is_initialize) {
        if header.is_some() || messages.len() > 1 {
            let msg = "Invalid Request: Server already initialized";
            rpc_error(
                res,
                StatusCode::BAD_REQUEST,
                first_id,
                protocol::INVALID_REQUEST,
                msg,
            );
            return Ok(());
        }
        state.mcp.sessions.open(&server.id, None)
    } else {
        match header {
            None => {
                let msg = "Bad Request: No valid session ID provided for non-initialize request";
                rpc_error(res, StatusCode::BAD_REQUEST, first_id, -32000, msg);
                return Ok(());
            }
            Some(sid) if !state.mcp.sessions.touch(&sid, &server.id) => {
                rpc_error(
                    res,
                    StatusCode::NOT_FOUND,
                    first_id,
                    -32001,
                    "Session not found",
                );
                return Ok(());
            }
            Some(sid) => sid,
        }
    };
    let mut answers = String::new();
    for m in &messages {
        if let Some(a) = protocol::answer(&state.mcp, &server, m).await {
            answers.push_str(&message_event(&a));
        }
    }
    res.add_header("mcp-session-id", session, true)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if answers.is_empty() {
        res.status_code(StatusCode::ACCEPTED);
        return Ok(());
    }
    res.add_header("content-type", "text/event-stream", true)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    res.add_header("cache-control", "no-cache", true)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    res.body(answers);
    Ok(())
}

/// Streamable HTTP: the session's stream for messages from the server (kept open with
/// comments; this server sends no notifications of its own).
#[endpoint(tags("mcp"), operation_id = "getMcpStreamableHttp", parameters(("serverId" = String, Path, description = "The MCP server id")))]
pub async fn streamable_get(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let server = transport_server(&state, req)?;
    if !accepts(req, "text/event-stream") {
        let msg = "Not Acceptable: Client must accept text/event-stream";
        rpc_error(res, StatusCode::NOT_ACCEPTABLE, Value::Null, -32000, msg);
        return Ok(());
    }
    match req.header::<String>("mcp-session-id") {
        Some(sid) if state.mcp.sessions.touch(&sid, &server.id) => {
            event_stream(
                res,
                ": connected\n\n".into(),
                None,
                state.shutdown.clone(),
                Duration::from_secs(15),
                (),
            );
        }
        Some(_) => rpc_error(
            res,
            StatusCode::NOT_FOUND,
            Value::Null,
            -32001,
            "Session not found",
        ),
        None => rpc_error(
            res,
            StatusCode::BAD_REQUEST,
            Value::Null,
            -32000,
            "Bad Request: GET request requires a valid session ID",
        ),
    }
    Ok(())
}

/// Closes an SSE-transport session when its stream ends.
struct SessionGuard {
    state: Arc<AppState>,
    id: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.state.mcp.sessions.close(&self.id);
    }
}

/// HTTP+SSE transport: opens a session whose answers arrive on this stream; the first event
/// names the endpoint to post messages to.
#[endpoint(tags("mcp"), operation_id = "getMcpSse", parameters(("serverId" = String, Path, description = "The MCP server id")))]
pub async fn sse(req: &mut Request, depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let server = transport_server(&state, req)?;
    let (outbox, inbox) = tokio::sync::mpsc::unbounded_channel();
    let id = state.mcp.sessions.open(&server.id, Some(outbox));
    let endpoint = format!(
        "event: endpoint\ndata: /api/mcp/{}/messages?sessionId={id}\n\n",
        server.id
    );
    let guard = SessionGuard {
        state: state.clone(),
        id,
    };
    event_stream(
        res,
        endpoint,
        Some(inbox),
        state.shutdown.clone(),
        Duration::from_secs(60),
        guard,
    );
    res.add_header("connection", "keep-alive", true)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(())
}

fn plain(res: &mut Response, status: StatusCode, text: String) {
    res.status_code(status);
    res.render(Text::Plain(text));
}

/// HTTP+SSE transport: one JSON-RPC message for a session; its answer goes to the session's
/// stream. → 202 `Accepted`.
#[endpoint(tags("mcp"), operation_id = "postMcpSseMessages", parameters(("serverId" = String, Path, description = "The MCP server id")))]
pub async fn post_message(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    let server = transport_server(&state, req)?;
    let Some(sid) = req.query::<String>("sessionId").filter(|s| !s.is_empty()) else {
        plain(res, StatusCode::BAD_REQUEST, "No sessionId provided".into());
        return Ok(());
    };
    let outbox = state
        .mcp
        .sessions
        .touch(&sid, &server.id)
        .then(|| state.mcp.sessions.outbox(&sid))
        .flatten();
    let Some(outbox) = outbox else {
        plain(
            res,
            StatusCode::BAD_REQUEST,
            format!("No transport found for sessionId {sid}"),
        );
        return Ok(());
    };
    let message = match json_body(req, depot).await {
        Ok(m @ Value::Object(_)) => m,
        Ok(other) => {
            let text = format!("Invalid message: expected one JSON-RPC message, got {other}");
            plain(res, StatusCode::BAD_REQUEST, text);
            return Ok(());
        }
        Err(e) => {
            plain(res, e.status, format!("Invalid message: {}", e.message));
            return Ok(());
        }
    };
    // Answered in the background, as the transport expects: the POST only acknowledges.
    tokio::spawn(async move {
        if let Some(answer) = protocol::answer(&state.mcp, &server, &message).await {
            let _ = outbox.send(message_event(&answer));
        }
    });
    plain(res, StatusCode::ACCEPTED, "Accepted".into());
    Ok(())
}
