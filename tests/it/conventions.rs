//! HTTP conventions shared by every route (spec §1): errors, body limits, CORS, auth, ids.

use serde_json::json;

use crate::support::{TOOLS_PROJECT, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_root_and_openapi_document() {
    let s = TestServer::start("").await;
    let r = s.get("/api").await;
    assert_eq!(
        (r.status, r.text.as_str()),
        (200, "Hello to the Mastra API!")
    );

    let doc = s.get("/openapi.json").await.json();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().unwrap() {
        for m in methods.as_object().unwrap().keys() {
            ops.push((m.to_uppercase(), path.clone()));
        }
    }
    // The whole Mastra 0.13 route set plus the later agent-card path, and nothing that is not
    // served.
    assert_eq!(ops.len(), 108, "{ops:?}");
    for (m, path) in &ops {
        let concrete = path.replace('{', "x").replace('}', "");
        let req = s
            .client
            .request(m.parse().unwrap(), s.url(&concrete))
            .json(&json!({}));
        let r = s.send(req).await;
        assert!(
            r.status != 404
                || r.json()
                    .get("error")
                    .is_some_and(|e| !e.as_str().unwrap().starts_with("Not Found")),
            "{m} {path} is listed but not served"
        );
        assert_ne!(r.status, 405, "{m} {path} is listed but not served");
        assert_ne!(r.status, 501, "{m} {path} is listed but not implemented");
    }
    if let Ok(seed) = std::fs::read_to_string("../shared/conformance/seed_routes.txt") {
        for line in seed.lines().filter(|l| !l.trim().is_empty()) {
            let (m, p) = line.split_once(' ').unwrap();
            assert!(
                ops.contains(&(m.to_string(), p.to_string())),
                "seed route {line} missing"
            );
        }
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_the_right_status() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    let r = s.get("/api/no/such/route").await;
    assert_eq!(r.status, 404);
    assert!(r.error().contains("/api/no/such/route"));

    let r = s.send(s.client.delete(s.url("/api/tools"))).await;
    assert_eq!(r.status, 405);
    assert!(r.error().contains("not allowed"));

    let r = s
        .post_raw("/api/tools/calculator/execute", "{\"data\": ")
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.error().starts_with("Invalid JSON in request body"),
        "{}",
        r.text
    );

    let r = s.post_raw("/api/tools/calculator/execute", "[1, 2]").await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("must be a JSON object"));

    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_are_json_whatever_the_content_type_and_limited_to_4_5_mib() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    // No Content-Type at all (client-js sends PATCH like this).
    let r = s
        .post_raw(
            "/api/tools/calculator/execute",
            r#"{"data":{"expression":"6*7"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json()["result"], 42.0);
    // A misleading Content-Type.
    let req = s
        .client
        .post(s.url("/api/tools/calculator/execute"))
        .header("content-type", "text/plain")
        .body(r#"{"data":{"expression":"1+1"}}"#);
    assert_eq!(s.send(req).await.json()["result"], 2.0);

    // Too large, announced by Content-Length or sent chunked: the server answers 413 as soon as
    // it knows, while the client may still be sending (so the client must tolerate a closed
    // connection, which reqwest does not).
    let big = format!(
        "{{\"data\":{{\"expression\":\"{}\"}}}}",
        "1+".repeat(2_400_000)
    );
    for chunked in [false, true] {
        let addr = s.base.trim_start_matches("http://").to_string();
        let body = big.clone().into_bytes();
        let reply = tokio::task::spawn_blocking(move || raw_upload(&addr, &body, chunked))
            .await
            .unwrap();
        assert!(
            reply.starts_with("HTTP/1.1 413"),
            "chunked={chunked}: {reply}"
        );
        assert!(reply.contains("Request body too large"), "{reply}");
    }
    // Just under the limit is read (and then rejected for what it says, not its size).
    let ok = format!(
        "{{\"data\":{{\"expression\":\"{}1\"}}}}",
        "1+".repeat(2_000_000)
    );
    let r = s.post_raw("/api/tools/calculator/execute", ok).await;
    assert_ne!(r.status, 413);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_headers_and_preflight() {
    let s = TestServer::start("").await;
    let r = s
        .send(
            s.client
                .get(s.url("/api"))
                .header("origin", "http://example.test"),
        )
        .await;
    assert_eq!(r.headers["access-control-allow-origin"], "*");
    let pre = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/tools/x/execute"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-mastra-client-type",
        );
    let r = s.send(pre).await;
    assert!(r.status == 200 || r.status == 204, "{}", r.status);
    let methods = r.headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_uppercase();
    for m in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
        assert!(methods.contains(m), "{methods}");
    }
    let headers = r.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        headers.contains("content-type") && headers.contains("x-mastra-client-type"),
        "{headers}"
    );
    assert_eq!(r.headers["access-control-max-age"], "3600");
    s.stop().await;

    let s = TestServer::start("server: { cors: false }").await;
    let r = s
        .send(
            s.client
                .get(s.url("/api"))
                .header("origin", "http://example.test"),
        )
        .await;
    assert!(r.headers.get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_are_honoured_or_made() {
    let s = TestServer::start("").await;
    let r = s
        .send(
            s.client
                .get(s.url("/api"))
                .header("x-request-id", "req-123"),
        )
        .await;
    assert_eq!(r.headers["x-request-id"], "req-123");
    let r = s.get("/api").await;
    let made = r.headers["x-request-id"].to_str().unwrap();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_context_reaches_tools() {
    let s = TestServer::start(TOOLS_PROJECT).await;
    let r = s
        .post(
            "/api/tools/echoContext/execute",
            json!({"data": {}, "runtimeContext": {"tenant": "acme", "n": 2}}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json(), json!({"tenant": "acme", "n": 2}));
    let r = s
        .post("/api/tools/echoContext/execute", json!({"data": {"a": 1}}))
        .await;
    assert_eq!(r.json(), json!({}));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_api_key_auth() {
    let s = TestServer::start_with(TOOLS_PROJECT, Some("s3cret-key")).await;
    let r = s.get("/api/tools").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "Authentication required")
    );
    let r = s
        .send(s.client.get(s.url("/api/tools")).bearer_auth("wrong"))
        .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (401, "Invalid or expired token")
    );
    let r = s
        .send(s.client.get(s.url("/api/tools")).bearer_auth("s3cret-key"))
        .await;
    assert_eq!(r.status, 200);
    let r = s.get("/api/tools?apiKey=s3cret-key").await;
    assert_eq!(r.status, 200);
    let r = s
        .send(s.client.post(s.url("/a2a/someAgent")).json(&json!({})))
        .await;
    assert_eq!(r.status, 401);
    // The playground page itself and CORS preflights stay open.
    assert_eq!(s.get("/").await.status, 200);
    let pre = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/tools"))
        .header("origin", "http://example.test")
        .header("access-control-request-method", "GET");
    assert!(s.send(pre).await.status < 300);
    s.stop().await;
}

/// Sends `body` (chunked, or with a Content-Length) while another thread reads the answer, so
/// that an answer sent before the whole body was read is seen even if the server then closes
/// the connection on the rest; returns the answer.
fn raw_upload(addr: &str, body: &[u8], chunked: bool) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        // Keep what arrived even if the connection is then reset.
        while let Ok(n) = reader.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&buf).into_owned()
    });
    let framing = if chunked {
        "transfer-encoding: chunked".to_string()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = format!(
        "POST /api/tools/calculator/execute HTTP/1.1\r\nhost: x\r\nconnection: close\r\n{framing}\r\n\r\n"
    );
    let mut send = || -> std::io::Result<()> {
        stream.write_all(head.as_bytes())?;
        for chunk in body.chunks(65536) {
            if chunked {
                stream.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())?;
            }
            stream.write_all(chunk)?;
            if chunked {
                stream.write_all(b"\r\n")?;
            }
        }
        if chunked {
            stream.write_all(b"0\r\n\r\n")?;
        }
        Ok(())
    };
    let _ = send();
    answer.join().unwrap()
}
