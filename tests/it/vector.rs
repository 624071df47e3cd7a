//! `vector` group: every route, filters, replacement and deletion, bad inputs, restarts.

use serde_json::{Value, json};

use crate::support::TestServer;

const PROJECT: &str = "vector_stores: { docs: {} }\n";

async fn create(s: &TestServer, index: &str, dimension: usize, metric: &str) -> u16 {
    s.post(
        "/api/vector/docs/create-index",
        json!({"indexName": index, "dimension": dimension, "metric": metric}),
    )
    .await
    .status
}

fn ids(v: &Value) -> Vec<String> {
    v["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_are_created_listed_described_and_deleted() {
    let s = TestServer::start(PROJECT).await;
    assert_eq!(
        s.get("/api/vector/docs/indexes").await.json(),
        json!({"indexes": []})
    );
    assert_eq!(create(&s, "a", 3, "cosine").await, 200);
    assert_eq!(
        create(&s, "a", 3, "cosine").await,
        200,
        "creating the same index again is fine"
    );
    let r = s
        .post(
            "/api/vector/docs/create-index",
            json!({"indexName": "a", "dimension": 4}),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(r.error().contains("already exists"));
    assert_eq!(create(&s, "b", 2, "euclidean").await, 200);
    assert_eq!(
        s.get("/api/vector/docs/indexes").await.json(),
        json!({"indexes": ["a", "b"]})
    );
    assert_eq!(
        s.get("/api/vector/docs/indexes/b").await.json(),
        json!({"dimension": 2, "count": 0, "metric": "euclidean"})
    );
    // The default store always exists; unknown stores and indexes are 404.
    assert_eq!(s.get("/api/vector/default/indexes").await.status, 200);
    let r = s.get("/api/vector/nope/indexes").await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (404, "Vector with name nope not found")
    );
    assert_eq!(s.get("/api/vector/docs/indexes/zzz").await.status, 404);

    let r = s
        .send(s.client.delete(s.url("/api/vector/docs/indexes/b")))
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    assert_eq!(
        s.get("/api/vector/docs/indexes").await.json(),
        json!({"indexes": ["a"]})
    );
    assert_eq!(
        s.send(s.client.delete(s.url("/api/vector/docs/indexes/b")))
            .await
            .status,
        404
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_are_400_with_the_reason() {
    let s = TestServer::start(PROJECT).await;
    create(&s, "v", 3, "cosine").await;
    let cases = [
        (
            "create-index",
            json!({"dimension": 3}),
            "indexName and positive dimension",
        ),
        (
            "create-index",
            json!({"indexName": "x", "dimension": 0}),
            "positive dimension",
        ),
        (
            "create-index",
            json!({"indexName": "x", "dimension": 2.5}),
            "positive dimension",
        ),
        (
            "create-index",
            json!({"indexName": "x", "dimension": 3, "metric": "manhattan"}),
            "Invalid metric",
        ),
        (
            "upsert",
            json!({"indexName": "v"}),
            "indexName and vectors array are required",
        ),
        (
            "upsert",
            json!({"indexName": "v", "vectors": [[1, 2]]}),
            "2 dimensions",
        ),
        (
            "upsert",
            json!({"indexName": "v", "vectors": [[1, "a", 2]]}),
            "array of numbers",
        ),
        (
            "upsert",
            json!({"indexName": "v", "vectors": [[0, 0, 0]]}),
            "zero vector",
        ),
        (
            "upsert",
            json!({"indexName": "v", "vectors": [[1, 2, 3]], "ids": ["a", "b"]}),
            "2 ids for 1 vectors",
        ),
        (
            "upsert",
            json!({"indexName": "v", "vectors": [[1, 2, 3]], "metadata": [5]}),
            "metadata[0]",
        ),
        (
            "query",
            json!({"indexName": "v"}),
            "indexName and queryVector array are required",
        ),
        (
            "query",
            json!({"indexName": "v", "queryVector": [1, 2, 3, 4]}),
            "4 dimensions",
        ),
        (
            "query",
            json!({"indexName": "v", "queryVector": [1, 2, 3], "topK": 0}),
            "topK",
        ),
        (
            "query",
            json!({"indexName": "v", "queryVector": [1, 2, 3], "filter": {"a": {"$near": 1}}}),
            "`$near`",
        ),
        (
            "query",
            json!({"indexName": "v", "queryVector": [1, 2, 3], "filter": {"$or": {}}}),
            "`$or`",
        ),
    ];
    for (route, body, want) in cases {
        let r = s
            .post(&format!("/api/vector/docs/{route}"), body.clone())
            .await;
        assert_eq!(r.status, 400, "{route} {body}: {}", r.text);
        assert!(r.error().contains(want), "{route} {body}: {}", r.error());
    }
    // JSON numbers cannot be NaN, but a huge literal overflows to infinity.
    let r = s
        .post_raw(
            "/api/vector/docs/upsert",
            r#"{"indexName":"v","vectors":[[1e999,0,0]]}"#,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s
        .post(
            "/api/vector/docs/upsert",
            json!({"indexName": "missing", "vectors": [[1, 2, 3]]}),
        )
        .await;
    assert_eq!(r.status, 404);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upsert_query_filter_replace_and_survive_a_restart() {
    let mut s = TestServer::start(PROJECT).await;
    create(&s, "docs", 4, "cosine").await;
    let r = s
        .post(
            "/api/vector/docs/upsert",
            json!({"indexName": "docs", "vectors": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]],
                   "metadata": [{"tag": "a", "n": 1, "author": {"name": "Ada"}}, {"tag": "b", "n": 2}, {"tag": "c", "n": 3, "tags": ["x", "y"]}],
                   "ids": ["a", "b", "c"]}),
        )
        .await;
    assert_eq!(r.json(), json!({"ids": ["a", "b", "c"]}));
    let generated = s
        .post(
            "/api/vector/docs/upsert",
            json!({"indexName": "docs", "vectors": [[0, 0, 0, 1]]}),
        )
        .await
        .json();
    assert_eq!(generated["ids"].as_array().unwrap().len(), 1);

    let query = |filter: Value, k: usize| json!({"indexName": "docs", "queryVector": [0.9, 0.1, 0.05, 0], "topK": k, "filter": filter});
    let all = s
        .post("/api/vector/docs/query", query(Value::Null, 10))
        .await
        .json();
    assert_eq!(ids(&all)[..3], ["a", "b", "c"]);
    let top = &all["results"][0];
    assert!(top["score"].as_f64().unwrap() > 0.99 && top.get("vector").is_none());
    assert_eq!(top["metadata"]["author"]["name"], "Ada");

    for (filter, want) in [
        (json!({"tag": "b"}), vec!["b"]),
        (json!({"n": {"$gte": 2}}), vec!["b", "c"]),
        (
            json!({"author.name": {"$regex": "^ad", "$options": "i"}}),
            vec!["a"],
        ),
        (json!({"tags": {"$all": ["y", "x"]}}), vec!["c"]),
        (json!({"$or": [{"tag": "a"}, {"n": 3}]}), vec!["a", "c"]),
        (
            json!({"n": {"$nin": [1, 2]}, "tag": {"$exists": true}}),
            vec!["c"],
        ),
    ] {
        let got = s
            .post("/api/vector/docs/query", query(filter.clone(), 10))
            .await
            .json();
        assert_eq!(ids(&got), want, "{filter}");
    }
    let with_vector = s.post("/api/vector/docs/query", json!({"indexName": "docs", "queryVector": [0, 0, 1, 0], "topK": 1, "includeVector": true})).await.json();
    assert_eq!(
        with_vector["results"][0]["vector"],
        json!([0.0, 0.0, 1.0, 0.0])
    );

    // Re-upserting an id replaces it: the old vector never answers again.
    s.post("/api/vector/docs/upsert", json!({"indexName": "docs", "vectors": [[0, 0, 0, 1]], "metadata": [{"tag": "a2"}], "ids": ["a"]})).await;
    let near_old = s
        .post(
            "/api/vector/docs/query",
            json!({"indexName": "docs", "queryVector": [1, 0, 0, 0], "topK": 1}),
        )
        .await
        .json();
    assert_ne!(ids(&near_old), ["a"]);
    assert_eq!(
        s.get("/api/vector/docs/indexes/docs").await.json()["count"],
        4
    );

    s.restart().await;
    let after = s.post("/api/vector/docs/query", json!({"indexName": "docs", "queryVector": [0, 0, 0, 1], "topK": 2, "filter": {"tag": "a2"}})).await.json();
    assert_eq!(ids(&after), ["a"]);
    assert_eq!(after["results"][0]["metadata"], json!({"tag": "a2"}));
    assert_eq!(
        s.get("/api/vector/docs/indexes/docs").await.json(),
        json!({"dimension": 4, "count": 4, "metric": "cosine"})
    );
    // Deleting an index removes its vectors for good, also across restarts.
    s.send(s.client.delete(s.url("/api/vector/docs/indexes/docs")))
        .await;
    create(&s, "docs", 4, "cosine").await;
    s.restart().await;
    assert_eq!(
        s.get("/api/vector/docs/indexes/docs").await.json()["count"],
        0
    );
    s.stop().await;
}
