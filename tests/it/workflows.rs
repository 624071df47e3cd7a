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

/// The release binary serving `config` on `data`; returns it and its base URL. The caller kills
/// and waits for it.
#[allow(clippy::zombie_processes)]
fn spawn_server(config: &std::path::Path, data: &std::path::Path) -> (std::process::Child, String) {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_edgestra"))
        .args(["serve", "--port", "0", "--config"])
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        let read = std::io::BufRead::read_line(&mut stdout, &mut line);
        if read.is_err() || line.is_empty() {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the server exited before printing its URL");
        }
        if let Some(i) = line.find("API ") {
            let url = line[i + 4..].split_whitespace().next().unwrap();
            return (child, url.trim_end_matches("/api").to_string());
        }
    }
}

const CRASH_PROJECT: &str = r#"
tools:
  stepA:
    description: Counts its runs in a file, then adds one
    input_schema: { type: object, properties: { value: { type: number }, log: { type: string } }, required: [value, log] }
    command:
      program: python3
      args: ["-c", "import json,sys; d=json.load(sys.stdin); open(d['log'],'a').write('ran\\n'); print(json.dumps({'value': d['value'] + 1}))"]
workflows:
  crashy:
    steps:
      - { id: a, tool: stepA, input: '.input' }
      - { sleep: 2000 }
      - { id: b, map: '{value: (.steps.a.value * 10)}' }
  approve:
    steps:
      - { id: ask, suspend: { resume_schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] } }, output: '{ok: .resume.ok, item: .input.item}' }
      - { id: done, map: '.prev' }
"#;

async fn json_of(r: reqwest::Response) -> Value {
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_survive_sigkill_and_finish_in_a_new_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("project.yaml");
    std::fs::write(&config, CRASH_PROJECT).unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("a.log");
    let http = edgestra::net::http_client().unwrap();

    let (mut server, base) = spawn_server(&config, &data);
    let body = json!({"inputData": {"value": 1, "log": log.to_str().unwrap()}});
    let r = http
        .post(format!(
            "{base}/api/workflows/crashy/create-run?runId=crash-1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{base}/api/workflows/crashy/start?runId=crash-1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["message"], "Workflow run started");
    // A suspended run, to be resumed by the next process.
    let r = http
        .post(format!(
            "{base}/api/workflows/approve/start-async?runId=held-1"
        ))
        .json(&json!({"inputData": {"item": "laptop"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(r).await["status"], "suspended");
    // Kill (SIGKILL) while crashy sleeps after step a.
    crate::support::eventually("step a to run", || async {
        std::fs::read_to_string(&log)
            .ok()
            .filter(|t| !t.is_empty())
            .map(|_| ())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    server.kill().unwrap();
    server.wait().unwrap();

    let (mut server, base) = spawn_server(&config, &data);
    let mut result = Value::Null;
    for _ in 0..100 {
        let r = http
            .get(format!(
                "{base}/api/workflows/crashy/runs/crash-1/execution-result"
            ))
            .send()
            .await
            .unwrap();
        result = json_of(r).await;
        if result["status"] == "success" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(result["status"], "success", "{result}");
    assert_eq!(result["result"], json!({"value": 20}));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        1,
        "step a ran once"
    );

    // Bad resume data is a 400; good data finishes the run, in this new process.
    let resume = |data: Value| {
        http.post(format!(
            "{base}/api/workflows/approve/resume-async?runId=held-1"
        ))
        .json(&json!({"step": "ask", "resumeData": data}))
        .send()
    };
    let r = resume(json!({"ok": "yes"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = resume(json!({"ok": true})).await.unwrap();
    let v = json_of(r).await;
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["result"], json!({"ok": true, "item": "laptop"}));
    let r = resume(json!({"ok": true})).await.unwrap();
    assert_eq!(r.status(), 400, "a finished run is not suspended");
    server.kill().unwrap();
    server.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_flow_events_cancel_and_errors() {
    let s = TestServer::start(
        r#"
workflows:
  flow:
    input_schema: { type: object, properties: { n: { type: integer } }, required: [n] }
    steps:
      - parallel: [ { id: x, map: '.input.n + 1' }, { id: y, map: '.input.n * 2' } ]
      - branch:
          - { when: '.prev.x > 100', steps: [ { id: big, map: '"big"' } ] }
          - { when: '.prev.x <= 100', steps: [ { id: small, map: '"small"' } ] }
      - dountil: { condition: '.prev.i >= 3', steps: [ { id: inc, map: '{i: ((.prev.i // 0) + 1)}' } ] }
      - { id: each, foreach: { items: '[1, 2, 3]', steps: [ { id: sq, map: '.item * .item' } ] } }
      - { id: ev, wait_for_event: { event: go } }
      - { id: end, map: '{each: .steps.each, event: .prev, branch: .steps.small}' }
  sleepy:
    steps:
      - { sleep: 60000 }
      - { id: after, map: '1' }
"#,
    )
    .await;
    let r = s
        .post(
            "/api/workflows/flow/start-async",
            json!({"inputData": {"n": "x"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("Invalid input data"));
    let v = s
        .post(
            "/api/workflows/flow/start-async?runId=f1",
            json!({"inputData": {"n": 2}}),
        )
        .await
        .json();
    assert_eq!(v["status"], "waiting", "{v}");
    assert_eq!(v["steps"]["x"]["output"], 3);
    assert_eq!(v["steps"]["y"]["output"], 4);
    assert_eq!(v["steps"]["small"]["output"], "small");
    assert!(v["steps"].get("big").is_none());
    assert_eq!(v["steps"]["inc"]["output"], json!({"i": 3}));
    assert_eq!(v["steps"]["each"]["output"], json!([1, 4, 9]));
    let r = s
        .post(
            "/api/workflows/flow/runs/f1/send-event",
            json!({"event": "go", "data": {"ok": 1}}),
        )
        .await;
    assert_eq!(r.json()["message"], "Workflow run event sent");
    let done = crate::support::eventually("the event to finish the run", || async {
        let e = s
            .get("/api/workflows/flow/runs/f1/execution-result")
            .await
            .json();
        (e["status"] == "success").then_some(e)
    })
    .await;
    assert_eq!(
        done["result"],
        json!({"each": [1, 4, 9], "event": {"ok": 1}, "branch": "small"})
    );

    // Cancel a sleeping run: it ends canceled at once, not after the sleep.
    s.post("/api/workflows/sleepy/create-run?runId=z1", json!({}))
        .await;
    s.post(
        "/api/workflows/sleepy/start?runId=z1",
        json!({"inputData": {}}),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        s.post("/api/workflows/sleepy/runs/z1/cancel", json!({}))
            .await
            .json()["message"],
        "Workflow run cancelled"
    );
    let e = crate::support::eventually("cancel", || async {
        let e = s
            .get("/api/workflows/sleepy/runs/z1/execution-result")
            .await
            .json();
        (e["status"] == "canceled").then_some(e)
    })
    .await;
    assert!(e["steps"].get("after").is_none());

    // Errors.
    for (path, status, text) in [
        (
            "/api/workflows/flow/start",
            400,
            "runId required to start run",
        ),
        (
            "/api/workflows/flow/start?runId=nope",
            404,
            "Workflow run not found",
        ),
        (
            "/api/workflows/flow/resume?runId=f1",
            400,
            "step required to resume workflow",
        ),
        (
            "/api/workflows/flow/resume",
            400,
            "runId required to resume workflow",
        ),
        ("/api/workflows/nope/create-run", 404, "Workflow not found"),
        (
            "/api/workflows/flow/runs/nope/cancel",
            404,
            "Workflow run not found",
        ),
    ] {
        let r = s.post(path, json!({})).await;
        assert_eq!((r.status, r.error()), (status, text.to_string()), "{path}");
    }
    let r = s.get("/api/workflows/flow/watch").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "runId required to watch workflow".into())
    );
    let r = s
        .get("/api/workflows/flow/runs/nope/execution-result")
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .post("/api/workflows/flow/resume?runId=f1", json!({"step": "ev"}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "This workflow run was not suspended".into())
    );
    let runs = s.get("/api/workflows/flow/runs?limit=1").await.json();
    assert_eq!(runs["runs"].as_array().unwrap().len(), 1);
    assert!(runs["total"].as_u64().unwrap() >= 1);
    s.stop().await;
}

/// A tool that waits (up to 5 s) until `want` calls have entered `dir`: it reports whether they
/// were in progress together, which only happens when the engine runs them concurrently.
const BARRIER_TOOL: &str = r#"
tools:
  barrier:
    description: Waits for company
    input_schema: { type: object, properties: { dir: { type: string }, n: { type: integer }, want: { type: integer } }, required: [dir, n, want] }
    command:
      program: python3
      args: ["-c", "import json,os,sys,time\nd=json.load(sys.stdin)\nopen(os.path.join(d['dir'], str(d['n'])), 'w').close()\nt=time.time()\nwhile len(os.listdir(d['dir'])) < d['want'] and time.time() - t < 5: time.sleep(0.02)\nprint(json.dumps({'n': d['n'], 'together': len(os.listdir(d['dir'])) >= d['want']}))"]
      timeout_ms: 20000
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_workflows_concurrent_branches_and_spans() {
    let yaml = format!(
        r#"{BARRIER_TOOL}
workflows:
  inner:
    input_schema: {{ type: object, properties: {{ v: {{ type: integer }} }}, required: [v] }}
    steps:
      - {{ id: double, map: '{{v: (.input.v * 2)}}' }}
      - id: approve
        suspend: {{ resume_schema: {{ type: object, properties: {{ ok: {{ type: boolean }} }}, required: [ok] }}, payload: '{{asked: .prev.v}}' }}
        output: '{{v: .steps.double.v, ok: .resume.ok}}'
  outer:
    steps:
      - {{ id: first, map: '{{v: .input.n}}' }}
      - {{ id: sub, workflow: inner }}
      - {{ id: last, map: '{{result: .prev, n: .input.n}}' }}
  badinput:
    steps:
      - {{ id: sub, workflow: inner, input: '{{v: "text"}}' }}
  together:
    steps:
      - parallel:
          - {{ id: p1, tool: barrier, input: '{{dir: .input.pdir, n: 1, want: 2}}' }}
          - {{ id: p2, tool: barrier, input: '{{dir: .input.pdir, n: 2, want: 2}}' }}
      - id: each
        foreach:
          items: '[1, 2]'
          concurrency: 2
          steps: [ {{ id: item, tool: barrier, input: '{{dir: .input.fdir, n: .item, want: 2}}' }} ]
"#
    );
    let s = TestServer::start(&yaml).await;

    // The graph draws the nested workflow inside its step; allSteps names its steps `sub.*`.
    let outer = s.get("/api/workflows/outer").await.json();
    let sub = &outer["stepGraph"][1]["step"];
    assert_eq!(sub["component"], "WORKFLOW", "{outer}");
    assert_eq!(sub["serializedStepFlow"][0]["step"]["id"], "double");
    assert_eq!(outer["allSteps"]["sub"]["isWorkflow"], true);
    assert_eq!(outer["allSteps"]["sub.approve"]["isWorkflow"], false);
    assert!(outer["allSteps"]["sub.approve"]["resumeSchema"].is_string());

    // A suspension inside the nested workflow suspends the run, with the path to it.
    let v = s
        .post(
            "/api/workflows/outer/start-async?runId=n1",
            json!({"inputData": {"n": 3}}),
        )
        .await
        .json();
    assert_eq!(v["status"], "suspended", "{v}");
    assert_eq!(v["suspended"], json!([["sub", "approve"]]));
    assert_eq!(v["steps"]["sub"]["status"], "suspended");
    assert_eq!(v["steps"]["sub"]["payload"], json!({"v": 3}));
    let payload = &v["steps"]["sub"]["suspendPayload"];
    assert_eq!(payload["asked"], 6);
    assert_eq!(
        payload["__workflow_meta"],
        json!({"runId": "n1", "path": ["approve"]})
    );
    assert!(
        v["steps"].get("double").is_none(),
        "inner steps stay inside"
    );
    let run = s.get("/api/workflows/outer/runs/n1").await.json();
    assert_eq!(run["snapshot"]["suspendedPaths"], json!({"sub": [0]}));

    // Resuming: a step that is not suspended, bad data, then good data by the full path.
    let r = s
        .post(
            "/api/workflows/outer/resume-async?runId=n1",
            json!({"step": "first", "resumeData": {"ok": true}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(
        r.error()
            .contains("Available suspended steps: [sub.approve]"),
        "{}",
        r.text
    );
    let r = s
        .post(
            "/api/workflows/outer/resume-async?runId=n1",
            json!({"step": ["sub", "approve"], "resumeData": {"ok": "yes"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("Invalid resume data"), "{}", r.text);
    let v = s
        .post(
            "/api/workflows/outer/resume-async?runId=n1",
            json!({"step": ["sub", "approve"], "resumeData": {"ok": true}}),
        )
        .await
        .json();
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["result"], json!({"result": {"v": 6, "ok": true}, "n": 3}));
    assert_eq!(v["steps"]["sub"]["output"], json!({"v": 6, "ok": true}));

    // The nested workflow's input is checked against its schema.
    let v = s
        .post(
            "/api/workflows/badinput/start-async",
            json!({"inputData": {}}),
        )
        .await
        .json();
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["steps"]["sub"]["error"]
            .as_str()
            .unwrap()
            .contains("Invalid input data"),
        "{v}"
    );

    // Parallel branches and foreach items (concurrency 2) are in progress together.
    let dirs = tempfile::tempdir().unwrap();
    let (pdir, fdir) = (dirs.path().join("p"), dirs.path().join("f"));
    std::fs::create_dir_all(&pdir).unwrap();
    std::fs::create_dir_all(&fdir).unwrap();
    let v = s
        .post(
            "/api/workflows/together/start-async?runId=t1",
            json!({"inputData": {"pdir": pdir, "fdir": fdir}}),
        )
        .await
        .json();
    assert_eq!(v["status"], "success", "{v}");
    assert_eq!(v["steps"]["p1"]["output"]["together"], true, "{v}");
    assert_eq!(v["steps"]["p2"]["output"]["together"], true, "{v}");
    assert_eq!(
        v["result"],
        json!([{"n": 1, "together": true}, {"n": 2, "together": true}])
    );

    // Every pass of a run is traced: a root span and one per step it ran.
    let spans = s
        .get("/api/telemetry?attribute=runId:n1&perPage=100")
        .await
        .json();
    let names: Vec<(String, String)> = spans["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_string(),
                t["attributes"]["stepId"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("workflow.outer", ""),
        ("step.first", "first"),
        ("step.double", "sub.double"),
        ("step.approve", "sub.approve"),
        ("step.last", "last"),
    ] {
        assert!(
            names.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {names:?}"
        );
    }
    assert_eq!(
        names.iter().filter(|n| n.0 == "workflow.outer").count(),
        2,
        "one trace per pass (start and resume): {names:?}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_workflows_trigger_skip_suspend_resume_and_watch() {
    let s = TestServer::start(
        r#"
legacy_workflows:
  expense:
    trigger_schema: { type: object, properties: { amount: { type: number } }, required: [amount] }
    steps:
      - { id: check, map: '{amount: .input.amount, big: (.input.amount > 100)}' }
      - id: approve
        when: '.prev.big'
        suspend: { resume_schema: { type: object, properties: { ok: { type: boolean } }, required: [ok] } }
      - { id: record, map: '{amount: .steps.check.amount, approved: (.steps.approve.ok // "auto")}' }
"#,
    )
    .await;
    let all = s.get("/api/workflows/legacy").await.json();
    let def = &all["expense"];
    assert_eq!(def["name"], "expense", "{all}");
    assert_eq!(def["stepGraph"]["initial"][0]["step"]["id"], "check");
    assert_eq!(def["stepGraph"]["check"][0]["config"]["when"], ".prev.big");
    assert!(def["triggerSchema"].is_string());
    assert_eq!(s.get("/api/workflows/legacy/expense").await.json(), *def);
    let r = s.get("/api/workflows/legacy/nope").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "Workflow with ID nope not found".into())
    );
    assert!(
        s.get("/api/workflows")
            .await
            .json()
            .get("expense")
            .is_none(),
        "legacy workflows are not current workflows"
    );

    // A small expense passes the approval by.
    let v = s
        .post(
            "/api/workflows/legacy/expense/start-async",
            json!({"amount": 50}),
        )
        .await
        .json();
    assert!(v["runId"].is_string(), "{v}");
    assert_eq!(v["activePaths"], json!({}));
    assert_eq!(v["results"]["check"]["status"], "success");
    assert_eq!(v["results"]["approve"], json!({"status": "skipped"}));
    assert_eq!(
        v["results"]["record"],
        json!({"status": "success", "output": {"amount": 50, "approved": "auto"}})
    );
    let r = s
        .post(
            "/api/workflows/legacy/expense/start-async",
            json!({"amount": "lots"}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("Invalid input data"), "{}", r.text);

    // A big one suspends; a watcher sees it and its stream ends.
    let r = s
        .post(
            "/api/workflows/legacy/expense/create-run?runId=l1",
            json!({}),
        )
        .await;
    assert_eq!(r.json(), json!({"runId": "l1"}));
    let watcher = {
        let url = s.url("/api/workflows/legacy/expense/watch?runId=l1");
        tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let r = s
        .post(
            "/api/workflows/legacy/expense/start?runId=l1",
            json!({"amount": 500}),
        )
        .await;
    assert_eq!(r.json(), json!({"message": "Workflow run started"}));
    let text = tokio::time::timeout(std::time::Duration::from_secs(30), watcher)
        .await
        .expect("the watch stream ends when nothing is executing")
        .unwrap();
    let records: Vec<Value> = text
        .split('\u{1e}')
        .filter(|t| !t.is_empty())
        .map(|t| serde_json::from_str(t).unwrap())
        .collect();
    assert!(
        records
            .iter()
            .any(|r| r["activePaths"]["check"]["status"] == "executing"),
        "{text}"
    );
    let last = records.last().unwrap();
    assert_eq!(last["runId"], "l1");
    assert_eq!(
        last["activePaths"]["approve"],
        json!({"status": "suspended", "suspendPayload": {}, "stepPath": ["approve"]})
    );
    assert_eq!(last["results"]["approve"]["status"], "suspended");

    // Resume: the errors, bad data, then the approval.
    for (path, body, status, text) in [
        (
            "/api/workflows/legacy/expense/start",
            json!({}),
            400,
            "runId required to start run",
        ),
        (
            "/api/workflows/legacy/expense/start?runId=nope",
            json!({}),
            404,
            "Workflow run not found",
        ),
        (
            "/api/workflows/legacy/expense/resume",
            json!({"stepId": "approve"}),
            400,
            "runId required to resume workflow",
        ),
        (
            "/api/workflows/legacy/expense/resume?runId=l1",
            json!({}),
            400,
            "stepId required to resume workflow",
        ),
        (
            "/api/workflows/legacy/nope/create-run",
            json!({}),
            404,
            "Workflow with ID nope not found",
        ),
    ] {
        let r = s.post(path, body).await;
        assert_eq!((r.status, r.error()), (status, text.to_string()), "{path}");
    }
    let r = s
        .post(
            "/api/workflows/legacy/expense/resume-async?runId=l1",
            json!({"stepId": "approve", "context": {"ok": "no"}}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("Invalid resume data"), "{}", r.text);
    let v = s
        .post(
            "/api/workflows/legacy/expense/resume-async?runId=l1",
            json!({"stepId": "approve", "context": {"ok": true}}),
        )
        .await
        .json();
    assert_eq!(
        v["results"]["record"]["output"],
        json!({"amount": 500, "approved": true}),
        "{v}"
    );
    assert_eq!(v["results"]["approve"]["status"], "success");

    let runs = s.get("/api/workflows/legacy/expense/runs").await.json();
    let l1 = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["runId"] == "l1")
        .expect("run l1 is listed");
    assert_eq!(l1["workflowName"], "expense");
    assert_eq!(
        l1["snapshot"]["context"]["triggerData"],
        json!({"amount": 500})
    );
    assert_eq!(l1["snapshot"]["value"]["record"], "success");
    assert!(runs["total"].as_u64().unwrap() >= 2);
    // A legacy run is not a current workflow's run.
    assert_eq!(s.get("/api/workflows/expense/runs/l1").await.status, 404);
    s.stop().await;
}

/// The records of a `\x1e`-separated stream; `watch` records are JSON strings of JSON.
fn records(text: &str) -> Vec<Value> {
    text.split('\u{1e}')
        .filter(|r| !r.trim().is_empty())
        .map(|r| match serde_json::from_str::<Value>(r).unwrap() {
            Value::String(inner) => serde_json::from_str(&inner).unwrap(),
            v => v,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_steps_keep_their_suspension_and_canceled_steps_end_on_every_stream() {
    let s = TestServer::start(
        r#"
tools:
  slow:
    input_schema: { type: object, properties: { ms: { type: integer } } }
    command:
      program: python3
      args: ["-c", "import json,sys,time; d=json.load(sys.stdin); time.sleep(d['ms']/1000); print('{}')"]
      timeout_ms: 60000
workflows:
  approve:
    steps:
      - { id: ask, suspend: { payload: '{why: "check " + .input.item}' }, output: '{ok: .resume.ok}' }
  slow:
    steps:
      - { id: wait, tool: slow, input: '{ms: 30000}' }
      - { id: after, map: '1' }
"#,
    )
    .await;

    // Suspend → resume on an open stream: the resumed step starts with its suspension and its
    // resume data, and its result keeps them (Mastra's step result shape).
    s.post("/api/workflows/approve/create-run?runId=a1", json!({}))
        .await;
    let stream = {
        let req = s
            .client
            .post(s.url("/api/workflows/approve/stream?runId=a1"))
            .json(&json!({"inputData": {"item": "laptop"}}));
        tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
    };
    crate::support::eventually("the run to suspend", || async {
        let e = s
            .get("/api/workflows/approve/runs/a1/execution-result")
            .await
            .json();
        (e["status"] == "suspended").then_some(())
    })
    .await;
    let r = s
        .post(
            "/api/workflows/approve/resume?runId=a1",
            json!({"step": "ask", "resumeData": {"ok": true}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = records(&stream.await.unwrap());
    let starts: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "step-start")
        .collect();
    assert_eq!(starts.len(), 2, "{events:?}");
    let (first, resumed) = (&starts[0]["payload"], &starts[1]["payload"]);
    assert_eq!(resumed["resumePayload"], json!({"ok": true}), "{resumed}");
    assert_eq!(resumed["suspendPayload"], json!({"why": "check laptop"}));
    assert_eq!(
        resumed["startedAt"], first["startedAt"],
        "the first start stays"
    );
    assert!(resumed["resumedAt"].as_u64() >= resumed["suspendedAt"].as_u64());
    let step = &s
        .get("/api/workflows/approve/runs/a1/execution-result")
        .await
        .json()["steps"]["ask"];
    assert_eq!(step["status"], "success", "{step}");
    assert_eq!(step["output"], json!({"ok": true}));
    for field in [
        "payload",
        "startedAt",
        "endedAt",
        "suspendedAt",
        "resumedAt",
    ] {
        assert!(step.get(field).is_some(), "{field} missing from {step}");
    }
    assert_eq!(step["suspendPayload"], json!({"why": "check laptop"}));
    assert_eq!(step["resumePayload"], json!({"ok": true}));

    // Cancel while a step runs: watch, stream and streamVNext each see that step end canceled
    // and the run's final state before they close.
    for (i, (route, body)) in [
        ("stream", json!({"inputData": {}})),
        ("streamVNext", json!({"inputData": {}})),
    ]
    .into_iter()
    .enumerate()
    {
        let run = format!("c{i}");
        s.post(
            &format!("/api/workflows/slow/create-run?runId={run}"),
            json!({}),
        )
        .await;
        let watch = {
            let req = s
                .client
                .get(s.url(&format!("/api/workflows/slow/watch?runId={run}")));
            tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let stream = {
            let req = s
                .client
                .post(s.url(&format!("/api/workflows/slow/{route}?runId={run}")))
                .json(&body);
            tokio::spawn(async move { req.send().await.unwrap().text().await.unwrap() })
        };
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let r = s
            .post(&format!("/api/workflows/slow/runs/{run}/cancel"), json!({}))
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let streamed = records(&stream.await.unwrap());
        let watched = records(&watch.await.unwrap());
        assert!(started.elapsed().as_secs() < 10, "the streams closed late");
        let result = streamed
            .iter()
            .find(|e| e["type"] == "step-result")
            .unwrap_or_else(|| panic!("{route}: no step result in {streamed:?}"));
        assert_eq!(result["payload"]["status"], "canceled", "{route}: {result}");
        assert_eq!(
            streamed.last().unwrap()["type"],
            "finish",
            "{route}: {streamed:?}"
        );
        let last = &watched.last().unwrap()["payload"]["workflowState"];
        assert_eq!(last["status"], "canceled", "{last}");
        assert_eq!(last["steps"]["wait"]["status"], "canceled", "{last}");
        assert!(last["steps"].get("after").is_none());
        let running = watched
            .iter()
            .find(|w| w["payload"]["currentStep"]["status"] == "running")
            .expect("a watch record while the step ran");
        assert_eq!(
            running["payload"]["workflowState"]["steps"]["wait"]["status"], "running",
            "a running step is among the watched steps, as in Mastra"
        );
        let e = s
            .get(&format!("/api/workflows/slow/runs/{run}/execution-result"))
            .await
            .json();
        assert_eq!(e["status"], "canceled");
        assert_eq!(e["steps"]["wait"]["status"], "canceled", "{e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_paged_by_offset_limit_dates_and_resource() {
    let s = TestServer::start(
        r#"
workflows:
  one:
    steps:
      - { id: a, map: '1' }
"#,
    )
    .await;
    let mut created = Vec::new();
    for i in 0..5 {
        let resource = if i % 2 == 0 { "u1" } else { "u2" };
        let r = s
            .post(
                &format!("/api/workflows/one/create-run?runId=r{i}&resourceId={resource}"),
                json!({}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let run = s.get(&format!("/api/workflows/one/runs/r{i}")).await.json();
        created.push(run["createdAt"].as_str().unwrap().to_string());
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let page = |query: String| {
        let s = &s;
        async move {
            let v = s
                .get(&format!("/api/workflows/one/runs?{query}"))
                .await
                .json();
            let ids: Vec<String> = v["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["runId"].as_str().unwrap().to_string())
                .collect();
            (ids, v["total"].as_u64().unwrap())
        }
    };
    let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        page(String::new()).await,
        (ids(&["r4", "r3", "r2", "r1", "r0"]), 5)
    );
    assert_eq!(
        page("limit=2&offset=1".into()).await,
        (ids(&["r3", "r2"]), 5)
    );
    assert_eq!(
        page("resourceId=u1&limit=1&offset=1".into()).await,
        (ids(&["r2"]), 3)
    );
    assert_eq!(
        page(format!("fromDate={}&toDate={}", created[1], created[3])).await,
        (ids(&["r3", "r2", "r1"]), 3)
    );
    assert_eq!(
        page(format!("fromDate={}&resourceId=u2", created[2])).await,
        (ids(&["r3"]), 1)
    );
    assert_eq!(
        page("offset=18446744073709551615&limit=18446744073709551615".into()).await,
        (vec![], 5)
    );
    let r = s.get("/api/workflows/one/runs?limit=x").await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("limit"), "{}", r.text);
    s.stop().await;
}
