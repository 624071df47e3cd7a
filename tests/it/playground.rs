//! The playground shell and its hot-reload channel.

use crate::support::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_page_and_falls_back_to_index() {
    let s = TestServer::start("").await;
    let r = s.get("/").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(r.text.contains("app.js"));
    let spa = s.get("/tools/calculator").await;
    assert_eq!((spa.status, spa.text.clone()), (200, r.text.clone()));
    let js = s.get("/app.js").await;
    assert!(
        js.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(s.get("/missing.css").await.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_events_says_connected() {
    let s = TestServer::start("").await;
    let mut res = s.client.get(s.url("/refresh-events")).send().await.unwrap();
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let first = res.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: connected\n\n");
    // The open stream does not keep the server from stopping.
    let started = std::time::Instant::now();
    s.stop().await;
    assert!(started.elapsed().as_secs() < 5);
}
