//! Inference: the remote provider against a fake OpenAI-compatible server on loopback, the
//! local workers' queue and cancellation, and structured output over many schemas.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use edgestra::config::OpenAiModelConfig;
use edgestra::inference::chat::ChatEngine;
use edgestra::inference::local::{LocalChat, Source};
use edgestra::inference::remote::RemoteModel;
use edgestra::inference::{
    ChatMessage, Embedder, FinishReason, GenerateRequest, Generator, InferenceError,
    SamplingParams, ToolChoice, ToolSpec,
};
use salvo::prelude::*;
use serde_json::{Value, json};

static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A fake OpenAI-compatible server. The requested model name picks the behaviour.
#[handler]
async fn fake_chat(req: &mut Request, res: &mut Response) {
    let body: Value = serde_json::from_slice(req.payload().await.unwrap()).unwrap();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    if req.header::<String>("authorization").as_deref() != Some("Bearer test-key") {
        res.status_code(StatusCode::UNAUTHORIZED);
        res.render(Json(json!({"error": {"message": "bad key"}})));
        return;
    }
    match model.as_str() {
        "flaky" if FLAKY_CALLS.fetch_add(1, Ordering::SeqCst) == 0 => {
            res.status_code(StatusCode::INTERNAL_SERVER_ERROR);
            res.render(Json(json!({"error": {"message": "try again"}})));
            return;
        }
        "slow" => tokio::time::sleep(Duration::from_secs(3)).await,
        "broken" => {
            res.status_code(StatusCode::BAD_REQUEST);
            res.render(Json(json!({"error": {"message": "unknown parameter"}})));
            return;
        }
        _ => {}
    }
    let wants_tool = body.get("tools").is_some();
    let last = body["messages"].as_array().unwrap().last().unwrap()["content"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if body["stream"] == true {
        let mut lines = vec![json!({"choices": [{"index": 0, "delta": {"role": "assistant"}}]})];
        if wants_tool {
            lines.push(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "weather", "arguments": "{\"ci"}}]}}]}));
            lines.push(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "ty\":\"Oslo\"}"}}]}}]}));
            lines.push(
                json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
            );
        } else {
            for word in ["You ", "said: ", last.as_str()] {
                lines.push(json!({"choices": [{"index": 0, "delta": {"content": word}}]}));
            }
            lines.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}));
        }
        lines.push(json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 3}}));
        let mut text: String = lines.iter().map(|l| format!("data: {l}\n\n")).collect();
        text.push_str("data: [DONE]\n\n");
        res.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        res.body(text);
        return;
    }
    let message = if wants_tool {
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Rome\"}"}}]})
    } else {
        json!({"role": "assistant", "content": format!("You said: {last}")})
    };
    let reason = if wants_tool { "tool_calls" } else { "stop" };
    res.render(Json(json!({"choices": [{"index": 0, "message": message, "finish_reason": reason}], "usage": {"prompt_tokens": 5, "completion_tokens": 4}})));
}

#[handler]
async fn fake_embeddings(req: &mut Request, res: &mut Response) {
    let body: Value = serde_json::from_slice(req.payload().await.unwrap()).unwrap();
    let data: Vec<Value> = body["input"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .rev() // out of order on purpose: the client must use `index`
        .map(
            |(i, t)| json!({"index": i, "embedding": [t.as_str().unwrap().len() as f64, 1.0, 0.5]}),
        )
        .collect();
    res.render(Json(json!({"data": data})));
}

async fn fake_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener).unwrap();
    let router = Router::with_path("v1")
        .push(Router::with_path("chat/completions").post(fake_chat))
        .push(Router::with_path("embeddings").post(fake_embeddings));
    tokio::spawn(async move { Server::new(acceptor).serve(router).await });
    format!("http://{addr}/v1")
}

fn remote(base: &str, model: &str, timeout_ms: u64) -> RemoteModel {
    RemoteModel::new(&OpenAiModelConfig {
        base_url: base.into(),
        model: model.into(),
        api_key: Some("test-key".into()),
        timeout_ms: Some(timeout_ms),
    })
    .unwrap()
}

fn ask(text: &str) -> GenerateRequest {
    GenerateRequest::new(vec![ChatMessage::new("user", text)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_provider_generates_streams_calls_tools_and_embeds() {
    let base = fake_server().await;
    let m = remote(&base, "plain", 5000);
    let g = m.generate(ask("hello"), None).await.unwrap();
    assert_eq!(g.text, "You said: hello");
    assert_eq!((g.usage.prompt_tokens, g.usage.completion_tokens), (5, 4));

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let g = m.generate(ask("stream me"), Some(tx)).await.unwrap();
    let mut streamed = String::new();
    while let Ok(d) = rx.try_recv() {
        streamed.push_str(&d);
    }
    assert_eq!(
        (g.text.as_str(), streamed.as_str()),
        ("You said: stream me", "You said: stream me")
    );
    assert_eq!(g.usage.completion_tokens, 3);

    let mut req = ask("weather?");
    req.tools = vec![ToolSpec {
        name: "weather".into(),
        description: "Weather".into(),
        parameters: json!({"type": "object"}),
        ..Default::default()
    }];
    req.tool_choice = ToolChoice::Required;
    let g = m.generate(req.clone(), None).await.unwrap();
    assert_eq!(g.finish_reason, FinishReason::ToolCalls);
    assert_eq!(
        (g.tool_calls[0].name.as_str(), &g.tool_calls[0].arguments),
        ("weather", &json!({"city": "Rome"}))
    );
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let g = m.generate(req, Some(tx)).await.unwrap();
    assert_eq!(g.tool_calls[0].id, "call_1");
    assert_eq!(
        g.tool_calls[0].arguments,
        json!({"city": "Oslo"}),
        "arguments assembled from deltas"
    );

    let v = m.embed(vec!["a".into(), "abc".into()]).await.unwrap();
    assert_eq!(v, vec![vec![1.0, 1.0, 0.5], vec![3.0, 1.0, 0.5]]);
    assert_eq!(m.dimensions(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_provider_retries_times_out_and_reports_errors() {
    let base = fake_server().await;
    let g = remote(&base, "flaky", 5000)
        .generate(ask("x"), None)
        .await
        .unwrap();
    assert_eq!(g.text, "You said: x");
    assert!(
        FLAKY_CALLS.load(Ordering::SeqCst) >= 2,
        "the 500 was retried"
    );

    let started = Instant::now();
    let err = remote(&base, "slow", 500)
        .generate(ask("x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, InferenceError::Timeout(500)), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    let err = remote(&base, "broken", 5000)
        .generate(ask("x"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, InferenceError::Remote { status: 400, message } if message == "unknown parameter"),
        "{err:?}"
    );
    let mut m = OpenAiModelConfig {
        base_url: base.clone(),
        model: "plain".into(),
        api_key: Some("wrong".into()),
        timeout_ms: None,
    };
    let err = RemoteModel::new(&m)
        .unwrap()
        .generate(ask("x"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, InferenceError::Remote { status: 401, .. }),
        "{err:?}"
    );
    m.base_url = "http://127.0.0.1:9/v1".into();
    let err = RemoteModel::new(&m)
        .unwrap()
        .generate(ask("x"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, InferenceError::Failed(_)), "{err:?}");
}

fn chat_source() -> Source {
    Source::Embedded(edgestra::inference::embedded::CHAT_MODEL.into())
}

fn long_request() -> GenerateRequest {
    let mut r = ask("Write a very long story about a lighthouse keeper.");
    r.max_tokens = 400;
    r.sampling = SamplingParams {
        temperature: 0.0,
        ..Default::default()
    };
    r.stop = vec!["\u{0}never".into()];
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_busy_and_a_dropped_request_frees_the_worker() {
    let worker = Arc::new(LocalChat::start("queue-test", chat_source(), 1, 1));
    // Load the model first, so the scenario below is about queueing, not loading.
    let mut warm = ask("Hi");
    warm.max_tokens = 1;
    worker.generate(warm, None).await.unwrap();
    // One runs, one waits; the rest are refused at once.
    let running = tokio::spawn({
        let w = worker.clone();
        async move { w.generate(long_request(), None).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = tokio::spawn({
        let w = worker.clone();
        async move { w.generate(long_request(), None).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = worker.generate(long_request(), None).await.unwrap_err();
    assert!(matches!(refused, InferenceError::Busy(_)), "{refused:?}");
    assert!(refused.to_string().contains("busy"));

    // Dropping both callers frees the worker at the next token.
    running.abort();
    waiting.abort();
    let started = Instant::now();
    let mut quick = ask("Say hi.");
    quick.max_tokens = 4;
    // The worker drops the waiting job when it reaches it; until then the queue is still full.
    let g = loop {
        match worker.generate(quick.clone(), None).await {
            Err(InferenceError::Busy(_)) if started.elapsed() < Duration::from_secs(5) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert!(g.usage.completion_tokens <= 4);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the dropped generations kept the worker busy: {:?}",
        started.elapsed()
    );
}

fn schemas() -> Vec<Value> {
    let s = |v: Value| v;
    vec![
        s(
            json!({"type": "object", "properties": {"city": {"type": "string", "maxLength": 20}}, "required": ["city"]}),
        ),
        s(
            json!({"type": "object", "properties": {"answer": {"type": "string", "enum": ["yes", "no", "maybe"]}}, "required": ["answer"]}),
        ),
        s(
            json!({"type": "object", "properties": {"age": {"type": "integer", "minimum": 0, "maximum": 120}}, "required": ["age"]}),
        ),
        s(
            json!({"type": "object", "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}}, "required": ["score"]}),
        ),
        s(json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]})),
        s(
            json!({"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string", "maxLength": 12}, "minItems": 1, "maxItems": 4}}, "required": ["tags"]}),
        ),
        s(
            json!({"type": "object", "properties": {"user": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20}, "id": {"type": "integer", "minimum": 1}}, "required": ["name", "id"]}}, "required": ["user"]}),
        ),
        s(
            json!({"type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 7}, "unit": {"type": "string", "enum": ["C", "F"]}}, "required": ["days", "unit"]}),
        ),
        s(
            json!({"type": "object", "properties": {"points": {"type": "array", "items": {"type": "object", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}, "maxItems": 3}}, "required": ["points"]}),
        ),
        s(
            json!({"type": "object", "properties": {"title": {"type": "string", "maxLength": 30}, "priority": {"type": "string", "enum": ["low", "medium", "high"]}, "done": {"type": "boolean"}}, "required": ["title", "priority", "done"]}),
        ),
        s(
            json!({"type": "object", "properties": {"temperature": {"type": "number", "minimum": -50, "maximum": 60}}, "required": ["temperature"]}),
        ),
        s(
            json!({"type": "object", "properties": {"colour": {"type": "string", "enum": ["red", "green", "blue"]}, "shade": {"type": "integer", "minimum": 1, "maximum": 10}}, "required": ["colour", "shade"]}),
        ),
        s(
            json!({"type": "object", "properties": {"numbers": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 100}, "minItems": 2, "maxItems": 5}}, "required": ["numbers"]}),
        ),
        s(
            json!({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties": {"c": {"type": "string", "maxLength": 10}}, "required": ["c"]}}, "required": ["b"]}}, "required": ["a"]}),
        ),
        s(
            json!({"type": "object", "properties": {"email": {"type": "string", "pattern": "^[a-z]{1,10}@[a-z]{1,10}\\.com$"}}, "required": ["email"]}),
        ),
        s(
            json!({"type": "object", "properties": {"name": {"type": "string", "minLength": 2, "maxLength": 15}, "nickname": {"type": "string", "maxLength": 15}}, "required": ["name"]}),
        ),
        s(
            json!({"type": "object", "properties": {"price": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000}, "currency": {"type": "string", "enum": ["EUR", "USD"]}}, "required": ["price", "currency"]}),
        ),
        s(
            json!({"type": "object", "properties": {"steps": {"type": "array", "items": {"type": "string", "maxLength": 25}, "minItems": 1, "maxItems": 3}, "count": {"type": "integer", "minimum": 1, "maximum": 3}}, "required": ["steps", "count"]}),
        ),
        s(
            json!({"type": "object", "properties": {"kind": {"const": "event"}, "when": {"type": "string", "maxLength": 20}}, "required": ["kind", "when"]}),
        ),
        s(
            json!({"type": "object", "properties": {"matrix": {"type": "array", "items": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": 3}, "maxItems": 3}, "label": {"type": ["string", "null"], "maxLength": 10}}, "required": ["matrix", "label"]}),
        ),
    ]
}

#[test]
fn two_hundred_constrained_generations_all_validate() {
    let mut engine = ChatEngine::load(&chat_source()).unwrap();
    let prompts = [
        "Describe a city you like.",
        "Answer the question: is the sky blue?",
        "Tell me about a person.",
        "Rate this movie.",
        "Give me some data.",
        "What is the weather going to be?",
        "Create a task for me.",
        "List a few things.",
        "Fill in the form.",
        "Reply in JSON.",
    ];
    let mut failures = Vec::new();
    let mut runs = 0;
    let started = Instant::now();
    for (si, schema) in schemas().iter().enumerate() {
        let validator = jsonschema::validator_for(schema).unwrap();
        for (pi, prompt) in prompts.iter().enumerate() {
            runs += 1;
            let mut req = ask(prompt);
            req.json_schema = Some(schema.clone());
            req.max_tokens = 200;
            req.sampling = SamplingParams {
                temperature: 0.8,
                seed: Some((si * 100 + pi) as u64),
                ..Default::default()
            };
            match engine.generate(&req, &mut |_| true) {
                Ok(g) => match serde_json::from_str::<Value>(&g.text) {
                    Ok(v) if validator.is_valid(&v) => {}
                    Ok(v) => failures.push(format!("schema {si}: {v} does not validate")),
                    Err(e) => failures.push(format!("schema {si}: not JSON ({e}): {}", g.text)),
                },
                Err(e) => failures.push(format!("schema {si}, prompt {pi}: {e}")),
            }
        }
    }
    eprintln!("{runs} constrained generations in {:?}", started.elapsed());
    assert_eq!(runs, 200);
    assert!(
        failures.is_empty(),
        "{} of 200 failed: {:#?}",
        failures.len(),
        failures
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_rank_similar_sentences_higher() {
    let e = edgestra::inference::local::LocalEmbedder::shared(
        edgestra::inference::embedded::EMBEDDING_MODEL,
        Source::Embedded(edgestra::inference::embedded::EMBEDDING_MODEL.into()),
    );
    let v = e
        .embed(vec![
            "A man is eating food.".into(),
            "A man is eating a piece of bread.".into(),
            "A man is riding a horse.".into(),
        ])
        .await
        .unwrap();
    assert_eq!(e.dimensions(), 384);
    assert!(v.iter().all(|x| x.len() == 384));
    let cos = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    for x in &v {
        assert!((cos(x, x) - 1.0).abs() < 1e-4, "L2-normalised");
    }
    assert!(
        cos(&v[0], &v[1]) > cos(&v[0], &v[2]),
        "{} vs {}",
        cos(&v[0], &v[1]),
        cos(&v[0], &v[2])
    );
    // Long inputs are truncated, not rejected.
    let long = e.embed(vec!["word ".repeat(2000)]).await.unwrap();
    assert_eq!(long[0].len(), 384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_generations_share_passes_and_match_one_at_a_time() {
    let prompts = [
        "Name a fruit.",
        "What is 3 + 4?",
        "Say hello in French.",
        "Describe the sea.",
        "List two animals.",
        "What colour is grass?",
        "Tell me a joke.",
        "Who wrote Hamlet?",
    ];
    let greedy = |p: &str| {
        let mut r = ask(p);
        r.max_tokens = 24;
        r.sampling = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        r
    };
    let mut engine = ChatEngine::load(&chat_source()).unwrap();
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| engine.generate(&greedy(p), &mut |_| true).unwrap().text)
        .collect();
    drop(engine);

    let worker = Arc::new(LocalChat::start("batch-test", chat_source(), 16, 8));
    // A long generation that is abandoned while the others run: it leaves the batch.
    let doomed = tokio::spawn({
        let w = worker.clone();
        async move { w.generate(long_request(), None).await }
    });
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let w = worker.clone();
            let r = greedy(p);
            tokio::spawn(async move { w.generate(r, None).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.abort();
    for (h, want) in handles.into_iter().zip(&alone) {
        let g = h.await.unwrap().unwrap();
        assert_eq!(
            &g.text, want,
            "a batched generation differs from the same one alone"
        );
    }
    // A request that cannot start (a prompt longer than the context) fails alone.
    let mut huge = ask(&"word ".repeat(5000));
    huge.max_tokens = 4;
    let ok = tokio::spawn({
        let w = worker.clone();
        async move { w.generate(greedy("Name a fruit."), None).await }
    });
    let err = worker.generate(huge, None).await.unwrap_err();
    assert!(matches!(err, InferenceError::InvalidRequest(_)), "{err:?}");
    assert_eq!(ok.await.unwrap().unwrap().text, alone[0]);
}
