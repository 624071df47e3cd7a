//! The options of one agent call, read from a generate/stream request body (spec §4.1.4) and
//! checked, so that a bad value is a clear error before any model work starts.

use serde_json::{Map, Value};

use super::{Agent, AgentError};
use crate::inference::{SamplingParams, ToolChoice};
use crate::memory::messages::{CoreMessage, parse_input};

/// Most tokens one step may generate unless the request says.
pub const DEFAULT_MAX_TOKENS: usize = 320;
/// Sampling temperature of agent calls unless the request or the agent's default options say
/// otherwise: small local models stay on topic at 0.3 and wander at the usual 0.7.
pub const DEFAULT_TEMPERATURE: f32 = 0.3;

/// A tool the client executes itself: the run stops when the model calls it.
#[derive(Debug, Clone)]
pub struct ClientTool {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The thread and resource a call's conversation belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryTarget {
    pub thread_id: String,
    pub resource_id: String,
    /// `memoryOptions` / `memory.options` overrides, as given.
    pub options: Option<Value>,
}

#[derive(Debug, Clone)]
pub struct CallOptions {
    pub messages: Vec<CoreMessage>,
    pub instructions: Option<String>,
    pub context: Vec<CoreMessage>,
    pub max_steps: u32,
    pub tool_choice: ToolChoice,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub client_tools: Vec<ClientTool>,
    /// `output`: the whole answer is one JSON value valid for this schema (no tools).
    pub output: Option<Value>,
    /// `experimental_output`: tools may run first; the final answer follows this schema.
    pub experimental_output: Option<Value>,
    pub runtime_context: Map<String, Value>,
    pub run_id: String,
    pub memory: Option<MemoryTarget>,
}

fn bad(msg: impl Into<String>) -> AgentError {
    AgentError::InvalidRequest(msg.into())
}

fn number(body: &Map<String, Value>, key: &str) -> Result<Option<f64>, AgentError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| bad(format!("`{key}` must be a finite number"))),
        Some(_) => Err(bad(format!("`{key}` must be a number"))),
    }
}

fn count(body: &Map<String, Value>, key: &str, min: f64) -> Result<Option<u64>, AgentError> {
    match number(body, key)? {
        None => Ok(None),
        Some(x) if x.fract() == 0.0 && x >= min && x <= u32::MAX as f64 => Ok(Some(x as u64)),
        Some(_) => Err(bad(format!(
            "`{key}` must be a whole number of at least {min}"
        ))),
    }
}

fn string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, AgentError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("`{key}` must be a string"))),
    }
}

fn schema(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, AgentError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => {
            jsonschema::validator_for(v)
                .map_err(|e| bad(format!("`{key}` is not a valid JSON Schema: {e}")))?;
            Ok(Some(v.clone()))
        }
        Some(_) => Err(bad(format!("`{key}` must be a JSON Schema object"))),
    }
}

fn tool_choice(v: Option<&Value>) -> Result<ToolChoice, AgentError> {
    match v {
        None | Some(Value::Null) => Ok(ToolChoice::Auto),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            other => Err(bad(format!(
                "`toolChoice` must be auto, none, required or {{type: \"tool\", toolName}}; got `{other}`"
            ))),
        },
        Some(Value::Object(o)) if o.get("type") == Some(&Value::String("tool".into())) => {
            match o.get("toolName") {
                Some(Value::String(name)) => Ok(ToolChoice::Tool(name.clone())),
                _ => Err(bad("`toolChoice.toolName` must be a string")),
            }
        }
        Some(_) => Err(bad(
            "`toolChoice` must be auto, none, required or {type: \"tool\", toolName}",
        )),
    }
}

fn client_tools(v: Option<&Value>) -> Result<Vec<ClientTool>, AgentError> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = v else {
        return Err(bad("`clientTools` must be an object of tools by name"));
    };
    map.iter()
        .map(|(name, t)| {
            let schema = t
                .get("inputSchema")
                .or_else(|| t.get("parameters"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({"type": "object"}));
            // A client that sends a schema as a superjson string (as the server lists them).
            let schema = match schema {
                Value::String(s) => serde_json::from_str::<Value>(&s)
                    .ok()
                    .map(|v| v.get("json").cloned().unwrap_or(v))
                    .ok_or_else(|| bad(format!("clientTools.{name}.inputSchema is not JSON")))?,
                other => other,
            };
            jsonschema::validator_for(&schema).map_err(|e| {
                bad(format!(
                    "clientTools.{name}.inputSchema is not a valid JSON Schema: {e}"
                ))
            })?;
            Ok(ClientTool {
                name: name.clone(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                input_schema: schema,
            })
        })
        .collect()
}

/// `threadId` + `resourceId` (or `resourceid`), or `memory: {thread, resource, options}`.
fn memory_target(body: &Map<String, Value>) -> Result<Option<MemoryTarget>, AgentError> {
    let options = body.get("memoryOptions").filter(|v| !v.is_null()).cloned();
    if let Some(m) = body.get("memory").filter(|v| !v.is_null()) {
        let Value::Object(m) = m else {
            return Err(bad("`memory` must be an object {thread, resource}"));
        };
        let thread = match m.get("thread") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Object(t)) => t
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`memory.thread.id` must be a string"))?
                .to_string(),
            _ => return Err(bad("`memory.thread` must be a thread id or {id}")),
        };
        let resource = m
            .get("resource")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("`memory.resource` must be a string"))?
            .to_string();
        return Ok(Some(MemoryTarget {
            thread_id: thread,
            resource_id: resource,
            options: m.get("options").cloned().or(options),
        }));
    }
    let thread = string(body, "threadId")?;
    let resource = match string(body, "resourceId")? {
        Some(r) => Some(r),
        None => string(body, "resourceid")?,
    };
    match (thread, resource) {
        (Some(t), Some(r)) => Ok(Some(MemoryTarget {
            thread_id: t,
            resource_id: r,
            options,
        })),
        (Some(_), None) => Err(bad("`threadId` needs a `resourceId` too")),
        _ => Ok(None),
    }
}

impl CallOptions {
    /// The text of the call's last user message (what the call is about).
    pub fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == crate::memory::messages::Role::User)
            .map(|m| m.text_content())
            .unwrap_or_default()
    }

    /// Reads the options of a call to `agent` from `body`, with the agent's defaults
    /// (`default_generate_options` or `default_stream_options`) under the request's values.
    pub fn from_body(
        agent: &Agent,
        body: &Map<String, Value>,
        defaults: &Value,
        runtime_context: Map<String, Value>,
    ) -> Result<CallOptions, AgentError> {
        let mut merged = defaults.as_object().cloned().unwrap_or_default();
        for (k, v) in body {
            merged.insert(k.clone(), v.clone());
        }
        let body = &merged;
        let messages = match body.get("messages") {
            None | Some(Value::Null) => {
                return Err(bad("Argument \"messages\" is required"));
            }
            Some(Value::String(s)) if s.is_empty() => {
                return Err(bad("Argument \"messages\" is required"));
            }
            Some(v) => parse_input(v).map_err(|e| bad(e.to_string()))?,
        };
        let context = match body.get("context") {
            None | Some(Value::Null) => Vec::new(),
            Some(v) => parse_input(v).map_err(|e| bad(format!("context: {e}")))?,
        };
        let defaults = SamplingParams::default();
        let temperature = number(body, "temperature")?;
        if temperature.is_some_and(|t| !(0.0..=2.0).contains(&t)) {
            return Err(bad("`temperature` must be between 0 and 2"));
        }
        let top_p = number(body, "topP")?;
        if top_p.is_some_and(|p| !(0.0..=1.0).contains(&p) || p == 0.0) {
            return Err(bad("`topP` must be greater than 0 and at most 1"));
        }
        let sampling = SamplingParams {
            temperature: temperature
                .map(|t| t as f32)
                .unwrap_or(defaults.temperature),
            top_p: top_p.map(|p| p as f32).unwrap_or(defaults.top_p),
            top_k: count(body, "topK", 1.0)?
                .map(|k| k as usize)
                .unwrap_or(defaults.top_k),
            seed: count(body, "seed", 0.0)?,
            presence_penalty: number(body, "presencePenalty")?
                .map(|p| p as f32)
                .unwrap_or(defaults.presence_penalty),
            frequency_penalty: number(body, "frequencyPenalty")?
                .map(|p| p as f32)
                .unwrap_or(defaults.frequency_penalty),
            ..defaults
        };
        let stop = match body.get("stopSequences") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|s| {
                    s.as_str()
                        .filter(|s| !s.is_empty())
                        .map(String::from)
                        .ok_or_else(|| bad("`stopSequences` must be non-empty strings"))
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(bad("`stopSequences` must be an array of strings")),
        };
        let mut runtime_context = runtime_context;
        if let Some(Value::Object(rc)) = body.get("runtimeContext") {
            for (k, v) in rc {
                runtime_context.insert(k.clone(), v.clone());
            }
        }
        let choice = tool_choice(body.get("toolChoice"))?;
        let client_tools = client_tools(body.get("clientTools"))?;
        if let ToolChoice::Tool(name) = &choice
            && !agent.tools.contains_key(name)
            && !client_tools.iter().any(|t| &t.name == name)
        {
            return Err(bad(format!(
                "`toolChoice` names `{name}`, which is not a tool of agent {}",
                agent.key
            )));
        }
        Ok(CallOptions {
            messages,
            instructions: string(body, "instructions")?,
            context,
            max_steps: count(body, "maxSteps", 1.0)?
                .map(|s| s as u32)
                .unwrap_or(agent.max_steps),
            tool_choice: choice,
            sampling,
            max_tokens: count(body, "maxTokens", 1.0)?
                .map(|t| t as usize)
                .unwrap_or(DEFAULT_MAX_TOKENS),
            stop,
            client_tools,
            output: schema(body, "output")?,
            experimental_output: schema(body, "experimental_output")?,
            runtime_context,
            run_id: string(body, "runId")?.unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            memory: memory_target(body)?,
        })
    }
}
