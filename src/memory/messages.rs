//! The message formats Mastra clients send and receive, and the conversions between them:
//! AI SDK CoreMessages (what a model is given), MastraMessageV2 (what memory stores: UI parts),
//! MastraMessageV1 (the legacy `messages` arrays) and AI SDK UIMessages (`uiMessages`).
//! Text, tool calls and tool results survive every conversion.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct MessageError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, MessageError> {
    Err(MessageError(msg.into()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        }
    }
    fn parse(s: &str) -> Option<Role> {
        match s {
            "system" => Some(Role::System),
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// One part of a CoreMessage's content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Reasoning(String),
    Image {
        image: Value,
        mime_type: Option<String>,
    },
    File {
        data: Value,
        mime_type: String,
    },
    ToolCall {
        id: String,
        name: String,
        args: Value,
    },
    ToolResult {
        id: String,
        name: String,
        result: Value,
        is_error: bool,
    },
}

impl Part {
    fn to_json(&self) -> Value {
        match self {
            Part::Text(t) => json!({"type": "text", "text": t}),
            Part::Reasoning(t) => json!({"type": "reasoning", "text": t}),
            Part::Image { image, mime_type } => {
                let mut v = json!({"type": "image", "image": image});
                if let Some(m) = mime_type {
                    v["mimeType"] = json!(m);
                }
                v
            }
            Part::File { data, mime_type } => {
                json!({"type": "file", "data": data, "mimeType": mime_type})
            }
            Part::ToolCall { id, name, args } => {
                json!({"type": "tool-call", "toolCallId": id, "toolName": name, "args": args})
            }
            Part::ToolResult {
                id,
                name,
                result,
                is_error,
            } => {
                let mut v = json!({"type": "tool-result", "toolCallId": id, "toolName": name, "result": result});
                if *is_error {
                    v["isError"] = json!(true);
                }
                v
            }
        }
    }

    /// A CoreMessage content part; `at` names it in errors.
    fn from_json(v: &Value, at: &str) -> Result<Part, MessageError> {
        let Some(kind) = v.get("type").and_then(Value::as_str) else {
            return err(format!("{at} needs a `type`"));
        };
        let text = |key: &str| -> Result<String, MessageError> {
            match v.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                _ => err(format!("{at}.{key} must be a string")),
            }
        };
        Ok(match kind {
            "text" => Part::Text(text("text")?),
            "reasoning" => Part::Reasoning(
                v.get("text")
                    .or_else(|| v.get("reasoning"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ),
            "image" => Part::Image {
                image: v.get("image").cloned().unwrap_or(Value::Null),
                mime_type: v.get("mimeType").and_then(Value::as_str).map(String::from),
            },
            "file" => Part::File {
                data: v.get("data").cloned().unwrap_or(Value::Null),
                mime_type: text("mimeType")?,
            },
            "tool-call" => Part::ToolCall {
                id: text("toolCallId")?,
                name: text("toolName")?,
                args: v.get("args").cloned().unwrap_or_else(|| json!({})),
            },
            "tool-result" => Part::ToolResult {
                id: text("toolCallId")?,
                name: v
                    .get("toolName")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                result: v.get("result").cloned().unwrap_or(Value::Null),
                is_error: v.get("isError").and_then(Value::as_bool).unwrap_or(false),
            },
            other => return err(format!("{at} has an unknown type `{other}`")),
        })
    }
}

/// AI SDK v4 CoreMessage.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreMessage {
    pub role: Role,
    pub parts: Vec<Part>,
}

impl CoreMessage {
    pub fn text(role: Role, text: impl Into<String>) -> CoreMessage {
        CoreMessage {
            role,
            parts: vec![Part::Text(text.into())],
        }
    }

    /// All text parts joined.
    pub fn text_content(&self) -> String {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }

    /// AI SDK JSON; system and single-text user messages use a plain string content.
    pub fn to_json(&self) -> Value {
        let plain = matches!(self.role, Role::System)
            || (self.role == Role::User
                && self.parts.len() == 1
                && matches!(self.parts[0], Part::Text(_)));
        let content = if plain {
            Value::String(self.text_content())
        } else {
            Value::Array(self.parts.iter().map(Part::to_json).collect())
        };
        json!({"role": self.role.as_str(), "content": content})
    }
}

/// Dates as JavaScript's `toISOString` writes them; numbers (epoch ms) accepted on input.
pub mod iso_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(t: &jiff::Timestamp) -> String {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn parse(v: &serde_json::Value) -> Option<jiff::Timestamp> {
        match v {
            serde_json::Value::String(s) => s.parse().ok(),
            serde_json::Value::Number(n) => {
                jiff::Timestamp::from_millisecond(n.as_f64()? as i64).ok()
            }
            _ => None,
        }
    }

    pub fn serialize<S: Serializer>(t: &jiff::Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<jiff::Timestamp, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        parse(&v).ok_or_else(|| serde::de::Error::custom("createdAt must be an ISO date"))
    }
}

/// MastraMessageV2 (spec §3.13): what memory stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageV2 {
    pub id: String,
    pub role: String,
    #[serde(with = "iso_time")]
    pub created_at: jiff::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(rename = "type", default = "v2_kind")]
    pub kind: String,
    pub content: ContentV2,
}

fn v2_kind() -> String {
    "v2".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContentV2 {
    pub format: u8,
    pub parts: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_invocations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experimental_attachments: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl MessageV2 {
    pub fn created_at_iso(&self) -> String {
        iso_time::format(&self.created_at)
    }
}

/// Ids, times and owners for messages that do not carry them.
pub struct Defaults<'a> {
    pub thread_id: Option<&'a str>,
    pub resource_id: Option<&'a str>,
    pub new_id: &'a (dyn Fn() -> String + Send + Sync),
    pub now: jiff::Timestamp,
}

// ---- input ------------------------------------------------------------------------------

/// Everything `messages` may be in an agent call: a string, strings, CoreMessages, UIMessages,
/// MastraMessageV1 or V2 (mixed arrays allowed). Returns CoreMessages in order.
pub fn parse_input(messages: &Value) -> Result<Vec<CoreMessage>, MessageError> {
    match messages {
        Value::String(s) => Ok(vec![CoreMessage::text(Role::User, s.clone())]),
        Value::Array(items) => {
            let mut out = Vec::new();
            for (i, item) in items.iter().enumerate() {
                out.extend(parse_one(item, &format!("messages[{i}]"))?);
            }
            Ok(out)
        }
        Value::Object(_) => parse_one(messages, "messages"),
        _ => err("messages must be a string, an array or a message object"),
    }
}

fn parse_one(item: &Value, at: &str) -> Result<Vec<CoreMessage>, MessageError> {
    let obj = match item {
        Value::String(s) => return Ok(vec![CoreMessage::text(Role::User, s.clone())]),
        Value::Object(o) => o,
        _ => return err(format!("{at} must be a string or a message object")),
    };
    let role_name = match obj.get("role") {
        Some(Value::String(r)) => r.as_str(),
        None => return err(format!("{at}.role is required")),
        _ => return err(format!("{at}.role must be a string")),
    };
    let Some(role) = Role::parse(role_name) else {
        return err(format!(
            "{at}.role must be one of system, user, assistant, tool (got `{role_name}`)"
        ));
    };
    // MastraMessageV2: content is {format: 2, parts}.
    if let Some(Value::Object(c)) = obj.get("content")
        && c.get("format").and_then(Value::as_u64) == Some(2)
    {
        let parts = match c.get("parts") {
            Some(Value::Array(p)) => p.clone(),
            _ => return err(format!("{at}.content.parts must be an array")),
        };
        return Ok(ui_parts_to_core(role, &parts, c.get("toolInvocations"), at));
    }
    // AI SDK UIMessage: parts (and/or toolInvocations) beside a string content.
    if let Some(parts) = obj.get("parts") {
        let Value::Array(parts) = parts else {
            return err(format!("{at}.parts must be an array"));
        };
        return Ok(ui_parts_to_core(
            role,
            parts,
            obj.get("toolInvocations"),
            at,
        ));
    }
    if obj.get("toolInvocations").is_some_and(Value::is_array) {
        let text = obj
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut parts = vec![json!({"type": "text", "text": text})];
        parts.retain(|_| !text.is_empty());
        return Ok(ui_parts_to_core(
            role,
            &parts,
            obj.get("toolInvocations"),
            at,
        ));
    }
    // CoreMessage or MastraMessageV1.
    let parts = match obj.get("content") {
        Some(Value::String(s)) => vec![Part::Text(s.clone())],
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, p)| match p {
                Value::String(s) => Ok(Part::Text(s.clone())),
                _ => Part::from_json(p, &format!("{at}.content[{j}]")),
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => return err(format!("{at}.content is required")),
        Some(_) => {
            return err(format!(
                "{at}.content must be a string or an array of parts"
            ));
        }
    };
    if role == Role::Tool && parts.iter().any(|p| !matches!(p, Part::ToolResult { .. })) {
        return err(format!("{at}: a tool message holds only tool-result parts"));
    }
    Ok(vec![CoreMessage { role, parts }])
}

/// UI parts (V2 content or a UIMessage) as CoreMessages: an assistant's answered tool calls
/// become an assistant message with the calls plus a tool message with the results.
fn ui_parts_to_core(
    role: Role,
    parts: &[Value],
    invocations: Option<&Value>,
    _at: &str,
) -> Vec<CoreMessage> {
    split_ui_parts(role, parts, invocations, false)
}

fn invocation_of(p: &Value) -> Option<&Value> {
    (p["type"] == "tool-invocation").then(|| &p["toolInvocation"])
}

/// Walks UI parts in order. Unanswered calls are kept (as calls) only when `keep_calls`.
fn split_ui_parts(
    role: Role,
    parts: &[Value],
    invocations: Option<&Value>,
    keep_calls: bool,
) -> Vec<CoreMessage> {
    // Parts may be absent when only toolInvocations were sent.
    let synthetic: Vec<Value>;
    let parts = if parts.iter().any(|p| invocation_of(p).is_some()) {
        parts
    } else if let Some(Value::Array(inv)) = invocations {
        synthetic = inv
            .iter()
            .map(|i| json!({"type": "tool-invocation", "toolInvocation": i}))
            .chain(parts.iter().cloned())
            .collect();
        &synthetic
    } else {
        parts
    };
    if role != Role::Assistant {
        let core: Vec<Part> = parts
            .iter()
            .filter_map(|p| match p["type"].as_str()? {
                "text" => Some(Part::Text(p["text"].as_str()?.to_string())),
                "file" => Some(Part::File {
                    data: p.get("data").cloned().unwrap_or(Value::Null),
                    mime_type: p["mimeType"].as_str().unwrap_or_default().to_string(),
                }),
                _ => None,
            })
            .collect();
        return vec![CoreMessage { role, parts: core }];
    }
    let mut out = Vec::new();
    let mut current: Vec<Part> = Vec::new();
    let mut results: Vec<Part> = Vec::new();
    let flush = |out: &mut Vec<CoreMessage>, current: &mut Vec<Part>, results: &mut Vec<Part>| {
        if !current.is_empty() {
            out.push(CoreMessage {
                role: Role::Assistant,
                parts: std::mem::take(current),
            });
        }
        if !results.is_empty() {
            out.push(CoreMessage {
                role: Role::Tool,
                parts: std::mem::take(results),
            });
        }
    };
    for p in parts {
        if let Some(inv) = invocation_of(p) {
            let state = inv["state"].as_str().unwrap_or("call");
            if state != "result" && !keep_calls {
                continue;
            }
            let id = inv["toolCallId"].as_str().unwrap_or_default().to_string();
            let name = inv["toolName"].as_str().unwrap_or_default().to_string();
            current.push(Part::ToolCall {
                id: id.clone(),
                name: name.clone(),
                args: inv.get("args").cloned().unwrap_or_else(|| json!({})),
            });
            if state == "result" {
                results.push(Part::ToolResult {
                    id,
                    name,
                    result: inv.get("result").cloned().unwrap_or(Value::Null),
                    is_error: inv.get("isError").and_then(Value::as_bool).unwrap_or(false),
                });
            }
            continue;
        }
        let part = match p["type"].as_str() {
            Some("text") => Part::Text(p["text"].as_str().unwrap_or_default().to_string()),
            Some("reasoning") => {
                Part::Reasoning(p["reasoning"].as_str().unwrap_or_default().to_string())
            }
            Some("file") => Part::File {
                data: p.get("data").cloned().unwrap_or(Value::Null),
                mime_type: p["mimeType"].as_str().unwrap_or_default().to_string(),
            },
            _ => continue, // step-start, source: no model content
        };
        // Text after answered calls belongs to the next model step.
        if !results.is_empty() {
            flush(&mut out, &mut current, &mut results);
        }
        current.push(part);
    }
    flush(&mut out, &mut current, &mut results);
    if out.is_empty() {
        out.push(CoreMessage {
            role: Role::Assistant,
            parts: Vec::new(),
        });
    }
    out
}

// ---- storage form -----------------------------------------------------------------------

fn new_v2(role: &str, defaults: &Defaults) -> MessageV2 {
    MessageV2 {
        id: (defaults.new_id)(),
        role: role.to_string(),
        created_at: defaults.now,
        thread_id: defaults.thread_id.map(String::from),
        resource_id: defaults.resource_id.map(String::from),
        kind: v2_kind(),
        content: ContentV2 {
            format: 2,
            parts: Vec::new(),
            content: None,
            tool_invocations: None,
            reasoning: None,
            experimental_attachments: None,
            annotations: None,
            metadata: None,
        },
    }
}

/// Fills `content.content` and `toolInvocations` from the parts.
fn finish_v2(m: &mut MessageV2) {
    let text: String = m
        .content
        .parts
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    m.content.content = (!text.is_empty()).then_some(text);
    let inv: Vec<Value> = m
        .content
        .parts
        .iter()
        .filter_map(invocation_of)
        .cloned()
        .collect();
    m.content.tool_invocations = (!inv.is_empty()).then_some(inv);
}

/// Core → V2 the way Mastra stores a turn: one V2 per user/system message; an assistant
/// message, the tool results that answer it and the assistant steps that follow merge into one
/// assistant V2 whose parts are step-start, tool invocations (state `result` once answered)
/// and text.
pub fn core_to_v2(messages: &[CoreMessage], defaults: &Defaults) -> Vec<MessageV2> {
    let mut out: Vec<MessageV2> = Vec::new();
    let mut step = 0u64;
    // Whether the last message was a tool message (the next assistant step continues it).
    let mut after_tool = false;
    for m in messages {
        match m.role {
            Role::System | Role::User => {
                let mut v = new_v2(m.role.as_str(), defaults);
                for p in &m.parts {
                    match p {
                        Part::Text(t) => v.content.parts.push(json!({"type": "text", "text": t})),
                        Part::Image { image, mime_type } => v.content.parts.push(json!({"type": "file", "mimeType": mime_type.clone().unwrap_or_else(|| "image/*".into()), "data": image})),
                        Part::File { data, mime_type } => v.content.parts.push(json!({"type": "file", "mimeType": mime_type, "data": data})),
                        _ => {}
                    }
                }
                finish_v2(&mut v);
                out.push(v);
                after_tool = false;
                step = 0;
            }
            Role::Assistant => {
                let continues = after_tool && out.last().is_some_and(|v| v.role == "assistant");
                if !continues {
                    out.push(new_v2("assistant", defaults));
                    step = 0;
                } else {
                    step += 1;
                }
                let Some(v) = out.last_mut() else { continue };
                v.content.parts.push(json!({"type": "step-start"}));
                for p in &m.parts {
                    match p {
                        Part::Text(t) => v.content.parts.push(json!({"type": "text", "text": t})),
                        Part::Reasoning(t) => v.content.parts.push(json!({"type": "reasoning", "reasoning": t, "details": [{"type": "text", "text": t}]})),
                        Part::ToolCall { id, name, args } => v.content.parts.push(json!({"type": "tool-invocation", "toolInvocation": {"state": "call", "step": step, "toolCallId": id, "toolName": name, "args": args}})),
                        Part::File { data, mime_type } => v.content.parts.push(json!({"type": "file", "mimeType": mime_type, "data": data})),
                        Part::Image { image, mime_type } => v.content.parts.push(json!({"type": "file", "mimeType": mime_type.clone().unwrap_or_else(|| "image/*".into()), "data": image})),
                        Part::ToolResult { .. } => {}
                    }
                }
                finish_v2(v);
                after_tool = false;
            }
            Role::Tool => {
                if out.last().is_none_or(|v| v.role != "assistant") {
                    out.push(new_v2("assistant", defaults));
                }
                let Some(v) = out.last_mut() else { continue };
                for p in &m.parts {
                    let Part::ToolResult {
                        id,
                        name,
                        result,
                        is_error,
                    } = p
                    else {
                        continue;
                    };
                    let existing = v
                        .content
                        .parts
                        .iter_mut()
                        .filter_map(|p| p.get_mut("toolInvocation"))
                        .find(|i| i["toolCallId"] == *id);
                    match existing {
                        Some(inv) => {
                            inv["state"] = json!("result");
                            inv["result"] = result.clone();
                            if *is_error {
                                inv["isError"] = json!(true);
                            }
                        }
                        None => {
                            let mut inv = json!({"state": "result", "step": step, "toolCallId": id, "toolName": name, "args": {}, "result": result});
                            if *is_error {
                                inv["isError"] = json!(true);
                            }
                            v.content
                                .parts
                                .push(json!({"type": "tool-invocation", "toolInvocation": inv}));
                        }
                    }
                }
                finish_v2(v);
                after_tool = true;
            }
        }
    }
    out
}

fn role_of(m: &MessageV2) -> Role {
    Role::parse(&m.role).unwrap_or(Role::User)
}

/// V2 → Core for a model; unanswered tool calls are dropped (they cannot be replayed).
pub fn v2_to_core(messages: &[MessageV2]) -> Vec<CoreMessage> {
    messages
        .iter()
        .flat_map(|m| split_ui_parts(role_of(m), &m.content.parts, None, false))
        .filter(|c| !c.parts.is_empty())
        .collect()
}

/// V2 → MastraMessageV1 records (several for an assistant turn with tool calls).
pub fn v2_to_v1(message: &MessageV2) -> Vec<Value> {
    let cores = split_ui_parts(role_of(message), &message.content.parts, None, true);
    let created = message.created_at_iso();
    cores
        .iter()
        .filter(|c| !c.parts.is_empty() || cores.len() == 1)
        .enumerate()
        .map(|(i, c)| {
            let has_calls = c.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let (kind, content) = match c.role {
                Role::Tool => ("tool-result", c.to_json()["content"].clone()),
                _ if has_calls => (
                    "tool-call",
                    Value::Array(c.parts.iter().map(Part::to_json).collect()),
                ),
                _ => ("text", Value::String(c.text_content())),
            };
            let mut v = Map::new();
            v.insert(
                "id".into(),
                json!(if i == 0 {
                    message.id.clone()
                } else {
                    format!("{}__{i}", message.id)
                }),
            );
            v.insert("role".into(), json!(c.role.as_str()));
            v.insert("content".into(), content);
            v.insert("type".into(), json!(kind));
            v.insert("createdAt".into(), json!(created));
            if let Some(t) = &message.thread_id {
                v.insert("threadId".into(), json!(t));
            }
            if let Some(r) = &message.resource_id {
                v.insert("resourceId".into(), json!(r));
            }
            if has_calls || c.role == Role::Tool {
                let ids: Vec<Value> = c
                    .parts
                    .iter()
                    .filter_map(|p| match p {
                        Part::ToolCall { id, .. } | Part::ToolResult { id, .. } => Some(json!(id)),
                        _ => None,
                    })
                    .collect();
                v.insert("toolCallIds".into(), Value::Array(ids));
            }
            Value::Object(v)
        })
        .collect()
}

/// V2 → AI SDK v4 UIMessage.
pub fn v2_to_ui(message: &MessageV2) -> Value {
    let text = message.content.content.clone().unwrap_or_else(|| {
        message
            .content
            .parts
            .iter()
            .filter(|p| p["type"] == "text")
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join("")
    });
    let mut v = json!({
        "id": message.id,
        "role": message.role,
        "content": text,
        "createdAt": message.created_at_iso(),
        "parts": message.content.parts,
    });
    let c = &message.content;
    if let Some(i) = &c.tool_invocations {
        v["toolInvocations"] = json!(i);
    }
    if let Some(a) = &c.experimental_attachments {
        v["experimental_attachments"] = json!(a);
    }
    if let Some(r) = &c.reasoning {
        v["reasoning"] = json!(r);
    }
    if let Some(m) = &c.metadata {
        v["metadata"] = m.clone();
    }
    v
}

/// One message given to the memory save route: V2 when `content` has `format: 2`, else V1.
/// A V1 message becomes one V2 message (tool results become an assistant's tool invocations).
pub fn parse_stored(message: &Value, defaults: &Defaults) -> Result<MessageV2, MessageError> {
    let Value::Object(obj) = message else {
        return err("a message must be an object");
    };
    let text_field = |key: &str| {
        obj.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let id = text_field("id")
        .map(String::from)
        .unwrap_or_else(|| (defaults.new_id)());
    let created_at = match obj.get("createdAt") {
        None | Some(Value::Null) => defaults.now,
        Some(v) => iso_time::parse(v)
            .ok_or_else(|| MessageError("createdAt must be an ISO date".into()))?,
    };
    let thread_id = text_field("threadId")
        .or(defaults.thread_id)
        .map(String::from);
    let resource_id = text_field("resourceId")
        .or(defaults.resource_id)
        .map(String::from);
    let mut v2 = if let Some(Value::Object(c)) = obj.get("content")
        && c.get("format").and_then(Value::as_u64) == Some(2)
    {
        let role = text_field("role").unwrap_or_default();
        if !matches!(role, "user" | "assistant" | "system") {
            return err(format!(
                "role must be user, assistant or system (got `{role}`)"
            ));
        }
        let content: ContentV2 = serde_json::from_value(Value::Object(c.clone()))
            .map_err(|e| MessageError(format!("content: {e}")))?;
        // Clients often send only the parts; derive the summary fields they left out.
        let mut derived = MessageV2 {
            id: String::new(),
            role: String::new(),
            created_at,
            thread_id: None,
            resource_id: None,
            kind: v2_kind(),
            content: content.clone(),
        };
        finish_v2(&mut derived);
        let content = ContentV2 {
            content: content.content.or(derived.content.content),
            tool_invocations: content
                .tool_invocations
                .or(derived.content.tool_invocations),
            ..content
        };
        MessageV2 {
            id: id.clone(),
            role: role.to_string(),
            created_at,
            thread_id: None,
            resource_id: None,
            kind: text_field("type").unwrap_or("v2").to_string(),
            content,
        }
    } else {
        let cores = parse_one(message, "message")?;
        let id_once = || id.clone();
        let d = Defaults {
            thread_id: None,
            resource_id: None,
            new_id: &id_once,
            now: created_at,
        };
        let mut v = core_to_v2(&cores, &d);
        if v.len() != 1 {
            return err("a V1 message must hold one message");
        }
        v.remove(0)
    };
    v2.id = id;
    v2.created_at = created_at;
    v2.thread_id = thread_id;
    v2.resource_id = resource_id;
    Ok(v2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> (impl Fn() -> String + Send + Sync, jiff::Timestamp) {
        let n = std::sync::atomic::AtomicUsize::new(0);
        (
            move || {
                let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                format!("id{i}")
            },
            "2025-08-06T10:00:00Z".parse().unwrap(),
        )
    }

    fn turn() -> Vec<CoreMessage> {
        vec![
            CoreMessage::text(Role::User, "Weather in Paris?"),
            CoreMessage {
                role: Role::Assistant,
                parts: vec![Part::ToolCall {
                    id: "c1".into(),
                    name: "weather".into(),
                    args: json!({"city": "Paris"}),
                }],
            },
            CoreMessage {
                role: Role::Tool,
                parts: vec![Part::ToolResult {
                    id: "c1".into(),
                    name: "weather".into(),
                    result: json!({"t": 21}),
                    is_error: false,
                }],
            },
            CoreMessage::text(Role::Assistant, "It is 21°C."),
        ]
    }

    #[test]
    fn core_v2_core_round_trips_a_tool_turn() {
        let (ids, now) = defaults();
        let d = Defaults {
            thread_id: Some("t"),
            resource_id: Some("r"),
            new_id: &ids,
            now,
        };
        let v2 = core_to_v2(&turn(), &d);
        assert_eq!(v2.len(), 2, "{v2:?}");
        assert_eq!(v2[1].role, "assistant");
        assert_eq!(v2[1].content.content.as_deref(), Some("It is 21°C."));
        let inv = v2[1].content.tool_invocations.as_ref().unwrap();
        assert_eq!(inv[0]["state"], "result");
        assert_eq!(inv[0]["result"], json!({"t": 21}));
        assert_eq!(v2_to_core(&v2), turn());
        // Serialised form: ISO with millis, type v2, format 2.
        let j = serde_json::to_value(&v2[0]).unwrap();
        assert_eq!(j["createdAt"], "2025-08-06T10:00:00.000Z");
        assert_eq!(j["type"], "v2");
        assert_eq!(j["content"]["format"], 2);
        assert_eq!(serde_json::from_value::<MessageV2>(j).unwrap(), v2[0]);
    }

    #[test]
    fn v1_v2_v1_keeps_text_calls_and_results() {
        let (ids, now) = defaults();
        let d = Defaults {
            thread_id: Some("t"),
            resource_id: Some("r"),
            new_id: &ids,
            now,
        };
        let v2 = core_to_v2(&turn(), &d);
        let v1: Vec<Value> = v2.iter().flat_map(v2_to_v1).collect();
        let kinds: Vec<&str> = v1.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["text", "tool-call", "tool-result", "text"]);
        assert_eq!(v1[0]["content"], "Weather in Paris?");
        assert_eq!(v1[1]["content"][0]["args"], json!({"city": "Paris"}));
        assert_eq!(v1[2]["role"], "tool");
        assert_eq!(v1[2]["content"][0]["result"], json!({"t": 21}));
        assert_eq!(v1[3]["content"], "It is 21°C.");
        assert_eq!(v1[0]["threadId"], "t");
        let distinct: std::collections::HashSet<&str> =
            v1.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(distinct.len(), 4);
        // V1 records parse back to the same conversation.
        assert_eq!(parse_input(&Value::Array(v1.clone())).unwrap(), turn());
        // Each V1 record stores as V2 and lists again as V1 with the same content.
        for m in &v1[..2] {
            let stored = parse_stored(m, &d).unwrap();
            let back = v2_to_v1(&stored);
            assert_eq!(back[0]["content"], m["content"], "{m}");
            assert_eq!(back[0]["id"], m["id"]);
        }
    }

    #[test]
    fn ui_messages_round_trip() {
        let (ids, now) = defaults();
        let d = Defaults {
            thread_id: None,
            resource_id: None,
            new_id: &ids,
            now,
        };
        let v2 = core_to_v2(&turn(), &d);
        let ui: Vec<Value> = v2.iter().map(v2_to_ui).collect();
        assert_eq!(ui[1]["content"], "It is 21°C.");
        assert_eq!(ui[1]["parts"][0]["type"], "step-start");
        assert_eq!(parse_input(&Value::Array(ui)).unwrap(), turn());
        // toolInvocations without parts (older clients).
        let old = json!([{"role": "assistant", "content": "Done", "toolInvocations": [{"state": "result", "toolCallId": "c9", "toolName": "w", "args": {}, "result": 1}]}]);
        let core = parse_input(&old).unwrap();
        assert_eq!(core.len(), 3);
        assert_eq!(core[1].role, Role::Tool);
    }

    #[test]
    fn every_input_form_is_accepted() {
        assert_eq!(
            parse_input(&json!("hi")).unwrap(),
            vec![CoreMessage::text(Role::User, "hi")]
        );
        assert_eq!(parse_input(&json!(["a", "b"])).unwrap().len(), 2);
        let core = parse_input(&json!([{"role": "system", "content": "s"}, {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image", "image": "data:", "mimeType": "image/png"}]}])).unwrap();
        assert_eq!(core[0].role, Role::System);
        assert!(matches!(core[1].parts[1], Part::Image { .. }));
        let v2 = json!([{"id": "m", "role": "user", "createdAt": "2025-01-01T00:00:00.000Z", "content": {"format": 2, "parts": [{"type": "text", "text": "from v2"}]}}]);
        assert_eq!(parse_input(&v2).unwrap()[0].text_content(), "from v2");
        let v1 = json!([{"id": "m", "role": "user", "type": "text", "content": "from v1", "threadId": "t"}]);
        assert_eq!(parse_input(&v1).unwrap()[0].text_content(), "from v1");
    }

    #[test]
    fn bad_inputs_are_named() {
        for (v, needle) in [
            (json!(3), "messages must be"),
            (json!([3]), "messages[0] must be"),
            (json!([{"content": "x"}]), "messages[0].role is required"),
            (json!([{"role": "robot", "content": "x"}]), "one of system"),
            (json!([{"role": "user", "content": 5}]), "content must be"),
            (json!([{"role": "user"}]), "content is required"),
            (
                json!([{"role": "tool", "content": [{"type": "tool-result", "result": 1}]}]),
                "toolCallId",
            ),
            (
                json!([{"role": "tool", "content": [{"type": "text", "text": "x"}]}]),
                "only tool-result",
            ),
            (
                json!([{"role": "user", "content": [{"type": "hologram"}]}]),
                "unknown type",
            ),
            (
                json!([{"role": "user", "content": {"format": 2, "parts": 1}}]),
                "parts must be",
            ),
        ] {
            let e = parse_input(&v).unwrap_err().0;
            assert!(e.contains(needle), "{v}: {e}");
        }
        let (ids, now) = defaults();
        let d = Defaults {
            thread_id: None,
            resource_id: None,
            new_id: &ids,
            now,
        };
        assert!(
            parse_stored(
                &json!({"role": "user", "content": "x", "createdAt": "yesterday"}),
                &d
            )
            .is_err()
        );
        assert!(
            parse_stored(
                &json!({"role": "tool", "content": {"format": 2, "parts": []}}),
                &d
            )
            .is_err()
        );
        assert!(parse_stored(&json!([1]), &d).is_err());
        let ok = parse_stored(
            &json!({"role": "user", "content": "x", "createdAt": 1754474400000u64}),
            &d,
        )
        .unwrap();
        assert_eq!(ok.created_at_iso(), "2025-08-06T10:00:00.000Z");
    }
}
