//! MCP's JSON-RPC, answered for one server: `initialize`, `ping`, `tools/list`, `tools/call`
//! and `logging/setLevel`; anything else is "Method not found". Both HTTP transports (streamable
//! HTTP and the older SSE transport) hand every message they receive to [`answer`], so the two
//! behave the same.

use serde_json::{Value, json};

use super::{McpError, McpServer, McpServers};

/// Protocol versions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-06-18", "2025-03-26", "2024-11-05"];

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;

/// A JSON-RPC error response.
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": id})
}

fn result(id: Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Whether a message is a request (it has a method and an id); notifications and responses
/// get no answer.
pub fn is_request(msg: &Value) -> bool {
    msg.get("method").is_some_and(Value::is_string) && msg.get("id").is_some_and(|id| !id.is_null())
}

/// Whether a message is an `initialize` request.
pub fn is_initialize(msg: &Value) -> bool {
    msg["method"] == "initialize"
}

/// The `initialize` result: the client's protocol version when spoken here, else the newest.
fn initialize(server: &McpServer, params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or_default();
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .unwrap_or(&PROTOCOL_VERSIONS[0]);
    json!({
        "protocolVersion": version,
        "capabilities": {"tools": {}, "logging": {"enabled": true}, "elicitation": {}},
        "serverInfo": {"name": server.name, "version": server.version},
    })
}

fn tools_list(server: &McpServer) -> Value {
    let tools: Vec<Value> = server
        .tools
        .values()
        .map(|t| {
            let mut v = json!({"name": t.name, "description": t.description, "inputSchema": t.input_schema});
            if let Some(out) = &t.output_schema {
                v["outputSchema"] = out.clone();
            }
            v
        })
        .collect();
    json!({"tools": tools})
}

/// A `tools/call` result: the tool's output as text (a string as is, anything else as JSON),
/// with `structuredContent` when the tool declares an output schema; failures are results with
/// `isError`, as MCP asks, not JSON-RPC errors.
async fn tools_call(servers: &McpServers, server: &McpServer, params: &Value) -> Value {
    let name = params["name"].as_str().unwrap_or_default();
    let failure =
        |text: String| json!({"content": [{"type": "text", "text": text}], "isError": true});
    let tool = match server.tool(name) {
        Ok(t) => t,
        Err(_) => return failure(format!("Unknown tool: {name}")),
    };
    let args = match params.get("arguments") {
        None | Some(Value::Null) => json!({}),
        Some(a) => a.clone(),
    };
    match servers.call(tool, args).await {
        Ok(output) => {
            let text = match &output {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut v = json!({"content": [{"type": "text", "text": text}], "isError": false});
            if tool.output_schema.is_some() {
                v["structuredContent"] = output;
            }
            v
        }
        Err(McpError::InvalidArguments(problems)) => {
            failure(format!("Invalid tool arguments: {}", problems.join("; ")))
        }
        Err(e) => failure(e.to_string()),
    }
}

/// The answer to one message: `Some` response for a request, `None` for a notification or a
/// response from the client.
pub async fn answer(servers: &McpServers, server: &McpServer, msg: &Value) -> Option<Value> {
    let Some(obj) = msg.as_object() else {
        return Some(error(Value::Null, INVALID_REQUEST, "Invalid Request"));
    };
    if obj.get("jsonrpc") != Some(&json!("2.0")) {
        let id = obj.get("id").cloned().unwrap_or(Value::Null);
        return Some(error(
            id,
            INVALID_REQUEST,
            "Invalid Request: jsonrpc must be \"2.0\"",
        ));
    }
    if !is_request(msg) {
        if let Some(method) = obj.get("method").and_then(Value::as_str) {
            tracing::debug!(server = %server.id, method, "MCP notification");
        }
        return None;
    }
    let id = obj["id"].clone();
    let params = obj.get("params").cloned().unwrap_or_else(|| json!({}));
    let method = obj["method"].as_str().unwrap_or_default();
    Some(match method {
        "initialize" => result(id, initialize(server, &params)),
        "ping" | "logging/setLevel" => result(id, json!({})),
        "tools/list" => result(id, tools_list(server)),
        "tools/call" if !params["name"].is_string() => error(
            id,
            INVALID_PARAMS,
            "Invalid params: `name` must be a string",
        ),
        "tools/call" => result(id, tools_call(servers, server, &params).await),
        _ => error(id, METHOD_NOT_FOUND, "Method not found"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_told_from_notifications_and_responses() {
        assert!(is_request(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
        ));
        assert!(!is_request(
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"})
        ));
        assert!(!is_request(
            &json!({"jsonrpc": "2.0", "id": 1, "result": {}})
        ));
        assert!(!is_request(
            &json!({"jsonrpc": "2.0", "id": null, "method": "ping"})
        ));
    }

    #[test]
    fn the_protocol_version_is_negotiated() {
        let server = McpServer {
            id: "s".into(),
            name: "S".into(),
            version: "2.0.0".into(),
            description: None,
            release_date: String::new(),
            tools: Default::default(),
        };
        let r = initialize(&server, &json!({"protocolVersion": "2025-03-26"}));
        assert_eq!(r["protocolVersion"], "2025-03-26");
        assert_eq!(r["serverInfo"], json!({"name": "S", "version": "2.0.0"}));
        let r = initialize(&server, &json!({"protocolVersion": "1999-01-01"}));
        assert_eq!(r["protocolVersion"], PROTOCOL_VERSIONS[0]);
    }
}
