//! Memory: every thread, message, working-memory and search route with its documented errors,
//! persistence across a restart, semantic recall on real MiniLM embeddings, and agents that
//! remember across calls.

use serde_json::{Value, json};

use crate::support::TestServer;

const PROJECT: &str = r##"
models:
  chat: { local: smollm2-135m-instruct }
agents:
  notes:
    instructions: You keep notes.
    model: chat
    memory: { last_messages: 5, working_memory: { enabled: true } }
  shared:
    instructions: Shares memory across threads.
    model: chat
    memory: { working_memory: { enabled: true, scope: resource, template: "# Profile\n- Name:\n" } }
  recall:
    instructions: Remembers by meaning.
    model: chat
    memory: { semantic_recall: { top_k: 3, message_range: 1, scope: resource } }
  forgetful:
    instructions: Has no memory.
    model: chat
"##;

fn q(agent: &str) -> String {
    format!("?agentId={agent}")
}

async fn create(s: &TestServer, agent: &str, body: Value) -> Value {
    let r = s
        .post(&format!("/api/memory/threads{}", q(agent)), body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()
}

async fn save(s: &TestServer, agent: &str, messages: Value) -> crate::support::Reply {
    s.post(
        &format!("/api/memory/save-messages{}", q(agent)),
        json!({"messages": messages}),
    )
    .await
}

fn user(id: &str, thread: &str, resource: &str, text: &str, at: &str) -> Value {
    json!({"id": id, "threadId": thread, "resourceId": resource, "role": "user", "type": "text", "content": text, "createdAt": at})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_config_and_resolution_errors() {
    let s = TestServer::start(PROJECT).await;
    assert_eq!(
        s.get("/api/memory/status?agentId=notes").await.json(),
        json!({"result": true})
    );
    assert_eq!(
        s.get("/api/memory/status?agentId=forgetful").await.json(),
        json!({"result": false})
    );
    let r = s.get("/api/memory/status?agentId=ghost").await;
    assert_eq!(
        (r.status, r.error()),
        (404, "Agent with name ghost not found".into())
    );
    let r = s.get("/api/memory/network/status?networkId=net").await;
    assert_eq!((r.status, r.error()), (404, "Network not found".into()));

    let c = s.get("/api/memory/config?agentId=notes").await.json()["config"].clone();
    assert_eq!(c["lastMessages"], 5);
    assert_eq!(c["semanticRecall"], false);
    assert_eq!(c["workingMemory"]["enabled"], true);
    assert_eq!(c["workingMemory"]["scope"], "thread");
    assert!(
        c["workingMemory"]["template"]
            .as_str()
            .unwrap()
            .contains("# User Information")
    );
    assert_eq!(c["threads"]["generateTitle"], false);
    let c = s.get("/api/memory/config?agentId=recall").await.json()["config"].clone();
    assert_eq!(
        c["semanticRecall"],
        json!({"topK": 3, "messageRange": {"before": 1, "after": 1}, "scope": "resource"})
    );
    for path in [
        "/api/memory/config?agentId=forgetful",
        "/api/memory/threads?agentId=forgetful&resourceid=r",
        "/api/memory/config",
    ] {
        let r = s.get(path).await;
        assert_eq!(
            (r.status, r.error()),
            (400, "Memory is not initialized".into()),
            "{path}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_created_listed_paged_updated_and_deleted() {
    let s = TestServer::start(PROJECT).await;
    let t = create(&s, "notes", json!({"resourceId": "u1"})).await;
    assert!(
        t["title"].as_str().unwrap().starts_with("New Thread 20"),
        "{t}"
    );
    assert!(!t["id"].as_str().unwrap().is_empty());
    assert_eq!(t["metadata"], json!({}));
    let named = create(
        &s,
        "notes",
        json!({"resourceId": "u1", "threadId": "trip", "title": "Trip", "metadata": {"k": 1}, "agentId": "notes"}),
    )
    .await;
    assert_eq!(
        (named["id"].clone(), named["title"].clone()),
        (json!("trip"), json!("Trip"))
    );
    create(
        &s,
        "notes",
        json!({"resourceId": "u2", "threadId": "other"}),
    )
    .await;
    let r = s
        .post("/api/memory/threads?agentId=notes", json!({"title": "x"}))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Argument \"resourceId\" is required".into())
    );

    // Listing: lowercase `resourceid`, newest first unless asked otherwise.
    let list = s
        .get("/api/memory/threads?agentId=notes&resourceid=u1")
        .await
        .json();
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["trip", t["id"].as_str().unwrap()]);
    let asc = s
        .get("/api/memory/threads?agentId=notes&resourceid=u1&orderBy=createdAt&sortDirection=ASC")
        .await
        .json();
    assert_eq!(asc[0]["id"], t["id"]);
    let r = s.get("/api/memory/threads?agentId=notes").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Argument \"resourceId\" is required".into())
    );
    assert_eq!(
        s.get("/api/memory/threads?agentId=notes&resourceid=u1&orderBy=size")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/memory/threads?agentId=notes&resourceid=u1&sortDirection=UP")
            .await
            .status,
        400
    );

    // Paginated: camelCase `resourceId`, 0-based pages.
    let p = s
        .get("/api/memory/threads/paginated?agentId=notes&resourceId=u1&page=0&perPage=1")
        .await
        .json();
    assert_eq!(
        (
            p["total"].clone(),
            p["hasMore"].clone(),
            p["perPage"].clone()
        ),
        (json!(2), json!(true), json!(1))
    );
    assert_eq!(p["threads"].as_array().unwrap().len(), 1);
    let p = s
        .get("/api/memory/threads/paginated?agentId=notes&resourceId=u1&page=1&perPage=1")
        .await
        .json();
    assert_eq!(p["hasMore"], false);
    // Pages come in creation order (newest first by default), ascending when asked, and a
    // page far past the end is empty, not an error.
    let ids = |p: &Value| -> Vec<String> {
        p["threads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    let newest = s
        .get("/api/memory/threads/paginated?agentId=notes&resourceId=u1&perPage=2")
        .await
        .json();
    let oldest = s
        .get(
            "/api/memory/threads/paginated?agentId=notes&resourceId=u1&perPage=2&sortDirection=ASC",
        )
        .await
        .json();
    let mut reversed = ids(&oldest);
    reversed.reverse();
    assert_eq!(ids(&newest), reversed);
    assert_eq!(ids(&newest).len(), 2);
    let p = s
        .get("/api/memory/threads/paginated?agentId=notes&resourceId=u1&page=18446744073709551615&perPage=18446744073709551615")
        .await
        .json();
    assert_eq!(
        (
            p["threads"].clone(),
            p["total"].clone(),
            p["hasMore"].clone()
        ),
        (json!([]), json!(2), json!(false))
    );
    assert_eq!(
        s.get("/api/memory/threads/paginated?agentId=notes")
            .await
            .status,
        400
    );
    assert_eq!(
        s.get("/api/memory/threads/paginated?agentId=notes&resourceId=u1&page=x")
            .await
            .status,
        400
    );

    // Get, update (PATCH without a Content-Type, as client-js sends it), delete.
    assert_eq!(
        s.get("/api/memory/threads/trip?agentId=notes").await.json()["title"],
        "Trip"
    );
    let r = s.get("/api/memory/threads/nope?agentId=notes").await;
    assert_eq!((r.status, r.error()), (404, "Thread not found".into()));
    let patch = |id: &str, body: &str| {
        s.client
            .patch(s.url(&format!("/api/memory/threads/{id}?agentId=notes")))
            .body(body.to_string())
    };
    let r = s
        .send(patch(
            "trip",
            r#"{"title": "Holiday", "metadata": {"k": 2}}"#,
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let updated = r.json();
    assert_eq!(
        (updated["title"].clone(), updated["metadata"].clone()),
        (json!("Holiday"), json!({"k": 2}))
    );
    assert!(updated["updatedAt"].as_str() >= named["updatedAt"].as_str());
    let r = s.send(patch("trip", r#"{"title": ""}"#)).await;
    assert_eq!(
        r.json()["title"],
        "Holiday",
        "a falsy value keeps the old one"
    );
    let r = s.send(patch("trip", "")).await;
    assert_eq!((r.status, r.error()), (400, "Body is required".into()));
    assert_eq!(s.send(patch("nope", r#"{"title": "x"}"#)).await.status, 404);

    save(
        &s,
        "notes",
        json!([user(
            "m1",
            "trip",
            "u1",
            "hello",
            "2025-01-01T00:00:00.000Z"
        )]),
    )
    .await;
    let r = s
        .send(
            s.client
                .delete(s.url("/api/memory/threads/trip?agentId=notes")),
        )
        .await;
    assert_eq!(r.json(), json!({"result": "Thread deleted"}));
    assert_eq!(
        s.get("/api/memory/threads/trip?agentId=notes").await.status,
        404
    );
    let r = s
        .send(
            s.client
                .delete(s.url("/api/memory/threads/trip?agentId=notes")),
        )
        .await;
    assert_eq!(r.status, 404);
    // Its messages went with it.
    let r = s
        .post(
            "/api/memory/messages/delete?agentId=notes",
            json!({"messageIds": ["m1"]}),
        )
        .await;
    assert_eq!(r.json()["message"], "0 messages deleted successfully");

    // The network twins answer `Network not found` for every network id.
    let r = s
        .get("/api/memory/network/threads?networkId=n1&resourceid=u1")
        .await;
    assert_eq!((r.status, r.error()), (404, "Network not found".into()));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_are_saved_listed_paged_and_deleted() {
    let s = TestServer::start(PROJECT).await;
    create(&s, "notes", json!({"resourceId": "u1", "threadId": "t1"})).await;
    // Errors first: nothing is stored when any message is bad.
    let r = s
        .post("/api/memory/save-messages?agentId=notes", json!({}))
        .await;
    assert_eq!((r.status, r.error()), (400, "Messages are required".into()));
    let r = s
        .post(
            "/api/memory/save-messages?agentId=notes",
            json!({"messages": {"id": 1}}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Messages should be an array".into())
    );
    let r = save(&s, "notes", json!([{"role": "user", "content": "x"}, {"role": "user", "content": "y", "threadId": "t1"}])).await;
    assert_eq!(
        (r.status, r.error()),
        (
            400,
            "All messages must have threadId and resourceId fields. Found 2 invalid message(s)."
                .into()
        )
    );
    let r = save(
        &s,
        "notes",
        json!([
            user("ok", "t1", "u1", "fine", "2025-01-01T00:00:00.000Z"),
            user("bad", "t1", "u1", "x", "last tuesday")
        ]),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("messages[1]"), "{}", r.error());

    // V1 and V2 messages; ids and dates defaulted; answered as V1.
    let r = save(
        &s,
        "notes",
        json!([
            user("m1", "t1", "u1", "What is the weather in Oslo?", "2025-01-01T00:00:01.000Z"),
            {"id": "m2", "threadId": "t1", "resourceId": "u1", "role": "assistant", "createdAt": "2025-01-01T00:00:02.000Z", "type": "v2",
             "content": {"format": 2, "parts": [
                {"type": "step-start"},
                {"type": "tool-invocation", "toolInvocation": {"state": "result", "toolCallId": "c1", "toolName": "weather", "args": {"city": "Oslo"}, "result": {"t": 3}}},
                {"type": "text", "text": "It is 3 degrees."}]}},
            {"threadId": "t1", "resourceId": "u1", "role": "user", "content": [{"type": "text", "text": "Thanks"}]},
        ]),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let saved = r.json();
    let kinds: Vec<&str> = saved
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "tool-call", "tool-result", "text", "text"]);
    assert!(!saved[4]["id"].as_str().unwrap().is_empty());
    assert!(saved[4]["createdAt"].as_str().unwrap().ends_with('Z'));

    // The deprecated list: V1 + UI messages, deprecation headers, `limit`.
    let r = s.get("/api/memory/threads/t1/messages?agentId=notes").await;
    assert_eq!(r.headers["deprecation"], "true");
    let v = r.json();
    assert_eq!(v["messages"].as_array().unwrap().len(), 5);
    let ui = v["uiMessages"].as_array().unwrap();
    assert_eq!(ui.len(), 3);
    assert_eq!(ui[1]["content"], "It is 3 degrees.");
    assert_eq!(ui[1]["toolInvocations"][0]["result"], json!({"t": 3}));
    let v = s
        .get("/api/memory/threads/t1/messages?agentId=notes&limit=1")
        .await
        .json();
    assert_eq!(v["uiMessages"].as_array().unwrap().len(), 1);
    assert_eq!(v["uiMessages"][0]["content"], "Thanks");
    let v = s
        .get("/api/memory/threads/t1/messages?agentId=notes&limit=zero")
        .await
        .json();
    assert_eq!(
        v["uiMessages"].as_array().unwrap().len(),
        3,
        "bad limits are ignored"
    );
    assert_eq!(
        s.get("/api/memory/threads/nope/messages?agentId=notes")
            .await
            .status,
        404
    );

    // Paginated: v2 format, selectBy last / pagination / include / dateRange.
    let server = &s;
    let page = move |select: Value, format: &'static str| {
        let path = format!(
            "/api/memory/threads/t1/messages/paginated?format={format}&selectBy={}",
            crate::support::encode(&select.to_string())
        );
        async move { server.get(&path).await }
    };
    let v = page(json!({}), "v2").await.json();
    assert_eq!(v["total"], 3);
    assert_eq!(v["messages"][1]["content"]["format"], 2);
    let v = page(json!({"last": 2}), "v2").await.json();
    assert_eq!(v["messages"][0]["id"], "m2");
    let v = page(json!({"pagination": {"page": 0, "perPage": 1}}), "v1")
        .await
        .json();
    assert_eq!(
        (v["hasMore"].clone(), v["messages"][0]["id"].clone()),
        (json!(true), json!("m1"))
    );
    let v = page(
        json!({"pagination": {"page": 0, "perPage": 1, "dateRange": {"start": "2025-01-01T00:00:02.000Z", "end": "2025-01-01T00:00:02.500Z"}}}),
        "v2",
    )
    .await
    .json();
    assert_eq!(
        (v["total"].clone(), v["messages"][0]["id"].clone()),
        (json!(1), json!("m2"))
    );
    let v = page(
        json!({"last": 1, "include": [{"id": "m2", "withPreviousMessages": 1}]}),
        "v2",
    )
    .await
    .json();
    let ids: Vec<&str> = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(&ids[..2], ["m1", "m2"]);
    // Counts as large as a client likes are windows to the ends, not failures.
    let huge = json!({
        "pagination": {"page": 18446744073709551614u64, "perPage": 18446744073709551614u64},
        "include": [{"id": "m2", "withPreviousMessages": 18446744073709551614u64, "withNextMessages": 18446744073709551614u64}]
    });
    let r = page(huge, "v2").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = r.json();
    assert_eq!(
        (
            v["messages"].as_array().unwrap().len(),
            v["hasMore"].clone()
        ),
        (3, json!(false)),
        "{v}"
    );
    let r = s
        .get("/api/memory/threads/t1/messages/paginated?format=v3")
        .await;
    assert_eq!(r.status, 400);
    let r = s
        .get("/api/memory/threads/t1/messages/paginated?selectBy=%7Bnot%20json")
        .await;
    assert_eq!(r.json()["total"], 3, "invalid selectBy is ignored");
    assert_eq!(
        s.get("/api/memory/threads/none/messages/paginated")
            .await
            .status,
        404
    );

    // Deleting by the four accepted forms.
    save(
        &s,
        "notes",
        json!([
            user("d1", "t1", "u1", "a", "2025-01-02T00:00:00.000Z"),
            user("d2", "t1", "u1", "b", "2025-01-02T00:00:01.000Z"),
            user("d3", "t1", "u1", "c", "2025-01-02T00:00:02.000Z"),
            user("d4", "t1", "u1", "d", "2025-01-02T00:00:03.000Z"),
        ]),
    )
    .await;
    for (ids, n) in [
        (json!("d1"), "1 message deleted successfully"),
        (json!(["d2", "missing"]), "1 message deleted successfully"),
        (json!({"id": "d3"}), "1 message deleted successfully"),
        (
            json!([{"id": "d4"}, {"id": "m1"}]),
            "2 messages deleted successfully",
        ),
    ] {
        let r = s
            .post(
                "/api/memory/messages/delete?agentId=notes",
                json!({"messageIds": ids}),
            )
            .await;
        assert_eq!(r.json(), json!({"success": true, "message": n}), "{ids}");
    }
    for bad in [
        json!({}),
        json!({"messageIds": []}),
        json!({"messageIds": 5}),
    ] {
        let r = s
            .post("/api/memory/messages/delete?agentId=notes", bad.clone())
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn working_memory_by_thread_and_by_resource_survives_a_restart() {
    let mut s = TestServer::start(PROJECT).await;
    create(&s, "notes", json!({"resourceId": "u1", "threadId": "a"})).await;
    create(&s, "notes", json!({"resourceId": "u1", "threadId": "b"})).await;
    let get = |agent: &str, thread: &str, resource: &str| {
        format!("/api/memory/threads/{thread}/working-memory?agentId={agent}&resourceId={resource}")
    };
    let v = s.get(&get("notes", "a", "undefined")).await.json();
    assert_eq!(v["workingMemory"], Value::Null);
    assert_eq!(v["threadExists"], true);
    assert_eq!(v["workingMemoryTemplate"]["format"], "markdown");
    let r = s
        .post(
            "/api/memory/threads/a/working-memory?agentId=notes",
            json!({"workingMemory": "# Name: Ann"}),
        )
        .await;
    assert_eq!(r.json(), json!({"success": true}));
    assert_eq!(
        s.get(&get("notes", "a", "u1")).await.json()["workingMemory"],
        "# Name: Ann"
    );
    assert_eq!(
        s.get(&get("notes", "b", "u1")).await.json()["workingMemory"],
        Value::Null,
        "thread scope"
    );
    assert_eq!(
        s.get(&get("notes", "zz", "u1")).await.json()["threadExists"],
        false
    );

    // Resource scope: one memory for all the resource's threads.
    let r = s
        .post(
            "/api/memory/threads/a/working-memory?agentId=shared",
            json!({"workingMemory": "# Profile\n- Name: Bo", "resourceId": "u1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = s.get(&get("shared", "b", "u1")).await.json();
    assert_eq!(
        (v["workingMemory"].clone(), v["source"].clone()),
        (json!("# Profile\n- Name: Bo"), json!("resource"))
    );

    // Errors.
    let r = s
        .post(
            "/api/memory/threads/zz/working-memory?agentId=notes",
            json!({"workingMemory": "x"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (404, "Thread not found".into()));
    let r = s
        .post(
            "/api/memory/threads/a/working-memory?agentId=notes",
            json!({}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "Argument \"workingMemory\" is required".into())
    );
    let r = s
        .post(
            "/api/memory/threads/a/working-memory?agentId=notes",
            json!({"workingMemory": "x", "memoryConfig": {"workingMemory": {"enabled": false}}}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (
            500,
            "Working memory is not enabled for this memory instance".into()
        )
    );

    save(
        &s,
        "notes",
        json!([user("p1", "a", "u1", "kept", "2025-01-01T00:00:00.000Z")]),
    )
    .await;
    s.restart().await;
    assert_eq!(
        s.get(&get("notes", "a", "u1")).await.json()["workingMemory"],
        "# Name: Ann"
    );
    assert_eq!(
        s.get(&get("shared", "b", "u1")).await.json()["workingMemory"],
        "# Profile\n- Name: Bo"
    );
    assert_eq!(
        s.get("/api/memory/threads/a?agentId=notes").await.status,
        200
    );
    let v = s
        .get("/api/memory/threads/a/messages?agentId=notes")
        .await
        .json();
    assert_eq!(v["messages"][0]["content"], "kept");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_by_text_and_by_meaning() {
    let s = TestServer::start(PROJECT).await;
    // Text search (no semantic recall configured).
    create(
        &s,
        "notes",
        json!({"resourceId": "u1", "threadId": "t", "title": "Trip ideas"}),
    )
    .await;
    save(
        &s,
        "notes",
        json!([
            user(
                "a",
                "t",
                "u1",
                "I love hiking in the Alps",
                "2025-01-01T00:00:00.000Z"
            ),
            user("b", "t", "u1", "Also skiing", "2025-01-01T00:00:01.000Z"),
            user(
                "c",
                "t",
                "u1",
                "Hiking boots are expensive",
                "2025-01-01T00:00:02.000Z"
            ),
        ]),
    )
    .await;
    let v = s
        .get("/api/memory/search?agentId=notes&searchQuery=hiking&resourceId=u1&threadId=t")
        .await
        .json();
    assert_eq!(v["searchType"], "text");
    assert_eq!(v["searchScope"], "thread");
    assert_eq!(v["count"], 2);
    assert_eq!(v["results"][0]["id"], "c", "newest first");
    assert_eq!(v["results"][1]["threadTitle"], "Trip ideas");
    assert_eq!(v["results"][1]["context"]["after"][0]["id"], "b");
    for (path, status) in [
        ("/api/memory/search?agentId=notes&resourceId=u1", 400),
        ("/api/memory/search?agentId=notes&searchQuery=x", 400),
        (
            "/api/memory/search?agentId=notes&searchQuery=x&resourceId=u1&threadId=none",
            404,
        ),
        (
            "/api/memory/search?agentId=notes&searchQuery=x&resourceId=u2&threadId=t",
            403,
        ),
    ] {
        assert_eq!(s.get(path).await.status, status, "{path}");
    }

    // Semantic recall over 200 messages on varied topics.
    let topics = [
        "cooking pasta with tomato sauce",
        "repairing a bicycle tyre",
        "training a puppy to sit",
        "planting tomatoes in the garden",
        "learning to play the guitar",
        "fixing a leaking kitchen tap",
        "saving money for retirement",
        "running a marathon",
        "painting a watercolour landscape",
        "setting up a home wifi router",
    ];
    let mut messages = Vec::new();
    for i in 0..200 {
        let topic = topics[i % topics.len()];
        messages.push(user(
            &format!("s{i}"),
            &format!("th{}", i % 4),
            "ur",
            &format!(
                "Note {i}: a question about {topic}, part {}",
                i / topics.len()
            ),
            &format!("2025-02-01T00:{:02}:{:02}.000Z", i / 60, i % 60),
        ));
    }
    messages.push(user(
        "needle",
        "th2",
        "ur",
        "My cat Whiskers hates the vacuum cleaner and hides under the bed",
        "2025-02-01T01:00:00.000Z",
    ));
    for t in 0..4 {
        create(
            &s,
            "recall",
            json!({"resourceId": "ur", "threadId": format!("th{t}")}),
        )
        .await;
    }
    let r = save(&s, "recall", Value::Array(messages)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let v = s
        .get("/api/memory/search?agentId=recall&searchQuery=Why%20is%20my%20pet%20scared%20of%20cleaning%20machines%3F&resourceId=ur&limit=3")
        .await
        .json();
    assert_eq!(v["searchType"], "semantic");
    assert_eq!(v["searchScope"], "resource");
    assert_eq!(v["results"][0]["id"], "needle", "{v}");
    // Deleting the thread removes its vectors: the message is no longer recalled.
    s.send(
        s.client
            .delete(s.url("/api/memory/threads/th2?agentId=recall")),
    )
    .await;
    let v = s
        .get("/api/memory/search?agentId=recall&searchQuery=Why%20is%20my%20pet%20scared%20of%20cleaning%20machines%3F&resourceId=ur&limit=3")
        .await
        .json();
    assert!(
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["id"] != "needle" && r["threadId"] != "th2"),
        "{v}"
    );
    s.stop().await;
}
