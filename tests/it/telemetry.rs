//! `telemetry` group: OTLP/JSON ingest and span queries.

use serde_json::{Value, json};

use crate::support::TestServer;

pub fn otlp(span: &str, component: &str) -> Value {
    let start: u128 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    json!({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "mastra-service"}, "spans": [{
        "spanId": format!("{span}-id"), "traceId": "trace-1", "name": span, "kind": 1,
        "attributes": [{"key": "componentName", "value": {"stringValue": component}}],
        "startTimeUnixNano": start.to_string(), "endTimeUnixNano": (start + 5_000_000).to_string()
    }]}]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_then_query() {
    let s = TestServer::start("").await;
    assert_eq!(s.get("/api/telemetry").await.json(), json!({"traces": []}));
    let r = s.post("/api/telemetry", json!({"resourceSpans": []})).await;
    assert_eq!(
        r.json(),
        json!({"status": "success", "message": "No spans to process", "traceCount": 0})
    );

    let r = s
        .post("/api/telemetry", otlp("agent.generate", "Weather Agent"))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["traceCount"], 1);
    s.post("/api/telemetry", otlp("tool.call", "Other Agent"))
        .await;

    let all = s.get("/api/telemetry").await.json();
    let names: Vec<&str> = all["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["tool.call", "agent.generate"]);
    let t = &all["traces"][1];
    assert_eq!(t["attributes"]["componentName"], "Weather Agent");
    assert!(
        t["endTime"].as_u64().unwrap() - t["startTime"].as_u64().unwrap() == 5000,
        "microseconds"
    );

    let q = s
        .get("/api/telemetry?attribute=componentName:Weather%20Agent")
        .await
        .json();
    assert_eq!(q["traces"].as_array().unwrap().len(), 1);
    let q = s
        .get("/api/telemetry?name=tool.call&page=0&perPage=1")
        .await
        .json();
    assert_eq!(q["traces"][0]["name"], "tool.call");
    assert_eq!(
        s.get("/api/telemetry?page=1&perPage=1").await.json()["traces"][0]["name"],
        "agent.generate"
    );

    let r = s
        .post("/api/telemetry", json!({"resourceSpans": "nope"}))
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (400, Some("error"))
    );
    assert_eq!(s.get("/api/telemetry?attribute=bad").await.status, 400);
    s.stop().await;
}
