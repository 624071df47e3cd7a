//! The message formats Mastra clients send and receive, and the conversions between them:
//! AI SDK CoreMessages (what a model is given), MastraMessageV2 (what memory stores: UI parts),
//! MastraMessageV1 (the legacy `messages` arrays) and AI SDK UIMessages (`uiMessages`).
//! Text, tool calls and tool results survive every conversion.

use std::collections::HashMap;

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

    /// Which content parts the AI SDK lets a message of this role hold.
    fn allows(self, part: &Part) -> bool {
        match self {
            Role::System => matches!(part, Part::Text(_)),
            Role::User => matches!(part, Part::Text(_) | Part::Image { .. } | Part::File { .. }),
            Role::Assistant => !matches!(part, Part::ToolResult { .. }),
            Role::Tool => matches!(part, Part::ToolResult { .. }),
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

/// UI file parts need a media type; an image given without one is stored under this.
const ANY_IMAGE: &str = "image/*";

impl Part {
    fn kind(&self) -> &'static str {
        match self {
            Part::Text(_) => "text",
            Part::Reasoning(_) => "reasoning",
            Part::Image { .. } => "image",
            Part::File { .. } => "file",
            Part::ToolCall { .. } => "tool-call",
            Part::ToolResult { .. } => "tool-result",
        }
    }

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

    /// A CoreMessage content part; `at` names it in errors. `None` for parts a local model has
    /// no use for (provider-encrypted `redacted-reasoning`).
    fn from_json(v: &Value, at: &str) -> Result<Option<Part>, MessageError> {
        let kind = match v.get("type") {
            Some(Value::String(k)) => k.as_str(),
            None => return err(format!("{at}.type is required")),
            Some(_) => return err(format!("{at}.type must be a string")),
        };
        let text = |key: &str| -> Result<String, MessageError> {
            match v.get(key) {
                Some(Value::String(s)) => Ok(s.clone()),
                None | Some(Value::Null) => err(format!("{at}.{key} is required")),
                Some(_) => err(format!("{at}.{key} must be a string")),
            }
        };
        Ok(Some(match kind {
            "text" => Part::Text(text("text")?),
            "reasoning" => Part::Reasoning(
                v.get("text")
                    .or_else(|| v.get("reasoning"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            ),
            "redacted-reasoning" => return Ok(None),
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
                // AI SDK v5 clients name the arguments `input`.
                args: v
                    .get("args")
                    .or_else(|| v.get("input"))
                    .cloned()
                    .unwrap_or_else(|| json!({})),
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
            other => return err(format!("{at}.type `{other}` is not a known part type")),
        }))
    }
}

/// A UI file part (or attachment) as a content part: images go back to image parts, which is
/// what a user sent in the first place far more often than an image-typed file part.
fn file_to_part(data: Value, mime: &str) -> Part {
    if mime.starts_with("image/") {
        Part::Image {
            image: data,
            mime_type: (mime != ANY_IMAGE).then(|| mime.to_string()),
        }
    } else {
        Part::File {
            data,
            mime_type: mime.to_string(),
        }
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

/// Dates as JavaScript's `toISOString` writes them; on input also epoch milliseconds and the
/// offset-less forms `new Date()` accepts (read as UTC).
pub mod iso_time {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(t: &jiff::Timestamp) -> String {
        t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
    }

    pub fn parse(v: &serde_json::Value) -> Option<jiff::Timestamp> {
        match v {
            serde_json::Value::String(s) => s.parse().ok().or_else(|| {
                let civil: jiff::civil::DateTime = s.parse().ok()?;
                jiff::tz::TimeZone::UTC.to_timestamp(civil).ok()
            }),
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
    #[serde(
        default,
        rename = "experimental_attachments",
        alias = "experimentalAttachments",
        skip_serializing_if = "Option::is_none"
    )]
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
        // Mastra's `agent.generate` also takes a single message.
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
        None | Some(Value::Null) => return err(format!("{at}.role is required")),
        _ => return err(format!("{at}.role must be a string")),
    };
    // UIMessages with role `data` carry stream data, no conversation (the AI SDK drops them).
    if role_name == "data" && obj.get("parts").is_some() {
        return Ok(Vec::new());
    }
    let Some(role) = Role::parse(role_name) else {
        return err(format!(
            "{at}.role must be one of system, user, assistant, tool (got `{role_name}`)"
        ));
    };
    let ui_role = || {
        if role == Role::Tool {
            err(format!(
                "{at}.role must be one of system, user, assistant for a message with parts"
            ))
        } else {
            Ok(())
        }
    };
    // MastraMessageV2: content is {format: 2, parts}.
    if let Some(Value::Object(c)) = obj.get("content")
        && c.get("format").and_then(Value::as_u64) == Some(2)
    {
        ui_role()?;
        let Some(Value::Array(parts)) = c.get("parts") else {
            return err(format!("{at}.content.parts must be an array"));
        };
        let text = c.get("content").and_then(Value::as_str);
        let parts = with_fallback_text(parts, text);
        let ui = UiSource {
            parts: &parts,
            invocations: list(c.get("toolInvocations")),
            attachments: list(c.get("experimental_attachments")),
        };
        return Ok(ui.to_core(role, false, None));
    }
    // AI SDK UIMessage: parts and/or toolInvocations beside a string content.
    let has_parts = obj.get("parts").is_some_and(|p| !p.is_null());
    if has_parts || obj.get("toolInvocations").is_some_and(Value::is_array) {
        ui_role()?;
        let parts: &[Value] = match obj.get("parts") {
            Some(Value::Array(p)) => p,
            None | Some(Value::Null) => &[],
            Some(_) => return err(format!("{at}.parts must be an array")),
        };
        let text = match obj.get("content") {
            Some(Value::String(s)) => Some(s.as_str()),
            None | Some(Value::Null) => None,
            Some(_) => return err(format!("{at}.content must be a string beside parts")),
        };
        let parts = with_fallback_text(parts, text);
        let ui = UiSource {
            parts: &parts,
            invocations: list(obj.get("toolInvocations")),
            attachments: list(obj.get("experimental_attachments")),
        };
        return Ok(ui.to_core(role, false, None));
    }
    // CoreMessage or MastraMessageV1.
    let items: Vec<(String, &Value)> = match obj.get("content") {
        Some(Value::String(s)) => return Ok(vec![CoreMessage::text(role, s.clone())]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(j, p)| (format!("{at}.content[{j}]"), p))
            .collect(),
        // Some Mastra versions wrote a lone part object as a V1 content.
        Some(p @ Value::Object(o)) if o.contains_key("type") => vec![(format!("{at}.content"), p)],
        None | Some(Value::Null) => return err(format!("{at}.content is required")),
        Some(_) => {
            return err(format!(
                "{at}.content must be a string or an array of parts"
            ));
        }
    };
    let mut parts = Vec::new();
    for (where_, p) in items {
        let part = match p {
            Value::String(s) => Part::Text(s.clone()),
            _ => match Part::from_json(p, &where_)? {
                Some(part) => part,
                None => continue,
            },
        };
        if !role.allows(&part) {
            return err(format!(
                "{where_}: a {} message cannot hold a {} part",
                role.as_str(),
                part.kind()
            ));
        }
        parts.push(part);
    }
    Ok(vec![CoreMessage { role, parts }])
}

fn list(v: Option<&Value>) -> Option<&[Value]> {
    v.and_then(Value::as_array).map(Vec::as_slice)
}

/// UI parts plus the string `content`, for clients that send the text only there: the text
/// becomes a text part when the parts hold none.
fn with_fallback_text(parts: &[Value], text: Option<&str>) -> Vec<Value> {
    let mut parts = parts.to_vec();
    if let Some(text) = text.filter(|t| !t.is_empty())
        && !parts.iter().any(|p| p["type"] == "text")
    {
        parts.push(json!({"type": "text", "text": text}));
    }
    parts
}

fn invocation_of(p: &Value) -> Option<&Value> {
    if p["type"] != "tool-invocation" {
        return None;
    }
    let inv = &p["toolInvocation"];
    inv.is_object().then_some(inv)
}

/// Missing, null or `{}`: what Mastra writes for a tool result stored apart from its call.
fn args_unknown(inv: &Value) -> bool {
    match inv.get("args") {
        None | Some(Value::Null) => true,
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    }
}

fn reasoning_text(p: &Value) -> String {
    match p["reasoning"].as_str() {
        Some(r) if !r.is_empty() => r.to_string(),
        // Mastra stores the text only in `details`.
        _ => p["details"]
            .as_array()
            .map(|ds| {
                ds.iter()
                    .filter_map(|d| d["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("")
            })
            .unwrap_or_default(),
    }
}

/// A message in UI form (V2 content or UIMessage).
struct UiSource<'a> {
    parts: &'a [Value],
    invocations: Option<&'a [Value]>,
    attachments: Option<&'a [Value]>,
}

impl UiSource<'_> {
    /// Walks the parts in order. An assistant's answered tool calls become an assistant message
    /// with the calls (and the text before them) plus a tool message with the results; each new
    /// step starts a new pair. Unanswered calls are kept only when `keep_calls`. `known_args`
    /// fills in the arguments of a result stored apart from its call.
    fn to_core(
        &self,
        role: Role,
        keep_calls: bool,
        known_args: Option<&HashMap<String, Value>>,
    ) -> Vec<CoreMessage> {
        // Older clients send the invocations only in `toolInvocations`; the AI SDK puts them
        // before the text then.
        let synthetic: Vec<Value>;
        let parts = if self.parts.iter().any(|p| invocation_of(p).is_some()) {
            self.parts
        } else if let Some(inv) = self.invocations {
            synthetic = inv
                .iter()
                .map(|i| json!({"type": "tool-invocation", "toolInvocation": i}))
                .chain(self.parts.iter().cloned())
                .collect();
            &synthetic
        } else {
            self.parts
        };
        if role != Role::Assistant {
            let mut core: Vec<Part> = parts
                .iter()
                .filter_map(|p| match p["type"].as_str()? {
                    "text" => Some(Part::Text(p["text"].as_str()?.to_string())),
                    "file" => Some(file_to_part(
                        p.get("data").cloned().unwrap_or(Value::Null),
                        p["mimeType"].as_str().unwrap_or_default(),
                    )),
                    _ => None,
                })
                .collect();
            if let Some(attachments) = self.attachments {
                core.extend(attachments.iter().filter_map(|a| {
                    let url = a.get("url")?.clone();
                    let mime = a["contentType"]
                        .as_str()
                        .unwrap_or("application/octet-stream");
                    Some(file_to_part(url, mime))
                }));
            }
            if role == Role::System {
                core.retain(|p| matches!(p, Part::Text(_)));
            }
            return vec![CoreMessage { role, parts: core }];
        }
        let mut out = Vec::new();
        let mut current: Vec<Part> = Vec::new();
        let mut results: Vec<Part> = Vec::new();
        let flush =
            |out: &mut Vec<CoreMessage>, current: &mut Vec<Part>, results: &mut Vec<Part>| {
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
        let has_calls =
            |current: &[Part]| current.iter().any(|p| matches!(p, Part::ToolCall { .. }));
        let mut last_step: Option<u64> = None;
        // A step-start seen since the last invocation.
        let mut new_step = false;
        for p in parts {
            if let Some(inv) = invocation_of(p) {
                let state = inv["state"].as_str().unwrap_or("call");
                if state != "result" && !keep_calls {
                    continue;
                }
                let step = inv["step"].as_u64();
                let other_step = step.is_some() && last_step.is_some() && step != last_step;
                if has_calls(&current) && (new_step || other_step) {
                    flush(&mut out, &mut current, &mut results);
                }
                last_step = step;
                new_step = false;
                let id = inv["toolCallId"].as_str().unwrap_or_default().to_string();
                let name = inv["toolName"].as_str().unwrap_or_default().to_string();
                let args = match known_args.and_then(|k| k.get(&id)) {
                    Some(known) if args_unknown(inv) => known.clone(),
                    _ => inv.get("args").cloned().unwrap_or_else(|| json!({})),
                };
                current.push(Part::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    args,
                });
                if state == "result" {
                    results.push(Part::ToolResult {
                        id,
                        name,
                        result: inv.get("result").cloned().unwrap_or(Value::Null),
                        is_error: inv["isError"].as_bool().unwrap_or(false),
                    });
                }
                continue;
            }
            let part = match p["type"].as_str() {
                Some("step-start") => {
                    new_step = true;
                    continue;
                }
                Some("text") => Part::Text(p["text"].as_str().unwrap_or_default().to_string()),
                Some("reasoning") => Part::Reasoning(reasoning_text(p)),
                Some("file") => file_to_part(
                    p.get("data").cloned().unwrap_or(Value::Null),
                    p["mimeType"].as_str().unwrap_or_default(),
                ),
                _ => continue, // source and unknown parts: no model content
            };
            // Content after tool calls belongs to the next model step.
            if has_calls(&current) {
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

/// The joined text and the tool invocations of V2 parts, for `content` and `toolInvocations`.
fn summary(parts: &[Value]) -> (Option<String>, Option<Vec<Value>>) {
    let text: String = parts
        .iter()
        .filter(|p| p["type"] == "text")
        .filter_map(|p| p["text"].as_str())
        .collect::<Vec<_>>()
        .join("");
    let inv: Vec<Value> = parts.iter().filter_map(invocation_of).cloned().collect();
    (
        (!text.is_empty()).then_some(text),
        (!inv.is_empty()).then_some(inv),
    )
}

fn finish_v2(m: &mut MessageV2) {
    let (text, inv) = summary(&m.content.parts);
    m.content.content = text;
    m.content.tool_invocations = inv;
}

fn file_json(data: &Value, mime: &str) -> Value {
    json!({"type": "file", "mimeType": mime, "data": data})
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
                    let part = match p {
                        Part::Text(t) => json!({"type": "text", "text": t}),
                        Part::Image { image, mime_type } => {
                            file_json(image, mime_type.as_deref().unwrap_or(ANY_IMAGE))
                        }
                        Part::File { data, mime_type } => file_json(data, mime_type),
                        _ => continue,
                    };
                    v.content.parts.push(part);
                }
                finish_v2(&mut v);
                out.push(v);
                after_tool = false;
                step = 0;
            }
            Role::Assistant => {
                let continues = after_tool && out.last().is_some_and(|v| v.role == "assistant");
                if continues {
                    step += 1;
                } else {
                    out.push(new_v2("assistant", defaults));
                    step = 0;
                }
                let Some(v) = out.last_mut() else { continue };
                v.content.parts.push(json!({"type": "step-start"}));
                for p in &m.parts {
                    let part = match p {
                        Part::Text(t) => json!({"type": "text", "text": t}),
                        Part::Reasoning(t) => {
                            json!({"type": "reasoning", "reasoning": t, "details": [{"type": "text", "text": t}]})
                        }
                        Part::ToolCall { id, name, args } => json!({
                            "type": "tool-invocation",
                            "toolInvocation": {"state": "call", "step": step, "toolCallId": id, "toolName": name, "args": args},
                        }),
                        Part::File { data, mime_type } => file_json(data, mime_type),
                        Part::Image { image, mime_type } => {
                            file_json(image, mime_type.as_deref().unwrap_or(ANY_IMAGE))
                        }
                        Part::ToolResult { .. } => continue,
                    };
                    v.content.parts.push(part);
                }
                finish_v2(v);
                after_tool = false;
            }
            Role::Tool => {
                // A result with no assistant before it is stored on its own (no step-start):
                // that is how a V1 tool message saved by itself looks.
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
                        .filter_map(Value::as_object_mut)
                        .find(|i| i.get("toolCallId").and_then(Value::as_str) == Some(id));
                    match existing {
                        Some(inv) => {
                            inv.insert("state".into(), json!("result"));
                            inv.insert("result".into(), result.clone());
                            if *is_error {
                                inv.insert("isError".into(), json!(true));
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

fn ui_of(m: &MessageV2) -> UiSource<'_> {
    UiSource {
        parts: &m.content.parts,
        invocations: m.content.tool_invocations.as_deref(),
        attachments: m.content.experimental_attachments.as_deref(),
    }
}

/// V2 → Core for a model. Unanswered tool calls are dropped (they cannot be replayed); a
/// result stored apart from its call (a V1 tool message saved by itself) gets the call's
/// arguments from the earlier message.
pub fn v2_to_core(messages: &[MessageV2]) -> Vec<CoreMessage> {
    let known_args: HashMap<String, Value> = messages
        .iter()
        .flat_map(|m| m.content.parts.iter().filter_map(invocation_of))
        .filter(|inv| !args_unknown(inv))
        .filter_map(|inv| Some((inv["toolCallId"].as_str()?.to_string(), inv["args"].clone())))
        .collect();
    messages
        .iter()
        .flat_map(|m| ui_of(m).to_core(role_of(m), false, Some(&known_args)))
        .filter(|c| !c.parts.is_empty())
        .collect()
}

/// V2 → MastraMessageV1 records (several for an assistant turn with tool calls).
pub fn v2_to_v1(message: &MessageV2) -> Vec<Value> {
    let parts = &message.content.parts;
    let mut cores = ui_of(message).to_core(role_of(message), true, None);
    // A V1 tool message saved by itself lists as that tool message again, not with a made-up
    // call whose arguments were never known.
    let result_only = role_of(message) == Role::Assistant
        && !parts.is_empty()
        && parts
            .iter()
            .all(|p| invocation_of(p).is_some_and(|i| i["state"] == "result" && args_unknown(i)));
    if result_only {
        cores.retain(|c| c.role == Role::Tool);
    }
    let created = message.created_at_iso();
    let keep_empty = cores.len() == 1;
    cores
        .iter()
        .filter(|c| keep_empty || !c.parts.is_empty())
        .enumerate()
        .map(|(i, c)| {
            let has_calls = c.parts.iter().any(|p| matches!(p, Part::ToolCall { .. }));
            let array = || Value::Array(c.parts.iter().map(Part::to_json).collect());
            let (kind, content) = match c.role {
                Role::Tool => ("tool-result", array()),
                _ if has_calls => ("tool-call", array()),
                _ => match c.parts.as_slice() {
                    [] => ("text", json!("")),
                    [Part::Text(t)] => ("text", json!(t)),
                    _ => ("text", array()),
                },
            };
            let mut v = Map::new();
            let id = if i == 0 {
                message.id.clone()
            } else {
                format!("{}__{i}", message.id)
            };
            v.insert("id".into(), json!(id));
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
    let c = &message.content;
    let (joined, derived_inv) = summary(&c.parts);
    let mut v = json!({
        "id": message.id,
        "role": message.role,
        "content": c.content.clone().or(joined).unwrap_or_default(),
        "createdAt": message.created_at_iso(),
        "parts": c.parts,
    });
    if let Some(i) = c.tool_invocations.as_ref().or(derived_inv.as_ref()) {
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
/// A V1 message becomes one V2 message (a tool message becomes an assistant's answered tool
/// invocations).
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
                "role must be one of user, assistant, system (got `{role}`)"
            ));
        }
        if !c.get("parts").is_some_and(Value::is_array) {
            return err("content.parts must be an array");
        }
        let content: ContentV2 = serde_json::from_value(Value::Object(c.clone()))
            .map_err(|e| MessageError(format!("content: {e}")))?;
        // Clients often send only the parts; derive the summary fields they left out.
        let (text, inv) = summary(&content.parts);
        let content = ContentV2 {
            content: content.content.or(text),
            tool_invocations: content.tool_invocations.or(inv),
            ..content
        };
        MessageV2 {
            id: String::new(),
            role: role.to_string(),
            created_at,
            thread_id: None,
            resource_id: None,
            kind: text_field("type").unwrap_or("v2").to_string(),
            content,
        }
    } else {
        // `data` is a UIMessage role, with nothing to store.
        if text_field("role") == Some("data") {
            return err("role must be one of system, user, assistant, tool (got `data`)");
        }
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
            return err("a message must hold exactly one message");
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

    type Ids = Box<dyn Fn() -> String + Send + Sync>;

    fn ids() -> Ids {
        let n = std::sync::atomic::AtomicUsize::new(0);
        Box::new(move || {
            let i = n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            format!("id{i}")
        })
    }

    fn now() -> jiff::Timestamp {
        "2025-08-06T10:00:00Z".parse().unwrap()
    }

    fn defaults(ids: &Ids) -> Defaults<'_> {
        Defaults {
            thread_id: Some("t"),
            resource_id: Some("r"),
            new_id: ids.as_ref(),
            now: now(),
        }
    }

    fn call(id: &str, args: Value) -> Part {
        Part::ToolCall {
            id: id.into(),
            name: "weather".into(),
            args,
        }
    }

    fn result(id: &str, result: Value) -> Part {
        Part::ToolResult {
            id: id.into(),
            name: "weather".into(),
            result,
            is_error: false,
        }
    }

    fn msg(role: Role, parts: Vec<Part>) -> CoreMessage {
        CoreMessage { role, parts }
    }

    fn turn() -> Vec<CoreMessage> {
        vec![
            CoreMessage::text(Role::User, "Weather in Paris?"),
            msg(Role::Assistant, vec![call("c1", json!({"city": "Paris"}))]),
            msg(Role::Tool, vec![result("c1", json!({"t": 21}))]),
            CoreMessage::text(Role::Assistant, "It is 21°C."),
        ]
    }

    /// Text before calls, reasoning, two steps, parallel calls, an error result.
    fn long_turn() -> Vec<CoreMessage> {
        vec![
            CoreMessage::text(Role::System, "Be brief."),
            msg(
                Role::User,
                vec![
                    Part::Text("Compare these".into()),
                    Part::Image {
                        image: json!("https://x/a.png"),
                        mime_type: Some("image/png".into()),
                    },
                    Part::File {
                        data: json!("JVBERi0="),
                        mime_type: "application/pdf".into(),
                    },
                ],
            ),
            msg(
                Role::Assistant,
                vec![
                    Part::Reasoning("Need both cities.".into()),
                    Part::Text("Let me check.".into()),
                    call("c1", json!({"city": "Paris"})),
                    call("c2", json!({"city": "Rome"})),
                ],
            ),
            msg(
                Role::Tool,
                vec![
                    result("c1", json!({"t": 21})),
                    Part::ToolResult {
                        id: "c2".into(),
                        name: "weather".into(),
                        result: json!("timeout"),
                        is_error: true,
                    },
                ],
            ),
            msg(Role::Assistant, vec![call("c3", json!({"city": "Rome"}))]),
            msg(Role::Tool, vec![result("c3", json!({"t": 25}))]),
            CoreMessage::text(Role::Assistant, "Rome is warmer."),
        ]
    }

    #[test]
    fn core_v2_core_round_trips_a_tool_turn() {
        let ids = ids();
        let v2 = core_to_v2(&turn(), &defaults(&ids));
        assert_eq!(v2.len(), 2, "{v2:?}");
        assert_eq!(v2[1].role, "assistant");
        assert_eq!(
            v2[1].content.parts,
            vec![
                json!({"type": "step-start"}),
                json!({"type": "tool-invocation", "toolInvocation": {"state": "result", "step": 0, "toolCallId": "c1", "toolName": "weather", "args": {"city": "Paris"}, "result": {"t": 21}}}),
                json!({"type": "step-start"}),
                json!({"type": "text", "text": "It is 21°C."}),
            ]
        );
        assert_eq!(v2[1].content.content.as_deref(), Some("It is 21°C."));
        let inv = v2[1].content.tool_invocations.as_ref().unwrap();
        assert_eq!(inv[0]["state"], "result");
        assert_eq!(v2[1].thread_id.as_deref(), Some("t"));
        assert_eq!(v2_to_core(&v2), turn());
        // Serialised form: ISO with millis, type v2, format 2; and back.
        let j = serde_json::to_value(&v2[0]).unwrap();
        assert_eq!(j["createdAt"], "2025-08-06T10:00:00.000Z");
        assert_eq!(j["type"], "v2");
        assert_eq!(j["content"]["format"], 2);
        assert_eq!(serde_json::from_value::<MessageV2>(j).unwrap(), v2[0]);
    }

    #[test]
    fn core_v2_core_round_trips_steps_media_reasoning_and_errors() {
        let ids = ids();
        let v2 = core_to_v2(&long_turn(), &defaults(&ids));
        let roles: Vec<&str> = v2.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant"]);
        let steps: Vec<u64> = v2[2]
            .content
            .tool_invocations
            .iter()
            .flatten()
            .map(|i| i["step"].as_u64().unwrap())
            .collect();
        assert_eq!(steps, [0, 0, 1]);
        assert_eq!(
            v2[2].content.content.as_deref(),
            Some("Let me check.Rome is warmer.")
        );
        assert_eq!(v2_to_core(&v2), long_turn());
        // Through JSON too, as the store keeps it.
        let stored: Vec<MessageV2> = v2
            .iter()
            .map(|m| serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap())
            .collect();
        assert_eq!(v2_to_core(&stored), long_turn());
    }

    #[test]
    fn unanswered_calls_are_dropped_for_models_and_listed_in_v1() {
        let ids = ids();
        let core = vec![
            CoreMessage::text(Role::User, "hi"),
            msg(
                Role::Assistant,
                vec![Part::Text("Checking".into()), call("c1", json!({"a": 1}))],
            ),
        ];
        let v2 = core_to_v2(&core, &defaults(&ids));
        assert_eq!(
            v2[1].content.tool_invocations.as_ref().unwrap()[0]["state"],
            "call"
        );
        assert_eq!(
            v2_to_core(&v2),
            vec![
                CoreMessage::text(Role::User, "hi"),
                CoreMessage::text(Role::Assistant, "Checking"),
            ]
        );
        let v1 = v2_to_v1(&v2[1]);
        assert_eq!(v1.len(), 1);
        assert_eq!(v1[0]["type"], "tool-call");
        assert_eq!(v1[0]["content"][1]["args"], json!({"a": 1}));
    }

    #[test]
    fn v2_to_v1_expands_a_tool_turn() {
        let ids = ids();
        let v2 = core_to_v2(&turn(), &defaults(&ids));
        let v1: Vec<Value> = v2.iter().flat_map(v2_to_v1).collect();
        let kinds: Vec<&str> = v1.iter().map(|m| m["type"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["text", "tool-call", "tool-result", "text"]);
        assert_eq!(
            v1[0],
            json!({"id": "id1", "role": "user", "content": "Weather in Paris?", "type": "text", "createdAt": "2025-08-06T10:00:00.000Z", "threadId": "t", "resourceId": "r"})
        );
        assert_eq!(
            v1[1]["content"],
            json!([{"type": "tool-call", "toolCallId": "c1", "toolName": "weather", "args": {"city": "Paris"}}])
        );
        assert_eq!(v1[2]["role"], "tool");
        assert_eq!(v1[2]["content"][0]["result"], json!({"t": 21}));
        assert_eq!(v1[3]["content"], "It is 21°C.");
        let ids: Vec<&str> = v1.iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["id1", "id2", "id2__1", "id2__2"]);
        // The records given back as input are the same conversation.
        assert_eq!(parse_input(&Value::Array(v1)).unwrap(), turn());
    }

    #[test]
    fn v1_v2_v1_round_trips_each_record() {
        let ids = ids();
        let d = Defaults {
            thread_id: None,
            resource_id: None,
            new_id: ids.as_ref(),
            now: now(),
        };
        let at = "2025-08-06T10:00:00.000Z";
        let records = [
            json!({"id": "m1", "role": "system", "type": "text", "content": "Be brief."}),
            json!({"id": "m2", "role": "user", "type": "text", "content": "Weather?"}),
            json!({"id": "m3", "role": "user", "type": "text", "content": [{"type": "text", "text": "This one"}, {"type": "image", "image": "https://x/a.png", "mimeType": "image/png"}, {"type": "file", "data": "JVBERi0=", "mimeType": "application/pdf"}]}),
            json!({"id": "m4", "role": "assistant", "type": "tool-call", "content": [{"type": "text", "text": "Checking."}, {"type": "tool-call", "toolCallId": "c1", "toolName": "weather", "args": {"city": "Paris"}}]}),
            json!({"id": "m5", "role": "tool", "type": "tool-result", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "weather", "result": {"t": 21}}]}),
            json!({"id": "m6", "role": "assistant", "type": "text", "content": [{"type": "reasoning", "text": "Warm."}, {"type": "text", "text": "It is 21°C."}]}),
            json!({"id": "m7", "role": "assistant", "type": "text", "content": "Anything else?"}),
        ];
        let mut stored = Vec::new();
        for r in &records {
            let mut r = r.clone();
            r["threadId"] = json!("t");
            r["resourceId"] = json!("u");
            r["createdAt"] = json!(at);
            let v2 = parse_stored(&r, &d).unwrap();
            assert_eq!(v2.id, r["id"]);
            let back = v2_to_v1(&v2);
            assert_eq!(back.len(), 1, "{r} → {back:?}");
            let mut back = back.into_iter().next().unwrap();
            back.as_object_mut().unwrap().remove("toolCallIds");
            assert_eq!(back, r);
            stored.push(v2);
        }
        // Saved one record at a time, the tool result still reaches a model with its call's
        // arguments, and the call is not repeated.
        let core = v2_to_core(&stored);
        assert_eq!(
            core[3..6],
            [
                CoreMessage::text(Role::Assistant, "Checking."),
                msg(Role::Assistant, vec![call("c1", json!({"city": "Paris"}))]),
                msg(Role::Tool, vec![result("c1", json!({"t": 21}))]),
            ]
        );
    }

    #[test]
    fn v2_ui_input_round_trips() {
        let ids = ids();
        for conversation in [turn(), long_turn()] {
            let v2 = core_to_v2(&conversation, &defaults(&ids));
            let ui: Vec<Value> = v2.iter().map(v2_to_ui).collect();
            assert_eq!(parse_input(&Value::Array(ui)).unwrap(), conversation);
        }
        let v2 = core_to_v2(&turn(), &defaults(&ids));
        let ui = v2_to_ui(&v2[1]);
        assert_eq!(ui["content"], "It is 21°C.");
        assert_eq!(ui["createdAt"], "2025-08-06T10:00:00.000Z");
        assert_eq!(ui["parts"][0]["type"], "step-start");
        assert_eq!(ui["toolInvocations"][0]["toolCallId"], "c1");
        assert!(ui.get("reasoning").is_none());
        // V2 objects themselves are accepted as input too.
        let as_json = serde_json::to_value(&v2).unwrap();
        assert_eq!(parse_input(&as_json).unwrap(), turn());
    }

    #[test]
    fn every_input_form_is_accepted() {
        assert_eq!(
            parse_input(&json!("hi")).unwrap(),
            vec![CoreMessage::text(Role::User, "hi")]
        );
        assert_eq!(
            parse_input(&json!(["a", "b"])).unwrap(),
            vec![
                CoreMessage::text(Role::User, "a"),
                CoreMessage::text(Role::User, "b")
            ]
        );
        assert_eq!(
            parse_input(&json!({"role": "user", "content": "one"})).unwrap(),
            vec![CoreMessage::text(Role::User, "one")]
        );
        // CoreMessages, all roles.
        let core = parse_input(&json!([
            {"role": "system", "content": "s"},
            {"role": "user", "content": [{"type": "text", "text": "x"}, {"type": "image", "image": "data:", "mimeType": "image/png"}]},
            {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c1", "toolName": "w", "args": {"q": 1}}, {"type": "redacted-reasoning", "data": "…"}]},
            {"role": "tool", "content": [{"type": "tool-result", "toolCallId": "c1", "toolName": "w", "result": 2, "isError": true}]},
        ]))
        .unwrap();
        assert_eq!(core.len(), 4);
        assert_eq!(core[0], CoreMessage::text(Role::System, "s"));
        assert!(matches!(core[1].parts[1], Part::Image { .. }));
        assert_eq!(
            core[2].parts,
            vec![Part::ToolCall {
                id: "c1".into(),
                name: "w".into(),
                args: json!({"q": 1})
            }]
        );
        assert_eq!(
            core[3].parts,
            vec![Part::ToolResult {
                id: "c1".into(),
                name: "w".into(),
                result: json!(2),
                is_error: true
            }]
        );
        // Mixed: string, V1, V2, UIMessage (parts), UIMessage (toolInvocations only).
        let mixed = json!([
            "plain",
            {"id": "m", "role": "user", "type": "text", "content": "from v1", "threadId": "t", "createdAt": "2025-01-01T00:00:00.000Z"},
            {"id": "m", "role": "user", "createdAt": "2025-01-01T00:00:00.000Z", "type": "v2", "content": {"format": 2, "parts": [{"type": "text", "text": "from v2"}]}},
            {"id": "u", "role": "user", "content": "from ui", "parts": [{"type": "text", "text": "from ui"}], "experimental_attachments": [{"name": "a.png", "contentType": "image/png", "url": "https://x/a.png"}]},
            {"id": "a", "role": "assistant", "content": "Done", "toolInvocations": [{"state": "result", "toolCallId": "c9", "toolName": "w", "args": {}, "result": 1}]},
            {"id": "d", "role": "data", "content": "", "parts": []},
            {"id": "o", "role": "user", "content": "only content", "parts": []},
        ]);
        let core = parse_input(&mixed).unwrap();
        let summary: Vec<(Role, String)> =
            core.iter().map(|m| (m.role, m.text_content())).collect();
        assert_eq!(
            summary,
            [
                (Role::User, "plain".into()),
                (Role::User, "from v1".into()),
                (Role::User, "from v2".into()),
                (Role::User, "from ui".into()),
                (Role::Assistant, "".into()),
                (Role::Tool, "".into()),
                (Role::Assistant, "Done".into()),
                (Role::User, "only content".into()),
            ]
        );
        assert_eq!(
            core[3].parts[1],
            Part::Image {
                image: json!("https://x/a.png"),
                mime_type: Some("image/png".into())
            }
        );
        // Mastra keeps reasoning text in `details` only.
        let r = parse_input(&json!([{"role": "assistant", "content": {"format": 2, "parts": [{"type": "reasoning", "reasoning": "", "details": [{"type": "text", "text": "hmm"}]}, {"type": "text", "text": "ok"}]}}])).unwrap();
        assert_eq!(
            r[0].parts,
            vec![Part::Reasoning("hmm".into()), Part::Text("ok".into())]
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        for (v, expected) in [
            (
                json!(3),
                "messages must be a string, an array or a message object",
            ),
            (
                json!(null),
                "messages must be a string, an array or a message object",
            ),
            (
                json!(["ok", 3]),
                "messages[1] must be a string or a message object",
            ),
            (json!([{"content": "x"}]), "messages[0].role is required"),
            (
                json!([{"role": 1, "content": "x"}]),
                "messages[0].role must be a string",
            ),
            (
                json!(["a", "b", {"role": "robot", "content": "x"}]),
                "messages[2].role must be one of system, user, assistant, tool (got `robot`)",
            ),
            (
                json!([{"role": "user", "content": 5}]),
                "messages[0].content must be a string or an array of parts",
            ),
            (json!([{"role": "user"}]), "messages[0].content is required"),
            (
                json!([{"role": "tool", "content": [{"type": "tool-result", "result": 1}]}]),
                "messages[0].content[0].toolCallId is required",
            ),
            (
                json!([{"role": "assistant", "content": [{"type": "tool-call", "toolCallId": 7, "toolName": "w"}]}]),
                "messages[0].content[0].toolCallId must be a string",
            ),
            (
                json!([{"role": "tool", "content": [{"type": "text", "text": "x"}]}]),
                "messages[0].content[0]: a tool message cannot hold a text part",
            ),
            (
                json!([{"role": "user", "content": ["a", {"type": "tool-call", "toolCallId": "c", "toolName": "w"}]}]),
                "messages[0].content[1]: a user message cannot hold a tool-call part",
            ),
            (
                json!([{"role": "user", "content": [{"type": "hologram"}]}]),
                "messages[0].content[0].type `hologram` is not a known part type",
            ),
            (
                json!([{"role": "user", "content": [{"text": "x"}]}]),
                "messages[0].content[0].type is required",
            ),
            (
                json!([{"role": "user", "content": [{"type": "text"}]}]),
                "messages[0].content[0].text is required",
            ),
            (
                json!([{"role": "user", "content": {"format": 2, "parts": 1}}]),
                "messages[0].content.parts must be an array",
            ),
            (
                json!([{"role": "tool", "content": {"format": 2, "parts": []}}]),
                "messages[0].role must be one of system, user, assistant for a message with parts",
            ),
            (
                json!([{"role": "user", "content": "x", "parts": "y"}]),
                "messages[0].parts must be an array",
            ),
        ] {
            assert_eq!(parse_input(&v), Err(MessageError(expected.into())), "{v}");
        }
    }

    #[test]
    fn parse_stored_fills_defaults_and_derives_summaries() {
        let ids = ids();
        let d = Defaults {
            thread_id: Some("t"),
            resource_id: Some("r"),
            new_id: ids.as_ref(),
            now: now(),
        };
        let v1 = parse_stored(&json!({"role": "user", "content": "x"}), &d).unwrap();
        assert_eq!(
            (v1.id.as_str(), v1.thread_id.as_deref()),
            ("id1", Some("t"))
        );
        assert_eq!(v1.created_at_iso(), "2025-08-06T10:00:00.000Z");
        assert_eq!(v1.content.parts, vec![json!({"type": "text", "text": "x"})]);
        let v2 = parse_stored(
            &json!({"id": "k", "role": "assistant", "threadId": "t2", "resourceId": "r2", "type": "custom", "createdAt": "2025-01-02T03:04:05.678Z",
                    "content": {"format": 2, "parts": [{"type": "step-start"}, {"type": "tool-invocation", "toolInvocation": {"state": "result", "toolCallId": "c", "toolName": "w", "args": {}, "result": 1}}, {"type": "text", "text": "done"}],
                                "experimental_attachments": [{"name": "a", "contentType": "text/plain", "url": "data:,x"}], "metadata": {"k": 1}}}),
            &d,
        )
        .unwrap();
        assert_eq!(v2.id, "k");
        assert_eq!(v2.kind, "custom");
        assert_eq!(v2.thread_id.as_deref(), Some("t2"));
        assert_eq!(v2.created_at_iso(), "2025-01-02T03:04:05.678Z");
        assert_eq!(v2.content.content.as_deref(), Some("done"));
        assert_eq!(v2.content.tool_invocations.as_ref().unwrap().len(), 1);
        let j = serde_json::to_value(&v2).unwrap();
        assert_eq!(j["content"]["experimental_attachments"][0]["name"], "a");
        assert_eq!(j["content"]["metadata"], json!({"k": 1}));
        let ui = v2_to_ui(&v2);
        assert_eq!(ui["experimental_attachments"][0]["name"], "a");
        assert_eq!(ui["metadata"], json!({"k": 1}));
        // Dates: epoch millis, date only, offsets.
        for (given, iso) in [
            (json!(1754474400000u64), "2025-08-06T10:00:00.000Z"),
            (json!("2025-08-06"), "2025-08-06T00:00:00.000Z"),
            (
                json!("2025-08-06T12:00:00+02:00"),
                "2025-08-06T10:00:00.000Z",
            ),
        ] {
            let m = parse_stored(
                &json!({"role": "user", "content": "x", "createdAt": given}),
                &d,
            )
            .unwrap();
            assert_eq!(m.created_at_iso(), iso);
        }
        for (bad, expected) in [
            (json!([1]), "a message must be an object"),
            (
                json!({"role": "user", "content": "x", "createdAt": "yesterday"}),
                "createdAt must be an ISO date",
            ),
            (
                json!({"role": "tool", "content": {"format": 2, "parts": []}}),
                "role must be one of user, assistant, system (got `tool`)",
            ),
            (
                json!({"role": "user", "content": {"format": 2, "parts": {}}}),
                "content.parts must be an array",
            ),
            (
                json!({"role": "data", "content": "x"}),
                "role must be one of system, user, assistant, tool (got `data`)",
            ),
            (json!({"content": "x"}), "message.role is required"),
        ] {
            assert_eq!(
                parse_stored(&bad, &d),
                Err(MessageError(expected.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn never_panics_on_odd_json() {
        let odd = [
            json!({}),
            json!([[]]),
            json!([{"role": "assistant", "content": {"format": 2, "parts": [1, "x", null, {"type": 3}, {"type": "tool-invocation"}, {"type": "tool-invocation", "toolInvocation": "x"}, {"type": "tool-invocation", "toolInvocation": {"state": 5, "toolCallId": [], "args": "s", "step": -1}}, {"type": "reasoning", "details": "x"}, {"type": "file"}]}}]),
            json!([{"role": "user", "content": {"format": 2, "parts": [{"type": "text", "text": 5}, {"type": "file", "mimeType": 1}]}, "experimental_attachments": [1, {"url": null}]}]),
            json!([{"role": "assistant", "parts": [], "toolInvocations": [1, {"state": "result"}], "content": "x"}]),
            json!([{"role": "user", "content": {"format": 2.0, "parts": []}}]),
            json!([{"role": "user", "content": {"format": 300, "parts": []}}]),
            json!([{"role": "assistant", "content": [{"type": "tool-call", "toolCallId": "c", "toolName": "w", "args": null}]}]),
            json!([{"role": "user", "content": {"type": "text", "text": "lone part"}}]),
            json!({"role": "user", "content": "x", "createdAt": 1e300}),
            json!({"role": "assistant", "content": {"format": 2, "parts": [{"type": "tool-invocation", "toolInvocation": []}], "toolInvocations": 5}}),
        ];
        let ids = ids();
        let d = defaults(&ids);
        for v in &odd {
            if let Ok(core) = parse_input(v) {
                let v2 = core_to_v2(&core, &d);
                let _ = v2_to_core(&v2);
                for m in &v2 {
                    let _ = (v2_to_v1(m), v2_to_ui(m));
                }
                for m in &core {
                    let _ = m.to_json();
                }
            }
            if let Ok(m) = parse_stored(v, &d) {
                let _ = (
                    v2_to_v1(&m),
                    v2_to_ui(&m),
                    v2_to_core(std::slice::from_ref(&m)),
                );
                let _ = serde_json::to_string(&m).unwrap();
            }
        }
        assert_eq!(
            parse_input(&odd[8]).unwrap(),
            vec![CoreMessage::text(Role::User, "lone part")]
        );
    }
}
