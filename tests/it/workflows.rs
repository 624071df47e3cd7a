//! Workflows: the workflow objects and graphs derived from the project file's definitions.

use serde_json::{Value, json};

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workflows_are_listed_with_their_graphs() {
    let yaml = std::fs::read_to_string("tests/conformance/edgestra.yaml").unwrap();
    let s = TestServer::start(&yaml).await;
    let all = s.get("/api/workflows").await.json();
    let seq = &all["sequentialWorkflow"];
    assert_eq!(seq["name"], "sequentialWorkflow");
    assert_eq!(seq["description"], "Adds one, then doubles");
    let types: Vec<&str> = seq["stepGraph"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["step", "step"]);
    assert_eq!(seq["stepGraph"][0]["step"]["id"], "add-one");
    assert!(seq["steps"]["double"]["outputSchema"].is_string());
    let input: Value = serde_json::from_str(seq["inputSchema"].as_str().unwrap()).unwrap();
    assert_eq!(input["json"]["required"], json!(["value"]));
    let approval = s.get("/api/workflows/approvalWorkflow").await.json();
    assert!(approval["steps"]["request-approval"]["resumeSchema"].is_string());
    let r = s.get("/api/workflows/nope").await;
    assert_eq!((r.status, r.error()), (404, "Workflow not found".into()));
    // The legacy list is a route of its own, not a workflow named "legacy".
    assert_ne!(s.get("/api/workflows/legacy").await.status, 404);
    s.stop().await;
}
