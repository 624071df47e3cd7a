//! How a local model calls tools: the format SmolLM2 and Hermes-style models were trained on.
//!
//! The tools are listed as JSON inside `<tools>…</tools>` in the system message, and a call is
//! written as `<tool_call>[{"name": …, "arguments": {…}}]</tool_call>`. A small model cannot be
//! trusted to decide *whether* to call a tool (it almost never does on its own), so the local
//! generator only writes calls when the caller asks for one (`toolChoice` required or a named
//! tool); the agent decides the rest. When a call is asked for, the prompt already ends with
//! `<tool_call>` and the JSON after it is generated under a schema that admits exactly one call to
//! one of the allowed tools with arguments valid for that tool, so even a 135M model writes a
//! well-formed call with the right argument names and types.

use serde_json::{Value, json};

use super::constrained::to_layout;
use super::{ChatMessage, InferenceError, ToolCall, ToolChoice, ToolSpec};

pub const OPEN: &str = "<tool_call>";
pub const CLOSE: &str = "</tool_call>";

/// The tools a request forces the model to choose from, or `None` when it writes text.
pub fn forced_tools<'a>(
    tools: &'a [ToolSpec],
    choice: &ToolChoice,
) -> Result<Option<Vec<&'a ToolSpec>>, InferenceError> {
    match choice {
        ToolChoice::Auto | ToolChoice::None => Ok(None),
        _ if tools.is_empty() => Err(InferenceError::InvalidRequest(
            "a tool call was required but no tools were given".into(),
        )),
        ToolChoice::Required => Ok(Some(tools.iter().collect())),
        ToolChoice::Tool(name) => match tools.iter().find(|t| &t.name == name) {
            Some(t) => Ok(Some(vec![t])),
            None => Err(InferenceError::InvalidRequest(format!(
                "toolChoice names `{name}`, which is not one of the available tools"
            ))),
        },
    }
}

/// The system-message text that presents `tools`.
pub fn system_text(tools: &[&ToolSpec]) -> String {
    let listed: Vec<Value> = tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    format!(
        "You have access to the following tools:\n<tools>{}</tools>\n\nWhen one of these tools does what the user asks, call it: answer with {OPEN}[{{\"name\": \"tool_name\", \"arguments\": {{\"argument\": \"value\"}}}}]{CLOSE} and nothing else, taking each argument's value from the user's words. When no tool fits the request, answer {OPEN}[]{CLOSE}.",
        to_layout(&Value::Array(listed))
    )
}

/// The schema of what follows `<tool_call>`: one call to one of `tools`.
pub fn call_schema(tools: &[&ToolSpec]) -> Value {
    json!({"type": "array", "items": one_call(tools, "arguments", true), "minItems": 1, "maxItems": 1})
}

/// The schema of one call object, `{"name": …, "<arguments_key>": {…}}`, to one of `tools` with
/// arguments valid for it; with `guard`, free-form strings are held to [`ARGUMENT_PATTERN`].
pub fn one_call(tools: &[&ToolSpec], arguments_key: &str, guard: bool) -> Value {
    let alternatives: Vec<Value> = tools
        .iter()
        .map(|t| {
            let arguments = if guard {
                guard_strings(&t.parameters)
            } else {
                t.parameters.clone()
            };
            json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, arguments_key: arguments},
                "required": ["name", arguments_key],
                "additionalProperties": false
            })
        })
        .collect();
    if alternatives.len() == 1 {
        alternatives.into_iter().next().unwrap_or_default()
    } else {
        json!({"anyOf": alternatives})
    }
}

/// What a free-form string argument may hold: one non-empty line that does not begin with a
/// closing bracket. A small model that loses track at a string value tends to close it at once
/// (`""`) or to write the call's closing `}}]</tool_call>` into it and then repeat itself;
/// this keeps it to a value.
pub const ARGUMENT_PATTERN: &str = r"^[^\]}\n][^\n]*$";

/// `schema` with [`ARGUMENT_PATTERN`] on every string that has no pattern, format, enum or
/// const of its own.
fn guard_strings(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "enum" | "const" | "default" | "examples" => v.clone(),
                        _ => guard_strings(v),
                    };
                    (k.clone(), v)
                })
                .collect();
            let is_string = map.get("type").and_then(Value::as_str) == Some("string");
            if is_string
                && !["pattern", "format", "enum", "const"]
                    .iter()
                    .any(|k| map.contains_key(*k))
            {
                out.insert("pattern".into(), Value::String(ARGUMENT_PATTERN.into()));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(guard_strings).collect()),
        other => other.clone(),
    }
}

/// The calls in the JSON the model wrote after `<tool_call>`.
pub fn parse_calls(json_text: &str) -> Result<Vec<ToolCall>, InferenceError> {
    let value: Value =
        serde_json::from_str(json_text.trim()).map_err(|e| bad_call(e.to_string()))?;
    let Value::Array(items) = value else {
        return Err(bad_call("not a list of calls".into()));
    };
    items.into_iter().map(call_from).collect()
}

fn bad_call(why: String) -> InferenceError {
    InferenceError::Failed(format!("the model wrote a bad tool call: {why}"))
}

/// One call object: its `name`, and its `arguments` (Llama 3 calls them `parameters`).
pub fn call_from(item: Value) -> Result<ToolCall, InferenceError> {
    let name = item["name"]
        .as_str()
        .ok_or_else(|| bad_call("a call has no name".into()))?;
    let arguments = item
        .get("arguments")
        .or_else(|| item.get("parameters"))
        .cloned()
        .unwrap_or(json!({}));
    if !arguments.is_object() {
        return Err(bad_call(format!(
            "the arguments of `{name}` are not an object"
        )));
    }
    Ok(ToolCall {
        id: new_call_id(),
        name: name.to_string(),
        arguments,
    })
}

/// A fresh tool-call id in the style providers use.
pub fn new_call_id() -> String {
    format!("call_{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// Messages in the plain `{role, content}` form a chat template takes.
///
/// When the model is about to write a call (`calling`), earlier calls are written back in the
/// call format and results as `tool` turns, so it sees what it already did. When it is about to
/// answer, each result is instead appended to the user message it answers ("weatherTool
/// returned …") and the call turns are left out: a small model answers from facts in the
/// question far better than from a transcript of calls, which it tends to imitate.
pub fn template_messages(messages: &[ChatMessage], calling: bool) -> Vec<Value> {
    let mut names = std::collections::HashMap::new();
    let mut out: Vec<Value> = Vec::new();
    for m in messages {
        for c in &m.tool_calls {
            names.insert(c.id.clone(), c.name.clone());
        }
        let name_of = |m: &ChatMessage| {
            m.tool_call_id
                .as_ref()
                .and_then(|id| names.get(id))
                .cloned()
                .unwrap_or_default()
        };
        let result_of = |m: &ChatMessage| {
            serde_json::from_str::<Value>(&m.content)
                .unwrap_or_else(|_| Value::String(m.content.clone()))
        };
        if calling {
            let content = if !m.tool_calls.is_empty() {
                let calls: Vec<Value> = m
                    .tool_calls
                    .iter()
                    .map(|c| json!({"name": c.name, "arguments": c.arguments}))
                    .collect();
                format!(
                    "{}{OPEN}{}{CLOSE}",
                    m.content,
                    to_layout(&Value::Array(calls))
                )
            } else if m.role == "tool" {
                to_layout(&json!({"name": name_of(m), "result": result_of(m)}))
            } else {
                m.content.clone()
            };
            out.push(json!({"role": m.role, "content": content}));
            continue;
        }
        if m.role == "tool" {
            let fact = format!("\n\nFacts: {}", facts(&result_of(m)));
            match out.iter_mut().rev().find(|t| t["role"] == "user") {
                Some(user) => {
                    let text = user["content"].as_str().unwrap_or_default().to_string();
                    user["content"] = Value::String(text + &fact);
                }
                None => out.push(json!({"role": "user", "content": fact.trim_start()})),
            }
        } else if !(m.role == "assistant" && m.content.is_empty() && !m.tool_calls.is_empty()) {
            out.push(json!({"role": m.role, "content": m.content}));
        }
    }
    out
}

/// A tool result as short `key: value` facts (JSON for anything nested), which small models
/// quote more faithfully than a JSON document.
fn facts(result: &Value) -> String {
    match result {
        Value::Object(map) if map.values().all(|v| !v.is_object() && !v.is_array()) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `messages` with `extra` appended to the system message (one is added when there is none).
pub fn with_system_text(messages: &[Value], extra: &str) -> Vec<Value> {
    let mut out = messages.to_vec();
    match out.iter_mut().find(|m| m["role"] == "system") {
        Some(system) => {
            let text = system["content"].as_str().unwrap_or_default();
            system["content"] = Value::String(if text.is_empty() {
                extra.to_string()
            } else {
                format!("{text}\n\n{extra}")
            });
        }
        None => out.insert(0, json!({"role": "system", "content": extra})),
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tool `name` with one required number `x`.
    pub(crate) fn spec(name: &str) -> ToolSpec {
        ToolSpec {
            name: name.into(),
            description: format!("{name} things"),
            parameters: json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}),
            ..Default::default()
        }
    }

    #[test]
    fn choice_selects_the_forced_tools() {
        let tools = vec![spec("a"), spec("b")];
        assert!(forced_tools(&tools, &ToolChoice::Auto).unwrap().is_none());
        assert!(forced_tools(&tools, &ToolChoice::None).unwrap().is_none());
        assert_eq!(
            forced_tools(&tools, &ToolChoice::Required)
                .unwrap()
                .unwrap()
                .len(),
            2
        );
        let one = forced_tools(&tools, &ToolChoice::Tool("b".into()))
            .unwrap()
            .unwrap();
        assert_eq!(one[0].name, "b");
        assert!(forced_tools(&tools, &ToolChoice::Tool("c".into())).is_err());
        assert!(forced_tools(&[], &ToolChoice::Required).is_err());
    }

    #[test]
    fn the_call_schema_admits_exactly_one_valid_call() {
        let tools = [spec("a"), spec("b")];
        let refs: Vec<&ToolSpec> = tools.iter().collect();
        let schema = call_schema(&refs);
        let v = jsonschema::validator_for(&schema).unwrap();
        assert!(v.is_valid(&json!([{"name": "a", "arguments": {"x": 1}}])));
        assert!(!v.is_valid(&json!([{"name": "c", "arguments": {"x": 1}}])));
        assert!(!v.is_valid(&json!([{"name": "a", "arguments": {}}])));
        assert!(!v.is_valid(&json!([])));
        let text = [ToolSpec {
            parameters: json!({"type": "object", "properties": {"q": {"type": "string"}, "d": {"type": "string", "format": "date"}}}),
            ..spec("t")
        }];
        let v = jsonschema::validator_for(&call_schema(&[&text[0]])).unwrap();
        assert!(v.is_valid(&json!([{"name": "t", "arguments": {"q": "B-2002 [x]"}}])));
        assert!(!v.is_valid(&json!([{"name": "t", "arguments": {"q": ""}}])));
        assert!(v.is_valid(&json!([{"name": "t", "arguments": {"d": ""}}])));
        assert!(!v.is_valid(&json!([{"name": "t", "arguments": {"q": "}}]</tool_call>"}}])));
        assert!(!v.is_valid(&json!([{"name": "t", "arguments": {"q": "a\nb"}}])));
        assert!(!v.is_valid(
            &json!([{"name": "a", "arguments": {"x": 1}}, {"name": "b", "arguments": {"x": 1}}])
        ));
    }

    #[test]
    fn calls_are_parsed_and_bad_ones_rejected() {
        let calls = parse_calls(r#"[{"name":"a","arguments":{"x":2}}]"#).unwrap();
        assert_eq!(calls[0].name, "a");
        assert_eq!(calls[0].arguments, json!({"x": 2}));
        assert!(calls[0].id.starts_with("call_"));
        assert!(parse_calls("{").is_err());
        assert!(parse_calls(r#"{"name":"a"}"#).is_err());
        assert!(parse_calls(r#"[{"arguments":{}}]"#).is_err());
    }

    #[test]
    fn history_renders_calls_and_named_results() {
        let call = ToolCall {
            id: "c1".into(),
            name: "weather".into(),
            arguments: json!({"city": "Oslo"}),
        };
        let mut assistant = ChatMessage::new("assistant", "");
        assistant.tool_calls = vec![call];
        let mut tool = ChatMessage::new("tool", r#"{"t":3}"#);
        tool.tool_call_id = Some("c1".into());
        let history = [ChatMessage::new("user", "Weather?"), assistant, tool];
        let out = template_messages(&history, true);
        assert_eq!(
            out[1]["content"],
            r#"<tool_call>[{"name": "weather", "arguments": {"city": "Oslo"}}]</tool_call>"#
        );
        assert_eq!(
            out[2]["content"],
            r#"{"name": "weather", "result": {"t": 3}}"#
        );
        // Answering: the result is folded into the question, the call turn left out.
        let answering = template_messages(&history, false);
        assert_eq!(answering.len(), 1);
        assert_eq!(answering[0]["content"], "Weather?\n\nFacts: t: 3");
        let sys = with_system_text(&out, "tools here");
        assert_eq!(sys[0]["role"], "system");
        assert_eq!(sys.len(), 4);
        let sys2 = with_system_text(&sys, "more");
        assert_eq!(sys2[0]["content"], "tools here\n\nmore");
    }
}
