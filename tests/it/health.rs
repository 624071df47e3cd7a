//! `/health`, `/ready`, `/metrics` and `edgestra health`: what supervisors and scrapers use,
//! without the API key.

use std::process::Command;

use serde_json::json;

use crate::support::TestServer;

const PROJECT: &str = "tools:\n  calc: { builtin: calculator }\n";

/// `edgestra health` with `args`: its exit code and what it printed.
fn probe(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_edgestra"))
        .arg("health")
        .args(args)
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), printed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_ready_answer_without_the_api_key() {
    let s = TestServer::start_with(PROJECT, Some("s3cret-key")).await;
    assert_eq!(s.get("/api/tools").await.status, 401);
    let r = s.get("/health").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = s.get("/ready").await;
    assert_eq!(
        (r.status, r.json()),
        (
            200,
            json!({"status": "ready", "checks": {"storage": "ok", "models": "ok", "shuttingDown": false}})
        )
    );
    // Probes only read.
    assert_eq!(s.post("/ready", json!({})).await.status, 405);

    let base = s.url("");
    let (code, printed) = probe(&["--url", &base]);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("/ready: 200"), "{printed}");
    let (code, printed) = probe(&["--url", &format!("{base}/"), "--live"]);
    assert_eq!(code, Some(0), "{printed}");
    assert!(printed.contains("/health: 200"), "{printed}");
    s.stop().await;

    // Nothing listens there any more.
    let (code, printed) = probe(&["--url", &base, "--timeout", "2"]);
    assert_eq!(code, Some(1), "{printed}");
    assert!(printed.contains("no answer"), "{printed}");
    let (code, printed) = probe(&["--url", "not a url"]);
    assert_eq!(code, Some(1), "{printed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_while_a_model_cannot_serve() {
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("chat.gguf");
    std::fs::write(&weights, b"not a gguf file").unwrap();
    let yaml = format!(
        "models:\n  mine: {{ path: {} }}\nagents:\n  helper:\n    model: mine\n    instructions: Be brief.\n",
        weights.display()
    );
    let s = TestServer::start(&yaml).await;
    // The file is there and was not loaded yet: ready.
    let r = s.get("/ready").await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Loading it fails on first use; from then on the server says so.
    let r = s
        .post(
            "/api/agents/helper/generate",
            json!({"messages": [{"role": "user", "content": "Hi"}]}),
        )
        .await;
    assert!(r.status >= 400, "{} {}", r.status, r.text);
    let r = s.get("/ready").await;
    assert_eq!(r.status, 503, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "not ready");
    assert_eq!(body["checks"]["storage"], "ok");
    let why = body["checks"]["models"]["mine"]
        .as_str()
        .unwrap_or_default();
    assert!(!why.is_empty(), "{body}");

    // A model whose file went away is not ready either.
    let yaml = format!(
        "models:\n  gone: {{ path: {} }}\n",
        dir.path().join("gone.gguf").display()
    );
    std::fs::write(dir.path().join("gone.gguf"), b"x").unwrap();
    let s2 = TestServer::start(&yaml).await;
    std::fs::remove_file(dir.path().join("gone.gguf")).unwrap();
    let r = s2.get("/ready").await;
    assert_eq!(r.status, 503, "{}", r.text);
    let why = r.json()["checks"]["models"]["gone"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("does not exist"), "{why}");
    s2.stop().await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_unless_asked_for_and_then_count_by_route_template() {
    let s = TestServer::start(PROJECT).await;
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 404, "{}", r.text);
    assert!(r.error().contains("--metrics"), "{}", r.text);
    s.stop().await;

    let yaml = "tools:\n  calc: { builtin: calculator }\nworkflows:\n  double:\n    steps:\n      - { id: d, map: '{n: (.input.n * 2)}' }\n";
    let s = TestServer::start_metered(yaml, Some("s3cret-key")).await;
    let keyed = |b: reqwest::RequestBuilder| b.bearer_auth("s3cret-key");
    for id in ["a1", "a2"] {
        let r = s
            .send(keyed(s.client.get(s.url(&format!("/api/tools/{id}")))))
            .await;
        assert_eq!(r.status, 404);
    }
    let r = s
        .send(keyed(
            s.client
                .post(s.url("/api/workflows/double/start-async"))
                .json(&json!({"inputData": {"n": 2}})),
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.send(keyed(s.client.get(s.url("/no/such/page/x")))).await;
    assert!(r.status < 500);

    // No key needed; OpenMetrics text that Prometheus reads.
    let r = s.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let content_type = r.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = &r.text;
    assert!(text.ends_with("# EOF\n"), "{text}");
    // Two tool ids, one route template: the label set does not grow with ids.
    let tool_lines: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("edgestra_http_requests_total") && l.contains("api/tools/{toolId}")
        })
        .collect();
    assert_eq!(tool_lines.len(), 1, "{text}");
    assert!(
        tool_lines[0].contains("status=\"404\"") && tool_lines[0].ends_with(" 2"),
        "{text}"
    );
    assert!(!text.contains("a1") && !text.contains("/no/such"), "{text}");
    for family in [
        "# TYPE edgestra_http_request_duration_seconds histogram",
        "edgestra_workflow_runs_ended_total{status=\"success\"}",
        "# TYPE edgestra_storage_file_bytes gauge",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    let bytes: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("edgestra_storage_file_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(bytes > 0, "{text}");
    s.stop().await;
}
