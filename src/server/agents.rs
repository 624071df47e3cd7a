//! `agents` group: the agent list and details, generate and the three stream framings (AI-SDK
//! data stream §2.1, plain text §2.2, 0x1E vNext records §3.11), tool execution, instructions,
//! evals and voice.

use std::convert::Infallible;
use std::sync::Arc;

use salvo::http::HeaderValue;
use salvo::http::header::CONTENT_TYPE;
use salvo::prelude::*;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

use super::ApiError;
use super::request::{json_object, runtime_context, truthy};
use super::state::AppState;
use super::tools::wire as tool_wire;
use crate::agent::Agent;
use crate::agent::options::CallOptions;
use crate::agent::run::{AgentEvent, RunResult, StepResult};
use crate::inference::{FinishReason, Usage};

const PLAYGROUND_HEADER: &str = "x-mastra-dev-playground";

fn agent_id(req: &Request) -> String {
    req.param::<String>("agentId").unwrap_or_default()
}

fn find(state: &AppState, req: &Request) -> Result<Arc<Agent>, ApiError> {
    Ok(state.agents.get(&agent_id(req))?.clone())
}

/// The agent object (§3.1); `detailed` adds each workflow's steps (the by-id variant).
fn agent_wire(state: &AppState, agent: &Agent, detailed: bool) -> Value {
    let tools: Map<String, Value> = agent
        .tools
        .iter()
        .map(|(key, t)| (key.clone(), tool_wire(t)))
        .collect();
    let workflows: Map<String, Value> = agent
        .workflows
        .iter()
        .map(|key| {
            let cfg = state.project.workflows.get(key);
            let mut w =
                json!({"name": cfg.and_then(|c| c.name.clone()).unwrap_or_else(|| key.clone())});
            if detailed {
                let steps: Map<String, Value> = cfg
                    .map(|c| c.steps.iter())
                    .into_iter()
                    .flatten()
                    .filter_map(|s| s.get("id").and_then(Value::as_str))
                    .map(|id| (id.to_string(), json!({"id": id, "description": ""})))
                    .collect();
                w["steps"] = Value::Object(steps);
            }
            (key.clone(), w)
        })
        .collect();
    json!({
        "name": agent.name,
        "instructions": agent.instructions(),
        "tools": tools,
        "workflows": workflows,
        "provider": agent.model.provider(),
        "modelId": agent.model.model_id(),
        "defaultGenerateOptions": agent.default_generate_options,
        "defaultStreamOptions": agent.default_stream_options,
    })
}

/// All agents, by key.
#[endpoint(tags("agents"), operation_id = "getAgents")]
pub async fn list(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .agents
            .iter()
            .map(|a| (a.key.clone(), agent_wire(state, a, false)))
            .collect(),
    )
}

/// One agent.
#[endpoint(tags("agents"), operation_id = "getAgentById", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn get(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let agent = find(state, req)?;
    Ok(Json(agent_wire(state, &agent, true)))
}

fn evals(state: &AppState, req: &Request, kind: &str) -> Result<Json<Value>, ApiError> {
    let agent = find(state, req)?;
    let rows = crate::agent::evals::list(&state.store, &agent.key, kind)?;
    Ok(Json(json!({
        "id": agent.key,
        "name": agent.name,
        "instructions": agent.instructions(),
        "evals": rows,
    })))
}

/// Stored CI eval rows of the agent.
#[endpoint(tags("agents"), operation_id = "getAgentEvalsCi", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn evals_ci(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    evals(AppState::get(depot), req, "test")
}

/// Stored live eval rows of the agent.
#[endpoint(tags("agents"), operation_id = "getAgentEvalsLive", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn evals_live(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    evals(AppState::get(depot), req, "live")
}

/// Which of the agent's default option sets applies.
enum CallKind {
    Generate,
    Stream,
}

/// Reads the agent and the call's options from the request.
async fn prepare(
    req: &mut Request,
    depot: &Depot,
    kind: CallKind,
) -> Result<(Arc<AppState>, Arc<Agent>, CallOptions), ApiError> {
    let state = AppState::get(depot).clone();
    let agent = find(&state, req)?;
    let body = json_object(req, depot).await?;
    if !truthy(body.get("messages")) {
        return Err(ApiError::required("messages"));
    }
    let defaults = match kind {
        CallKind::Generate => &agent.default_generate_options,
        CallKind::Stream => &agent.default_stream_options,
    };
    let opts = CallOptions::from_body(&agent, &body, defaults, runtime_context(depot))?;
    Ok((state, agent, opts))
}

fn usage_json(u: &Usage) -> Value {
    json!({
        "promptTokens": u.prompt_tokens,
        "completionTokens": u.completion_tokens,
        "totalTokens": u.prompt_tokens + u.completion_tokens,
    })
}

fn finish_text(r: FinishReason) -> Value {
    serde_json::to_value(r).unwrap_or(Value::Null)
}

fn typed<T: serde::Serialize>(kind: &str, items: &[T]) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                let mut v = serde_json::to_value(i).unwrap_or_default();
                v["type"] = json!(kind);
                v
            })
            .collect(),
    )
}

fn response_json(model_id: &str, step: Option<&StepResult>, messages: Value) -> Value {
    json!({
        "id": step.map(|s| s.message_id.clone()).unwrap_or_default(),
        "timestamp": step.map(|s| s.timestamp.clone()).unwrap_or_default(),
        "modelId": model_id,
        "headers": {},
        "messages": messages,
    })
}

fn messages_json(messages: &[crate::memory::messages::CoreMessage]) -> Value {
    Value::Array(messages.iter().map(|m| m.to_json()).collect())
}

fn step_json(model_id: &str, s: &StepResult) -> Value {
    json!({
        "stepType": s.step_type,
        "text": s.text,
        "reasoningDetails": [],
        "files": [],
        "sources": [],
        "toolCalls": typed("tool-call", &s.tool_calls),
        "toolResults": typed("tool-result", &s.tool_results),
        "finishReason": finish_text(s.finish_reason),
        "usage": usage_json(&s.usage),
        "warnings": [],
        "request": {},
        "response": response_json(model_id, Some(s), messages_json(&s.response_messages)),
        "providerMetadata": {},
        "experimental_providerMetadata": {},
        "isContinued": false,
    })
}

/// The generate answer (§4.1.4): AI SDK `generateText`'s result, or `generateObject`'s with `output`.
pub(super) fn generate_json(r: &RunResult, structured_only: bool) -> Value {
    let last = r.steps.last();
    let response = response_json(&r.model_id, last, messages_json(&r.response_messages));
    if structured_only {
        return json!({
            "object": r.object,
            "finishReason": finish_text(r.finish_reason),
            "usage": usage_json(&r.usage),
            "warnings": [],
            "request": {},
            "response": response,
            "providerMetadata": {},
            "runId": r.run_id,
        });
    }
    let mut v = json!({
        "text": r.text,
        "files": [],
        "reasoningDetails": [],
        "toolCalls": typed("tool-call", r.tool_calls()),
        "toolResults": typed("tool-result", r.tool_results()),
        "finishReason": finish_text(r.finish_reason),
        "usage": usage_json(&r.usage),
        "warnings": [],
        "request": {},
        "response": response,
        "steps": r.steps.iter().map(|s| step_json(&r.model_id, s)).collect::<Vec<_>>(),
        "sources": [],
        "providerMetadata": {},
        "experimental_providerMetadata": {},
        "runId": r.run_id,
    });
    if let Some(object) = &r.object {
        v["object"] = object.clone();
        v["experimental_output"] = object.clone();
    }
    v
}

/// A call running in its own task; dropping it (the client went away) cancels the call.
pub(super) struct RunningCall {
    events: UnboundedReceiver<AgentEvent>,
    task: Option<JoinHandle<Result<RunResult, ApiError>>>,
}

impl Drop for RunningCall {
    fn drop(&mut self) {
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl RunningCall {
    fn start(state: Arc<AppState>, agent: Arc<Agent>, opts: CallOptions) -> RunningCall {
        Self::spawn(move |tx| async move { Ok(state.agents.call(&agent, &opts, Some(tx)).await?) })
    }

    /// Runs `call` (given where to send its events) in its own task.
    pub(super) fn spawn<F, Fut>(call: F) -> RunningCall
    where
        F: FnOnce(UnboundedSender<AgentEvent>) -> Fut,
        Fut: std::future::Future<Output = Result<RunResult, ApiError>> + Send + 'static,
    {
        let (tx, events) = unbounded_channel();
        // The task keeps the request's span, so the run's logs carry its request and instance.
        let span = tracing::Span::current();
        let task = tokio::spawn(tracing::Instrument::instrument(call(tx), span));
        RunningCall {
            events,
            task: Some(task),
        }
    }

    /// The next event, or the outcome once the run has ended (after its last event).
    async fn next(&mut self) -> Option<Result<AgentEvent, Result<RunResult, ApiError>>> {
        if let Some(e) = self.events.recv().await {
            return Some(Ok(e));
        }
        let task = self.task.take()?;
        Some(Err(match task.await {
            Ok(outcome) => outcome,
            Err(e) => Err(ApiError::internal(format!("the agent run stopped: {e}"))),
        }))
    }

    /// Waits until the run has produced something or failed; a failure before any output is
    /// returned as an error (so it can still be answered with a JSON status), anything else is
    /// handed back to be streamed.
    async fn first_output(
        mut self,
    ) -> Result<
        (
            RunningCall,
            Vec<Result<AgentEvent, Result<RunResult, ApiError>>>,
        ),
        ApiError,
    > {
        let mut held = Vec::new();
        loop {
            match self.next().await {
                Some(Ok(e @ AgentEvent::StepStart { .. })) => held.push(Ok(e)),
                Some(Ok(e)) => {
                    held.push(Ok(e));
                    return Ok((self, held));
                }
                Some(Err(Err(e))) => return Err(e),
                Some(Err(done)) => {
                    held.push(Err(done));
                    return Ok((self, held));
                }
                None => return Ok((self, held)),
            }
        }
    }
}

pub(super) type Framer =
    Box<dyn FnMut(Result<AgentEvent, Result<RunResult, ApiError>>) -> String + Send>;

/// Streams the call's output through `framer` (one string per event).
pub(super) async fn stream_call(
    res: &mut Response,
    call: RunningCall,
    content_type: Option<&'static str>,
    mut framer: Framer,
) -> Result<(), ApiError> {
    let (call, held) = call.first_output().await?;
    if let Some(ct) = content_type {
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let head: Vec<String> = held.into_iter().map(&mut framer).collect();
    let head = futures_util::stream::iter(head.into_iter().map(Ok::<_, Infallible>));
    let rest = futures_util::stream::unfold((call, framer), |(mut call, mut framer)| async move {
        let item = call.next().await?;
        let text = framer(item);
        Some((Ok::<_, Infallible>(text), (call, framer)))
    });
    res.stream(futures_util::StreamExt::chain(head, rest));
    Ok(())
}

/// Runs a call and answers the AI SDK result.
#[endpoint(tags("agents"), operation_id = "generate", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn generate(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let (state, agent, opts) = prepare(req, depot, CallKind::Generate).await?;
    let structured = opts.output.is_some();
    let result = state.agents.call(&agent, &opts, None).await?;
    Ok(Json(generate_json(&result, structured)))
}

fn data_line(code: char, v: &Value) -> String {
    format!("{code}:{v}\n")
}

/// AI-SDK v4 data stream framing (§2.1).
pub(super) fn data_stream_framer() -> Framer {
    Box::new(move |item| match item {
        Ok(AgentEvent::StepStart { message_id }) => {
            data_line('f', &json!({"messageId": message_id}))
        }
        Ok(AgentEvent::TextDelta(t)) => data_line('0', &Value::String(t)),
        Ok(AgentEvent::ToolCall(c)) => data_line(
            '9',
            &json!({"toolCallId": c.tool_call_id, "toolName": c.tool_name, "args": c.args}),
        ),
        Ok(AgentEvent::ToolResult(r)) => data_line(
            'a',
            &json!({"toolCallId": r.tool_call_id, "result": r.result}),
        ),
        Ok(AgentEvent::StepFinish(s)) => data_line(
            'e',
            &json!({"finishReason": finish_text(s.finish_reason), "usage": {"promptTokens": s.usage.prompt_tokens, "completionTokens": s.usage.completion_tokens}, "isContinued": false}),
        ),
        Err(Ok(r)) => data_line(
            'd',
            &json!({"finishReason": finish_text(r.finish_reason), "usage": {"promptTokens": r.usage.prompt_tokens, "completionTokens": r.usage.completion_tokens}}),
        ),
        Err(Err(e)) => data_line(
            '3',
            &Value::String(format!(
                "An error occurred while processing your request. {}",
                e.message
            )),
        ),
    })
}

/// Plain text framing (§2.2): the raw text deltas of the structured answer.
fn text_framer() -> Framer {
    Box::new(|item| match item {
        Ok(AgentEvent::TextDelta(t)) => t,
        _ => String::new(),
    })
}

/// vNext record framing (§3.11).
fn vnext_framer(run_id: String) -> Framer {
    let record = move |kind: &str, payload: Value| {
        format!(
            "{}\u{1e}",
            json!({"type": kind, "runId": run_id, "from": "AGENT", "payload": payload})
        )
    };
    let mut started = false;
    let mut total = Usage::default();
    Box::new(move |item| {
        let mut out = String::new();
        if !started {
            started = true;
            out.push_str(&record("start", json!({})));
        }
        out.push_str(&match item {
            Ok(AgentEvent::StepStart { message_id }) => record(
                "step-start",
                json!({"messageId": message_id, "request": {"body": {}}, "warnings": []}),
            ),
            Ok(AgentEvent::TextDelta(t)) => record("text-delta", json!({"text": t})),
            Ok(AgentEvent::ToolCall(c)) => record(
                "tool-call",
                json!({"toolCallId": c.tool_call_id, "toolName": c.tool_name, "args": c.args}),
            ),
            Ok(AgentEvent::ToolResult(r)) => record(
                "tool-result",
                json!({"toolCallId": r.tool_call_id, "toolName": r.tool_name, "result": r.result, "isError": r.is_error}),
            ),
            Ok(AgentEvent::StepFinish(s)) => {
                total.prompt_tokens += s.usage.prompt_tokens;
                total.completion_tokens += s.usage.completion_tokens;
                record(
                    "step-finish",
                    json!({"reason": finish_text(s.finish_reason), "usage": usage_json(&s.usage), "response": {"id": s.message_id, "timestamp": s.timestamp, "messages": messages_json(&s.response_messages)}, "messageId": s.message_id, "providerMetadata": {}}),
                )
            }
            Err(Ok(r)) => record(
                "finish",
                json!({"usage": usage_json(&r.usage), "providerMetadata": {}, "totalUsage": usage_json(&total)}),
            ),
            // 0.13 only logs such errors; an in-band record tells the client why it ended.
            Err(Err(e)) => record("error", json!({"error": e.message})),
        });
        out
    })
}

/// Runs a call and streams it: the AI-SDK data stream, or plain text with `output`.
#[endpoint(tags("agents"), operation_id = "streamGenerate", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn stream(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let (state, agent, opts) = prepare(req, depot, CallKind::Stream).await?;
    let structured = opts.output.is_some();
    if !structured {
        res.headers_mut()
            .insert("x-vercel-ai-data-stream", HeaderValue::from_static("v1"));
    }
    let call = RunningCall::start(state, agent, opts);
    let framer = if structured {
        text_framer()
    } else {
        data_stream_framer()
    };
    stream_call(res, call, Some("text/plain; charset=utf-8"), framer).await
}

/// Runs a call and streams 0x1E-separated vNext records.
#[endpoint(tags("agents"), operation_id = "streamVNext", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn stream_vnext(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<(), ApiError> {
    let (state, agent, opts) = prepare(req, depot, CallKind::Stream).await?;
    let run_id = opts.run_id.clone();
    let call = RunningCall::start(state, agent, opts);
    stream_call(
        res,
        call,
        Some("text/plain; charset=utf-8"),
        vnext_framer(run_id),
    )
    .await
}

/// Runs one of the agent's tools, found by tool id.
#[endpoint(tags("agents"), operation_id = "executeAgentTool", parameters(("agentId" = String, Path, description = "The agent id"), ("toolId" = String, Path, description = "The tool id")))]
pub async fn execute_tool(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let agent = find(&state, req)?;
    let tool_id = req.param::<String>("toolId").unwrap_or_default();
    let tool = agent
        .tool_by_id(&tool_id)
        .ok_or_else(|| ApiError::not_found("Tool not found"))?
        .clone();
    super::tools::run(req, depot, &tool, Some(agent.key.clone())).await
}

/// Dev-only routes answer only in dev mode or to the playground.
fn require_playground(state: &AppState, req: &Request) -> Result<(), ApiError> {
    let from_playground = req
        .header::<String>(PLAYGROUND_HEADER)
        .is_some_and(|v| v == "true");
    if state.dev || from_playground {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "This API is only available in the playground environment",
        ))
    }
}

/// Replaces the agent's instructions until the server restarts (dev / playground only).
#[endpoint(tags("agents"), operation_id = "updateAgentInstructions", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn update_instructions(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    require_playground(&state, req)?;
    let agent = find(&state, req)?;
    let body = json_object(req, depot).await?;
    let Some(Value::String(text)) = body.get("instructions").filter(|v| truthy(Some(v))) else {
        return Err(ApiError::bad_request("Missing required fields"));
    };
    agent.set_instructions(text.clone());
    tracing::info!(agent = %agent.key, "instructions updated");
    Ok(Json(json!({"instructions": text})))
}

/// Asks the agent's model for improved instructions (dev / playground only).
#[endpoint(tags("agents"), operation_id = "enhanceAgentInstructions", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn enhance_instructions(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    require_playground(&state, req)?;
    let agent = find(&state, req)?;
    let body = json_object(req, depot).await?;
    let Some(Value::String(instructions)) = body.get("instructions").filter(|v| truthy(Some(v)))
    else {
        return Err(ApiError::bad_request(
            "Missing instructions in request body",
        ));
    };
    let comment = body.get("comment").and_then(Value::as_str);
    let improved =
        crate::agent::enhance::improve(&state.agents, &agent, instructions, comment).await?;
    Ok(Json(improved))
}

fn no_voice() -> ApiError {
    ApiError::internal("No voice provider configured")
}

/// Speakers of the agent's voice provider (none can be configured: 500 as Mastra answers).
#[endpoint(tags("agents"), operation_id = "getSpeakers", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn speakers(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    find(AppState::get(depot), req)?;
    Err(no_voice())
}

/// Whether the voice provider listens (none can be configured: 500 as Mastra answers).
#[endpoint(tags("agents"), operation_id = "getListener", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn listener(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    find(AppState::get(depot), req)?;
    Err(no_voice())
}

/// Text to speech with `{input, options}`.
#[endpoint(tags("agents"), operation_id = "speak", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn speak(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    find(&state, req)?;
    let body = json_object(req, depot).await?;
    if !truthy(body.get("input")) {
        return Err(ApiError::required("text"));
    }
    Err(no_voice())
}

/// Speech to text from a multipart `audio` field.
#[endpoint(tags("agents"), operation_id = "listen", parameters(("agentId" = String, Path, description = "The agent id")))]
pub async fn listen(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    find(&state, req)?;
    let has_audio = match req.form_data().await {
        Ok(form) => form.files.contains_key("audio") || form.fields.contains_key("audio"),
        Err(_) => false,
    };
    if !has_audio {
        return Err(ApiError::bad_request("Audio file is required"));
    }
    Err(no_voice())
}

/// Marks a deprecated alias (§1.4) and names its successor.
#[handler]
pub async fn deprecated(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let path = req.uri().path().to_string();
    let successor = path
        .rsplit_once('/')
        .map(|(base, last)| format!("{base}/voice/{last}"))
        .unwrap_or_default();
    super::request::mark_deprecated(res, &successor);
    ctrl.call_next(req, depot, res).await;
}
