//! The `edgestra` binary itself: `validate` and `serve`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn edgestra() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgestra"))
}

#[test]
fn validate_reports_every_problem_with_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "tools:\n  calc: { builtin: calculator }\nagents:\n  helper:\n    model: smollm2-135m-instruct\n    tools: [calc, ghost]\n    colour: blue\n",
    )
    .unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.yaml:7:5: agents.helper.colour: unknown field `colour`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:6:19: tool `ghost` is not defined"),
        "{stderr}"
    );

    std::fs::write(&file, "tools:\n  calc: [unclosed\n").unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid YAML"), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:3:") || stderr.contains("bad.yaml:2:"),
        "{stderr}"
    );

    std::fs::write(&file, "tools:\n  calc: { builtin: calculator }\n").unwrap();
    let out = edgestra().arg("validate").arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = edgestra()
        .arg("validate")
        .arg(dir.path().join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn serve_prints_its_urls_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = edgestra()
        .args(["serve", "--port", "0", "--data-dir"])
        .arg(dir.path())
        .env("EDGESTRA_LOG_FORMAT", "json")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(
            !line.is_empty(),
            "the server exited before printing its URL"
        );
        if line.starts_with("edgestra is serving") {
            break;
        }
    }
    assert!(
        line.contains("the default project")
            && line.contains("/api")
            && line.contains("playground"),
        "{line}"
    );
    let addr = line
        .split("API http://")
        .nth(1)
        .and_then(|rest| rest.split("/api").next())
        .unwrap()
        .to_string();

    // At the stop: a connection that has sent nothing yet, a keep-alive connection between
    // requests, and a request in flight. The request is answered in full; the idle connections do
    // not hold the stop back.
    let untouched = TcpStream::connect(&addr).unwrap();
    let mut kept = TcpStream::connect(&addr).unwrap();
    kept.write_all(b"GET /api HTTP/1.1\r\nHost: edgestra\r\n\r\n")
        .unwrap();
    assert!(read_response(&mut kept).starts_with("HTTP/1.1 200"));
    let in_flight = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let body = r#"{"messages":"Say hello.","maxTokens":24}"#;
            let mut conn = TcpStream::connect(&addr).unwrap();
            write!(
                conn,
                "POST /api/agents/assistant/generate HTTP/1.1\r\nHost: edgestra\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .unwrap();
            let response = read_response(&mut conn);
            (response, Instant::now())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let exited = Instant::now();
    assert!(exit.success(), "graceful shutdown exits 0: {exit:?}");
    let (response, answered) = in_flight.join().unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("\"text\""), "{response}");
    // The drain allows 10 s; idle connections must not make the stop wait for it.
    let after_last_request = exited.saturating_duration_since(answered);
    assert!(
        after_last_request < Duration::from_secs(5),
        "the stop waited {after_last_request:?} after the last request"
    );
    drop(untouched);
}

/// Reads one HTTP/1.1 response with a Content-Length body, leaving the connection open.
fn read_response(conn: &mut TcpStream) -> String {
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-response: {raw:?}");
        raw.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a Content-Length header");
            if raw.len() >= end + 4 + length {
                return text.into_owned();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_chunks_embeds_and_stores_files() {
    let dir = tempfile::tempdir().unwrap();
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(
        docs.join("cats.md"),
        "# Cats\n\nCats are small domesticated felines that purr and chase mice.",
    )
    .unwrap();
    std::fs::write(
        docs.join("sub/rust.txt"),
        "Rust is a systems programming language focused on memory safety.",
    )
    .unwrap();
    std::fs::write(docs.join("ignored.bin"), [0u8, 1, 2]).unwrap();
    let data = dir.path().join("data");
    let out = edgestra()
        .args(["ingest", "--index", "kb", "--data-dir"])
        .arg(&data)
        .arg(&docs)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("ingested 2 chunks from 2 file(s) into default/kb")
    );

    // The server on the same data directory finds them by meaning.
    let yaml = "tools:\n  kb:\n    description: Search the knowledge base\n    vector_query: { index: kb, top_k: 1 }\n";
    let project = edgestra::config::load_str(yaml, "test").unwrap();
    let opts = edgestra::server::ServeOptions {
        host: "127.0.0.1".into(),
        port: 0,
        data_dir: data.clone(),
        api_key: None,
        dev: false,
        metrics: false,
    };
    let server = edgestra::server::start(project, opts).await.unwrap();
    let base = format!("http://{}", server.addr);
    let client = reqwest::Client::new();
    let stats: serde_json::Value = client
        .get(format!("{base}/api/vector/default/indexes/kb"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        serde_json::json!({"dimension": 384, "count": 2, "metric": "cosine"})
    );
    let embedder = server.state.models.embedder("all-minilm-l6-v2").unwrap();
    let q = embedder
        .embed(vec!["Which animal purrs?".into()])
        .await
        .unwrap()
        .remove(0);
    let res: serde_json::Value = client
        .post(format!("{base}/api/vector/default/query"))
        .json(&serde_json::json!({"indexName": "kb", "queryVector": q, "topK": 1}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let top = &res["results"][0]["metadata"];
    assert!(
        top["source"].as_str().unwrap().ends_with("cats.md"),
        "{res}"
    );
    assert_eq!(top["chunk"], 0);
    assert!(top["text"].as_str().unwrap().contains("purr"));

    // The same search as a tool an agent can call (RAG).
    let tool: serde_json::Value = client
        .post(format!("{base}/api/tools/kb/execute"))
        .json(&serde_json::json!({"data": {"query": "a language for safe systems code"}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tool["results"].as_array().unwrap().len(), 1, "{tool}");
    assert!(
        tool["results"][0]["text"]
            .as_str()
            .unwrap()
            .contains("Rust"),
        "{tool}"
    );
    let bad = client
        .post(format!("{base}/api/tools/kb/execute"))
        .json(&serde_json::json!({"data": {"q": 1}}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    server.stop().await;

    // Missing paths are a clear error.
    let out = edgestra()
        .args(["ingest", "--index", "kb", "--data-dir"])
        .arg(&data)
        .arg(dir.path().join("nope"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
