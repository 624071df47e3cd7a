//! `scores` group (spec §4.11): scorers, score rows by run, scorer and entity, and saving rows.

use salvo::prelude::*;
use serde_json::{Map, Value, json};

use super::ApiError;
use super::request::{json_object, query_u64};
use super::state::AppState;
use crate::scores::Selection;

/// Every scorer, by key.
#[endpoint(tags("scores"), operation_id = "getScorers")]
pub async fn list_scorers(depot: &mut Depot) -> Json<Map<String, Value>> {
    let state = AppState::get(depot);
    Json(
        state
            .scores
            .iter()
            .map(|s| (s.key.clone(), s.to_wire()))
            .collect(),
    )
}

/// One scorer, or `null` when there is none by that key (as Mastra answers).
#[endpoint(tags("scores"), operation_id = "getScorer", parameters(("scorerId" = String, Path, description = "The scorer id")))]
pub async fn get_scorer(req: &mut Request, depot: &mut Depot) -> Json<Value> {
    let state = AppState::get(depot);
    let key = req.param::<String>("scorerId").unwrap_or_default();
    Json(
        state
            .scores
            .get(&key)
            .map(|s| s.to_wire())
            .unwrap_or(Value::Null),
    )
}

/// A page of rows (`page` 0-based, default 0; `perPage` default 10).
async fn page(
    req: &Request,
    state: &AppState,
    selection: Selection,
) -> Result<Json<Value>, ApiError> {
    let page = query_u64(req, "page")?.unwrap_or(0) as usize;
    let per_page = query_u64(req, "perPage")?.unwrap_or(10).max(1) as usize;
    let p = state.scores.list(selection, page, per_page).await?;
    let has_more = (page + 1) * per_page < p.total;
    Ok(Json(json!({
        "pagination": {"total": p.total, "page": page, "perPage": per_page, "hasMore": has_more},
        "scores": p.rows,
    })))
}

/// Rows of one run.
#[endpoint(tags("scores"), operation_id = "getScoresByRunId", parameters(("runId" = String, Path, description = "The run id")))]
pub async fn by_run(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let run = req.param::<String>("runId").unwrap_or_default();
    page(req, state, Selection::Run(run)).await
}

/// Rows of one scorer (`entityId`, `entityType` narrow them).
#[endpoint(tags("scores"), operation_id = "getScoresByScorerId", parameters(("scorerId" = String, Path, description = "The scorer id")))]
pub async fn by_scorer(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let selection = Selection::Scorer {
        scorer: req.param::<String>("scorerId").unwrap_or_default(),
        entity_id: req.query::<String>("entityId").filter(|s| !s.is_empty()),
        entity_type: req.query::<String>("entityType").filter(|s| !s.is_empty()),
    };
    page(req, state, selection).await
}

/// Rows of one entity; an `AGENT` or `WORKFLOW` must exist.
#[endpoint(tags("scores"), operation_id = "getScoresByEntityId", parameters(("entityType" = String, Path, description = "AGENT or WORKFLOW"), ("entityId" = String, Path, description = "The entity id")))]
pub async fn by_entity(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot);
    let entity_type = req.param::<String>("entityType").unwrap_or_default();
    let entity_id = req.param::<String>("entityId").unwrap_or_default();
    match entity_type.as_str() {
        "AGENT" if state.agents.get(&entity_id).is_err() => {
            return Err(ApiError::not_found(format!(
                "Agent with id {entity_id} not found"
            )));
        }
        "WORKFLOW" if state.runs.workflows().get(&entity_id).is_err() => {
            return Err(ApiError::not_found(format!(
                "Workflow with id {entity_id} not found"
            )));
        }
        _ => {}
    }
    let selection = Selection::Entity {
        entity_type,
        entity_id,
    };
    page(req, state, selection).await
}

/// Saves a score row: the body is the row, or `{score: row}` as client-js sends it.
#[endpoint(tags("scores"), operation_id = "saveScore")]
pub async fn save(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let state = AppState::get(depot).clone();
    let mut body = json_object(req, depot).await?;
    let row = match body.remove("score") {
        Some(Value::Object(row)) => row,
        Some(number @ Value::Number(_)) => {
            body.insert("score".into(), number);
            body
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "`score` must be a number or the score row, not {other}"
            )));
        }
        None => body,
    };
    let saved = state.scores.save(row).await?;
    Ok(Json(json!({ "score": saved })))
}
