//! One agent call: the step loop. Each step asks the model for a continuation; tool calls it
//! makes are validated and executed (a failing tool becomes an error result the model sees), the
//! results are fed back, and the loop goes on until the model answers in text, a client tool is
//! called, or `maxSteps` is reached.

use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use super::options::CallOptions;
use super::{Agent, AgentError, RunServices};
use crate::inference::{
    ChatMessage, FinishReason, GenerateRequest, Generation, ToolCall, ToolChoice, ToolSpec, Usage,
};
use crate::memory::messages::{CoreMessage, Part, Role};
use crate::telemetry::spans::{OpenSpan, SpanRecord, store_spans};
use crate::tools::ToolContext;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolCallRecord {
    pub tool_call_id: String,
    pub tool_name: String,
    pub args: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultRecord {
    pub tool_call_id: String,
    pub tool_name: String,
    pub args: Value,
    pub result: Value,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

/// What one model call produced.
#[derive(Debug, Clone)]
pub struct StepResult {
    /// `initial` for the first step, `tool-result` for steps that follow tool results.
    pub step_type: &'static str,
    pub message_id: String,
    pub text: String,
    pub tool_calls: Vec<ToolCallRecord>,
    pub tool_results: Vec<ToolResultRecord>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    /// ISO time the step's response was produced.
    pub timestamp: String,
    /// The messages the run has produced up to and including this step.
    pub response_messages: Vec<CoreMessage>,
}

/// The outcome of a call.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub run_id: String,
    pub model_id: String,
    /// The final step's text.
    pub text: String,
    /// The structured answer (`output` / `experimental_output`).
    pub object: Option<Value>,
    pub finish_reason: FinishReason,
    /// Summed over the steps.
    pub usage: Usage,
    pub steps: Vec<StepResult>,
    /// Assistant and tool messages produced by the run.
    pub response_messages: Vec<CoreMessage>,
    /// The messages the call was given (after parsing), for memory.
    pub input_messages: Vec<CoreMessage>,
}

impl RunResult {
    pub fn tool_calls(&self) -> &[ToolCallRecord] {
        self.steps.last().map(|s| &s.tool_calls[..]).unwrap_or(&[])
    }
    pub fn tool_results(&self) -> &[ToolResultRecord] {
        self.steps
            .last()
            .map(|s| &s.tool_results[..])
            .unwrap_or(&[])
    }
}

/// What a run reports while it proceeds, in order.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    StepStart { message_id: String },
    TextDelta(String),
    ToolCall(ToolCallRecord),
    ToolResult(ToolResultRecord),
    StepFinish(Box<StepResult>),
}

/// The tool message that carries a step's tool results.
pub fn tool_message(results: &[ToolResultRecord]) -> CoreMessage {
    CoreMessage {
        role: Role::Tool,
        parts: results
            .iter()
            .map(|r| Part::ToolResult {
                id: r.tool_call_id.clone(),
                name: r.tool_name.clone(),
                result: r.result.clone(),
                is_error: r.is_error,
            })
            .collect(),
    }
}

pub(crate) fn now_iso() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

pub(crate) fn new_message_id() -> String {
    format!("msg-{}", &uuid::Uuid::new_v4().simple().to_string()[..24])
}

/// CoreMessages as the chat turns a generator takes.
pub fn to_chat(messages: &[CoreMessage]) -> Vec<ChatMessage> {
    let mut out = Vec::new();
    for m in messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        if m.role == Role::Tool {
            for p in &m.parts {
                if let Part::ToolResult { id, result, .. } = p {
                    let mut c = ChatMessage::new("tool", result_text(result));
                    c.tool_call_id = Some(id.clone());
                    out.push(c);
                }
            }
            continue;
        }
        let mut c = ChatMessage::new(role, m.text_content());
        c.tool_calls = m
            .parts
            .iter()
            .filter_map(|p| match p {
                Part::ToolCall { id, name, args } => Some(ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: args.clone(),
                }),
                _ => None,
            })
            .collect();
        if !c.content.is_empty() || !c.tool_calls.is_empty() {
            out.push(c);
        }
    }
    out
}

fn result_text(result: &Value) -> String {
    match result {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The text of the last user message: what the request is about.
fn last_user_text(messages: &[CoreMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(CoreMessage::text_content)
        .unwrap_or_default()
}

/// Whether tool results came back since the last user message.
fn turn_has_results(messages: &[CoreMessage]) -> bool {
    messages
        .iter()
        .rev()
        .take_while(|m| m.role != Role::User)
        .any(|m| m.role == Role::Tool)
}

fn schema_hint(schema: &Value) -> String {
    format!("Answer with one JSON value that follows this JSON Schema: {schema}")
}

/// The tool through which an agent updates its working memory.
pub const WORKING_MEMORY_TOOL: &str = "updateWorkingMemory";
/// Its description; worded like what users say about themselves, which is when it is due.
/// What users say when it is due.
pub const WORKING_MEMORY_EXAMPLES: &[&str] = &[
    "My name is Sam.",
    "I live in Lisbon with my family.",
    "I work as a teacher.",
    "I like hiking and my hobby is jazz.",
    "My goal is to run a marathon.",
];
pub const WORKING_MEMORY_DESCRIPTION: &str = "Remember what the user tells about themselves: my name is, I live in, I work as, I like, my goal is.";

/// The memory a run belongs to.
#[derive(Clone)]
pub struct MemoryContext {
    pub memory: Arc<crate::memory::engine::Memory>,
    pub config: crate::memory::config::MemoryConfig,
    pub thread_id: String,
    pub resource_id: String,
}

/// What a run sees besides its options: recalled history, extra system text, its memory.
#[derive(Clone, Default)]
pub struct Context {
    pub history: Vec<CoreMessage>,
    pub system: Option<String>,
    pub memory: Option<MemoryContext>,
}

impl MemoryContext {
    fn working_memory_spec(&self) -> Option<ToolSpec> {
        let wm = &self.config.working_memory;
        wm.enabled.then(|| ToolSpec {
            name: WORKING_MEMORY_TOOL.into(),
            description: WORKING_MEMORY_DESCRIPTION.into(),
            parameters: json!({
                "type": "object",
                "properties": {"memory": wm.schema.clone().unwrap_or_else(|| json!({"type": "string", "description": "The whole updated working memory"}))},
                "required": ["memory"]
            }),
            examples: WORKING_MEMORY_EXAMPLES.iter().map(|e| e.to_string()).collect(),
        })
    }

    async fn update_working_memory(&self, args: &Value) -> Result<Value, String> {
        let text = match args.get("memory") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => return Err("`memory` is required".into()),
        };
        self.memory
            .set_working_memory(
                &self.config,
                &self.thread_id,
                Some(&self.resource_id),
                &text,
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(json!({"success": true}))
    }
}

/// A run in progress.
struct Runner<'a> {
    agent: &'a Agent,
    opts: &'a CallOptions,
    events: Option<UnboundedSender<AgentEvent>>,
    specs: Vec<ToolSpec>,
    memory: Option<MemoryContext>,
    root: OpenSpan,
    spans: Vec<SpanRecord>,
}

impl Runner<'_> {
    fn emit(&self, e: AgentEvent) {
        if let Some(tx) = &self.events {
            let _ = tx.send(e);
        }
    }

    /// The tool choice for the next step and the tools presented with it (see
    /// [`super::router`] for models that do not decide).
    async fn choice(
        &self,
        conversation: &[CoreMessage],
    ) -> Result<(ToolChoice, Vec<ToolSpec>), AgentError> {
        if self.specs.is_empty() {
            return Ok((ToolChoice::None, Vec::new()));
        }
        let choice = match &self.opts.tool_choice {
            ToolChoice::Auto if self.agent.model.decides_tool_use() => ToolChoice::Auto,
            ToolChoice::Auto if turn_has_results(conversation) => ToolChoice::None,
            ToolChoice::Auto => {
                let decision = self
                    .agent
                    .router
                    .decide(
                        &*self.agent.model,
                        &to_chat(conversation),
                        &last_user_text(conversation),
                        &self.specs,
                    )
                    .await?;
                // The call presents the tools the model was asked about, so the prompt it
                // scored is the start of the prompt it calls with (its cache is reused).
                return Ok(match decision.tool {
                    Some(name) => (ToolChoice::Tool(name), decision.candidates),
                    None => (ToolChoice::None, Vec::new()),
                });
            }
            other => other.clone(),
        };
        let tools = if choice == ToolChoice::None {
            Vec::new()
        } else {
            self.specs.clone()
        };
        Ok((choice, tools))
    }

    /// Asks the model for one step, forwarding text deltas as events.
    async fn generate(&self, req: GenerateRequest) -> Result<Generation, AgentError> {
        let (tx, mut rx) = unbounded_channel::<String>();
        let events = self.events.clone();
        let forward = async move {
            while let Some(delta) = rx.recv().await {
                if let Some(e) = &events {
                    let _ = e.send(AgentEvent::TextDelta(delta));
                }
            }
        };
        let (generation, ()) = tokio::join!(self.agent.model.generate(req, Some(tx)), forward);
        Ok(generation?)
    }

    /// Runs one tool call; failures become error results.
    async fn execute(&mut self, call: &ToolCall) -> ToolResultRecord {
        let mut attrs = Map::new();
        attrs.insert("componentName".into(), json!(self.agent.key));
        attrs.insert("runId".into(), json!(self.opts.run_id));
        attrs.insert("toolName".into(), json!(call.name));
        attrs.insert("toolCallId".into(), json!(call.id));
        let span = OpenSpan::start(&format!("tool.{}", call.name), Some(&self.root), attrs);
        let working_memory = self
            .memory
            .as_ref()
            .filter(|m| call.name == WORKING_MEMORY_TOOL && m.config.working_memory.enabled);
        tracing::info!(run_id = %self.opts.run_id, agent = %self.agent.key, tool = %call.name, "agent calls tool");
        let outcome = match (self.agent.tools.get(&call.name), working_memory) {
            (None, Some(m)) => m.update_working_memory(&call.arguments).await,
            (None, None) => Err(format!("Tool {} not found", call.name)),
            (Some(tool), _) => {
                let ctx = ToolContext {
                    runtime_context: self.opts.runtime_context.clone(),
                    run_id: Some(self.opts.run_id.clone()),
                };
                tool.execute(call.arguments.clone(), &ctx)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        if let Err(e) = &outcome {
            tracing::warn!(run_id = %self.opts.run_id, agent = %self.agent.key, tool = %call.name, error = %e, "tool call failed");
        }
        self.spans
            .push(span.finish(outcome.as_ref().err().map(String::as_str)));
        let (result, is_error) = match outcome {
            Ok(v) => (v, false),
            Err(e) => (json!({"error": e}), true),
        };
        ToolResultRecord {
            tool_call_id: call.id.clone(),
            tool_name: call.name.clone(),
            args: call.arguments.clone(),
            result,
            is_error,
        }
    }

    async fn run(
        &mut self,
        history: Vec<CoreMessage>,
        extra_system: Option<String>,
    ) -> Result<RunResult, AgentError> {
        let opts = self.opts;
        let mut instructions = opts
            .instructions
            .clone()
            .unwrap_or_else(|| self.agent.instructions());
        if let Some(extra) = extra_system {
            instructions = if instructions.is_empty() {
                extra
            } else {
                format!("{instructions}\n\n{extra}")
            };
        }
        let mut conversation: Vec<CoreMessage> = Vec::new();
        if !instructions.is_empty() {
            conversation.push(CoreMessage::text(Role::System, instructions));
        }
        conversation.extend(opts.context.iter().cloned());
        conversation.extend(history);
        conversation.extend(opts.messages.iter().cloned());

        let mut steps: Vec<StepResult> = Vec::new();
        let mut produced: Vec<CoreMessage> = Vec::new();
        let mut total = Usage::default();
        let mut object = None;
        let max_steps = if opts.output.is_some() {
            1
        } else {
            opts.max_steps
        };
        for step_index in 0..max_steps {
            let (choice, tools) = if opts.output.is_some() {
                (ToolChoice::None, Vec::new())
            } else {
                self.choice(&conversation).await?
            };
            let answer_schema = match choice {
                ToolChoice::None | ToolChoice::Auto => {
                    opts.output.as_ref().or(opts.experimental_output.as_ref())
                }
                _ => None,
            };
            let mut messages = conversation.clone();
            if let Some(schema) = answer_schema
                && !self.agent.model.holds_to_schema()
            {
                messages.push(CoreMessage::text(Role::System, schema_hint(schema)));
            }
            let req = GenerateRequest {
                messages: to_chat(&messages),
                sampling: opts.sampling.clone(),
                max_tokens: opts.max_tokens,
                stop: opts.stop.clone(),
                json_schema: answer_schema.cloned(),
                tools,
                tool_choice: choice,
            };
            let message_id = new_message_id();
            self.emit(AgentEvent::StepStart {
                message_id: message_id.clone(),
            });
            let generation = self.generate(req).await?;
            total.prompt_tokens += generation.usage.prompt_tokens;
            total.completion_tokens += generation.usage.completion_tokens;

            let mut assistant_parts = Vec::new();
            if !generation.text.is_empty() {
                assistant_parts.push(Part::Text(generation.text.clone()));
            }
            let calls: Vec<ToolCallRecord> = generation
                .tool_calls
                .iter()
                .map(|c| ToolCallRecord {
                    tool_call_id: c.id.clone(),
                    tool_name: c.name.clone(),
                    args: c.arguments.clone(),
                })
                .collect();
            for c in &generation.tool_calls {
                assistant_parts.push(Part::ToolCall {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    args: c.arguments.clone(),
                });
            }
            for c in &calls {
                self.emit(AgentEvent::ToolCall(c.clone()));
            }
            let assistant = CoreMessage {
                role: Role::Assistant,
                parts: assistant_parts,
            };
            conversation.push(assistant.clone());
            produced.push(assistant);

            let mut results = Vec::new();
            let mut client_call = false;
            for call in &generation.tool_calls {
                if opts.client_tools.iter().any(|t| t.name == call.name)
                    && !self.agent.tools.contains_key(&call.name)
                {
                    client_call = true;
                    continue;
                }
                let r = self.execute(call).await;
                self.emit(AgentEvent::ToolResult(r.clone()));
                results.push(r);
            }
            if !results.is_empty() {
                let tool_message = tool_message(&results);
                conversation.push(tool_message.clone());
                produced.push(tool_message);
            }
            let finish_reason = if calls.is_empty() {
                generation.finish_reason
            } else {
                FinishReason::ToolCalls
            };
            if calls.is_empty()
                && let Some(schema) = answer_schema
            {
                let value: Value = serde_json::from_str(generation.text.trim()).map_err(|e| {
                    AgentError::Inference(crate::inference::InferenceError::Failed(format!(
                        "the model's structured answer is not JSON: {e}"
                    )))
                })?;
                if let Ok(v) = jsonschema::validator_for(schema)
                    && let Some(err) = v.iter_errors(&value).next()
                {
                    return Err(AgentError::Inference(
                        crate::inference::InferenceError::Failed(format!(
                            "the model's structured answer does not follow the schema: {err}"
                        )),
                    ));
                }
                object = Some(value);
            }
            let step = StepResult {
                step_type: if step_index == 0 {
                    "initial"
                } else {
                    "tool-result"
                },
                message_id,
                text: generation.text.clone(),
                tool_calls: calls,
                tool_results: results,
                finish_reason,
                usage: generation.usage,
                timestamp: now_iso(),
                response_messages: produced.clone(),
            };
            self.emit(AgentEvent::StepFinish(Box::new(step.clone())));
            steps.push(step);
            if finish_reason != FinishReason::ToolCalls || client_call {
                break;
            }
        }
        let last = steps.last();
        Ok(RunResult {
            run_id: opts.run_id.clone(),
            model_id: self.agent.model.model_id().to_string(),
            text: last.map(|s| s.text.clone()).unwrap_or_default(),
            object,
            finish_reason: last.map(|s| s.finish_reason).unwrap_or(FinishReason::Stop),
            usage: total,
            steps,
            response_messages: produced,
            input_messages: opts.messages.clone(),
        })
    }
}

/// The tools the model may call in a run: the agent's, then the request's client tools.
fn tool_specs(agent: &Agent, opts: &CallOptions) -> Vec<ToolSpec> {
    let mut specs: Vec<ToolSpec> = agent
        .tools
        .iter()
        .map(|(key, t)| ToolSpec {
            name: key.clone(),
            description: t.description.clone(),
            parameters: t.input_schema.raw().clone(),
            examples: t.examples.clone(),
        })
        .collect();
    for t in &opts.client_tools {
        if !agent.tools.contains_key(&t.name) {
            specs.push(ToolSpec {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.input_schema.clone(),
                examples: Vec::new(),
            });
        }
    }
    specs
}

/// Runs a call of `agent`. The context's history is what memory recalls for it (placed
/// before the new messages). Events go to `events` as they happen; the run is traced and logged with its run id.
pub async fn run(
    agent: &Arc<Agent>,
    opts: &CallOptions,
    context: Context,
    services: &RunServices,
    events: Option<UnboundedSender<AgentEvent>>,
) -> Result<RunResult, AgentError> {
    let mut attrs = Map::new();
    attrs.insert("componentName".into(), json!(agent.key));
    attrs.insert("runId".into(), json!(opts.run_id));
    attrs.insert("modelId".into(), json!(agent.model.model_id()));
    let root = OpenSpan::start(&format!("agent.{}", agent.key), None, attrs);
    tracing::info!(run_id = %opts.run_id, agent = %agent.key, "agent run started");
    let mut specs = tool_specs(agent, opts);
    if let Some(spec) = context
        .memory
        .as_ref()
        .and_then(|m| m.working_memory_spec())
    {
        specs.push(spec);
    }
    let mut runner = Runner {
        agent,
        opts,
        events,
        specs,
        memory: context.memory,
        root,
        spans: Vec::new(),
    };
    let outcome = runner.run(context.history, context.system).await;
    match &outcome {
        Ok(r) => {
            tracing::info!(run_id = %opts.run_id, agent = %agent.key, steps = r.steps.len(), finish_reason = ?r.finish_reason, prompt_tokens = r.usage.prompt_tokens, completion_tokens = r.usage.completion_tokens, "agent run finished")
        }
        Err(e) => {
            tracing::warn!(run_id = %opts.run_id, agent = %agent.key, error = %e, "agent run failed")
        }
    }
    let mut root = runner.root.clone();
    if let Ok(r) = &outcome {
        root.attributes
            .insert("promptTokens".into(), json!(r.usage.prompt_tokens));
        root.attributes
            .insert("completionTokens".into(), json!(r.usage.completion_tokens));
    }
    let error = outcome.as_ref().err().map(|e| e.to_string());
    let mut spans = std::mem::take(&mut runner.spans);
    spans.push(root.finish(error.as_deref()));
    let store = services.store.clone();
    let (rows, age) = services.span_retention;
    // Tracing is best-effort: a failed span write must not fail the call.
    let stored = tokio::task::spawn_blocking(move || store_spans(&store, &spans, rows, age)).await;
    if let Ok(Err(e)) = stored {
        tracing::warn!(run_id = %opts.run_id, error = %e, "could not store the run's spans");
    }
    outcome
}
