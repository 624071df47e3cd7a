//! Agents: the tool loop and the three stream framings against a scripted OpenAI-compatible
//! server on loopback, the bad inputs, the side routes, and the real local model.

use salvo::prelude::*;
use serde_json::{Value, json};

use crate::support::{TestServer, eventually};

/// A scripted model. By model name:
/// - `weather`: calls `weatherTool` for Berlin unless the last message is a tool result, which
///   it reads back as its answer;
/// - `loop`: always calls `weatherTool`;
/// - `client`: calls the client tool `askUser`;
/// - `thrower`: calls `failing`, then answers with what the tool said.
#[handler]
async fn scripted(req: &mut Request, res: &mut Response) {
    let body: Value = serde_json::from_slice(req.payload().await.unwrap()).unwrap();
    let model = body["model"].as_str().unwrap_or_default().to_string();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let last = messages.last().cloned().unwrap_or_default();
    let can_call = body.get("tools").is_some() && body["tool_choice"] != "none";
    let call = |name: &str, args: Value| {
        Some((
            format!("call_{}", messages.len()),
            name.to_string(),
            args.to_string(),
        ))
    };
    let (text, tool_call) = match model.as_str() {
        "counter" => (
            format!(
                "seen {}: {}",
                messages.len(),
                messages
                    .iter()
                    .map(|m| format!(
                        "{}={}",
                        m["role"].as_str().unwrap_or(""),
                        m["content"].as_str().unwrap_or("")
                    ))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ),
            None,
        ),
        "loop" if can_call => (String::new(), call("weatherTool", json!({"city": "Oslo"}))),
        "client" if can_call => (
            String::new(),
            call("askUser", json!({"question": "Which city?"})),
        ),
        "thrower" if can_call && last["role"] != "tool" => {
            (String::new(), call("failing", json!({})))
        }
        "judge" => (r#"{"score": 0.75, "reason": "clear"}"#.to_string(), None),
        // A router: the weather agent first, then done; a doubling task goes to the workflow.
        "router" => {
            let asked = last["content"].as_str().unwrap_or_default();
            let decision = if asked.contains("What did I ask?") {
                // Answers from the conversation the network remembers.
                let earlier = asked
                    .split("Earlier in this conversation:")
                    .nth(1)
                    .and_then(|rest| rest.split("Task:").next())
                    .unwrap_or("nothing");
                json!({"primitive": "none", "prompt": format!("You said: {}", earlier.trim()), "input": {}, "isComplete": true, "reason": "remembered"})
            } else if asked.contains("Done so far") {
                json!({"primitive": "none", "prompt": "All done", "input": {}, "isComplete": true, "reason": "answered"})
            } else if asked.contains("double") {
                json!({"primitive": "workflow:double", "prompt": "", "input": {"n": 21}, "isComplete": false, "reason": "arithmetic"})
            } else if asked.contains("bogus") {
                json!({"primitive": "agent:nope", "prompt": "", "input": {}, "isComplete": false, "reason": "confused"})
            } else {
                json!({"primitive": "agent:weatherAgent", "prompt": "Weather in Berlin?", "input": {}, "isComplete": false, "reason": "weather"})
            };
            (decision.to_string(), None)
        }
        // Calls the first tool it is offered (MCP client tests).
        "first-tool" if can_call && last["role"] != "tool" => (
            String::new(),
            call(
                body["tools"][0]["function"]["name"]
                    .as_str()
                    .unwrap_or_default(),
                json!({"text": "hello"}),
            ),
        ),
        "weather" if can_call && last["role"] != "tool" => (
            String::new(),
            call("weatherTool", json!({"city": "Berlin"})),
        ),
        _ if last["role"] == "tool" => (
            format!(
                "Tool said: {}",
                last["content"].as_str().unwrap_or_default()
            ),
            None,
        ),
        _ => (
            format!("You said: {}", last["content"].as_str().unwrap_or_default()),
            None,
        ),
    };
    let reason = if tool_call.is_some() {
        "tool_calls"
    } else {
        "stop"
    };
    if body["stream"] == true {
        let mut lines = Vec::new();
        if let Some((id, name, args)) = &tool_call {
            lines.push(json!({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": id, "function": {"name": name, "arguments": args}}]}}]}));
        } else {
            for piece in text.split_inclusive(' ') {
                lines.push(json!({"choices": [{"index": 0, "delta": {"content": piece}}]}));
            }
        }
        lines.push(json!({"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}));
        lines.push(json!({"choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5}}));
        let mut out: String = lines.iter().map(|l| format!("data: {l}\n\n")).collect();
        out.push_str("data: [DONE]\n\n");
        res.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        res.body(out);
        return;
    }
    let message = match &tool_call {
        Some((id, name, args)) => {
            json!({"role": "assistant", "content": null, "tool_calls": [{"id": id, "type": "function", "function": {"name": name, "arguments": args}}]})
        }
        None => json!({"role": "assistant", "content": text}),
    };
    res.render(Json(json!({"choices": [{"index": 0, "message": message, "finish_reason": reason}], "usage": {"prompt_tokens": 10, "completion_tokens": 5}})));
}

pub(crate) async fn scripted_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = salvo::conn::tcp::TcpAcceptor::try_from(listener).unwrap();
    let router = Router::with_path("v1/chat/completions").post(scripted);
    tokio::spawn(async move { Server::new(acceptor).serve(router).await });
    format!("http://{addr}/v1")
}

fn project(base: &str) -> String {
    format!(
        r#"
models:
  weather: {{ openai: {{ base_url: "{base}", model: weather }} }}
  looping: {{ openai: {{ base_url: "{base}", model: loop }} }}
  client: {{ openai: {{ base_url: "{base}", model: client }} }}
  thrower: {{ openai: {{ base_url: "{base}", model: thrower }} }}
  counter: {{ openai: {{ base_url: "{base}", model: counter }} }}
tools:
  weatherTool:
    id: get-weather
    description: Current weather for a city
    input_schema: {{ type: object, properties: {{ city: {{ type: string }} }}, required: [city] }}
    jq: '{{city: .city, temperatureC: 21, conditions: "Clear"}}'
  failing:
    description: Always fails
    jq: 'error("boom")'
agents:
  weatherAgent:
    name: Weather Agent
    instructions: You answer questions about the weather.
    model: weather
    tools: [weatherTool]
  loopAgent: {{ instructions: Loops., model: looping, tools: [weatherTool], max_steps: 3 }}
  clientAgent: {{ instructions: Asks., model: client }}
  throwAgent: {{ instructions: Fails., model: thrower, tools: [failing] }}
  memoAgent:
    instructions: Remembers.
    model: counter
    memory: {{ last_messages: 3, working_memory: {{ enabled: true }}, threads: {{ generate_title: true }} }}
"#
    )
}

fn lines(text: &str) -> Vec<(char, Value)> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (code, json) = l.split_once(':').expect("code:json");
            (
                code.chars().next().unwrap(),
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {l}")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_runs_the_tool_loop() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;
    let r = s
        .post(
            "/api/agents/weatherAgent/generate",
            json!({"messages": "What is the weather in Berlin?", "runId": "run-gen-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let steps = v["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 2, "{v}");
    let call = &steps[0]["toolCalls"][0];
    assert_eq!(call["type"], "tool-call");
    assert_eq!(call["toolName"], "weatherTool");
    assert_eq!(call["args"], json!({"city": "Berlin"}));
    assert_eq!(steps[0]["finishReason"], "tool-calls");
    assert_eq!(steps[0]["stepType"], "initial");
    let result = &steps[0]["toolResults"][0];
    assert_eq!(result["toolCallId"], call["toolCallId"]);
    assert_eq!(result["result"]["conditions"], "Clear");
    assert_eq!(steps[1]["stepType"], "tool-result");
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("\"conditions\":\"Clear\""),
        "{v}"
    );
    assert_eq!(v["finishReason"], "stop");
    assert_eq!(v["usage"]["promptTokens"], 20);
    assert_eq!(v["usage"]["totalTokens"], 30);
    let messages = v["response"]["messages"].as_array().unwrap();
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["assistant", "tool", "assistant"]);
    assert_eq!(messages[0]["content"][0]["type"], "tool-call");
    assert_eq!(messages[1]["content"][0]["type"], "tool-result");
    assert_eq!(v["runId"], "run-gen-1");

    // The run is logged under its id and traced (a span for the call and one per tool call).
    let logs = eventually("the run's logs", || async {
        let l = s.get("/api/logs/run-gen-1?transportId=redb").await.json();
        (l["total"].as_u64() >= Some(2)).then_some(l)
    })
    .await;
    assert!(
        logs["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["msg"] == "agent calls tool")
    );
    let traces = s
        .get("/api/telemetry?attribute=runId:run-gen-1")
        .await
        .json();
    let names: Vec<&str> = traces["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"agent.weatherAgent"), "{names:?}");
    assert!(names.contains(&"tool.weatherTool"), "{names:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_writes_the_data_stream_transcript() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;
    let r = s
        .post(
            "/api/agents/weatherAgent/stream",
            json!({"messages": [{"role": "user", "content": "Weather in Berlin?"}]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.headers["x-vercel-ai-data-stream"], "v1");
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let parts = lines(&r.text);
    let codes: String = parts.iter().map(|(c, _)| *c).collect();
    // start, call, result, finish step; start, text…, finish step; finish message.
    assert!(codes.starts_with("f9aef0"), "{codes}");
    assert!(codes.ends_with("ed"), "{codes}");
    assert!(
        codes[6..codes.len() - 2].chars().all(|c| c == '0'),
        "{codes}"
    );
    let call = &parts[1].1;
    assert_eq!(call["toolName"], "weatherTool");
    assert_eq!(parts[2].1["toolCallId"], call["toolCallId"]);
    assert_eq!(parts[2].1["result"]["temperatureC"], 21);
    assert_eq!(parts[3].1["finishReason"], "tool-calls");
    assert_eq!(parts[3].1["isContinued"], false);
    let text: String = parts
        .iter()
        .filter(|(c, _)| *c == '0')
        .map(|(_, v)| v.as_str().unwrap())
        .collect();
    assert!(text.starts_with("Tool said: "), "{text}");
    let finish = &parts.last().unwrap().1;
    assert_eq!(finish["finishReason"], "stop");
    assert_eq!(finish["usage"]["completionTokens"], 10);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_vnext_writes_records() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;
    let r = s
        .post(
            "/api/agents/weatherAgent/streamVNext",
            json!({"messages": "Weather in Berlin?", "runId": "vn-1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.ends_with('\u{1e}'));
    let records: Vec<Value> = r
        .text
        .split('\u{1e}')
        .filter(|t| !t.is_empty())
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    let types: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        &types[..6],
        [
            "start",
            "step-start",
            "tool-call",
            "tool-result",
            "step-finish",
            "step-start"
        ]
    );
    assert_eq!(types[types.len() - 2..], ["step-finish", "finish"]);
    assert!(types.contains(&"text-delta"));
    for r in &records {
        assert_eq!(r["runId"], "vn-1");
        assert_eq!(r["from"], "AGENT");
    }
    assert_eq!(records[3]["payload"]["toolName"], "weatherTool");
    assert_eq!(records[3]["payload"]["result"]["city"], "Berlin");
    assert_eq!(records[4]["payload"]["reason"], "tool-calls");
    assert_eq!(
        records.last().unwrap()["payload"]["totalUsage"]["totalTokens"],
        30
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_steps_client_tools_and_failing_tools() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;

    // The project's max_steps (3) stops a model that never stops calling; a request may lower it.
    let v = s
        .post("/api/agents/loopAgent/generate", json!({"messages": "go"}))
        .await
        .json();
    assert_eq!(v["steps"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["finishReason"], "tool-calls");
    let v = s
        .post(
            "/api/agents/loopAgent/generate",
            json!({"messages": "go", "maxSteps": 1}),
        )
        .await
        .json();
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["toolResults"][0]["result"]["city"], "Oslo",
        "executed once: {v}"
    );

    // A client tool's call ends the run unexecuted, for the client to run.
    let v = s
        .post(
            "/api/agents/clientAgent/generate",
            json!({"messages": "ask me", "clientTools": {"askUser": {"description": "Ask the user", "inputSchema": {"type": "object", "properties": {"question": {"type": "string"}}}}}}),
        )
        .await
        .json();
    assert_eq!(v["finishReason"], "tool-calls", "{v}");
    assert_eq!(v["toolCalls"][0]["toolName"], "askUser");
    assert_eq!(v["toolCalls"][0]["args"]["question"], "Which city?");
    assert_eq!(v["toolResults"], json!([]));
    assert_eq!(v["steps"].as_array().unwrap().len(), 1);
    // The client re-posts with the result; the model then answers.
    let call_id = v["toolCalls"][0]["toolCallId"].clone();
    let v = s
        .post(
            "/api/agents/clientAgent/generate",
            json!({"messages": [
                {"role": "user", "content": "ask me"},
                {"role": "assistant", "content": [{"type": "tool-call", "toolCallId": call_id, "toolName": "askUser", "args": {"question": "Which city?"}}]},
                {"role": "tool", "content": [{"type": "tool-result", "toolCallId": call_id, "toolName": "askUser", "result": "Paris"}]}
            ], "clientTools": {"askUser": {"description": "Ask the user", "inputSchema": {"type": "object"}}}, "toolChoice": "none"}),
        )
        .await
        .json();
    assert_eq!(v["text"], "Tool said: Paris", "{v}");

    // A throwing tool is a result the model reads, not a 500.
    let r = s
        .post(
            "/api/agents/throwAgent/generate",
            json!({"messages": "try"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    let result = &v["steps"][0]["toolResults"][0];
    assert!(
        result["result"]["error"].as_str().unwrap().contains("boom"),
        "{v}"
    );
    assert_eq!(result["isError"], true);
    assert!(v["text"].as_str().unwrap().contains("boom"), "{v}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_clear_json_errors() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;
    for route in ["generate", "stream", "streamVNext"] {
        let r = s
            .post(
                &format!("/api/agents/nobody/{route}"),
                json!({"messages": "hi"}),
            )
            .await;
        assert_eq!(r.status, 404, "{route}");
        assert_eq!(r.error(), "Agent with name nobody not found");
        let r = s
            .post(&format!("/api/agents/weatherAgent/{route}"), json!({}))
            .await;
        assert_eq!(r.status, 400);
        assert_eq!(r.error(), "Argument \"messages\" is required");
    }
    for (body, needle) in [
        (json!({"messages": 42}), "messages"),
        (
            json!({"messages": [{"role": "robot", "content": "x"}]}),
            "role",
        ),
        (
            json!({"messages": "x", "toolChoice": "sometimes"}),
            "toolChoice",
        ),
        (
            json!({"messages": "x", "toolChoice": {"type": "tool", "toolName": "nope"}}),
            "nope",
        ),
        (json!({"messages": "x", "temperature": 9}), "temperature"),
        (json!({"messages": "x", "maxSteps": 0}), "maxSteps"),
        (json!({"messages": "x", "maxTokens": "many"}), "maxTokens"),
        (json!({"messages": "x", "output": "json please"}), "output"),
        (json!({"messages": "x", "output": {"type": 12}}), "output"),
        (
            json!({"messages": "x", "stopSequences": "END"}),
            "stopSequences",
        ),
        (json!({"messages": "x", "threadId": "t1"}), "resourceId"),
        (json!({"messages": "x", "clientTools": []}), "clientTools"),
    ] {
        let r = s
            .post("/api/agents/weatherAgent/generate", body.clone())
            .await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error().contains(needle), "{body}: {}", r.error());
    }
    let r = s
        .post_raw("/api/agents/weatherAgent/stream", "{not json")
        .await;
    assert_eq!(r.status, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_objects_tools_instructions_evals_and_voice() {
    let base = scripted_server().await;
    let s = TestServer::start(&project(&base)).await;
    let all = s.get("/api/agents").await.json();
    let a = &all["weatherAgent"];
    assert_eq!(a["name"], "Weather Agent");
    assert_eq!(a["modelId"], "weather");
    assert_eq!(a["provider"], "openai-compatible");
    assert_eq!(a["tools"]["weatherTool"]["id"], "get-weather");
    let schema: Value =
        serde_json::from_str(a["tools"]["weatherTool"]["inputSchema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["json"]["required"], json!(["city"]));
    assert_eq!(a["defaultGenerateOptions"], json!({}));
    assert_eq!(all["clientAgent"]["name"], "clientAgent");
    let one = s.get("/api/agents/weatherAgent").await.json();
    assert_eq!(
        one["instructions"],
        "You answer questions about the weather."
    );
    assert_eq!(s.get("/api/agents/nobody").await.status, 404);

    // Tools run by id, with input validation.
    let r = s
        .post(
            "/api/agents/weatherAgent/tools/get-weather/execute",
            json!({"data": {"city": "Rome"}}),
        )
        .await;
    assert_eq!(r.json()["city"], "Rome");
    let r = s
        .post(
            "/api/agents/weatherAgent/tools/weatherTool/execute",
            json!({"data": {"city": "Rome"}}),
        )
        .await;
    assert_eq!((r.status, r.error()), (404, "Tool not found".into()));
    let r = s
        .post(
            "/api/agents/weatherAgent/tools/get-weather/execute",
            json!({"data": {"town": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);

    // Instructions change only from the playground (or in dev mode).
    let r = s
        .post(
            "/api/agents/weatherAgent/instructions",
            json!({"instructions": "Be brief."}),
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.error(),
        "This API is only available in the playground environment"
    );
    let playground = |path: &str, body: Value| {
        s.client
            .post(s.url(path))
            .header("x-mastra-dev-playground", "true")
            .json(&body)
    };
    let r = s
        .send(playground(
            "/api/agents/weatherAgent/instructions",
            json!({}),
        ))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Missing required fields".into())
    );
    let r = s
        .send(playground(
            "/api/agents/weatherAgent/instructions",
            json!({"instructions": "Be brief."}),
        ))
        .await;
    assert_eq!(r.json(), json!({"instructions": "Be brief."}));
    assert_eq!(
        s.get("/api/agents/weatherAgent").await.json()["instructions"],
        "Be brief."
    );
    let r = s
        .send(playground(
            "/api/agents/weatherAgent/instructions/enhance",
            json!({}),
        ))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Missing instructions in request body".into())
    );

    // Evals: empty lists from storage.
    let ci = s.get("/api/agents/weatherAgent/evals/ci").await.json();
    assert_eq!(ci["evals"], json!([]));
    assert_eq!(ci["name"], "Weather Agent");
    assert_eq!(
        s.get("/api/agents/weatherAgent/evals/live").await.json()["evals"],
        json!([])
    );
    assert_eq!(s.get("/api/agents/nobody/evals/ci").await.status, 404);

    // Voice: no provider can be configured; answered as Mastra answers for such an agent.
    let r = s.get("/api/agents/weatherAgent/voice/speakers").await;
    assert_eq!(
        (r.status, r.error()),
        (500, "No voice provider configured".into())
    );
    let r = s.get("/api/agents/weatherAgent/speakers").await;
    assert_eq!(r.status, 500);
    assert_eq!(r.headers["deprecation"], "true");
    assert!(
        r.headers["link"]
            .to_str()
            .unwrap()
            .contains("/voice/speakers")
    );
    assert_eq!(
        s.get("/api/agents/weatherAgent/voice/listener")
            .await
            .status,
        500
    );
    assert_eq!(s.get("/api/agents/nobody/voice/listener").await.status, 404);
    let r = s
        .post("/api/agents/weatherAgent/voice/speak", json!({}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Argument \"text\" is required".into())
    );
    let r = s
        .post(
            "/api/agents/weatherAgent/voice/speak",
            json!({"input": "hi"}),
        )
        .await;
    assert_eq!(r.status, 500);
    let r = s
        .post("/api/agents/weatherAgent/voice/listen", json!({}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Audio file is required".into())
    );
    s.stop().await;
}

const LOCAL_PROJECT: &str = r#"
models:
  chat: { local: smollm2-135m-instruct }
tools:
  calculator: { builtin: calculator }
  datetime: { builtin: datetime }
agents:
  assistant:
    instructions: You are a concise, helpful assistant.
    model: chat
    tools: [calculator, datetime]
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_model_answers_calls_tools_and_follows_schemas() {
    let s = TestServer::start(LOCAL_PROJECT).await;
    let v = s
        .post(
            "/api/agents/assistant/generate",
            json!({"messages": "Hello there, how are you today?", "maxTokens": 40}),
        )
        .await
        .json();
    assert!(!v["text"].as_str().unwrap().trim().is_empty(), "{v}");
    assert_eq!(v["toolCalls"], json!([]), "small talk calls no tool: {v}");

    // A request about a tool's job is routed to it; the model answers with the result.
    let v = s
        .post(
            "/api/agents/assistant/generate",
            json!({"messages": "Calculate 17 * 23", "maxTokens": 60, "temperature": 0}),
        )
        .await
        .json();
    let call = &v["steps"][0]["toolCalls"][0];
    assert_eq!(call["toolName"], "calculator", "{v}");
    assert!(call["args"]["expression"].is_string(), "{v}");
    assert!(!v["text"].as_str().unwrap().trim().is_empty(), "{v}");

    // toolChoice required: the call's arguments validate against the tool's schema, and the
    // call is complete even when the text budget could not hold it.
    let v = s
        .post(
            "/api/agents/assistant/generate",
            json!({"messages": "What is twelve times seven?", "toolChoice": {"type": "tool", "toolName": "calculator"}, "maxSteps": 1, "maxTokens": 5}),
        )
        .await
        .json();
    assert_eq!(v["finishReason"], "tool-calls", "{v}");
    assert!(v["toolCalls"][0]["args"]["expression"].is_string(), "{v}");
    assert!(v["toolResults"][0]["result"].is_object(), "{v}");

    // Structured output validates in 20 of 20 runs.
    let schema = json!({
        "type": "object",
        "properties": {
            "city": {"type": "string", "maxLength": 40},
            "population": {"type": "integer", "minimum": 0},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 3}
        },
        "required": ["city", "population", "tags"]
    });
    let validator = jsonschema::validator_for(&schema).unwrap();
    for seed in 0..20 {
        let r = s
            .post(
                "/api/agents/assistant/generate",
                json!({"messages": "Describe Paris.", "output": schema, "seed": seed, "maxTokens": 120}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let object = &r.json()["object"];
        assert!(validator.is_valid(object), "run {seed}: {object}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_remember_threads_across_calls_and_restarts() {
    let base = scripted_server().await;
    let mut s = TestServer::start(&project(&base)).await;
    let first = s
        .post(
            "/api/agents/memoAgent/generate",
            json!({"messages": "I am Ann", "threadId": "t1", "resourceId": "u1"}),
        )
        .await
        .json();
    assert!(
        first["text"].as_str().unwrap().contains("user=I am Ann"),
        "{first}"
    );
    // The thread was created and holds both messages.
    let thread = s
        .get("/api/memory/threads/t1?agentId=memoAgent")
        .await
        .json();
    assert_eq!(thread["resourceId"], "u1");
    let stored = s
        .get("/api/memory/threads/t1/messages?agentId=memoAgent")
        .await
        .json();
    let roles: Vec<&str> = stored["uiMessages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
    // The title is written from the first message, in the background.
    crate::support::eventually("a generated title", || async {
        let t = s
            .get("/api/memory/threads/t1?agentId=memoAgent")
            .await
            .json();
        (!t["title"].as_str().unwrap().starts_with("New Thread")).then_some(())
    })
    .await;

    // The next call (new-style `memory` option, after a restart) sees the history; the stream
    // saves its turn too.
    s.restart().await;
    let r = s
        .post(
            "/api/agents/memoAgent/stream",
            json!({"messages": "Who am I?", "memory": {"thread": "t1", "resource": "u1"}}),
        )
        .await;
    let streamed: String = lines(&r.text)
        .iter()
        .filter(|(c, _)| *c == '0')
        .map(|(_, v)| v.as_str().unwrap().to_string())
        .collect();
    assert!(streamed.contains("user=I am Ann"), "{streamed}");
    assert!(streamed.contains("user=Who am I?"), "{streamed}");
    // Working memory is in the system context.
    assert!(streamed.contains("WORKING MEMORY"), "{streamed}");
    // lastMessages (3) bounds what is recalled: 4 stored messages, 3 recalled.
    let v = s
        .post(
            "/api/agents/memoAgent/generate",
            json!({"messages": "again", "threadId": "t1", "resourceId": "u1"}),
        )
        .await
        .json();
    // system + the last 3 of 4 stored + the new message.
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("seen 5: "), "{text}");
    let stored = s
        .get("/api/memory/threads/t1/messages?agentId=memoAgent")
        .await
        .json();
    assert_eq!(stored["uiMessages"].as_array().unwrap().len(), 6);

    // A thread of another resource is refused; an agent without memory ignores threads.
    let r = s
        .post(
            "/api/agents/memoAgent/generate",
            json!({"messages": "hi", "threadId": "t1", "resourceId": "intruder"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .post(
            "/api/agents/weatherAgent/generate",
            json!({"messages": "hi", "threadId": "t9", "resourceId": "u1", "toolChoice": "none"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        s.get("/api/memory/threads/t9?agentId=memoAgent")
            .await
            .status,
        404
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a2a_cards_and_tasks_in_both_protocol_generations() {
    let base = scripted_server().await;
    let mut s = TestServer::start(&project(&base)).await;
    for path in ["agent.json", "agent-card.json"] {
        let card = s
            .get(&format!("/.well-known/weatherAgent/{path}"))
            .await
            .json();
        assert_eq!(card["url"], "/a2a/weatherAgent");
        assert_eq!(card["skills"][0]["id"], "weatherTool");
        assert_eq!(card["capabilities"]["streaming"], true);
    }
    assert_eq!(s.get("/.well-known/nobody/agent.json").await.status, 404);

    let rpc = |method: &str, params: Value| json!({"jsonrpc": "2.0", "id": "req-1", "method": method, "params": params});
    // tasks/send (Mastra 0.13 / client-js 0.10).
    let v = s
        .post(
            "/a2a/clientAgent",
            rpc("tasks/send", json!({"id": "task-1", "sessionId": "s1", "message": {"role": "user", "parts": [{"type": "text", "text": "hello a2a"}]}})),
        )
        .await
        .json();
    assert_eq!(v["id"], "req-1");
    let task = &v["result"];
    assert_eq!(
        (task["id"].clone(), task["status"]["state"].clone()),
        (json!("task-1"), json!("completed"))
    );
    assert_eq!(
        task["status"]["message"]["parts"][0]["text"],
        "You said: hello a2a"
    );
    // The task outlives the request, and a restart.
    s.restart().await;
    let v = s
        .post(
            "/a2a/clientAgent",
            rpc("tasks/get", json!({"id": "task-1"})),
        )
        .await
        .json();
    assert_eq!(v["result"]["status"]["state"], "completed", "{v}");
    let v = s
        .post(
            "/a2a/clientAgent",
            rpc("tasks/cancel", json!({"id": "task-1"})),
        )
        .await
        .json();
    assert_eq!(
        v["result"]["status"]["state"], "completed",
        "finished tasks stay as they are"
    );
    let v = s
        .post("/a2a/clientAgent", rpc("tasks/get", json!({"id": "nope"})))
        .await
        .json();
    assert_eq!(v["error"]["code"], -32001);

    // message/send (A2A 0.2+).
    let v = s
        .post(
            "/a2a/clientAgent",
            rpc("message/send", json!({"message": {"kind": "message", "messageId": "m1", "role": "user", "parts": [{"kind": "text", "text": "new style"}], "taskId": "task-2"}})),
        )
        .await
        .json();
    let task = &v["result"];
    assert_eq!(
        (task["kind"].clone(), task["id"].clone()),
        (json!("task"), json!("task-2"))
    );
    assert_eq!(task["status"]["message"]["parts"][0]["kind"], "text");
    assert_eq!(task["history"][0]["messageId"], "m1");

    // Streaming: a working record, then the task.
    for (method, params) in [
        (
            "tasks/sendSubscribe",
            json!({"id": "task-3", "message": {"role": "user", "parts": [{"type": "text", "text": "stream"}]}}),
        ),
        (
            "message/stream",
            json!({"message": {"kind": "message", "messageId": "m2", "role": "user", "parts": [{"kind": "text", "text": "stream"}]}}),
        ),
    ] {
        let r = s.post("/a2a/clientAgent", rpc(method, params)).await;
        let records: Vec<Value> = r
            .text
            .split('\u{1e}')
            .filter(|t| !t.is_empty())
            .map(|t| serde_json::from_str(t).unwrap())
            .collect();
        assert_eq!(records.len(), 2, "{method}: {}", r.text);
        assert_eq!(records[0]["result"]["state"], "working");
        assert_eq!(records[1]["result"]["status"]["state"], "completed");
    }

    // Failures: JSON-RPC errors with 200; the task is stored as failed.
    let v = s
        .post(
            "/a2a/throwAgent",
            rpc(
                "tasks/send",
                json!({"id": "task-4", "message": {"role": "user", "parts": [{"type": "image"}]}}),
            ),
        )
        .await
        .json();
    assert_eq!(v["error"]["code"], -32602);
    let r = s
        .post("/a2a/clientAgent", rpc("agent/dance", json!({})))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"],
        json!({"message": "Unsupported method: agent/dance", "code": "invalid_method"})
    );
    assert_eq!(
        s.post("/a2a/nobody", rpc("tasks/get", json!({"id": "x"})))
            .await
            .status,
        404
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_scored_live_and_scores_are_stored() {
    let base = scripted_server().await;
    let s = TestServer::start(&format!(
        r#"
models:
  weather: {{ openai: {{ base_url: "{base}", model: weather }} }}
  judge: {{ openai: {{ base_url: "{base}", model: judge }} }}
tools:
  weatherTool:
    description: Current weather for a city
    input_schema: {{ type: object, properties: {{ city: {{ type: string }} }}, required: [city] }}
    jq: '{{city: .city, temperatureC: 21}}'
scorers:
  length: {{ description: Answer length, jq: '.output | length' }}
  judged: {{ judge: judgeAgent }}
  never: {{ jq: '1' }}
agents:
  weatherAgent:
    instructions: You answer questions about the weather.
    model: weather
    tools: [weatherTool]
    scorers: [{{ scorer: length }}, {{ scorer: judged }}, {{ scorer: never, sampling_rate: 0 }}]
  judgeAgent:
    instructions: You judge answers.
    model: judge
    scorers: [{{ scorer: judged }}]
workflows:
  w: {{ steps: [ {{ id: a, map: '1' }} ] }}
mcp_servers:
  agents-srv: {{ agents: [weatherAgent] }}
"#
    ))
    .await;
    let scorers = s.get("/api/scores/scorers").await.json();
    assert_eq!(
        scorers["length"]["agentIds"],
        json!(["weatherAgent"]),
        "{scorers}"
    );
    assert_eq!(
        scorers["length"]["scorer"]["config"]["description"],
        "Answer length"
    );
    assert_eq!(
        scorers["never"]["sampling"],
        json!({"type": "ratio", "rate": 0.0})
    );
    assert_eq!(
        s.get("/api/scores/scorers/judged").await.json()["workflowIds"],
        json!([])
    );
    assert_eq!(s.get("/api/scores/scorers/nope").await.json(), Value::Null);

    let answer = s
        .post(
            "/api/agents/weatherAgent/generate",
            json!({"messages": "Weather in Berlin?", "runId": "scored-run"}),
        )
        .await
        .json();
    let text = answer["text"].as_str().unwrap().to_string();
    let rows = crate::support::eventually("both scores of the answer", || async {
        let r = s.get("/api/scores/run/scored-run").await.json();
        (r["pagination"]["total"] == 2).then_some(r)
    })
    .await;
    let rows = rows["scores"].as_array().unwrap();
    let by = |scorer: &str| {
        rows.iter()
            .find(|r| r["scorerId"] == scorer)
            .unwrap()
            .clone()
    };
    let length = by("length");
    assert_eq!(length["score"], text.chars().count() as f64, "{length}");
    assert_eq!(length["entityId"], "weatherAgent");
    assert_eq!(length["entityType"], "AGENT");
    assert_eq!(length["source"], "LIVE");
    assert_eq!(length["input"], "Weather in Berlin?");
    assert_eq!(length["output"], text);
    assert!(length["createdAt"].as_str().unwrap().ends_with('Z'));
    let judged = by("judged");
    assert_eq!(
        (judged["score"].clone(), judged["reason"].clone()),
        (json!(0.75), json!("clear"))
    );
    let never = s.get("/api/scores/scorer/never").await.json();
    assert_eq!(
        never["pagination"]["total"], 0,
        "sampling rate 0 never scores"
    );
    // The judge's own answers are not judged (it would judge itself without end).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let judge = s.get("/api/scores/entity/AGENT/judgeAgent").await.json();
    assert_eq!(judge["pagination"]["total"], 0, "{judge}");

    // Rows saved by clients: the row itself or wrapped in `score`; bad rows are 400.
    let row = json!({"runId": "manual", "scorerId": "length", "entityId": "weatherAgent", "entityType": "AGENT", "score": 0.5, "source": "TEST"});
    let saved = s.post("/api/scores", row.clone()).await.json();
    assert!(
        saved["score"]["id"].as_str().unwrap().starts_with("score_"),
        "{saved}"
    );
    assert_eq!(saved["score"]["reason"], Value::Null);
    let wrapped = s.post("/api/scores", json!({"score": row})).await;
    assert_eq!(wrapped.status, 200, "{}", wrapped.text);
    let r = s
        .post("/api/scores", json!({"scorerId": "length", "score": 1}))
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("entityId"), "{}", r.text);
    let r = s
        .post("/api/scores", json!({"runId": "x", "scorerId": "length", "entityId": "a", "entityType": "AGENT", "score": "high"}))
        .await;
    assert_eq!(r.status, 400);

    let page = s
        .get("/api/scores/scorer/length?perPage=1&page=0&entityId=weatherAgent")
        .await
        .json();
    assert_eq!(
        page["pagination"],
        json!({"total": 3, "page": 0, "perPage": 1, "hasMore": true})
    );
    let by_entity = s.get("/api/scores/entity/AGENT/weatherAgent").await.json();
    assert_eq!(by_entity["pagination"]["total"], 4);
    let r = s.get("/api/scores/entity/AGENT/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "Agent with id nope not found".into())
    );
    let r = s.get("/api/scores/entity/WORKFLOW/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "Workflow with id nope not found".into())
    );
    assert_eq!(
        s.get("/api/scores/entity/WORKFLOW/w").await.json()["pagination"]["total"],
        0
    );

    // An agent served as an MCP tool answers with its text.
    let tools = s.get("/api/mcp/agents-srv/tools").await.json();
    assert_eq!(tools["tools"][0]["id"], "ask_weatherAgent");
    assert_eq!(tools["tools"][0]["toolType"], "agent");
    let r = s
        .post(
            "/api/mcp/agents-srv/tools/ask_weatherAgent/execute",
            json!({"data": {"message": "Weather in Berlin?"}}),
        )
        .await
        .json();
    assert!(
        r["result"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Tool said:"),
        "{r}"
    );
    let r = s
        .post(
            "/api/mcp/agents-srv/tools/ask_weatherAgent/execute",
            json!({"data": {"question": 1}}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Invalid tool arguments".into())
    );
    s.stop().await;
}

/// A project with the `helpers` network routed by the scripted router; `extra` is added to
/// the network's entry.
fn network_project(base: &str, extra: &str) -> String {
    format!(
        r#"
models:
  weather: {{ openai: {{ base_url: "{base}", model: weather }} }}
  router: {{ openai: {{ base_url: "{base}", model: router }} }}
tools:
  weatherTool:
    description: Current weather for a city
    input_schema: {{ type: object, properties: {{ city: {{ type: string }} }}, required: [city] }}
    jq: '{{city: .city, temperatureC: 21}}'
agents:
  weatherAgent: {{ name: Weather Agent, instructions: You answer questions about the weather., model: weather, tools: [weatherTool] }}
workflows:
  double:
    description: Doubles n
    input_schema: {{ type: object, properties: {{ n: {{ type: integer }} }}, required: [n] }}
    steps: [ {{ id: twice, map: '{{n: (.input.n * 2)}}' }} ]
networks:
  helpers:
    name: Helpers Network
    instructions: Send weather questions to the weather agent and arithmetic to the workflow.
    model: router
    agents: [weatherAgent]
    workflows: [double]
    tools: [weatherTool]
    {extra}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_route_tasks_to_agents_and_workflows() {
    let base = scripted_server().await;
    let s = TestServer::start(&network_project(&base, "")).await;
    let list = s.get("/api/networks/v-next").await.json();
    let net = &list[0];
    assert_eq!(net["id"], "helpers", "{list}");
    assert_eq!(net["agents"][0]["name"], "Weather Agent");
    assert_eq!(net["workflows"][0]["name"], "double");
    assert!(net["workflows"][0]["inputSchema"].is_string());
    assert_eq!(net["tools"][0]["id"], "weatherTool");
    assert_eq!(net["routingModel"]["modelId"], "router");
    assert_eq!(s.get("/api/networks/v-next/helpers").await.json(), *net);
    let r = s.get("/api/networks/v-next/nope").await;
    assert_eq!((r.status, r.error()), (404, "Network not found".into()));
    let legacy = s.get("/api/networks").await.json();
    assert_eq!(legacy[0]["id"], "Helpers_Network");
    assert_eq!(
        s.get("/api/networks/Helpers_Network").await.json()["name"],
        "Helpers Network"
    );
    assert_eq!(s.get("/api/networks/helpers").await.status, 404);

    // One routing step: the agent answers.
    let one = s
        .post(
            "/api/networks/v-next/helpers/generate",
            json!({"message": "What is the weather?"}),
        )
        .await
        .json();
    assert_eq!(one["resourceType"], "agent", "{one}");
    assert_eq!(one["resourceId"], "weatherAgent");
    assert!(
        one["result"].as_str().unwrap().starts_with("Tool said:"),
        "{one}"
    );
    let wf = s
        .post(
            "/api/networks/v-next/helpers/generate",
            json!({"message": "double 21"}),
        )
        .await
        .json();
    assert_eq!(
        (wf["resourceType"].clone(), wf["result"].clone()),
        (json!("workflow"), json!("{\"n\":42}"))
    );
    let r = s
        .post("/api/networks/v-next/helpers/generate", json!({}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Argument \"message\" is required".into())
    );
    let r = s
        .post(
            "/api/networks/v-next/helpers/generate",
            json!({"message": "bogus"}),
        )
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.error().contains("routing answer"), "{}", r.text);

    // A loop: the agent, then the router finishes.
    let done = s
        .post(
            "/api/networks/v-next/helpers/loop",
            json!({"message": "What is the weather?"}),
        )
        .await
        .json();
    assert_eq!(done["status"], "success", "{done}");
    assert_eq!(done["result"]["iteration"], 2);
    assert_eq!(done["result"]["isComplete"], true);
    assert_eq!(done["result"]["result"], "All done");
    let r = s
        .post(
            "/api/networks/v-next/helpers/loop",
            json!({"message": "x", "maxIterations": 0}),
        )
        .await;
    assert_eq!(r.status, 400);

    // The streamed loop: v1 workflow events from start to finish.
    let r = s
        .post(
            "/api/networks/v-next/helpers/loop-stream",
            json!({"message": "What is the weather?"}),
        )
        .await;
    let records: Vec<Value> = r
        .text
        .split('\u{1e}')
        .filter(|t| !t.is_empty())
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    let kinds: Vec<String> = records
        .iter()
        .map(|r| {
            format!(
                "{}:{}",
                r["type"].as_str().unwrap(),
                r["payload"]["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(kinds.first().unwrap(), "start:");
    assert_eq!(kinds.last().unwrap(), "finish:");
    assert!(
        kinds.contains(&"step-result:agent-step".to_string()),
        "{kinds:?}"
    );
    let last_result = records
        .iter()
        .rev()
        .find(|r| r["type"] == "step-result")
        .unwrap();
    assert_eq!(last_result["payload"]["id"], "final-step");
    assert_eq!(last_result["payload"]["output"]["result"], "All done");
    let r = s
        .post(
            "/api/networks/v-next/helpers/stream",
            json!({"message": "double it"}),
        )
        .await;
    assert!(r.text.contains("workflow-step"), "{}", r.text);
    // The legacy AgentNetwork calls: the loop as an agent call whose tool `transmit` hands the
    // task on; the answer is the last step's text.
    let v = s
        .post(
            "/api/networks/Helpers_Network/generate",
            json!({"messages": [{"role": "user", "content": "What is the weather?"}]}),
        )
        .await
        .json();
    assert_eq!(v["text"], "All done", "{v}");
    assert_eq!(v["finishReason"], "stop");
    let first = &v["steps"][0];
    assert_eq!(first["toolCalls"][0]["toolName"], "transmit", "{v}");
    assert_eq!(
        first["toolCalls"][0]["args"],
        json!({"actions": [{"agent": "weatherAgent", "input": "Weather in Berlin?"}]})
    );
    assert!(
        first["toolResults"][0]["result"]
            .as_str()
            .unwrap()
            .starts_with("Tool said:"),
        "{v}"
    );
    assert_eq!(v["steps"].as_array().unwrap().len(), 2);
    let r = s
        .post(
            "/api/networks/Helpers_Network/stream",
            json!({"messages": "What is the weather?"}),
        )
        .await;
    assert_eq!(r.headers["x-vercel-ai-data-stream"], "v1");
    let codes: String = lines(&r.text).iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, "f9aef0ed", "{}", r.text);
    assert!(r.text.contains("0:\"All done\""), "{}", r.text);
    for (body, status, error) in [
        (json!({}), 400, "Argument \"messages\" is required"),
        (
            json!({"messages": [{"role": "assistant", "content": "hi"}]}),
            400,
            "`messages` holds no user message with text",
        ),
        (
            json!({"messages": "hi", "output": {"type": "object"}}),
            400,
            "a network answers with text: `output` (structured output) is not supported",
        ),
    ] {
        let r = s.post("/api/networks/Helpers_Network/generate", body).await;
        assert_eq!((r.status, r.error()), (status, error.into()), "{}", r.text);
    }
    let r = s
        .post("/api/networks/nope/stream", json!({"messages": "hi"}))
        .await;
    assert_eq!((r.status, r.error()), (404, "Network not found".into()));
    // Network memory: the network is known, and keeps no memory unless it has `memory`.
    let r = s.get("/api/memory/network/status?networkId=helpers").await;
    assert_eq!(r.json()["result"], false, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_with_memory_keep_their_conversations() {
    let base = scripted_server().await;
    let s = TestServer::start(&network_project(&base, "memory: { last_messages: 10 }")).await;
    let status = s.get("/api/memory/network/status?networkId=helpers").await;
    assert_eq!(status.json()["result"], true, "{}", status.text);

    let turn =
        json!({"message": "What is the weather?", "threadId": "chat-1", "resourceId": "ann"});
    let done = s
        .post("/api/networks/v-next/helpers/loop", turn)
        .await
        .json();
    assert_eq!(done["result"]["result"], "All done", "{done}");
    let threads = s
        .get("/api/memory/network/threads?resourceid=ann&networkId=helpers")
        .await
        .json();
    assert_eq!(threads[0]["id"], "chat-1", "{threads}");
    // The task, then what the agent answered (the router's own "done" is not a message).
    let stored = s
        .get("/api/memory/network/threads/chat-1/messages?networkId=helpers")
        .await
        .json();
    let turns: Vec<(String, String)> = stored["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(t) => t.clone(),
                other => other[0]["text"].as_str().unwrap_or_default().to_string(),
            };
            (m["role"].as_str().unwrap().to_string(), text)
        })
        .collect();
    assert_eq!(turns.len(), 2, "{stored}");
    assert_eq!(turns[0], ("user".into(), "What is the weather?".into()));
    assert_eq!(turns[1].0, "assistant");
    assert!(turns[1].1.starts_with("Tool said:"), "{turns:?}");

    // The next turn on the thread: the router is shown the conversation so far.
    let again = s
        .post(
            "/api/networks/v-next/helpers/generate",
            json!({"message": "What did I ask?", "threadId": "chat-1", "resourceId": "ann"}),
        )
        .await
        .json();
    assert!(
        again["result"]
            .as_str()
            .unwrap()
            .contains("user: What is the weather?"),
        "{again}"
    );
    // Without a thread each call is a thread of its own, under the network's id.
    let r = s
        .post(
            "/api/networks/v-next/helpers/stream",
            json!({"message": "double 2"}),
        )
        .await;
    assert!(r.text.contains("workflow-step"), "{}", r.text);
    let own = s
        .get("/api/memory/network/threads?resourceid=helpers&networkId=helpers")
        .await
        .json();
    assert_eq!(own.as_array().unwrap().len(), 1, "{own}");
    let r = s
        .post(
            "/api/networks/v-next/helpers/generate",
            json!({"message": "hi", "threadId": 7}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "`threadId` must be a non-empty string".into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_model_network_routes_by_similarity() {
    let s = TestServer::start(
        r#"
models:
  chat: { local: smollm2-135m-instruct }
tools:
  calculator: { builtin: calculator }
agents:
  helper: { instructions: You answer general questions briefly., model: chat }
workflows:
  double:
    description: Doubles the number n
    input_schema: { type: object, properties: { n: { type: integer } }, required: [n] }
    steps: [ { id: twice, map: '{n: (.input.n * 2)}' } ]
networks:
  helpers:
    instructions: Arithmetic to the calculator, doubling to the workflow, the rest to the helper.
    model: chat
    agents: [helper]
    workflows: [double]
    tools: [calculator]
"#,
    )
    .await;
    let ask = |message: &'static str| {
        let s = &s;
        async move {
            s.post(
                "/api/networks/v-next/helpers/generate",
                json!({ "message": message }),
            )
            .await
            .json()
        }
    };
    // The input is written greedily under the chosen primitive's schema: deterministic.
    let r = ask("double 8").await;
    assert_eq!(
        (
            r["resourceType"].clone(),
            r["resourceId"].clone(),
            r["result"].clone()
        ),
        (json!("workflow"), json!("double"), json!("{\"n\":16}")),
        "{r}"
    );
    let r = ask("What is 6 * 7?").await;
    assert_eq!(r["resourceId"], "calculator", "{r}");
    let out: Value = serde_json::from_str(r["result"].as_str().unwrap()).unwrap();
    assert_eq!(out["result"], 42.0);
    let r = ask("Tell me a fact about cats").await;
    assert_eq!(r["resourceType"], "agent", "{r}");
    // A loop: the chosen primitive answers, then the task is complete.
    let done = s
        .post(
            "/api/networks/v-next/helpers/loop",
            json!({"message": "double 21"}),
        )
        .await
        .json();
    assert_eq!(done["result"]["iteration"], 2, "{done}");
    assert_eq!(done["result"]["isComplete"], true);
    assert_eq!(done["result"]["result"], "{\"n\":42}");
    s.stop().await;
}
