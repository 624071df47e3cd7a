//! What was acknowledged survives a restart; a data directory cannot be shared.

use serde_json::json;

use crate::support::{TOOLS_PROJECT, TestServer, eventually};
use crate::telemetry::otlp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_what_was_written() {
    let mut s = TestServer::start(TOOLS_PROJECT).await;
    assert_eq!(
        s.post("/api/telemetry", otlp("kept.span", "Keeper"))
            .await
            .status,
        200
    );
    s.post(
        "/api/tools/calculator/execute?runId=restart-run",
        json!({"data": {"expression": "2+2"}}),
    )
    .await;
    eventually("logs of the run", || async {
        let p = s.get("/api/logs/restart-run?transportId=redb").await.json();
        (p["total"].as_u64() > Some(0)).then_some(())
    })
    .await;

    s.restart().await;
    let spans = s.get("/api/telemetry?name=kept.span").await.json();
    assert_eq!(spans["traces"].as_array().unwrap().len(), 1);
    let logs = s.get("/api/logs/restart-run?transportId=redb").await.json();
    assert!(logs["total"].as_u64().unwrap() > 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_in_use_is_refused_with_one_sentence() {
    let s = TestServer::start("").await;
    let project = edgestra::config::load_str("", "test").unwrap();
    let opts = edgestra::server::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: s.data_dir().to_path_buf(),
        api_key: None,
        dev: false,
        metrics: false,
    };
    let err = match edgestra::server::start(project, opts).await {
        Ok(_) => panic!("a second server on the same data directory must not start"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("in use by another edgestra process"), "{err}");
    s.stop().await;
}
