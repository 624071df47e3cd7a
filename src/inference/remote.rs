//! An OpenAI-compatible provider (llama-server, vLLM, ollama, …): chat completions (streaming,
//! tool calls, JSON-schema output) and embeddings, with a timeout per request and retries with
//! exponential backoff on 429, 5xx and connection failures (before any output was received).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::{
    ChatMessage, Embedder, FinishReason, GenerateRequest, Generation, Generator, InferenceError,
    ToolCall, ToolChoice, Usage,
};
use crate::config::OpenAiModelConfig;

const RETRIES: u32 = 3;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

pub struct RemoteModel {
    base_url: String,
    model: String,
    api_key: Option<String>,
    timeout: Duration,
    client: reqwest::Client,
    embedding_dimensions: std::sync::OnceLock<usize>,
}

impl RemoteModel {
    pub fn new(cfg: &OpenAiModelConfig) -> Result<RemoteModel, InferenceError> {
        Ok(RemoteModel {
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            model: cfg.model.clone(),
            api_key: cfg.api_key.clone().filter(|k| !k.is_empty()),
            timeout: cfg
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TIMEOUT),
            client: crate::net::http_client().map_err(InferenceError::Load)?,
            embedding_dimensions: std::sync::OnceLock::new(),
        })
    }

    /// POSTs `body`, retrying what may succeed on a second try. Returns the response once its
    /// status is a success.
    async fn post(&self, path: &str, body: &Value) -> Result<reqwest::Response, InferenceError> {
        let url = format!("{}{path}", self.base_url);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 0;
        loop {
            let mut req = self.client.post(&url).json(body).timeout(self.timeout);
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key);
            }
            let retryable = match req.send().await {
                Ok(res) if res.status().is_success() => return Ok(res),
                Ok(res) => {
                    let status = res.status().as_u16();
                    let retry_after = res
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|s| s.parse::<u64>().ok())
                        .map(Duration::from_secs);
                    let text = res.text().await.unwrap_or_default();
                    let message = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| {
                            v.pointer("/error/message")
                                .and_then(Value::as_str)
                                .map(String::from)
                        })
                        .unwrap_or(text);
                    let err = InferenceError::Remote { status, message };
                    if !(status == 429 || status >= 500) || attempt >= RETRIES {
                        return Err(err);
                    }
                    if let Some(d) = retry_after {
                        backoff = backoff.max(d.min(Duration::from_secs(10)));
                    }
                    err
                }
                Err(e) if e.is_timeout() => {
                    return Err(InferenceError::Timeout(self.timeout.as_millis() as u64));
                }
                Err(e) => {
                    let err = InferenceError::Failed(format!("cannot reach {url}: {e}"));
                    if attempt >= RETRIES {
                        return Err(err);
                    }
                    err
                }
            };
            tracing::warn!(target: "edgestra::inference", url, attempt, error = %retryable, "retrying the model server");
            tokio::time::sleep(backoff).await;
            backoff *= 2;
            attempt += 1;
        }
    }
}

fn wire_message(m: &ChatMessage) -> Value {
    let mut v = json!({"role": m.role, "content": m.content});
    if !m.tool_calls.is_empty() {
        v["tool_calls"] = m
            .tool_calls
            .iter()
            .map(|c| json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments.to_string()}}))
            .collect();
    }
    if let Some(id) = &m.tool_call_id {
        v["tool_call_id"] = json!(id);
    }
    v
}

fn request_body(model: &str, req: &GenerateRequest, stream: bool) -> Value {
    let s = &req.sampling;
    let mut body = json!({
        "model": model,
        "messages": req.messages.iter().map(wire_message).collect::<Vec<_>>(),
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": req.max_tokens,
        "presence_penalty": s.presence_penalty,
        "frequency_penalty": s.frequency_penalty,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(seed) = s.seed {
        body["seed"] = json!(seed);
    }
    if !req.stop.is_empty() {
        body["stop"] = json!(req.stop);
    }
    if let Some(schema) = &req.json_schema {
        body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}});
    }
    if !req.tools.is_empty() && req.tool_choice != ToolChoice::None {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
            .collect();
        body["tool_choice"] = match &req.tool_choice {
            ToolChoice::Auto | ToolChoice::None => json!("auto"),
            ToolChoice::Required => json!("required"),
            ToolChoice::Tool(name) => json!({"type": "function", "function": {"name": name}}),
        };
    }
    body
}

fn finish_reason(s: Option<&str>) -> FinishReason {
    match s {
        Some("length") => FinishReason::Length,
        Some("tool_calls") | Some("function_call") => FinishReason::ToolCalls,
        Some("content_filter") => FinishReason::Error,
        _ => FinishReason::Stop,
    }
}

fn usage(v: &Value) -> Usage {
    Usage {
        prompt_tokens: v
            .pointer("/usage/prompt_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32,
        completion_tokens: v
            .pointer("/usage/completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0) as u32,
    }
}

fn parse_arguments(name: &str, text: &str) -> Result<Value, InferenceError> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|e| {
        InferenceError::Failed(format!(
            "the model called `{name}` with arguments that are not JSON ({e}): {text}"
        ))
    })
}

/// Tool calls being assembled from stream deltas, by index.
#[derive(Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

#[async_trait::async_trait]
impl Generator for RemoteModel {
    fn model_id(&self) -> &str {
        &self.model
    }
    fn provider(&self) -> &str {
        "openai-compatible"
    }

    async fn generate(
        &self,
        req: GenerateRequest,
        stream: Option<UnboundedSender<String>>,
    ) -> Result<Generation, InferenceError> {
        let streaming = stream.is_some();
        let res = self
            .post(
                "/chat/completions",
                &request_body(&self.model, &req, streaming),
            )
            .await?;
        if !streaming {
            let v: Value = res.json().await.map_err(|e| {
                InferenceError::Failed(format!("the model server's answer is not JSON: {e}"))
            })?;
            let choice = v
                .pointer("/choices/0")
                .ok_or_else(|| InferenceError::Failed("the answer has no choices".into()))?;
            let mut tool_calls = Vec::new();
            for c in choice
                .pointer("/message/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = c
                    .pointer("/function/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let args = c
                    .pointer("/function/arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                tool_calls.push(ToolCall {
                    id: c
                        .get("id")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    arguments: parse_arguments(&name, args)?,
                    name,
                });
            }
            return Ok(Generation {
                text: choice
                    .pointer("/message/content")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                finish_reason: finish_reason(choice.get("finish_reason").and_then(Value::as_str)),
                usage: usage(&v),
                tool_calls,
            });
        }
        let sink = stream.expect("streaming");
        let mut body = res.bytes_stream();
        let mut buffer = String::new();
        let mut text = String::new();
        let mut calls: Vec<PartialCall> = Vec::new();
        let mut finish = FinishReason::Stop;
        let mut used = Usage::default();
        let deadline = tokio::time::Instant::now() + self.timeout;
        'read: loop {
            let chunk = match tokio::time::timeout_at(deadline, body.next()).await {
                Err(_) => return Err(InferenceError::Timeout(self.timeout.as_millis() as u64)),
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(InferenceError::Failed(format!(
                        "the model stream broke: {e}"
                    )));
                }
                Ok(Some(Ok(c))) => c,
            };
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find('\n') {
                let line = buffer[..end].trim().to_string();
                buffer.drain(..=end);
                let Some(data) = line.strip_prefix("data:").map(str::trim) else {
                    continue;
                };
                if data == "[DONE]" {
                    break 'read;
                }
                let Ok(v) = serde_json::from_str::<Value>(data) else {
                    continue;
                };
                if v.get("usage").is_some_and(|u| !u.is_null()) {
                    used = usage(&v);
                }
                let Some(choice) = v.pointer("/choices/0") else {
                    continue;
                };
                if let Some(delta) = choice.pointer("/delta/content").and_then(Value::as_str)
                    && !delta.is_empty()
                {
                    text.push_str(delta);
                    if sink.send(delta.to_string()).is_err() {
                        return Err(InferenceError::Cancelled);
                    }
                }
                for c in choice
                    .pointer("/delta/tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let i = c.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
                    if calls.len() <= i {
                        calls.resize_with(i + 1, PartialCall::default);
                    }
                    let p = &mut calls[i];
                    if let Some(id) = c.get("id").and_then(Value::as_str) {
                        p.id = id.to_string();
                    }
                    if let Some(n) = c.pointer("/function/name").and_then(Value::as_str) {
                        p.name.push_str(n);
                    }
                    if let Some(a) = c.pointer("/function/arguments").and_then(Value::as_str) {
                        p.arguments.push_str(a);
                    }
                }
                if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                    finish = finish_reason(Some(r));
                }
            }
        }
        let tool_calls = calls
            .into_iter()
            .map(|p| {
                Ok(ToolCall {
                    arguments: parse_arguments(&p.name, &p.arguments)?,
                    id: p.id,
                    name: p.name,
                })
            })
            .collect::<Result<Vec<_>, InferenceError>>()?;
        Ok(Generation {
            text,
            finish_reason: finish,
            usage: used,
            tool_calls,
        })
    }
}

#[async_trait::async_trait]
impl Embedder for RemoteModel {
    fn dimensions(&self) -> usize {
        self.embedding_dimensions.get().copied().unwrap_or(0)
    }

    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, InferenceError> {
        let n = texts.len();
        let res = self
            .post("/embeddings", &json!({"model": self.model, "input": texts}))
            .await?;
        let v: Value = res.json().await.map_err(|e| {
            InferenceError::Failed(format!("the embeddings answer is not JSON: {e}"))
        })?;
        let mut out = vec![Vec::new(); n];
        for (pos, item) in v
            .get("data")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let i = item
                .get("index")
                .and_then(Value::as_u64)
                .map(|i| i as usize)
                .unwrap_or(pos);
            let vector: Vec<f32> = item
                .get("embedding")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_f64)
                        .map(|x| x as f32)
                        .collect()
                })
                .unwrap_or_default();
            if i < n {
                out[i] = vector;
            }
        }
        if out.iter().any(Vec::is_empty) {
            return Err(InferenceError::Failed(format!(
                "the embeddings answer did not have {n} vectors"
            )));
        }
        let _ = self.embedding_dimensions.set(out[0].len());
        Ok(out)
    }
}
