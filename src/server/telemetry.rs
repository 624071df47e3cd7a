//! `telemetry` group: stored trace spans, and OTLP/JSON ingest.

use salvo::prelude::*;
use serde_json::{Value, json};

use super::ApiError;
use super::request::{json_body, query_date_ms, query_pairs, query_u64};
use super::state::AppState;
use crate::telemetry::spans::{self, SpanQuery};

/// Trace spans, newest first (`page` is 0-based; `attribute=key:value` repeatable).
#[endpoint(tags("telemetry"), operation_id = "getTelemetry")]
pub async fn list(req: &mut Request, depot: &mut Depot) -> Result<Json<Value>, ApiError> {
    let per_page = query_u64(req, "perPage")?.unwrap_or(100);
    if per_page == 0 || per_page > 1000 {
        return Err(ApiError::bad_request(
            "`perPage` must be between 1 and 1000",
        ));
    }
    let q = SpanQuery {
        name: req.query::<String>("name").filter(|s| !s.is_empty()),
        scope: req.query::<String>("scope").filter(|s| !s.is_empty()),
        attributes: query_pairs(req, "attribute")?,
        from_ms: query_date_ms(req, "fromDate")?,
        to_ms: query_date_ms(req, "toDate")?,
        page: query_u64(req, "page")?.unwrap_or(0),
        per_page,
    };
    let store = AppState::get(depot).store.clone();
    let traces = tokio::task::spawn_blocking(move || spans::query(&store, &q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(json!({ "traces": traces })))
}

fn status_error(status: StatusCode, message: String, res: &mut Response) {
    res.status_code(status);
    res.render(Json(
        json!({"status": "error", "message": message, "error": message}),
    ));
}

/// Stores the spans of an OTLP/JSON export request.
#[endpoint(tags("telemetry"), operation_id = "storeTelemetry")]
pub async fn ingest(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let body = match json_body(req, depot).await {
        Ok(b) => b,
        Err(e) => return status_error(e.status, e.message, res),
    };
    let (records, count) = match spans::from_otlp(&body) {
        Ok(r) => r,
        Err(e) => return status_error(StatusCode::BAD_REQUEST, e.0, res),
    };
    if records.is_empty() {
        res.render(Json(
            json!({"status": "success", "message": "No spans to process", "traceCount": 0}),
        ));
        return;
    }
    let state = AppState::get(depot);
    let (store, cfg) = (state.store.clone(), state.project.server.telemetry.clone());
    let stored = tokio::task::spawn_blocking(move || {
        spans::store_spans(
            &store,
            &records,
            cfg.max_rows,
            cfg.max_age_hours * 3_600_000,
        )
    })
    .await;
    match stored {
        Ok(Ok(())) => res.render(Json(json!({
            "status": "success",
            "message": "Traces received and processed successfully",
            "traceCount": count
        }))),
        Ok(Err(e)) => status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to process traces: {e}"),
            res,
        ),
        Err(e) => status_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("Failed to process traces: {e}"),
            res,
        ),
    }
}
