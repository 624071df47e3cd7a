//! `memory` and `networkMemory` groups: threads, messages, working memory and search. The
//! memory is resolved from `agentId` (or `networkId`, for the network twins) on every route.

use std::sync::Arc;

use salvo::prelude::*;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::request::{json_body, json_object, query_u64, truthy};
use super::state::AppState;
use crate::memory::config::{MemoryConfig, Scope};
use crate::memory::engine::{Memory, created_iso, message_text, parse_iso_ms};
use crate::memory::messages::{self, Defaults, MessageV2};
use crate::memory::store::Thread;

/// Default number of messages the deprecated messages route returns.
const DEFAULT_MESSAGE_LIMIT: usize = 40;

/// The memory a request addresses and its settings.
struct Resolved {
    memory: Arc<Memory>,
    config: MemoryConfig,
}

/// `Some` when the addressed agent (or network) has memory; 404 for unknown agents or networks.
fn lookup(state: &AppState, req: &Request) -> Result<Option<Resolved>, ApiError> {
    if let Some(network) = req.query::<String>("networkId").filter(|s| !s.is_empty()) {
        let net = state.networks.get(&network)?;
        return Ok(net.memory.clone().map(|config| Resolved {
            memory: state.memory.clone(),
            config,
        }));
    }
    let Some(agent_id) = req.query::<String>("agentId").filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let agent = state.agents.get(&agent_id)?;
    Ok(agent.memory_config.clone().map(|settings| Resolved {
        memory: state.memory.clone(),
        config: settings,
    }))
}

fn resolve(state: &AppState, req: &Request) -> Result<Resolved, ApiError> {
    lookup(state, req)?.ok_or_else(|| ApiError::bad_request("Memory is not initialized"))
}

fn thread_id(req: &Request) -> String {
    req.param::<String>("threadId").unwrap_or_default()
}

/// Whether the addressed memory exists.
#[endpoint(tags("memory"), operation_id = "getMemoryStatus")]
pub async fn get_status(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let found = lookup(AppState::get(depot), req)?.is_some();
    Ok(Json(json!({"result": found})))
}

/// The merged memory settings.
#[endpoint(tags("memory"), operation_id = "getMemoryConfig")]
pub async fn get_config(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    Ok(Json(json!({"config": r.config.to_wire()})))
}

fn thread_order(req: &Request) -> Result<(bool, bool), ApiError> {
    let by_updated = match req.query::<String>("orderBy").as_deref() {
        None | Some("") | Some("createdAt") => false,
        Some("updatedAt") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`orderBy` must be createdAt or updatedAt, got {other:?}"
            )));
        }
    };
    let descending = match req.query::<String>("sortDirection").as_deref() {
        None | Some("") | Some("DESC") | Some("desc") => true,
        Some("ASC") | Some("asc") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`sortDirection` must be ASC or DESC, got {other:?}"
            )));
        }
    };
    Ok((by_updated, descending))
}

/// A resource's threads (`resourceid`, lowercase, on this route).
#[endpoint(tags("memory"), operation_id = "getMemoryThreads")]
pub async fn list_threads(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let resource = req
        .query::<String>("resourceid")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("resourceId"))?;
    let (by_updated, desc) = thread_order(req)?;
    Ok(Json(json!(
        r.memory.threads(&resource, by_updated, desc).await?
    )))
}

/// A page of a resource's threads (`resourceId`, 0-based `page`).
#[endpoint(tags("memory"), operation_id = "getMemoryThreadsPaginated")]
pub async fn threads_paginated(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let resource = req
        .query::<String>("resourceId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("resourceId"))?;
    let (by_updated, desc) = thread_order(req)?;
    let page = query_u64(req, "page")?.unwrap_or(0) as usize;
    let per_page = query_u64(req, "perPage")?.unwrap_or(100) as usize;
    if per_page == 0 {
        return Err(ApiError::bad_request("`perPage` must be at least 1"));
    }
    let found = r
        .memory
        .threads_page(&resource, by_updated, desc, page, per_page)
        .await?;
    let start = page.saturating_mul(per_page).min(found.total);
    Ok(Json(json!({
        "hasMore": start + found.items.len() < found.total,
        "threads": found.items,
        "total": found.total,
        "page": page,
        "perPage": per_page,
    })))
}

fn optional_string(body: &Map<String, Value>, key: &str) -> Result<Option<String>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be a string"))),
    }
}

fn optional_object(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, ApiError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::bad_request(format!("`{key}` must be an object"))),
    }
}

/// Creates a thread.
#[endpoint(tags("memory"), operation_id = "createMemoryThread")]
pub async fn create_thread(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let body = json_object(req, depot).await?;
    let resource =
        optional_string(&body, "resourceId")?.ok_or_else(|| ApiError::required("resourceId"))?;
    let thread = r
        .memory
        .create_thread(
            &resource,
            optional_string(&body, "threadId")?,
            optional_string(&body, "title")?,
            optional_object(&body, "metadata")?,
        )
        .await?;
    Ok(Json(json!(thread)))
}

async fn existing_thread(r: &Resolved, id: &str) -> Result<Thread, ApiError> {
    r.memory
        .thread(id)
        .await?
        .ok_or_else(|| ApiError::not_found("Thread not found"))
}

/// One thread.
#[endpoint(tags("memory"), operation_id = "getMemoryThreadById", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn get_thread(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    Ok(Json(json!(existing_thread(&r, &thread_id(req)).await?)))
}

/// Changes a thread's title, metadata or resource (falsy values keep the old ones).
#[endpoint(tags("memory"), operation_id = "updateMemoryThread", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn update_thread(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let body = match json_body(req, depot).await? {
        Value::Object(m) => m,
        Value::Null => return Err(ApiError::bad_request("Body is required")),
        _ => {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object",
            ));
        }
    };
    let metadata = match body.get("metadata") {
        Some(v) if truthy(Some(v)) => Some(optional_object(&body, "metadata")?.unwrap_or_default()),
        _ => None,
    };
    let thread = r
        .memory
        .update_thread(
            &thread_id(req),
            optional_string(&body, "title")?,
            metadata,
            optional_string(&body, "resourceId")?,
        )
        .await?;
    Ok(Json(json!(thread)))
}

/// Deletes a thread and its messages.
#[endpoint(tags("memory"), operation_id = "deleteMemoryThread", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn delete_thread(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    r.memory.delete_thread(&thread_id(req)).await?;
    Ok(Json(json!({"result": "Thread deleted"})))
}

fn v1_list(messages: &[MessageV2]) -> Vec<Value> {
    messages.iter().flat_map(messages::v2_to_v1).collect()
}

/// The last messages of a thread as V1 and UI messages (deprecated on the agent route).
#[endpoint(tags("memory"), operation_id = "getMemoryThreadMessages", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn thread_messages(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let id = thread_id(req);
    existing_thread(&r, &id).await?;
    if !req.uri().path().contains("/network/") {
        let successor = format!("{}/paginated", req.uri().path());
        super::request::mark_deprecated(res, &successor);
    }
    // Invalid limits are ignored, as Mastra's route parser does.
    let limit = req
        .query::<String>("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_MESSAGE_LIMIT);
    let all = r.memory.thread_messages(&id).await?;
    let last = &all[all.len().saturating_sub(limit)..];
    Ok(Json(json!({
        "messages": v1_list(last),
        "uiMessages": last.iter().map(messages::v2_to_ui).collect::<Vec<_>>(),
    })))
}

/// `selectBy` of the paginated messages route.
#[derive(Default)]
struct SelectBy {
    last: Option<usize>,
    include: Vec<(String, usize, usize)>,
    page: Option<(usize, usize)>,
    range: (Option<u64>, Option<u64>),
}

fn select_by(raw: Option<String>) -> SelectBy {
    // Invalid JSON in selectBy is ignored (as Mastra does).
    let Some(v) = raw.and_then(|s| serde_json::from_str::<Value>(&s).ok()) else {
        return SelectBy::default();
    };
    let count = |v: Option<&Value>| v.and_then(Value::as_u64).map(|n| n as usize);
    SelectBy {
        last: count(v.get("last")),
        include: v
            .get("include")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| {
                Some((
                    i.get("id")?.as_str()?.to_string(),
                    count(i.get("withPreviousMessages")).unwrap_or(0),
                    count(i.get("withNextMessages")).unwrap_or(0),
                ))
            })
            .collect(),
        page: v.get("pagination").map(|p| {
            (
                count(p.get("page")).unwrap_or(0),
                count(p.get("perPage")).unwrap_or(40).max(1),
            )
        }),
        range: (
            v.pointer("/pagination/dateRange/start")
                .and_then(Value::as_str)
                .and_then(parse_iso_ms),
            v.pointer("/pagination/dateRange/end")
                .and_then(Value::as_str)
                .and_then(parse_iso_ms),
        ),
    }
}

/// A page of a thread's messages, V1 or V2.
#[endpoint(tags("memory"), operation_id = "getMemoryThreadMessagesPaginated", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn thread_messages_paginated(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let id = thread_id(req);
    let memory = state.memory.clone();
    memory
        .thread(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("Thread not found"))?;
    let v2 = match req.query::<String>("format").as_deref() {
        None | Some("") | Some("v1") => false,
        Some("v2") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`format` must be v1 or v2, got {other:?}"
            )));
        }
    };
    let select = select_by(req.query::<String>("selectBy"));
    let all = memory.thread_messages(&id).await?;
    let in_range = |m: &MessageV2| {
        let ms = m.created_at.as_millisecond().max(0) as u64;
        select.range.0.is_none_or(|s| ms >= s) && select.range.1.is_none_or(|e| ms <= e)
    };
    let mut keep: Vec<bool> = all.iter().map(in_range).collect();
    if let Some(last) = select.last {
        let cut = all.len().saturating_sub(last);
        for k in keep.iter_mut().take(cut) {
            *k = false;
        }
    }
    let selected: Vec<MessageV2> = all
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(m, _)| m.clone())
        .collect();
    let (page, per_page) = select.page.unwrap_or((0, selected.len().max(1)));
    let total = selected.len();
    let start = page.saturating_mul(per_page).min(total);
    let mut chosen: Vec<MessageV2> = selected.into_iter().skip(start).take(per_page).collect();
    // `include` adds the named messages with their neighbours, whatever the page.
    for (mid, before, after) in &select.include {
        if let Some(i) = all.iter().position(|m| &m.id == mid) {
            // Counts are the client's: as large as it likes.
            let last = i.saturating_add(*after).min(all.len() - 1);
            for m in &all[i.saturating_sub(*before)..=last] {
                if !chosen.iter().any(|c| c.id == m.id) {
                    chosen.push(m.clone());
                }
            }
        }
    }
    chosen.sort_by_key(|m| m.created_at);
    let has_more = start.saturating_add(per_page) < total;
    let messages: Vec<Value> = if v2 {
        chosen
            .iter()
            .map(|m| serde_json::to_value(m).unwrap_or_default())
            .collect()
    } else {
        v1_list(&chosen)
    };
    Ok(Json(json!({
        "messages": messages,
        "total": total,
        "page": page,
        "perPage": per_page,
        "hasMore": has_more,
    })))
}

/// Saves V1 or V2 messages; answers them as V1.
#[endpoint(tags("memory"), operation_id = "saveMemoryMessages")]
pub async fn save_messages(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Vec<Value>>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let body = json_object(req, depot).await?;
    let list = match body.get("messages") {
        None | Some(Value::Null) => return Err(ApiError::bad_request("Messages are required")),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ApiError::bad_request("Messages should be an array")),
    };
    let invalid = list
        .iter()
        .filter(|m| !truthy(m.get("threadId")) || !truthy(m.get("resourceId")))
        .count();
    if invalid > 0 {
        return Err(ApiError::bad_request(format!(
            "All messages must have threadId and resourceId fields. Found {invalid} invalid message(s)."
        )));
    }
    let new_id = || uuid::Uuid::new_v4().to_string();
    let defaults = Defaults {
        thread_id: None,
        resource_id: None,
        new_id: &new_id,
        now: jiff::Timestamp::now(),
    };
    // All or nothing: every message is checked before any is stored.
    let parsed = list
        .iter()
        .enumerate()
        .map(|(i, m)| {
            messages::parse_stored(m, &defaults)
                .map_err(|e| ApiError::bad_request(format!("messages[{i}]: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let saved = r.memory.save(parsed).await?;
    Ok(Json(v1_list(&saved)))
}

fn message_ids(v: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let bad = || {
        ApiError::bad_request("messageIds must be an id, an array of ids, {id} or an array of {id}")
    };
    let one = |v: &Value| match v {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Object(o) => o
            .get("id")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(bad),
        _ => Err(bad()),
    };
    match v {
        None | Some(Value::Null) => Err(ApiError::bad_request("messageIds is required")),
        Some(Value::Array(a)) if a.is_empty() => {
            Err(ApiError::bad_request("messageIds is required"))
        }
        Some(Value::Array(a)) => a.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// Deletes messages by id.
#[endpoint(tags("memory"), operation_id = "deleteMemoryMessages")]
pub async fn delete_messages(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let body = json_object(req, depot).await?;
    let ids = message_ids(body.get("messageIds"))?;
    let n = r.memory.delete_messages(ids).await?;
    let noun = if n == 1 { "message" } else { "messages" };
    Ok(Json(
        json!({"success": true, "message": format!("{n} {noun} deleted successfully")}),
    ))
}

/// A thread's (or its resource's) working memory.
#[endpoint(tags("memory"), operation_id = "getWorkingMemory", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn get_working_memory(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let id = thread_id(req);
    // client-js sends `resourceId=undefined` when it has none.
    let resource = req
        .query::<String>("resourceId")
        .filter(|s| !s.is_empty() && s != "undefined");
    let exists = r.memory.thread(&id).await?.is_some();
    let wm = &r.config.working_memory;
    if !wm.enabled {
        return Ok(Json(
            json!({"workingMemory": null, "source": "thread", "workingMemoryTemplate": null, "threadExists": exists}),
        ));
    }
    let text = r
        .memory
        .working_memory(&r.config, &id, resource.as_deref())
        .await?;
    let source = if wm.scope == Scope::Resource && resource.is_some() {
        "resource"
    } else {
        "thread"
    };
    let template = match &wm.schema {
        Some(schema) => json!({"format": "json", "content": schema.to_string()}),
        None => json!({"format": "markdown", "content": wm.template}),
    };
    Ok(Json(
        json!({"workingMemory": text, "source": source, "workingMemoryTemplate": template, "threadExists": exists}),
    ))
}

/// Replaces a thread's (or its resource's) working memory.
#[endpoint(tags("memory"), operation_id = "updateWorkingMemory", parameters(("threadId" = String, Path, description = "The thread id")))]
pub async fn set_working_memory(
    req: &mut Request,
    depot: &mut Depot,
) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let id = thread_id(req);
    let body = json_object(req, depot).await?;
    let text = match body.get("workingMemory") {
        Some(Value::String(s)) => s.clone(),
        Some(v @ Value::Object(_)) => v.to_string(),
        None | Some(Value::Null) => return Err(ApiError::required("workingMemory")),
        Some(_) => return Err(ApiError::bad_request("`workingMemory` must be text")),
    };
    let thread = existing_thread(&r, &id).await?;
    let mut settings = r.config.clone();
    if let Some(o) = body.get("memoryConfig").filter(|v| !v.is_null()) {
        settings = settings.apply(o).map_err(ApiError::bad_request)?;
    }
    if !settings.working_memory.enabled {
        return Err(ApiError::internal(
            "Working memory is not enabled for this memory instance",
        ));
    }
    let resource = optional_string(&body, "resourceId")?.unwrap_or(thread.resource_id);
    r.memory
        .set_working_memory(&settings, &id, Some(&resource), &text)
        .await?;
    Ok(Json(json!({"success": true})))
}

/// Finds messages of a resource (or thread) by meaning or, without semantic recall, by text.
#[endpoint(tags("memory"), operation_id = "searchMemory")]
pub async fn search(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let r = resolve(AppState::get(depot), req)?;
    let query = req
        .query::<String>("searchQuery")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("searchQuery"))?;
    let resource = req
        .query::<String>("resourceId")
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::required("resourceId"))?;
    let thread = req.query::<String>("threadId").filter(|s| !s.is_empty());
    let limit = query_u64(req, "limit")?.unwrap_or(20).max(1) as usize;
    let mut settings = r.config.clone();
    if let Some(raw) = req
        .query::<String>("memoryConfig")
        .filter(|s| !s.is_empty())
    {
        let o: Value = serde_json::from_str(&raw)
            .map_err(|e| ApiError::bad_request(format!("`memoryConfig` is not JSON: {e}")))?;
        settings = settings.apply(&o).map_err(ApiError::bad_request)?;
    }
    if let Some(t) = &thread {
        let found = existing_thread(&r, t).await?;
        if found.resource_id != resource {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "Thread does not belong to the specified resource",
            ));
        }
    }
    let resource_scope = thread.is_none()
        || settings
            .semantic_recall
            .as_ref()
            .is_some_and(|s| s.scope == Scope::Resource);
    let pool = match (&thread, resource_scope) {
        (Some(t), false) => r.memory.thread_messages(t).await?,
        _ => r.memory.resource_messages(&resource).await?,
    };
    let semantic = settings.semantic_recall.is_some();
    let (before, after) = settings
        .semantic_recall
        .as_ref()
        .map(|s| (s.before, s.after))
        .unwrap_or((2, 2));
    let hits: Vec<usize> = if semantic {
        let scope_thread = if resource_scope {
            None
        } else {
            thread.as_deref()
        };
        let similar = r
            .memory
            .similar(&query, &resource, scope_thread, limit)
            .await?;
        similar
            .iter()
            .filter_map(|(id, _)| pool.iter().position(|m| &m.id == id))
            .collect()
    } else {
        let needle = query.to_lowercase();
        let mut found: Vec<usize> = pool
            .iter()
            .enumerate()
            .filter(|(_, m)| message_text(m).to_lowercase().contains(&needle))
            .map(|(i, _)| i)
            .collect();
        found.reverse(); // newest first
        found.truncate(limit);
        found
    };
    let mut titles = std::collections::HashMap::new();
    let brief = |m: &MessageV2| json!({"id": m.id, "role": m.role, "content": message_text(m), "createdAt": created_iso(m)});
    let mut results = Vec::new();
    for i in hits {
        let m = &pool[i];
        let tid = m.thread_id.clone().unwrap_or_default();
        if !titles.contains_key(&tid) {
            let title = r.memory.thread(&tid).await?.map(|t| t.title);
            titles.insert(tid.clone(), title);
        }
        let same_thread = |j: &usize| pool[*j].thread_id == m.thread_id;
        let before_msgs: Vec<Value> = (i.saturating_sub(before)..i)
            .filter(same_thread)
            .map(|j| brief(&pool[j]))
            .collect();
        let after_msgs: Vec<Value> = (i + 1..(i + 1 + after).min(pool.len()))
            .filter(same_thread)
            .map(|j| brief(&pool[j]))
            .collect();
        let mut v = brief(m);
        v["threadId"] = json!(tid);
        v["threadTitle"] = json!(titles.get(&tid).cloned().flatten());
        v["context"] = json!({"before": before_msgs, "after": after_msgs});
        results.push(v);
    }
    Ok(Json(json!({
        "results": results,
        "count": results.len(),
        "query": query,
        "searchScope": if resource_scope { "resource" } else { "thread" },
        "searchType": if semantic { "semantic" } else { "text" },
    })))
}
