//! OpenAI answers: a chat completion, its server-sent chunks, embeddings, the model list and the
//! error body (`{"error": {message, type, param, code}}`).

use serde_json::{Value, json};

use super::super::ApiError;
use super::super::agents::Framer;
use crate::agent::run::{AgentEvent, RunResult, ToolCallRecord};
use crate::inference::{FinishReason, Usage};

/// Seconds since the epoch (`created`).
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn finish_reason(r: FinishReason) -> &'static str {
    match r {
        FinishReason::Stop | FinishReason::Error => "stop",
        FinishReason::Length => "length",
        FinishReason::ToolCalls => "tool_calls",
    }
}

fn usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

fn tool_call(c: &ToolCallRecord) -> Value {
    json!({
        "id": c.tool_call_id,
        "type": "function",
        "function": {"name": c.tool_name, "arguments": c.args.to_string()},
    })
}

/// Identifies one completion and the model it was asked of, for every part of its answer.
#[derive(Clone)]
pub struct Completion {
    pub id: String,
    pub model: String,
    pub created: u64,
    /// Tools the client runs: only their calls are the client's to see (the agent's own tools
    /// have already run on the server).
    pub client_tools: Vec<String>,
}

impl Completion {
    fn is_client_call(&self, c: &ToolCallRecord) -> bool {
        self.client_tools.contains(&c.tool_name)
    }

    /// The `chat.completion` object of a finished run.
    pub fn answer(&self, r: &RunResult) -> Value {
        let calls: Vec<Value> = r
            .tool_calls()
            .iter()
            .filter(|c| self.is_client_call(c))
            .map(tool_call)
            .collect();
        let content = match &r.object {
            Some(object) => Value::String(object.to_string()),
            None if r.text.is_empty() && !calls.is_empty() => Value::Null,
            None => Value::String(r.text.clone()),
        };
        let mut message = json!({"role": "assistant", "content": content, "refusal": null});
        if !calls.is_empty() {
            message["tool_calls"] = Value::Array(calls);
        }
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "message": message,
                "logprobs": null,
                "finish_reason": finish_reason(r.finish_reason),
            }],
            "usage": usage(&r.usage),
            "system_fingerprint": null,
        })
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        event(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    /// Server-sent `chat.completion.chunk` events of a running call, ending with `[DONE]`:
    /// the role first, then text deltas and the client's tool calls as they come, then the
    /// finish reason (and, with `include_usage`, a last chunk with the usage).
    pub fn framer(self, include_usage: bool) -> Framer {
        let mut opened = false;
        let mut calls = 0usize;
        Box::new(move |item| {
            let mut out = String::new();
            if !opened {
                opened = true;
                out.push_str(&self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            match item {
                Ok(AgentEvent::TextDelta(t)) if !t.is_empty() => {
                    out.push_str(&self.chunk(json!({"content": t}), None));
                }
                Ok(AgentEvent::ToolCall(c)) if self.is_client_call(&c) => {
                    let mut call = tool_call(&c);
                    call["index"] = json!(calls);
                    calls += 1;
                    out.push_str(&self.chunk(json!({"tool_calls": [call]}), None));
                }
                Ok(_) => {}
                Err(Ok(r)) => {
                    out.push_str(&self.chunk(json!({}), Some(finish_reason(r.finish_reason))));
                    if include_usage {
                        out.push_str(&event(&json!({
                            "id": self.id,
                            "object": "chat.completion.chunk",
                            "created": self.created,
                            "model": self.model,
                            "choices": [],
                            "usage": usage(&r.usage),
                        })));
                    }
                    out.push_str("data: [DONE]\n\n");
                }
                // The status line has been sent: the failure goes in-band, as OpenAI does.
                Err(Err(e)) => {
                    out.push_str(&event(&error_body(&e)));
                    out.push_str("data: [DONE]\n\n");
                }
            }
            out
        })
    }
}

fn event(v: &Value) -> String {
    format!("data: {v}\n\n")
}

/// OpenAI's error body for an API error.
pub fn error_body(e: &ApiError) -> Value {
    let (kind, code) = match e.status.as_u16() {
        401 => ("authentication_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("invalid_request_error", Some("not_found")),
        413 => ("invalid_request_error", Some("request_too_large")),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        400..=499 => ("invalid_request_error", None),
        _ => ("server_error", None),
    };
    let mut error = json!({"message": e.message, "type": kind, "param": null, "code": code});
    if let Some(d) = &e.details {
        error["details"] = d.clone();
    }
    json!({"error": error})
}

/// The `list` of embeddings, as floats or as base64 of little-endian f32s.
pub fn embeddings(model: &str, vectors: &[Vec<f32>], base64: bool, tokens: u64) -> Value {
    use base64::Engine as _;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })
}

/// One entry of `GET /v1/models`.
pub fn model_entry(id: &str, created: u64) -> Value {
    json!({"id": id, "object": "model", "created": created, "owned_by": "edgestra"})
}

#[cfg(test)]
mod tests {
    use super::*;
    use salvo::http::StatusCode;

    fn completion() -> Completion {
        Completion {
            id: "chatcmpl-1".into(),
            model: "chat".into(),
            created: 7,
            client_tools: vec!["weather".into()],
        }
    }

    fn frames(framer: &mut Framer, events: Vec<AgentEvent>) -> Vec<Value> {
        let mut text = String::new();
        for e in events {
            text.push_str(&framer(Ok(e)));
        }
        text.split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn streams_open_with_the_role_and_pass_only_client_tool_calls() {
        let mut framer = completion().framer(true);
        let call = |name: &str| {
            AgentEvent::ToolCall(ToolCallRecord {
                tool_call_id: format!("id-{name}"),
                tool_name: name.into(),
                args: json!({"city": "Oslo"}),
            })
        };
        let chunks = frames(
            &mut framer,
            vec![
                AgentEvent::TextDelta("Hi".into()),
                call("calculator"),
                call("weather"),
            ],
        );
        assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks.len(),
            3,
            "the server tool's call is not the client's"
        );
        let streamed = &chunks[2]["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(streamed["index"], 0);
        assert_eq!(streamed["function"]["name"], "weather");
        assert_eq!(streamed["function"]["arguments"], "{\"city\":\"Oslo\"}");
    }

    #[test]
    fn a_failure_after_the_first_byte_is_an_error_event_then_done() {
        let mut framer = completion().framer(false);
        let text = framer(Err(Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "busy",
        ))));
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains("\"rate_limit_error\""), "{text}");
    }

    #[test]
    fn base64_embeddings_are_little_endian_floats() {
        let v = embeddings("embed", &[vec![1.0, -2.5]], true, 3);
        assert_eq!(v["data"][0]["embedding"], "AACAPwAAIMA=");
        assert_eq!(v["usage"]["prompt_tokens"], 3);
        let v = embeddings("embed", &[vec![0.5]], false, 1);
        assert_eq!(v["data"][0]["embedding"], json!([0.5]));
    }
}
