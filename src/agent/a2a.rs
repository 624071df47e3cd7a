//! A2A (agent-to-agent): the agent card and the JSON-RPC methods of both protocol generations —
//! `tasks/send`, `tasks/sendSubscribe` (what Mastra 0.13 and its client speak) and
//! `message/send`, `message/stream` (A2A 0.2+), with `tasks/get` and `tasks/cancel` for both.
//! Tasks are stored in redb, so they outlive the request that created them and a restart.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::options::CallOptions;
use super::{Agent, AgentError, Agents};
use crate::storage::Store;
use crate::storage::collection::{self, A2A_TASKS, Record};

/// A JSON-RPC error (answered with HTTP 200).
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

impl RpcError {
    fn invalid_params(message: impl Into<String>) -> RpcError {
        RpcError {
            code: -32602,
            message: message.into(),
        }
    }
    fn internal(message: impl Into<String>) -> RpcError {
        RpcError {
            code: -32603,
            message: message.into(),
        }
    }
    fn not_found(id: &str) -> RpcError {
        RpcError {
            code: -32001,
            message: format!("Task not found: {id}"),
        }
    }
}

/// The methods served; anything else is answered `Unsupported method`.
pub const METHODS: &[&str] = &[
    "tasks/send",
    "tasks/sendSubscribe",
    "tasks/get",
    "tasks/cancel",
    "message/send",
    "message/stream",
];

/// Whether `method` streams its answer.
pub fn streams(method: &str) -> bool {
    matches!(method, "tasks/sendSubscribe" | "message/stream")
}

/// The agent card (§4.1.14).
pub fn card(agent: &Agent) -> Value {
    let skills: Vec<Value> = agent
        .tools
        .iter()
        .map(|(key, t)| json!({"id": key, "name": key, "description": t.description, "tags": ["tool"]}))
        .collect();
    json!({
        "name": agent.key,
        "description": agent.instructions(),
        "url": format!("/a2a/{}", agent.key),
        "provider": {"organization": "edgestra", "url": "https://github.com/edgestra"},
        "version": "1.0",
        "capabilities": {"streaming": true, "pushNotifications": false, "stateTransitionHistory": false},
        "defaultInputModes": ["text"],
        "defaultOutputModes": ["text"],
        "skills": skills,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TaskRecord {
    key: String,
    agent_id: String,
    created_ms: u64,
    /// The task as answered (in the dialect it was created with).
    task: Value,
}

impl Record for TaskRecord {
    const COLLECTION: &'static collection::Collection = &A2A_TASKS;
    fn id(&self) -> &str {
        &self.key
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![(self.agent_id.clone(), self.created_ms)]
    }
}

fn task_key(agent: &str, task: &str) -> String {
    format!("{agent}\u{1f}{task}")
}

fn now() -> (String, u64) {
    let ms = jiff::Timestamp::now().as_millisecond().max(0) as u64;
    (crate::memory::engine::iso(ms), ms)
}

async fn load(store: &Store, agent: &str, id: &str) -> Result<Option<TaskRecord>, RpcError> {
    let (store, key) = (store.clone(), task_key(agent, id));
    tokio::task::spawn_blocking(move || {
        store.read_blocking(|tx| collection::get::<TaskRecord>(tx, &key))
    })
    .await
    .map_err(|e| RpcError::internal(e.to_string()))?
    .map_err(|e| RpcError::internal(e.to_string()))
}

async fn save(store: &Store, record: TaskRecord) -> Result<(), RpcError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        store.write_blocking(|tx| collection::put(tx, &record).map(|_| ()))
    })
    .await
    .map_err(|e| RpcError::internal(e.to_string()))?
    .map_err(|e| RpcError::internal(e.to_string()))
}

/// Which generation of the protocol a request speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Dialect {
    /// `tasks/send`: parts `{type: "text"}`, `sessionId`.
    Tasks,
    /// `message/send`: parts `{kind: "text"}`, `contextId`, `kind` on every object.
    Message,
}

/// A request to run the agent, read from the params.
struct Send {
    dialect: Dialect,
    task_id: String,
    session: Option<String>,
    text: String,
    user_message: Value,
    metadata: Value,
}

fn text_of_parts(parts: &Value, type_key: &str) -> Result<String, RpcError> {
    let Value::Array(parts) = parts else {
        return Err(RpcError::invalid_params("message.parts must be an array"));
    };
    let mut text = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        match (p.get(type_key).and_then(Value::as_str), p.get("text")) {
            (Some("text"), Some(Value::String(t))) => text.push(t.clone()),
            _ => {
                return Err(RpcError::invalid_params(format!(
                    "message.parts[{i}] must be a text part ({{\"{type_key}\": \"text\", \"text\": …}})"
                )));
            }
        }
    }
    if text.is_empty() {
        return Err(RpcError::invalid_params("message.parts is empty"));
    }
    Ok(text.join("\n"))
}

fn read_send(method: &str, params: &Map<String, Value>) -> Result<Send, RpcError> {
    let message = params
        .get("message")
        .and_then(Value::as_object)
        .ok_or_else(|| RpcError::invalid_params("params.message is required"))?;
    if method.starts_with("tasks/") {
        let id = params
            .get("id")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| RpcError::invalid_params("params.id (the task id) is required"))?;
        return Ok(Send {
            dialect: Dialect::Tasks,
            task_id: id.to_string(),
            session: params
                .get("sessionId")
                .and_then(Value::as_str)
                .map(String::from),
            text: text_of_parts(message.get("parts").unwrap_or(&Value::Null), "type")?,
            user_message: Value::Object(message.clone()),
            metadata: params.get("metadata").cloned().unwrap_or(Value::Null),
        });
    }
    if message.get("kind").and_then(Value::as_str) != Some("message") {
        return Err(RpcError::invalid_params("message.kind must be \"message\""));
    }
    if !matches!(
        message.get("role").and_then(Value::as_str),
        Some("user" | "agent")
    ) {
        return Err(RpcError::invalid_params(
            "message.role must be user or agent",
        ));
    }
    if message
        .get("messageId")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(RpcError::invalid_params("message.messageId is required"));
    }
    let text = text_of_parts(message.get("parts").unwrap_or(&Value::Null), "kind")?;
    let id = |k: &str| {
        message
            .get(k)
            .and_then(Value::as_str)
            .map(String::from)
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    };
    Ok(Send {
        dialect: Dialect::Message,
        task_id: id("taskId"),
        session: Some(id("contextId")),
        text,
        user_message: Value::Object(message.clone()),
        metadata: params.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn agent_message(dialect: Dialect, text: &str) -> Value {
    match dialect {
        Dialect::Tasks => json!({"role": "agent", "parts": [{"type": "text", "text": text}]}),
        Dialect::Message => json!({
            "kind": "message",
            "messageId": uuid::Uuid::new_v4().to_string(),
            "role": "agent",
            "parts": [{"kind": "text", "text": text}]
        }),
    }
}

fn task_json(send: &Send, state: &str, message: Value) -> Value {
    let status = json!({"state": state, "timestamp": now().0, "message": message});
    match send.dialect {
        Dialect::Tasks => json!({
            "id": send.task_id,
            "sessionId": send.session,
            "status": status,
            "artifacts": [],
            "metadata": send.metadata,
        }),
        Dialect::Message => json!({
            "kind": "task",
            "id": send.task_id,
            "contextId": send.session,
            "status": status,
            "artifacts": [],
            "history": [send.user_message],
            "metadata": send.metadata,
        }),
    }
}

/// The interim answer of a streaming send.
pub fn working(method: &str) -> Value {
    let dialect = if method.starts_with("tasks/") {
        Dialect::Tasks
    } else {
        Dialect::Message
    };
    json!({"state": "working", "message": agent_message(dialect, "Generating response...")})
}

/// Runs the agent on a send and stores the task as it goes (working → completed | failed).
async fn send(
    agents: &Agents,
    agent: &Arc<Agent>,
    store: &Store,
    send: Send,
) -> Result<Value, RpcError> {
    let created_ms = now().1;
    let record = |task: Value| TaskRecord {
        key: task_key(&agent.key, &send.task_id),
        agent_id: agent.key.clone(),
        created_ms,
        task,
    };
    save(
        store,
        record(task_json(
            &send,
            "working",
            agent_message(send.dialect, "Generating response..."),
        )),
    )
    .await?;
    let body: Map<String, Value> = [("messages".to_string(), Value::String(send.text.clone()))]
        .into_iter()
        .collect();
    let outcome =
        match CallOptions::from_body(agent, &body, &agent.default_generate_options, Map::new()) {
            Ok(opts) => agents.call(agent, &opts, None).await,
            Err(e) => Err(e),
        };
    match outcome {
        Ok(result) => {
            let task = task_json(
                &send,
                "completed",
                agent_message(send.dialect, &result.text),
            );
            save(store, record(task.clone())).await?;
            Ok(task)
        }
        Err(e) => {
            let message = e.to_string();
            let task = task_json(
                &send,
                "failed",
                agent_message(send.dialect, &format!("Handler failed: {message}")),
            );
            save(store, record(task)).await?;
            Err(RpcError::internal(message))
        }
    }
}

/// Answers one JSON-RPC method (see [`METHODS`]) for `agent`.
pub async fn handle(
    agents: &Agents,
    agent: &Arc<Agent>,
    store: &Store,
    method: &str,
    params: &Value,
) -> Result<Value, RpcError> {
    let empty = Map::new();
    let params = params.as_object().unwrap_or(&empty);
    match method {
        "tasks/send" | "tasks/sendSubscribe" | "message/send" | "message/stream" => {
            let request = read_send(method, params)?;
            send(agents, agent, store, request).await
        }
        "tasks/get" | "tasks/cancel" => {
            let id = params
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| RpcError::invalid_params("params.id (the task id) is required"))?;
            let mut record = load(store, &agent.key, id)
                .await?
                .ok_or_else(|| RpcError::not_found(id))?;
            if method == "tasks/get" {
                return Ok(record.task);
            }
            let state = record.task["status"]["state"].as_str().unwrap_or_default();
            if matches!(state, "completed" | "failed" | "canceled") {
                return Ok(record.task);
            }
            let dialect = if record.task.get("kind").is_some() {
                Dialect::Message
            } else {
                Dialect::Tasks
            };
            record.task["status"] = json!({
                "state": "canceled",
                "timestamp": now().0,
                "message": agent_message(dialect, "Task cancelled by request."),
            });
            let task = record.task.clone();
            save(store, record).await?;
            Ok(task)
        }
        other => Err(RpcError {
            code: -32601,
            message: format!("Unsupported method: {other}"),
        }),
    }
}

impl From<AgentError> for RpcError {
    fn from(e: AgentError) -> Self {
        RpcError::internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_are_read_in_both_dialects_and_checked() {
        let old = json!({"id": "t1", "sessionId": "s", "message": {"role": "user", "parts": [{"type": "text", "text": "hi"}]}});
        let s = read_send("tasks/send", old.as_object().unwrap()).unwrap();
        assert_eq!(
            (s.dialect, s.task_id.as_str(), s.text.as_str()),
            (Dialect::Tasks, "t1", "hi")
        );
        let new = json!({"message": {"kind": "message", "messageId": "m", "role": "user", "parts": [{"kind": "text", "text": "yo"}], "taskId": "t2"}});
        let s = read_send("message/send", new.as_object().unwrap()).unwrap();
        assert_eq!((s.dialect, s.task_id.as_str()), (Dialect::Message, "t2"));
        assert!(s.session.is_some());
        let t = task_json(&s, "completed", agent_message(s.dialect, "ok"));
        assert_eq!(t["kind"], "task");
        assert_eq!(t["status"]["message"]["parts"][0]["kind"], "text");
        assert_eq!(t["history"][0]["messageId"], "m");

        for (method, params, needle) in [
            ("tasks/send", json!({"message": {"parts": []}}), "params.id"),
            ("tasks/send", json!({"id": "x"}), "params.message"),
            (
                "tasks/send",
                json!({"id": "x", "message": {"parts": [{"type": "data"}]}}),
                "parts[0]",
            ),
            ("message/send", json!({"message": {"kind": "msg"}}), "kind"),
            (
                "message/send",
                json!({"message": {"kind": "message", "role": "robot"}}),
                "role",
            ),
            (
                "message/send",
                json!({"message": {"kind": "message", "role": "user", "parts": []}}),
                "messageId",
            ),
        ] {
            let e = read_send(method, params.as_object().unwrap())
                .err()
                .unwrap();
            assert_eq!(e.code, -32602);
            assert!(e.message.contains(needle), "{params}: {}", e.message);
        }
    }
}
