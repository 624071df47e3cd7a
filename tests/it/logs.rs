//! `logs` group: what the server logs is stored, queryable, attributed to runs, and bounded.

use serde_json::json;

use crate::support::{TOOLS_PROJECT, TestServer, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_stored_and_queryable() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    assert_eq!(
        s.get("/api/logs/transports").await.json(),
        json!({"transports": ["redb"]})
    );

    let r = s.get("/api/logs").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (400, "Argument \"transportId\" is required")
    );
    assert_eq!(s.get("/api/logs?transportId=nope").await.status, 404);
    assert_eq!(
        s.get("/api/logs?transportId=redb&logLevel=loud")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/logs?transportId=redb&perPage=zero")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/logs?transportId=redb&fromDate=yesterday")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/logs?transportId=redb&filters=nocolon")
            .await
            .status,
        400
    );

    let r = s
        .send(
            s.client
                .post(s.url("/api/tools/calculator/execute?runId=run-42"))
                .header("x-request-id", "rq-7")
                .json(&json!({"data": {"expression": "1+1"}})),
        )
        .await;
    assert_eq!(r.status, 200);

    let page = eventually("the run's logs", || async {
        let p = s.get("/api/logs/run-42?transportId=redb").await.json();
        (p["total"].as_u64() > Some(0)).then_some(p)
    })
    .await;
    for l in page["logs"].as_array().unwrap() {
        assert_eq!(l["runId"], "run-42");
        assert!(l["msg"].is_string() && l["level"].is_string() && l["time"].is_string());
    }
    assert!(
        page["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["msg"] == "executing tool" && l["requestId"] == "rq-7")
    );

    let all = eventually("request logs", || async {
        let p = s
            .get("/api/logs?transportId=redb&perPage=1&page=1")
            .await
            .json();
        (p["total"].as_u64() >= Some(3)).then_some(p)
    })
    .await;
    assert_eq!(all["perPage"], 1);
    assert_eq!(all["logs"].as_array().unwrap().len(), 1);
    assert_eq!(all["hasMore"], true);

    let by_request = s
        .get("/api/logs?transportId=redb&filters=requestId:rq-7")
        .await
        .json();
    assert!(by_request["total"].as_u64().unwrap() >= 2, "{by_request}");
    let errors = s
        .get("/api/logs?transportId=redb&logLevel=error")
        .await
        .json();
    assert!(
        errors["logs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["level"] == "error")
    );
    let future = s
        .get("/api/logs?transportId=redb&fromDate=2999-01-01")
        .await
        .json();
    assert_eq!(future["total"], 0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_oldest_records() {
    let yaml = format!("server: {{ logs: {{ max_rows: 5 }} }}\n{TOOLS_PROJECT}");
    let mut s = TestServer::start(&yaml).await;
    // Every request logs at least one line, so the five newest lines all come from the
    // last five requests.
    let mut fifth_last_started = 0;
    for i in 0..20 {
        if i == 16 {
            fifth_last_started = now_ms();
        }
        s.post(
            "/api/tools/calculator/execute",
            json!({"data": {"expression": format!("{i}+1")}}),
        )
        .await;
    }
    let last = s
        .send(
            s.client
                .post(s.url("/api/tools/calculator/execute"))
                .header("x-request-id", "the-last-request")
                .json(&json!({"data": {"expression": "999+1"}})),
        )
        .await;
    assert_eq!(last.status, 200);
    // Lines are written in the background and pruned about once a second and when the writer
    // closes; stopping the server makes that last prune happen after every line is stored.
    s.halt().await;
    let store = edgestra::storage::Store::open(s.data_dir()).unwrap();
    let page = edgestra::telemetry::logs::query(
        &store,
        &edgestra::telemetry::logs::LogQuery {
            run_id: None,
            from_ms: None,
            to_ms: None,
            min_level: None,
            filters: vec![],
            page: 1,
            per_page: 100,
        },
    )
    .unwrap();
    assert_eq!(page.total, 5, "retention keeps max_rows lines");
    assert!(
        page.logs
            .iter()
            .any(|l| l.request_id.as_deref() == Some("the-last-request")),
        "the newest lines were kept"
    );
    for l in &page.logs {
        assert!(
            l.time_ms >= fifth_last_started,
            "an old record survived: {l:?}"
        );
    }
    drop(store);
    s.stop().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
