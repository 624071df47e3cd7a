//! The OpenAI-compatible API (`/v1`) over real HTTP with the embedded models: model list, chat
//! completions (whole and streamed, client tools, JSON-schema answers, agents with memory),
//! embeddings, and OpenAI's error shape on every failure, auth included.

use serde_json::{Value, json};

use crate::support::TestServer;

const PROJECT: &str = r#"
models:
  chat: { local: smollm2-135m-instruct }
  embed: { local: all-minilm-l6-v2 }
tools:
  calculator: { builtin: calculator }
agents:
  helper:
    instructions: You are a concise, helpful assistant.
    model: chat
    tools: [calculator]
    memory: { last_messages: 10 }
"#;

fn user(text: &str) -> Value {
    json!([{"role": "user", "content": text}])
}

/// The `data:` payloads of a server-sent event stream, `[DONE]` kept as a string.
fn events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap_or(Value::String(d.to_string())))
        .collect()
}

/// An error answer in OpenAI's shape, with its status; returns the message.
fn openai_error(r: &crate::support::Reply, status: u16, kind: &str) -> String {
    assert_eq!(r.status, status, "{}", r.text);
    let body = r.json();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert!(body["error"].get("param").is_some(), "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_chat_completions_whole_and_streamed() {
    let s = TestServer::start(PROJECT).await;
    let r = s.get("/v1/models").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ids: Vec<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, vec!["chat", "embed", "agent:helper"]);

    // A model itself, whole.
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": user("Say hello."), "max_tokens": 8, "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "chat");
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    let choice = &v["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert!(!choice["message"]["content"].as_str().unwrap().is_empty());
    assert!(["stop", "length"].contains(&choice["finish_reason"].as_str().unwrap()));
    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(usage["completion_tokens"].as_u64().unwrap() <= 8);
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );

    // Streamed, with the usage chunk: role first, deltas, the finish reason, usage, [DONE].
    let r = s
        .send(s.client.post(s.url("/v1/chat/completions")).json(
            &json!({"model": "chat", "messages": user("Say hello."), "max_tokens": 8,
                    "temperature": 0, "stream": true, "stream_options": {"include_usage": true}}),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let content_type = r.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let chunks = events(&r.text);
    assert_eq!(
        chunks.last(),
        Some(&Value::String("[DONE]".into())),
        "{}",
        r.text
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        streamed,
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        "greedy decoding streams what it answers whole"
    );
    let finish = &chunks[chunks.len() - 3];
    assert!(
        finish["choices"][0]["finish_reason"].is_string(),
        "{finish}"
    );
    let usage_chunk = &chunks[chunks.len() - 2];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], v["usage"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tools_come_back_as_tool_calls_and_json_schema_answers_validate() {
    let s = TestServer::start(PROJECT).await;
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}]);
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": user("What is the weather in Lisbon?"),
                "tools": tools, "tool_choice": "required", "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{v}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["city"], "Lisbon", "{args}");

    // The client runs the tool and sends its result back; the model answers in text.
    let history = json!([
        {"role": "user", "content": "What is the weather in Lisbon?"},
        choice["message"].clone(),
        {"role": "tool", "tool_call_id": call["id"], "content": "{\"temperatureC\": 21, \"sky\": \"clear\"}"}
    ]);
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": history, "tools": tools, "tool_choice": "none",
                "temperature": 0, "max_tokens": 40}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        v["choices"][0]["finish_reason"]
            .as_str()
            .map(|f| f != "tool_calls"),
        Some(true)
    );
    assert!(v["choices"][0]["message"]["content"].is_string(), "{v}");

    // A JSON-schema answer is JSON text that validates.
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": false});
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "chat", "messages": user("Oslo has 700000 inhabitants. Give the city and its population."),
                "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}},
                "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let content = r.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    let answer: Value = serde_json::from_str(&content).unwrap();
    assert!(jsonschema::is_valid(&schema, &answer), "{answer}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_run_their_tools_and_keep_the_thread_the_caller_names() {
    let s = TestServer::start(PROJECT).await;
    let r = s
        .post(
            "/v1/chat/completions",
            json!({"model": "agent:helper", "messages": user("What is 17 * 23?"), "temperature": 0,
                "max_tokens": 60, "user": "ann"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let content = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("391"),
        "the agent ran its calculator: {content}"
    );
    // Its own tool ran on the server: no call is the client's.
    assert!(
        v["choices"][0]["message"].get("tool_calls").is_none(),
        "{v}"
    );
    assert_eq!(v["choices"][0]["finish_reason"], "stop");

    // `user` named the thread (and the resource): the turn is in the agent's memory.
    let r = s
        .get("/api/memory/threads/ann/messages?agentId=helper")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let stored = r.json()["messages"].as_array().cloned().unwrap_or_default();
    assert!(stored.len() >= 2, "{}", r.text);
    assert!(r.text.contains("17 * 23"), "{}", r.text);

    // A header names another thread; a client that resends the history adds only its new turn.
    let history = json!([
        {"role": "user", "content": "What is 17 * 23?"},
        {"role": "assistant", "content": content},
        {"role": "user", "content": "Thanks!"}
    ]);
    let r = s
        .send(
            s.client
                .post(s.url("/v1/chat/completions"))
                .header("x-edgestra-thread", "t-2")
                .json(&json!({"model": "agent:helper", "messages": history, "max_tokens": 20, "user": "ann"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s
        .get("/api/memory/threads/t-2/messages?agentId=helper")
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let users: Vec<Value> = r.json()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .cloned()
        .collect();
    assert_eq!(users.len(), 1, "only the new turn: {}", r.text);
    let r = s.get("/api/memory/threads/t-2?agentId=helper").await;
    assert_eq!(r.json()["resourceId"], "ann", "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_as_floats_and_base64() {
    let s = TestServer::start(PROJECT).await;
    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "embed", "input": ["The cat sat.", "A feline was sitting.", "Stock prices fell."]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["object"], "list");
    assert_eq!(v["model"], "embed");
    let vectors: Vec<Vec<f64>> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            assert_eq!(d["index"], i);
            assert_eq!(d["object"], "embedding");
            serde_json::from_value(d["embedding"].clone()).unwrap()
        })
        .collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 384));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.1);
    let tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!((12..=30).contains(&tokens), "{tokens}");

    let r = s
        .post(
            "/v1/embeddings",
            json!({"model": "embed", "input": "The cat sat.", "encoding_format": "base64", "dimensions": 384}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let decoded: Vec<f64> = bytes
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
        .collect();
    assert_eq!(decoded.len(), 384);
    assert!(dot(&decoded, &vectors[0]) > 0.999);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_has_openai_shape_and_the_api_key_applies() {
    let s = TestServer::start_with(PROJECT, Some("k-123")).await;
    // No key, a wrong key: 401 in OpenAI's shape; the right one passes.
    let r = s.get("/v1/models").await;
    openai_error(&r, 401, "authentication_error");
    let r = s
        .send(s.client.get(s.url("/v1/models")).bearer_auth("wrong"))
        .await;
    openai_error(&r, 401, "authentication_error");
    let keyed = |b: reqwest::RequestBuilder| b.bearer_auth("k-123");
    let r = s.send(keyed(s.client.get(s.url("/v1/models")))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let post = |path: &str, body: Value| keyed(s.client.post(s.url(path)).json(&body));
    let cases = [
        (
            json!({"model": "nope", "messages": user("hi")}),
            404,
            "invalid_request_error",
            "`nope` does not exist",
        ),
        (
            json!({"model": "agent:nope", "messages": user("hi")}),
            404,
            "invalid_request_error",
            "nope",
        ),
        (
            json!({"messages": user("hi")}),
            400,
            "invalid_request_error",
            "`model`",
        ),
        (
            json!({"model": "chat"}),
            400,
            "invalid_request_error",
            "`messages`",
        ),
        (
            json!({"model": "chat", "messages": user("hi"), "temperature": 7}),
            400,
            "invalid_request_error",
            "temperature",
        ),
        (
            json!({"model": "chat", "messages": user("hi"), "n": 3}),
            400,
            "invalid_request_error",
            "`n`",
        ),
        (
            json!({"model": "chat", "messages": user("hi"), "response_format": {"type": "json_schema", "json_schema": {"schema": {"type": 12}}}}),
            400,
            "invalid_request_error",
            "JSON Schema",
        ),
        (
            json!({"model": "embed", "messages": user("hi")}),
            404,
            "invalid_request_error",
            "`embed`",
        ),
    ];
    for (body, status, kind, needle) in cases {
        let r = s.send(post("/v1/chat/completions", body.clone())).await;
        let message = openai_error(&r, status, kind);
        assert!(message.contains(needle), "{body}: {message}");
    }
    // A streamed request that is bad is refused before any event.
    let r = s
        .send(post(
            "/v1/chat/completions",
            json!({"model": "nope", "messages": user("hi"), "stream": true}),
        ))
        .await;
    openai_error(&r, 404, "invalid_request_error");
    let r = s
        .send(keyed(
            s.client
                .post(s.url("/v1/chat/completions"))
                .header("content-type", "application/json")
                .body("{not json"),
        ))
        .await;
    openai_error(&r, 400, "invalid_request_error");

    for (body, status) in [
        (json!({"model": "chat", "input": "x"}), 404),
        (json!({"model": "embed"}), 400),
        (json!({"model": "embed", "input": [[1, 2, 3]]}), 400),
        (
            json!({"model": "embed", "input": "x", "dimensions": 64}),
            400,
        ),
        (
            json!({"model": "embed", "input": "x", "encoding_format": "hex"}),
            400,
        ),
    ] {
        let r = s.send(post("/v1/embeddings", body.clone())).await;
        openai_error(&r, status, "invalid_request_error");
    }
    let r = s.send(keyed(s.client.get(s.url("/v1/nothing-here")))).await;
    openai_error(&r, 404, "invalid_request_error");
    let r = s
        .send(keyed(s.client.delete(s.url("/v1/chat/completions"))))
        .await;
    openai_error(&r, 405, "invalid_request_error");
    s.stop().await;
}
