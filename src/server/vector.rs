//! `vector` group: indexes and vectors of the named vector stores.

use salvo::prelude::*;
use serde_json::{Value, json};

use super::ApiError;
use super::request::json_object;
use super::state::AppState;
use crate::vector::VectorError;
use crate::vector::index::Metric;
use crate::vector::store::VectorStore;

fn param(req: &Request, name: &str) -> String {
    req.param::<String>(name).unwrap_or_default()
}

/// Runs `f` on the named store off the executor.
async fn with_store<T: Send + 'static>(
    req: &Request,
    depot: &Depot,
    f: impl FnOnce(&VectorStore) -> Result<T, VectorError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = AppState::get(depot)
        .vectors
        .get(&param(req, "vectorName"))?;
    tokio::task::spawn_blocking(move || f(&store))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

/// The body's non-empty `indexName`.
fn index_name(body: &serde_json::Map<String, Value>) -> Option<String> {
    body.get("indexName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

fn numbers(v: &Value) -> Option<Vec<f64>> {
    v.as_array()?.iter().map(Value::as_f64).collect()
}

/// Inserts or replaces vectors: `{indexName, vectors, metadata?, ids?}` → `{ids}`.
#[endpoint(tags("vector"), operation_id = "upsertVectors", parameters(("vectorName" = String, Path, description = "The vector store")))]
pub async fn upsert(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let body = json_object(req, depot).await?;
    let required = || {
        ApiError::bad_request("Invalid request index. indexName and vectors array are required.")
    };
    let index = index_name(&body).ok_or_else(required)?;
    let rows = body
        .get("vectors")
        .and_then(Value::as_array)
        .ok_or_else(required)?;
    let vectors: Vec<Vec<f64>> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            numbers(r).ok_or_else(|| {
                ApiError::bad_request(format!("vectors[{i}] must be an array of numbers"))
            })
        })
        .collect::<Result<_, _>>()?;
    let metadata = match body.get("metadata") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::bad_request(
                "metadata must be an array of objects",
            ));
        }
    };
    let ids = match body.get("ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(ids)) => Some(
            ids.iter()
                .map(|i| {
                    i.as_str()
                        .map(String::from)
                        .ok_or_else(|| ApiError::bad_request("ids must be strings"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(ApiError::bad_request("ids must be an array of strings")),
    };
    let ids = with_store(req, depot, move |s| {
        s.upsert(&index, vectors, metadata, ids)
    })
    .await?;
    Ok(Json(json!({ "ids": ids })))
}

/// Creates an index: `{indexName, dimension, metric?}`.
#[endpoint(tags("vector"), operation_id = "createIndex", parameters(("vectorName" = String, Path, description = "The vector store")))]
pub async fn create_index(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let body = json_object(req, depot).await?;
    let required = || {
        ApiError::bad_request(
            "Invalid request index, indexName and positive dimension number are required.",
        )
    };
    let index = index_name(&body).ok_or_else(required)?;
    let dimension = body
        .get("dimension")
        .and_then(Value::as_f64)
        .filter(|d| *d > 0.0 && d.fract() == 0.0)
        .ok_or_else(required)?;
    let metric = match body.get("metric") {
        None | Some(Value::Null) => Metric::Cosine,
        Some(m) => m.as_str().and_then(Metric::parse).ok_or_else(|| {
            ApiError::bad_request("Invalid metric. Must be one of: cosine, euclidean, dotproduct")
        })?,
    };
    with_store(req, depot, move |s| {
        s.create_index(&index, dimension as usize, metric)
    })
    .await?;
    Ok(Json(json!({ "success": true })))
}

/// The nearest vectors: `{indexName, queryVector, topK?, filter?, includeVector?}` → `{results}`.
#[endpoint(tags("vector"), operation_id = "queryVectors", parameters(("vectorName" = String, Path, description = "The vector store")))]
pub async fn query(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let body = json_object(req, depot).await?;
    let required = || {
        ApiError::bad_request(
            "Invalid request query. indexName and queryVector array are required.",
        )
    };
    let index = index_name(&body).ok_or_else(required)?;
    let query_vector = body
        .get("queryVector")
        .and_then(numbers)
        .ok_or_else(required)?;
    let top_k = match body.get("topK") {
        None | Some(Value::Null) => 10,
        Some(k) => k
            .as_u64()
            .ok_or_else(|| ApiError::bad_request("topK must be a positive integer"))?
            as usize,
    };
    let filter = body.get("filter").cloned().filter(|f| !f.is_null());
    let include_vector = body
        .get("includeVector")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let results = with_store(req, depot, move |s| {
        s.query(
            &index,
            &query_vector,
            top_k,
            filter.as_ref(),
            include_vector,
        )
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

/// The names of a store's indexes.
#[endpoint(tags("vector"), operation_id = "listIndexes", parameters(("vectorName" = String, Path, description = "The vector store")))]
pub async fn list(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let indexes = with_store(req, depot, |s| s.list_indexes()).await?;
    Ok(Json(json!({ "indexes": indexes })))
}

/// `{dimension, count, metric}` of an index.
#[endpoint(tags("vector"), operation_id = "describeIndex", parameters(("vectorName" = String, Path, description = "The vector store"), ("indexName" = String, Path, description = "The index")))]
pub async fn describe(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let index = param(req, "indexName");
    let stats = with_store(req, depot, move |s| s.describe(&index)).await?;
    Ok(Json(json!(stats)))
}

/// Deletes an index and its vectors.
#[endpoint(tags("vector"), operation_id = "deleteIndex", parameters(("vectorName" = String, Path, description = "The vector store"), ("indexName" = String, Path, description = "The index")))]
pub async fn delete(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let index = param(req, "indexName");
    with_store(req, depot, move |s| s.delete_index(&index)).await?;
    Ok(Json(json!({ "success": true })))
}
