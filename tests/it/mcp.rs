//! MCP: the registry routes, the tool routes, and both transports (streamable HTTP sessions, the
//! HTTP+SSE pair) answering JSON-RPC with the project's tools and workflows.

use serde_json::{Value, json};

use crate::support::{Reply, TestServer};

const PROJECT: &str = r#"
tools:
  calculator: { builtin: calculator }
workflows:
  double:
    description: Doubles n
    input_schema: { type: object, properties: { n: { type: integer } }, required: [n] }
    steps:
      - { id: twice, map: '{n: (.input.n * 2)}' }
mcp_servers:
  srv:
    name: Test Server
    version: 2.1.0
    description: Arithmetic over MCP
    tools: [calculator]
    workflows: [double]
  other:
    tools: [calculator]
"#;

/// Posts one JSON-RPC message (or batch) to the streamable HTTP endpoint.
async fn rpc(s: &TestServer, session: Option<&str>, body: Value) -> Reply {
    let mut req = s
        .client
        .post(s.url("/api/mcp/srv/mcp"))
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    if let Some(id) = session {
        req = req.header("mcp-session-id", id);
    }
    s.send(req).await
}

/// The JSON-RPC messages of a server-sent event body.
fn events(r: &Reply) -> Vec<Value> {
    r.text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_and_tool_routes() {
    let s = TestServer::start(PROJECT).await;
    let all = s.get("/api/mcp/v0/servers").await.json();
    assert_eq!(all["total_count"], 2, "{all}");
    assert_eq!(all["next"], Value::Null);
    let srv = &all["servers"][0];
    assert_eq!(srv["id"], "srv");
    assert_eq!(srv["name"], "Test Server");
    assert_eq!(srv["description"], "Arithmetic over MCP");
    assert_eq!(srv["version_detail"]["version"], "2.1.0");
    assert_eq!(srv["version_detail"]["is_latest"], true);
    assert!(
        srv["version_detail"]["release_date"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    let page = s.get("/api/mcp/v0/servers?limit=1").await.json();
    assert_eq!(page["servers"].as_array().unwrap().len(), 1);
    assert!(
        page["next"]
            .as_str()
            .unwrap()
            .ends_with("/api/mcp/v0/servers?limit=1&offset=1"),
        "{page}"
    );
    assert_eq!(s.get("/api/mcp/v0/servers/srv").await.json()["id"], "srv");
    let r = s.get("/api/mcp/v0/servers/srv?version=9.9.9").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.error(),
        "MCP server with ID 'srv' found, but not version '9.9.9'. Available version is '2.1.0'."
    );
    let r = s.get("/api/mcp/v0/servers/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "MCP server with ID 'nope' not found".into())
    );

    let tools = s.get("/api/mcp/srv/tools").await.json();
    let names: Vec<&str> = tools["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["calculator", "run_double"]);
    assert_eq!(tools["tools"][1]["toolType"], "workflow");
    assert_eq!(tools["tools"][1]["inputSchema"]["required"], json!(["n"]));
    let calc = s.get("/api/mcp/srv/tools/calculator").await.json();
    assert_eq!(calc["name"], "calculator");
    assert!(calc.get("id").is_none());
    assert_eq!(calc["inputSchema"]["type"], "object");
    let r = s.get("/api/mcp/srv/tools/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (
            404,
            "Tool with ID 'nope' not found on MCP server 'srv'".into()
        )
    );

    let r = s
        .post(
            "/api/mcp/srv/tools/calculator/execute",
            json!({"data": {"expression": "2 + 3"}}),
        )
        .await;
    assert_eq!(r.json()["result"]["result"], 5.0, "{}", r.text);
    let r = s
        .post(
            "/api/mcp/srv/tools/calculator/execute",
            json!({"data": {"expr": 1}}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Invalid tool arguments".into())
    );
    assert!(r.json()["details"].is_array(), "{}", r.text);
    let r = s
        .post(
            "/api/mcp/srv/tools/run_double/execute",
            json!({"data": {"n": 4}}),
        )
        .await
        .json();
    assert_eq!(r["result"]["status"], "success", "{r}");
    assert_eq!(r["result"]["result"], json!({"n": 8}));
    let r = s
        .post("/api/mcp/srv/tools/run_double/execute", json!({"data": {}}))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_sessions() {
    let s = TestServer::start(PROJECT).await;
    // Without a session only `initialize` is accepted; the client must accept SSE.
    let r = rpc(
        &s,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "Bad Request: No valid session ID provided for non-initialize request"
    );
    assert_eq!(r.json()["id"], 1);
    let r = s
        .send(
            s.client
                .post(s.url("/api/mcp/srv/mcp"))
                .header("accept", "application/json")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})),
        )
        .await;
    assert_eq!(r.status, 406);

    let init = rpc(
        &s,
        None,
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
    )
    .await;
    assert_eq!(init.status, 200, "{}", init.text);
    assert!(
        init.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(init.text.starts_with("event: message\ndata: "));
    let sid = init.headers["mcp-session-id"].to_str().unwrap().to_string();
    let result = &events(&init)[0]["result"];
    assert_eq!(result["protocolVersion"], "2025-03-26");
    assert_eq!(
        result["serverInfo"],
        json!({"name": "Test Server", "version": "2.1.0"})
    );
    assert!(result["capabilities"]["tools"].is_object());

    let r = rpc(
        &s,
        Some(&sid),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    )
    .await;
    assert_eq!((r.status, r.text.as_str()), (202, ""));

    let r = rpc(
        &s,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
    )
    .await;
    let tools = &events(&r)[0]["result"]["tools"];
    assert_eq!(tools[0]["name"], "calculator");
    assert_eq!(tools[0]["inputSchema"]["required"], json!(["expression"]));
    assert_eq!(tools[1]["name"], "run_double");

    // A batch: a call, an unknown tool, bad arguments, an unknown method.
    let r = rpc(
        &s,
        Some(&sid),
        json!([
            {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "calculator", "arguments": {"expression": "6 * 7"}}},
            {"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "nope", "arguments": {}}},
            {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "calculator", "arguments": {"x": 1}}},
            {"jsonrpc": "2.0", "id": 6, "method": "resources/list"},
            {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        ]),
    )
    .await;
    let answers = events(&r);
    assert_eq!(answers.len(), 5, "{}", r.text);
    let ok = &answers[0]["result"];
    assert_eq!(ok["isError"], false);
    let text: Value = serde_json::from_str(ok["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(text["result"], 42.0);
    assert_eq!(ok["structuredContent"]["result"], 42.0);
    assert_eq!(answers[1]["result"]["isError"], true);
    assert_eq!(
        answers[1]["result"]["content"][0]["text"],
        "Unknown tool: nope"
    );
    assert_eq!(answers[2]["result"]["isError"], true);
    assert!(
        answers[2]["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Invalid tool arguments")
    );
    assert_eq!(answers[3]["error"]["code"], -32601);
    assert_eq!(answers[4], json!({"jsonrpc": "2.0", "id": 7, "result": {}}));

    // A workflow as a tool.
    let r = rpc(
        &s,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "run_double", "arguments": {"n": 21}}}),
    )
    .await;
    let text = events(&r)[0]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["result"]["n"],
        42
    );

    // Sessions: unknown ones, another server's, a second initialize, bad JSON.
    let r = rpc(
        &s,
        Some("nope"),
        json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = s
        .send(
            s.client
                .post(s.url("/api/mcp/other/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", &sid)
                .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"})),
        )
        .await;
    assert_eq!(r.status, 404, "a session belongs to its server");
    let r = rpc(
        &s,
        Some(&sid),
        json!({"jsonrpc": "2.0", "id": 10, "method": "initialize", "params": {}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = s
        .send(
            s.client
                .post(s.url("/api/mcp/srv/mcp"))
                .header("accept", "application/json, text/event-stream")
                .header("mcp-session-id", &sid)
                .body("{not json"),
        )
        .await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].clone()),
        (400, json!(-32700))
    );

    // The GET stream needs a session.
    let r = s
        .send(
            s.client
                .get(s.url("/api/mcp/srv/mcp"))
                .header("accept", "text/event-stream"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["error"]["message"],
        "Bad Request: GET request requires a valid session ID"
    );
    let live = s
        .client
        .get(s.url("/api/mcp/srv/mcp"))
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &sid)
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    drop(live);

    let r = s
        .send(
            s.client
                .post(s.url("/api/mcp/nope/mcp"))
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (404, "MCP server 'nope' not found".into())
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_transport_answers_on_the_stream() {
    let s = TestServer::start(PROJECT).await;
    let mut stream = s
        .client
        .get(s.url("/api/mcp/srv/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert!(
        stream.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut buffer = String::new();
    // Reads the stream up to the next complete event.
    async fn next_event(stream: &mut reqwest::Response, buffer: &mut String) -> (String, String) {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if event.starts_with(':') {
                    continue;
                }
                let kind = event
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or("")
                    .to_string();
                let data = event
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or("")
                    .to_string();
                return (kind, data);
            }
            let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), stream.chunk())
                .await
                .expect("an event arrives")
                .unwrap()
                .expect("the stream stays open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
    let (kind, endpoint) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(kind, "endpoint");
    assert!(
        endpoint.starts_with("/api/mcp/srv/messages?sessionId="),
        "{endpoint}"
    );

    let r = s
        .post(
            &endpoint,
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "calculator", "arguments": {"expression": "1 + 1"}}}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (202, "Accepted"));
    let (kind, data) = next_event(&mut stream, &mut buffer).await;
    assert_eq!(kind, "message");
    let answer: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["structuredContent"]["result"], 2.0);

    let r = s
        .post(
            "/api/mcp/srv/messages",
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .await;
    assert_eq!((r.status, r.text.as_str()), (400, "No sessionId provided"));
    let r = s
        .post(
            "/api/mcp/srv/messages?sessionId=nope",
            json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
        )
        .await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (400, "No transport found for sessionId nope")
    );
    // The session ends with its stream.
    drop(stream);
    let gone = crate::support::eventually("the session to close", || async {
        let r = s
            .post(
                &endpoint,
                json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}),
            )
            .await;
        (r.status == 400).then_some(())
    })
    .await;
    let _: () = gone;
    s.stop().await;
}

/// The stdio MCP server the client tests start (python3, which CI installs).
fn fixture_server() -> String {
    format!(
        "{}/tests/it/fixtures/mcp_stdio_server.py",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The text of an MCP tool result's first content block.
fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_clients_bring_the_tools_of_external_servers() {
    // The HTTP servers are another edgestra (streamable HTTP, and HTTP+SSE after the
    // streamable POST fails); the stdio one is a python script.
    let remote = TestServer::start(PROJECT).await;
    let base = crate::agents::scripted_server().await;
    let project = format!(
        r#"
models:
  caller: {{ openai: {{ base_url: "{base}", model: first-tool }} }}
mcp_clients:
  local: {{ command: python3, args: ["{fixture}"], env: {{ GREETING: hej }} }}
  remote: {{ url: "{url}" }}
  older: {{ url: "{sse}" }}
  down: {{ command: /nonexistent/mcp-server, timeout_ms: 2000 }}
agents:
  helper: {{ instructions: Uses tools., model: caller, tools: [local_echo] }}
  everything: {{ instructions: All of them., model: caller, tools: [local, remote] }}
  hopeful: {{ instructions: Its server is down., model: caller, tools: [down_anything] }}
workflows:
  sums:
    steps:
      - {{ id: add, tool: local_add, input: '{{a: 2, b: 3}}' }}
      - {{ id: twice, tool: remote_run_double, input: '{{n: 4}}' }}
mcp_servers:
  relay: {{ tools: [local_echo] }}
"#,
        fixture = fixture_server(),
        url = remote.url("/api/mcp/srv/mcp"),
        sse = remote.url("/api/mcp/srv/sse"),
    );
    let s = TestServer::start(&project).await;

    // Every page of the stdio server's tools and the HTTP server's tools, as project tools.
    let listed = s.get("/api/tools").await.json();
    let mut names: Vec<&str> = listed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "local_add",
            "local_crash",
            "local_echo",
            "local_fail",
            "local_greeting",
            "older_calculator",
            "older_run_double",
            "remote_calculator",
            "remote_run_double"
        ],
        "{listed}"
    );
    assert_eq!(listed["local_echo"]["description"], "Echoes the text");
    assert!(
        listed["local_echo"]["inputSchema"]
            .as_str()
            .unwrap()
            .contains(r#""text":{"type":"string"}"#),
        "{listed}"
    );

    // Calls answer with the server's CallToolResult; inputs are checked before sending.
    let echoed = s
        .post(
            "/api/tools/local_echo/execute",
            json!({"data": {"text": "hi"}}),
        )
        .await
        .json();
    assert_eq!(first_text(&echoed), "hi", "{echoed}");
    assert_eq!(echoed["structuredContent"]["echoed"], "hi");
    let r = s
        .post(
            "/api/tools/local_echo/execute",
            json!({"data": {"text": 7}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let failed = s
        .post("/api/tools/local_fail/execute", json!({"data": {}}))
        .await
        .json();
    assert_eq!(failed["isError"], true, "{failed}");
    assert_eq!(first_text(&failed), "it went wrong");
    let greeting = s
        .post("/api/tools/local_greeting/execute", json!({"data": {}}))
        .await
        .json();
    assert_eq!(
        first_text(&greeting),
        "hej",
        "the client's env reaches the server"
    );
    let product = s
        .post(
            "/api/tools/remote_calculator/execute",
            json!({"data": {"expression": "6 * 7"}}),
        )
        .await
        .json();
    assert!(first_text(&product).contains("42"), "{product}");
    let doubled = s
        .post(
            "/api/tools/older_run_double/execute",
            json!({"data": {"n": 21}}),
        )
        .await
        .json();
    assert!(first_text(&doubled).contains("42"), "{doubled}");

    // A server process that dies fails that call; the next call starts it again.
    let r = s
        .post("/api/tools/local_crash/execute", json!({"data": {}}))
        .await;
    assert_eq!(r.status, 500, "{}", r.text);
    assert!(r.error().contains("MCP server `local`"), "{}", r.text);
    let again = s
        .post(
            "/api/tools/local_echo/execute",
            json!({"data": {"text": "back"}}),
        )
        .await
        .json();
    assert_eq!(first_text(&again), "back", "{again}");
    assert_ne!(
        again["structuredContent"]["pid"], echoed["structuredContent"]["pid"],
        "a new process"
    );

    // Agents name single tools or a whole client; a client that was down leaves its agents
    // without those tools rather than the server without the agents.
    let helper = s.get("/api/agents/helper").await.json();
    assert_eq!(
        helper["tools"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["local_echo"]
    );
    let everything = s.get("/api/agents/everything").await.json();
    assert_eq!(everything["tools"].as_object().unwrap().len(), 7);
    let hopeful = s.get("/api/agents/hopeful").await.json();
    assert_eq!(hopeful["tools"], json!({}), "{hopeful}");
    let v = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": "Echo something"}),
        )
        .await
        .json();
    let step = &v["steps"][0];
    assert_eq!(step["toolCalls"][0]["toolName"], "local_echo", "{v}");
    assert_eq!(
        first_text(&step["toolResults"][0]["result"]),
        "hello",
        "{v}"
    );
    let r = s
        .post(
            "/api/agents/helper/tools/local_echo/execute",
            json!({"data": {"text": "direct"}}),
        )
        .await;
    assert_eq!(first_text(&r.json()), "direct", "{}", r.text);

    // Workflow steps call them, and this server serves them on over MCP in turn.
    let run = s
        .post("/api/workflows/sums/start-async", json!({"inputData": {}}))
        .await
        .json();
    assert_eq!(run["status"], "success", "{run}");
    assert_eq!(first_text(&run["steps"]["add"]["output"]), "5", "{run}");
    assert!(
        first_text(&run["steps"]["twice"]["output"]).contains('8'),
        "{run}"
    );
    let relayed = s.get("/api/mcp/relay/tools").await.json();
    assert_eq!(relayed["tools"][0]["name"], "local_echo", "{relayed}");

    // The stdio server's diagnostics are in the log, under the client's name.
    let logs = crate::support::eventually("the fixture's stderr in the log", || async {
        let r = s.get("/api/logs?transportId=redb").await;
        r.text.contains("mcp fixture ready").then_some(r.text)
    })
    .await;
    assert!(logs.contains("local"), "{logs}");
    s.stop().await;
    remote.stop().await;
}
