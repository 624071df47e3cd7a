//! Local agents with the embedded model, on requests written for these tests: the right tool
//! (or none) is chosen, its arguments come from the request, and the answer states the result.

use serde_json::{Value, json};

use crate::support::TestServer;

const PROJECT: &str = r#"
models:
  chat: { local: smollm2-135m-instruct }
  embed: { local: all-minilm-l6-v2 }
tools:
  calculator: { builtin: calculator }
  datetime: { builtin: datetime }
  weather:
    description: Current weather for a city
    input_schema:
      type: object
      properties:
        city: { type: string, description: Name of the city }
      required: [city]
    jq: '{city: .city, temperatureC: 17, conditions: "light rain"}'
  orderStatus:
    description: Looks up the delivery status of an order by its order number
    input_schema:
      type: object
      properties:
        orderId: { type: string, description: The order number }
      required: [orderId]
    jq: 'if .orderId == "A-1001" then {orderId: .orderId, status: "shipped"} else error("no order " + .orderId) end'
agents:
  helper:
    instructions: You are a concise, helpful assistant.
    model: chat
    tools: [calculator, datetime, weather, orderStatus]
"#;

async fn ask(s: &TestServer, question: &str) -> Value {
    let r = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": question, "temperature": 0, "maxTokens": 60}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

/// The first call of a run, as (tool, args).
fn first_call(v: &Value) -> (String, Value) {
    let call = &v["steps"][0]["toolCalls"][0];
    (
        call["toolName"].as_str().unwrap_or_default().to_string(),
        call["args"].clone(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_agents_choose_fill_and_report_tool_calls() {
    let s = TestServer::start(PROJECT).await;

    // Arithmetic reaches the calculator with the user's numbers; the answer has the result.
    let v = ask(&s, "What is 17 * 23?").await;
    let (tool, args) = first_call(&v);
    assert_eq!(tool, "calculator", "{v}");
    let expression = args["expression"].as_str().unwrap_or_default();
    assert!(
        expression.contains("17") && expression.contains("23"),
        "{v}"
    );
    assert!(v["text"].as_str().unwrap().contains("391"), "{v}");

    // A time question reaches the clock with the place it names (an optional argument).
    let v = ask(&s, "What time is it in Tokyo right now?").await;
    let (tool, args) = first_call(&v);
    assert_eq!(tool, "datetime", "{v}");
    assert_eq!(args["timezone"], "Tokyo", "{v}");
    assert_eq!(
        v["steps"][0]["toolResults"][0]["result"]["timezone"], "Asia/Tokyo",
        "{v}"
    );

    // The answer after a weather call states its temperature.
    let v = ask(&s, "What's the weather like in Oslo today?").await;
    let (tool, args) = first_call(&v);
    assert_eq!(tool, "weather", "{v}");
    assert_eq!(args["city"], "Oslo", "{v}");
    assert!(v["text"].as_str().unwrap().contains("17"), "{v}");

    // A code from the request is copied as written; a failing lookup is reported plainly.
    let v = ask(&s, "Where is my order B-2002?").await;
    let (tool, args) = first_call(&v);
    assert_eq!(tool, "orderStatus", "{v}");
    assert_eq!(args["orderId"], "B-2002", "{v}");
    let text = v["text"].as_str().unwrap();
    assert!(text.contains("no order B-2002"), "{v}");

    // Chit-chat and writing tasks stay text.
    for q in [
        "Hello there, how are you today?",
        "Write a haiku about the sea",
    ] {
        let v = ask(&s, q).await;
        assert_eq!(v["steps"][0]["toolCalls"], json!([]), "{q}: {v}");
        assert!(!v["text"].as_str().unwrap().trim().is_empty(), "{q}: {v}");
    }
    s.stop().await;
}

/// A structured answer (`output`) for `text` under `instructions`.
async fn answer(s: &TestServer, instructions: &str, text: &str, schema: Value) -> Value {
    let r = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": [{"role": "system", "content": instructions},
                                {"role": "user", "content": text}],
                   "output": schema, "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["object"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_structured_answers_reflect_the_input() {
    let s = TestServer::start(PROJECT).await;

    // A label is chosen by the likelihood of each whole value after the input.
    let sentiment = json!({"type": "object", "required": ["sentiment"], "additionalProperties": false,
        "properties": {"sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]}}});
    for (review, label) in [
        (
            "The food was cold and the waiter was rude. Never again.",
            "negative",
        ),
        (
            "Absolutely loved it, the staff were wonderful and the pasta was perfect!",
            "positive",
        ),
    ] {
        let v = answer(
            &s,
            "Classify the sentiment of the review.",
            review,
            sentiment.clone(),
        )
        .await;
        assert_eq!(v, json!({"sentiment": label}), "{review}");
    }

    // Extracted values are the input's own words and numbers.
    let person = json!({"type": "object", "required": ["name", "age", "city"], "additionalProperties": false,
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}}});
    let v = answer(
        &s,
        "Extract the person's details from the message.",
        "Hi, this is Tom Becker from Hamburg. I turned 52 last week.",
        person,
    )
    .await;
    assert_eq!(
        v,
        json!({"name": "Tom Becker", "age": 52, "city": "Hamburg"})
    );
    s.stop().await;
}

/// An agent on a model file of its own whose template renders tools (a tiny random-weight
/// model with a Hermes-format template, as Qwen's files carry): the model is shown the tools by
/// its own template, writes its calls in its own format under the call grammar, and decides by
/// itself when the choice is left to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_on_its_own_model_file_calls_tools_in_the_model_format() {
    use candle_core::quantized::GgmlDType;
    use edgestra::inference::engine::tiny::TinySpec;
    use edgestra::inference::engine::tiny_chat::{HERMES, HERMES_SPECIALS, tiny_chat_gguf};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-qwen2.gguf");
    let spec = TinySpec {
        arch: "qwen2",
        dtype: GgmlDType::Q8_0,
        seed: 5,
    };
    std::fs::write(&path, tiny_chat_gguf(&spec, HERMES, HERMES_SPECIALS)).unwrap();
    let yaml = format!(
        r#"
models:
  own: {{ path: "{}" }}
tools:
  weather:
    description: Current weather for a city
    input_schema:
      type: object
      properties:
        city: {{ type: string, maxLength: 8 }}
      required: [city]
    jq: '{{city: .city, temperatureC: 17}}'
agents:
  helper:
    instructions: You help.
    model: own
    tools: [weather]
"#,
        path.display()
    );
    let s = TestServer::start(&yaml).await;
    let r = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": "Weather in Oslo?", "toolChoice": "required", "maxSteps": 1, "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let (tool, args) = first_call(&v);
    assert_eq!(tool, "weather", "{v}");
    assert!(args["city"].is_string(), "{v}");
    assert_eq!(
        v["steps"][0]["toolResults"][0]["result"]["temperatureC"], 17,
        "{v}"
    );
    // Left to decide, the model answers (in text or with a call) and the run completes.
    let r = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": "Hello there", "maxSteps": 2, "maxTokens": 8, "temperature": 0}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    s.stop().await;
}
