//! `tools` group: listing, lookup by id, execution of every tool kind, and their failures.

use std::io::{BufRead, BufReader, Read, Write};

use serde_json::{Value, json};

use crate::support::{TOOLS_PROJECT, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_get_use_the_mastra_shape() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    let tools = s.get("/api/tools").await.json();
    let keys: Vec<&String> = tools.as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["calculator", "clock", "weatherTool"]);
    let weather = &tools["weatherTool"];
    assert_eq!(weather["id"], "weatherTool");
    assert_eq!(weather["description"], "Deterministic weather for a city");
    let schema: Value = serde_json::from_str(weather["inputSchema"].as_str().unwrap()).unwrap();
    assert_eq!(schema["json"]["required"], json!(["city"]));
    assert_eq!(
        schema["json"]["$schema"],
        "http://json-schema.org/draft-07/schema#"
    );
    assert!(weather["outputSchema"].is_string());
    // A tool without an input schema still advertises one (an open object).
    let echo: Value =
        serde_json::from_str(tools["echoContext"]["inputSchema"].as_str().unwrap()).unwrap();
    assert_eq!(echo["json"]["type"], "object");

    // Lookup is by id, not by key.
    let clock = s.get("/api/tools/clock-tool").await;
    assert_eq!(clock.status, 200);
    assert_eq!(clock.json()["id"], "clock-tool");
    let r = s.get("/api/tools/clock").await;
    assert_eq!((r.status, r.error().as_str()), (404, "Tool not found"));
    let r = s.post("/api/tools/nope/execute", json!({"data": {}})).await;
    assert_eq!((r.status, r.error().as_str()), (404, "Tool not found"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_and_jq_tools_execute() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    let r = s
        .post(
            "/api/tools/calculator/execute",
            json!({"data": {"expression": "(2 + 3) * sqrt(16) / 8"}}),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"expression": "(2 + 3) * sqrt(16) / 8", "result": 2.5})
    );
    let r = s
        .post(
            "/api/tools/calculator/execute",
            json!({"data": {"expression": "2 +"}}),
        )
        .await;
    assert_eq!(r.status, 500);
    let r = s
        .post(
            "/api/tools/clock-tool/execute",
            json!({"data": {"timezone": "Asia/Tokyo"}}),
        )
        .await;
    assert_eq!(r.json()["utcOffset"], "+09:00");
    let r = s
        .post(
            "/api/tools/clock-tool/execute",
            json!({"data": {"timezone": "Nowhere/Land"}}),
        )
        .await;
    assert_eq!(r.status, 500);
    assert!(r.error().contains("unknown time zone"));

    let a = s
        .post(
            "/api/tools/weatherTool/execute",
            json!({"data": {"city": "Rome"}}),
        )
        .await
        .json();
    let b = s
        .post(
            "/api/tools/weatherTool/execute",
            json!({"data": {"city": "Rome"}}),
        )
        .await
        .json();
    assert_eq!(a, b, "deterministic");
    assert_eq!(a["city"], "Rome");
    assert!(a["temperatureC"].is_number() && a["conditions"].is_string());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_validated() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    for body in [
        json!({}),
        json!({"data": null}),
        json!({"data": 0}),
        json!({"data": ""}),
    ] {
        let r = s.post("/api/tools/weatherTool/execute", body).await;
        assert_eq!(
            (r.status, r.error().as_str()),
            (400, "Argument \"data\" is required")
        );
    }
    let r = s
        .post(
            "/api/tools/weatherTool/execute",
            json!({"data": {"city": "", "extra": 1}}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().starts_with("Invalid tool input"), "{}", r.text);
    let details = r.json()["details"].as_array().unwrap().len();
    assert_eq!(details, 2, "{}", r.text);
    let r = s
        .post(
            "/api/tools/weatherTool/execute",
            json!({"data": {"city": 5}}),
        )
        .await;
    assert_eq!(r.status, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_tools_run_time_out_and_fail_clearly() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    let r = s
        .post("/api/tools/doubler/execute", json!({"data": {"value": 21}}))
        .await;
    assert_eq!(r.json(), json!({"value": 42}), "{}", r.text);

    let started = std::time::Instant::now();
    let r = s.post("/api/tools/slow/execute", json!({"data": {}})).await;
    assert_eq!(r.status, 504);
    assert_eq!(r.error(), "tool timed out after 300 ms");
    assert!(
        started.elapsed().as_secs() < 4,
        "the process was not left running to completion"
    );

    let r = s
        .post("/api/tools/failing/execute", json!({"data": {}}))
        .await;
    assert_eq!(r.status, 500);
    let e = r.error();
    assert!(
        e.contains("exited with 3") && e.contains("disk on fire"),
        "{e}"
    );

    let r = s
        .post("/api/tools/chatty/execute", json!({"data": {}}))
        .await;
    assert_eq!(r.status, 500);
    assert!(r.error().contains("did not print JSON"));
    s.stop().await;
}

/// A one-connection-at-a-time HTTP server that answers JSON describing the request.
fn echo_server() -> (String, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for stream in listener.incoming().take(3) {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            reader.read_line(&mut request_line).unwrap();
            let mut headers = Vec::new();
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
                headers.push(line.trim().to_string());
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let parts: Vec<&str> = request_line.split_whitespace().collect();
            if parts.len() < 2 {
                continue;
            }
            let (status, payload) = if parts[1].starts_with("/fail") {
                ("500 Internal Server Error", "backend exploded".to_string())
            } else {
                let token = headers
                    .iter()
                    .find(|h| h.to_ascii_lowercase().starts_with("x-token:"))
                    .cloned();
                ("200 OK", json!({"method": parts[0], "path": parts[1], "token": token, "body": String::from_utf8_lossy(&body)}).to_string())
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{payload}",
                payload.len()
            );
            stream.write_all(reply.as_bytes()).unwrap();
        }
    });
    (format!("http://{addr}"), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tools_call_out_with_jq_urls_and_bodies() {
    let (base, server) = echo_server();
    let yaml = format!(
        r#"
tools:
  order:
    input_schema: {{ type: object, properties: {{ id: {{ type: integer }} }}, required: [id] }}
    http:
      method: POST
      url: '"{base}/orders/\(.id)?v=1"'
      body: '{{orderId: .id, kind: "lookup"}}'
      headers: {{ x-token: abc }}
  broken:
    http: {{ url: '"{base}/fail"' }}
  unreachable:
    http: {{ url: '"http://127.0.0.1:9/nothing"', timeout_ms: 2000 }}
"#
    );
    let s = TestServer::start(&yaml).await;
    let r = s
        .post("/api/tools/order/execute", json!({"data": {"id": 17}}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path"], "/orders/17?v=1");
    assert_eq!(v["token"], "x-token: abc");
    let sent: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(sent, json!({"orderId": 17, "kind": "lookup"}));

    let r = s
        .post("/api/tools/broken/execute", json!({"data": {"q": 1}}))
        .await;
    assert_eq!(r.status, 500);
    assert!(
        r.error().contains("HTTP 500") && r.error().contains("backend exploded"),
        "{}",
        r.text
    );

    let r = s
        .post("/api/tools/unreachable/execute", json!({"data": {"q": 1}}))
        .await;
    assert!(r.status == 500 || r.status == 504, "{}", r.text);
    s.stop().await;
    // Let the echo server's last accept finish.
    let _ = std::net::TcpStream::connect(base.trim_start_matches("http://"));
    server.join().unwrap();
}
