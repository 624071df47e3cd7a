//! OpenAI request bodies read into what the engines take: a chat completion becomes the body of
//! an agent call (Mastra's generate body, checked once more by `CallOptions::from_body`), an
//! embeddings request a list of texts. Anything OpenAI's API accepts that edgestra cannot honour
//! is a 400 that says so, never silently dropped.

use serde_json::{Map, Value, json};

use super::super::ApiError;
use super::super::request::json_type;
use crate::memory::messages::{CoreMessage, Part, Role};

/// Most inputs one embeddings request may carry (OpenAI's own limit).
pub const MAX_EMBEDDING_INPUTS: usize = 2048;

/// What a chat completion addresses: an agent (`agent:<id>`) or a model by name.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Agent(String),
    Model(String),
}

/// Prefix of model ids that name an agent.
pub const AGENT_PREFIX: &str = "agent:";

/// A chat completion request, read.
#[derive(Debug)]
pub struct ChatRequest {
    /// `model` as the client sent it (echoed in every answer).
    pub model: String,
    pub target: Target,
    pub stream: bool,
    /// `stream_options.include_usage`: a last chunk with the usage.
    pub include_usage: bool,
    /// Names of the request's `tools` (their calls go back to the client).
    pub client_tools: Vec<String>,
    /// The agent-call body.
    pub call: Map<String, Value>,
    /// The conversation a memory-backed agent keeps (`thread`, `resource`), when named.
    pub memory: Option<(String, String)>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request(message)
}

fn unsupported(field: &str, what: &str) -> ApiError {
    bad(format!("`{field}`: {what} is not supported by this server"))
}

/// Reads a chat completion body. `thread` is the memory thread a header named.
pub fn chat_request(
    body: &Map<String, Value>,
    thread: Option<String>,
) -> Result<ChatRequest, ApiError> {
    let model = match body.get("model") {
        Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
        None | Some(Value::Null) => return Err(bad("`model` is required")),
        Some(_) => return Err(bad("`model` must be a non-empty string")),
    };
    let target = match model.strip_prefix(AGENT_PREFIX) {
        Some(agent) => Target::Agent(agent.to_string()),
        None => Target::Model(model.clone()),
    };
    let stream = flag(body, "stream")?;
    let include_usage = match body.get("stream_options") {
        None | Some(Value::Null) => false,
        Some(Value::Object(o)) if stream => flag(o, "include_usage")?,
        Some(Value::Object(_)) => return Err(bad("`stream_options` needs `stream: true`")),
        Some(_) => return Err(bad("`stream_options` must be an object")),
    };
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_u64() == Some(1) => {}
        Some(_) => return Err(unsupported("n", "more than one choice")),
    }
    if flag(body, "logprobs")? {
        return Err(unsupported("logprobs", "returning log-probabilities"));
    }
    if body.get("audio").is_some_and(|v| !v.is_null()) {
        return Err(unsupported("audio", "audio output"));
    }
    if body.get("functions").is_some_and(|v| !v.is_null()) {
        return Err(bad("`functions` is deprecated by OpenAI; send `tools`"));
    }

    let mut call = Map::new();
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => messages(m)?,
        None | Some(Value::Null) => return Err(bad("`messages` is required")),
        Some(Value::Array(_)) => return Err(bad("`messages` must not be empty")),
        Some(other) => {
            return Err(bad(format!(
                "`messages` must be an array, not {}",
                json_type(other)
            )));
        }
    };
    let memory = memory_target(body, thread)?;
    call.insert("messages".into(), messages);
    for (openai, mastra) in [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ] {
        if let Some(v) = body.get(openai).filter(|v| !v.is_null()) {
            call.insert(mastra.into(), v.clone());
        }
    }
    let max_tokens = body
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| body.get("max_tokens").filter(|v| !v.is_null()));
    if let Some(v) = max_tokens {
        call.insert("maxTokens".into(), v.clone());
    }
    match body.get("stop") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            call.insert("stopSequences".into(), json!([s]));
        }
        Some(Value::Array(items)) if items.len() <= 4 => {
            call.insert("stopSequences".into(), Value::Array(items.clone()));
        }
        Some(_) => return Err(bad("`stop` must be a string or up to 4 strings")),
    }
    let (tools, client_tools) = tools(body.get("tools"))?;
    if !tools.is_empty() {
        call.insert("clientTools".into(), Value::Object(tools));
    }
    if let Some(choice) = tool_choice(body.get("tool_choice"), &client_tools)? {
        call.insert("toolChoice".into(), choice);
    }
    if let Some(schema) = response_schema(body.get("response_format"))? {
        // With tools the answer may come after calls; without, the whole answer is the object.
        let key = if client_tools.is_empty() {
            "output"
        } else {
            "experimental_output"
        };
        call.insert(key.into(), schema);
    }
    Ok(ChatRequest {
        model,
        target,
        stream,
        include_usage,
        client_tools,
        call,
        memory,
    })
}

fn flag(body: &Map<String, Value>, key: &str) -> Result<bool, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(bad(format!("`{key}` must be a boolean"))),
    }
}

/// The memory thread: a header names it, or `user` does (then the thread and the resource are
/// the same id); `user` is the resource whenever given.
fn memory_target(
    body: &Map<String, Value>,
    thread: Option<String>,
) -> Result<Option<(String, String)>, ApiError> {
    let user = match body.get("user") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) if !u.is_empty() => Some(u.clone()),
        Some(_) => return Err(bad("`user` must be a non-empty string")),
    };
    let thread = thread.filter(|t| !t.is_empty());
    Ok(match (thread, user) {
        (Some(t), Some(u)) => Some((t, u)),
        (Some(t), None) => Some((t.clone(), t)),
        (None, Some(u)) => Some((u.clone(), u)),
        (None, None) => None,
    })
}

/// The messages after the conversation's last assistant turn: what is new to a thread that
/// already holds the earlier turns.
pub fn new_turn(messages: &Value) -> Value {
    let Value::Array(items) = messages else {
        return messages.clone();
    };
    let start = items
        .iter()
        .rposition(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .map(|i| i + 1)
        .unwrap_or(0);
    Value::Array(items[start..].to_vec())
}

/// OpenAI messages as AI SDK CoreMessages (what agent calls take).
fn messages(items: &[Value]) -> Result<Value, ApiError> {
    // Tool results name their call by id; the name comes from the assistant turn that made it.
    let mut call_names: Vec<(String, String)> = Vec::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Value::Object(m) = item else {
            return Err(bad(format!("`{at}` must be an object")));
        };
        let role = m.get("role").and_then(Value::as_str).unwrap_or_default();
        let message = match role {
            "system" | "developer" => CoreMessage::text(Role::System, text(m, &at, false)?),
            "user" => CoreMessage {
                role: Role::User,
                parts: user_parts(m.get("content"), &at)?,
            },
            "assistant" => {
                let mut parts = Vec::new();
                let said = text(m, &at, true)?;
                if !said.is_empty() {
                    parts.push(Part::Text(said));
                }
                for call in assistant_calls(m, &at)? {
                    call_names.push((call.0.clone(), call.1.clone()));
                    parts.push(Part::ToolCall {
                        id: call.0,
                        name: call.1,
                        args: call.2,
                    });
                }
                if parts.is_empty() {
                    return Err(bad(format!("`{at}` has neither content nor tool_calls")));
                }
                CoreMessage {
                    role: Role::Assistant,
                    parts,
                }
            }
            "tool" => {
                let id = match m.get("tool_call_id") {
                    Some(Value::String(id)) if !id.is_empty() => id.clone(),
                    _ => return Err(bad(format!("`{at}.tool_call_id` is required"))),
                };
                let Some((_, name)) = call_names.iter().rev().find(|(c, _)| *c == id) else {
                    return Err(bad(format!(
                        "`{at}` answers the tool call `{id}`, which no earlier assistant message made"
                    )));
                };
                let content = text(m, &at, false)?;
                // A tool's answer is usually JSON in a string; the model reads values either way.
                let result =
                    serde_json::from_str::<Value>(&content).unwrap_or(Value::String(content));
                CoreMessage {
                    role: Role::Tool,
                    parts: vec![Part::ToolResult {
                        id,
                        name: name.clone(),
                        result,
                        is_error: false,
                    }],
                }
            }
            "function" => {
                return Err(bad(format!(
                    "`{at}`: the `function` role is deprecated by OpenAI; send `tool`"
                )));
            }
            "" => return Err(bad(format!("`{at}.role` is required"))),
            other => {
                return Err(bad(format!(
                    "`{at}.role` must be system, developer, user, assistant or tool, not `{other}`"
                )));
            }
        };
        out.push(message.to_json());
    }
    Ok(Value::Array(out))
}

/// A message's content as text: a string or text parts (`null` only where allowed).
fn text(m: &Map<String, Value>, at: &str, may_be_null: bool) -> Result<String, ApiError> {
    match m.get("content") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) if may_be_null => Ok(String::new()),
        None | Some(Value::Null) => Err(bad(format!("`{at}.content` is required"))),
        Some(Value::Array(parts)) => {
            let mut out = String::new();
            for (j, p) in parts.iter().enumerate() {
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => out.push_str(t),
                    (Some("refusal"), _) => {}
                    _ => {
                        return Err(bad(format!(
                            "`{at}.content[{j}]` must be a text part {{type: \"text\", text}}"
                        )));
                    }
                }
            }
            Ok(out)
        }
        Some(other) => Err(bad(format!(
            "`{at}.content` must be a string or an array of parts, not {}",
            json_type(other)
        ))),
    }
}

/// A user message's parts: text and images (by URL or data URL).
fn user_parts(content: Option<&Value>, at: &str) -> Result<Vec<Part>, ApiError> {
    match content {
        Some(Value::String(s)) => Ok(vec![Part::Text(s.clone())]),
        Some(Value::Array(parts)) if !parts.is_empty() => parts
            .iter()
            .enumerate()
            .map(|(j, p)| match p.get("type").and_then(Value::as_str) {
                Some("text") => match p.get("text") {
                    Some(Value::String(t)) => Ok(Part::Text(t.clone())),
                    _ => Err(bad(format!("`{at}.content[{j}].text` must be a string"))),
                },
                Some("image_url") => match p.pointer("/image_url/url") {
                    Some(Value::String(url)) if !url.is_empty() => Ok(Part::Image {
                        image: Value::String(url.clone()),
                        mime_type: None,
                    }),
                    _ => Err(bad(format!(
                        "`{at}.content[{j}].image_url.url` must be a string"
                    ))),
                },
                Some(kind @ ("input_audio" | "file")) => Err(unsupported(
                    &format!("{at}.content[{j}]"),
                    &format!("a `{kind}` part"),
                )),
                _ => Err(bad(format!(
                    "`{at}.content[{j}].type` must be text or image_url"
                ))),
            })
            .collect(),
        None | Some(Value::Null) => Err(bad(format!("`{at}.content` is required"))),
        Some(_) => Err(bad(format!(
            "`{at}.content` must be a string or a non-empty array of parts"
        ))),
    }
}

/// An assistant message's tool calls: (id, name, arguments).
fn assistant_calls(
    m: &Map<String, Value>,
    at: &str,
) -> Result<Vec<(String, String, Value)>, ApiError> {
    let calls = match m.get("tool_calls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(c)) => c,
        Some(_) => return Err(bad(format!("`{at}.tool_calls` must be an array"))),
    };
    calls
        .iter()
        .enumerate()
        .map(|(j, c)| {
            let here = format!("{at}.tool_calls[{j}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let (Some(id), Some(name)) = (id, name) else {
                return Err(bad(format!("`{here}` needs `id` and `function.name`")));
            };
            let args = match c.pointer("/function/arguments") {
                Some(Value::String(s)) if s.trim().is_empty() => json!({}),
                Some(Value::String(s)) => serde_json::from_str(s)
                    .map_err(|e| bad(format!("`{here}.function.arguments` is not JSON: {e}")))?,
                None | Some(Value::Null) => json!({}),
                Some(_) => {
                    return Err(bad(format!(
                        "`{here}.function.arguments` must be a JSON string"
                    )));
                }
            };
            Ok((id.to_string(), name.to_string(), args))
        })
        .collect()
}

/// `tools` as the agent call's client tools, and their names.
fn tools(v: Option<&Value>) -> Result<(Map<String, Value>, Vec<String>), ApiError> {
    let items = match v {
        None | Some(Value::Null) => return Ok((Map::new(), Vec::new())),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("`tools` must be an array")),
    };
    let mut out = Map::new();
    let mut names = Vec::new();
    for (i, t) in items.iter().enumerate() {
        if t.get("type").and_then(Value::as_str) != Some("function") {
            return Err(bad(format!("`tools[{i}].type` must be \"function\"")));
        }
        let name = match t.pointer("/function/name") {
            Some(Value::String(n)) if valid_name(n) => n.clone(),
            _ => {
                return Err(bad(format!(
                    "`tools[{i}].function.name` must be 1 to 64 letters, digits, _ or -"
                )));
            }
        };
        if out.contains_key(&name) {
            return Err(bad(format!("`tools` has `{name}` twice")));
        }
        let parameters = match t.pointer("/function/parameters") {
            None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
            Some(p @ Value::Object(_)) => p.clone(),
            Some(_) => {
                return Err(bad(format!(
                    "`tools[{i}].function.parameters` must be a JSON Schema object"
                )));
            }
        };
        let description = t
            .pointer("/function/description")
            .and_then(Value::as_str)
            .unwrap_or_default();
        out.insert(
            name.clone(),
            json!({"description": description, "parameters": parameters}),
        );
        names.push(name);
    }
    Ok((out, names))
}

fn valid_name(n: &str) -> bool {
    (1..=64).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// `tool_choice` in Mastra's form.
fn tool_choice(v: Option<&Value>, tools: &[String]) -> Result<Option<Value>, ApiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if matches!(s.as_str(), "auto" | "none" | "required") => {
            if s == "required" && tools.is_empty() {
                return Err(bad("`tool_choice` is \"required\" but `tools` is empty"));
            }
            Ok(Some(Value::String(s.clone())))
        }
        Some(Value::Object(o)) if o.get("type").and_then(Value::as_str) == Some("function") => {
            match o.get("function").and_then(|f| f.get("name")) {
                Some(Value::String(name)) if tools.contains(name) => {
                    Ok(Some(json!({"type": "tool", "toolName": name})))
                }
                Some(Value::String(name)) => Err(bad(format!(
                    "`tool_choice` names `{name}`, which is not in `tools`"
                ))),
                _ => Err(bad("`tool_choice.function.name` must be a string")),
            }
        }
        Some(_) => Err(bad(
            "`tool_choice` must be \"auto\", \"none\", \"required\" or {type: \"function\", function: {name}}",
        )),
    }
}

/// The JSON Schema a `response_format` holds the answer to, if any.
fn response_schema(v: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "object"}))),
        Some("json_schema") => match format.pointer("/json_schema/schema") {
            Some(s @ Value::Object(_)) => Ok(Some(s.clone())),
            None | Some(Value::Null) => Ok(Some(json!({"type": "object"}))),
            Some(_) => Err(bad(
                "`response_format.json_schema.schema` must be a JSON Schema object",
            )),
        },
        _ => Err(bad(
            "`response_format.type` must be text, json_object or json_schema",
        )),
    }
}

/// The texts of an embeddings request's `input`.
pub fn embedding_inputs(input: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let texts: Vec<String> = match input {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Array(_) => {
                    Err(unsupported("input", "token ids (send the text itself)"))
                }
                _ => Err(bad(format!("`input[{i}]` must be a string"))),
            })
            .collect::<Result<_, _>>()?,
        None | Some(Value::Null) => return Err(bad("`input` is required")),
        Some(Value::Array(_)) => return Err(bad("`input` must not be empty")),
        Some(_) => return Err(bad("`input` must be a string or an array of strings")),
    };
    if texts.len() > MAX_EMBEDDING_INPUTS {
        return Err(bad(format!(
            "`input` may hold at most {MAX_EMBEDDING_INPUTS} texts, not {}",
            texts.len()
        )));
    }
    if texts.iter().any(String::is_empty) {
        return Err(bad("`input` must not contain empty strings"));
    }
    Ok(texts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: Value) -> Result<ChatRequest, ApiError> {
        chat_request(body.as_object().unwrap(), None)
    }

    #[test]
    fn a_conversation_with_a_tool_round_becomes_an_agent_call() {
        let r = read(json!({
            "model": "agent:assistant",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "{\"celsius\": 4}"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "max_tokens": 40, "temperature": 0, "stop": "END"
        }))
        .unwrap();
        assert_eq!(r.target, Target::Agent("assistant".into()));
        assert_eq!(r.client_tools, vec!["weather"]);
        let m = &r.call["messages"];
        assert_eq!(m[0]["role"], "system");
        assert_eq!(m[2]["content"][0]["type"], "tool-call");
        assert_eq!(m[2]["content"][0]["args"]["city"], "Oslo");
        assert_eq!(m[3]["content"][0]["toolName"], "weather");
        assert_eq!(m[3]["content"][0]["result"]["celsius"], 4);
        assert_eq!(r.call["toolChoice"]["toolName"], "weather");
        assert_eq!(r.call["maxTokens"], 40);
        assert_eq!(r.call["stopSequences"], json!(["END"]));
        assert!(r.call["clientTools"]["weather"]["parameters"].is_object());
    }

    #[test]
    fn what_cannot_be_honoured_is_refused_by_name() {
        let base = || json!({"model": "chat", "messages": [{"role": "user", "content": "hi"}]});
        let cases: Vec<(&str, Value, &str)> = vec![
            ("model", Value::Null, "`model` is required"),
            ("messages", json!([]), "must not be empty"),
            ("n", json!(2), "`n`"),
            ("logprobs", json!(true), "log-probabilities"),
            (
                "stream_options",
                json!({"include_usage": true}),
                "stream: true",
            ),
            ("tool_choice", json!("required"), "`tools` is empty"),
            (
                "tool_choice",
                json!({"type": "function", "function": {"name": "x"}}),
                "not in `tools`",
            ),
            (
                "tools",
                json!([{"type": "function", "function": {"name": "bad name"}}]),
                "1 to 64",
            ),
            (
                "response_format",
                json!({"type": "yaml"}),
                "response_format.type",
            ),
            ("stop", json!(["a", "b", "c", "d", "e"]), "up to 4"),
            (
                "messages",
                json!([{"role": "tool", "tool_call_id": "nope", "content": "1"}]),
                "no earlier",
            ),
            (
                "messages",
                json!([{"role": "robot", "content": "1"}]),
                "`messages[0].role`",
            ),
            (
                "messages",
                json!([{"role": "user", "content": [{"type": "input_audio"}]}]),
                "not supported",
            ),
            (
                "messages",
                json!([{"role": "assistant", "content": null}]),
                "neither",
            ),
        ];
        for (key, value, expected) in cases {
            let mut body = base();
            body[key] = value;
            let e = read(body).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{key}");
            assert!(e.message.contains(expected), "{key}: {}", e.message);
        }
    }

    #[test]
    fn response_formats_become_output_schemas() {
        let with = |format: Value, tools: bool| {
            let mut body = json!({"model": "chat", "messages": [{"role": "user", "content": "x"}], "response_format": format});
            if tools {
                body["tools"] = json!([{"type": "function", "function": {"name": "f"}}]);
            }
            read(body).unwrap().call
        };
        let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let call = with(
            json!({"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}),
            false,
        );
        assert_eq!(call["output"], schema);
        assert_eq!(
            with(json!({"type": "json_object"}), true)["experimental_output"],
            json!({"type": "object"})
        );
        assert!(!with(json!({"type": "text"}), false).contains_key("output"));
    }

    #[test]
    fn a_thread_holds_the_earlier_turns() {
        let r = chat_request(
            json!({"model": "agent:a", "user": "ann", "messages": [{"role": "user", "content": "x"}]})
                .as_object()
                .unwrap(),
            Some("t1".into()),
        )
        .unwrap();
        assert_eq!(r.memory, Some(("t1".into(), "ann".into())));
        let history = json!([
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "two"},
            {"role": "user", "content": "three"}
        ]);
        assert_eq!(
            new_turn(&history),
            json!([{"role": "user", "content": "three"}])
        );
    }

    #[test]
    fn embedding_inputs_are_texts() {
        assert_eq!(embedding_inputs(Some(&json!("a"))).unwrap(), vec!["a"]);
        assert_eq!(embedding_inputs(Some(&json!(["a", "b"]))).unwrap().len(), 2);
        for bad_input in [
            json!([]),
            json!([[1, 2]]),
            json!([""]),
            json!(3),
            Value::Null,
        ] {
            assert_eq!(
                embedding_inputs(Some(&bad_input))
                    .unwrap_err()
                    .status
                    .as_u16(),
                400,
                "{bad_input}"
            );
        }
        let many = Value::Array(vec![json!("x"); MAX_EMBEDDING_INPUTS + 1]);
        assert!(embedding_inputs(Some(&many)).is_err());
    }
}
