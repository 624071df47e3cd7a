//! `logs` group: stored log records, by transport and by run.

use salvo::prelude::*;
use serde_json::{Value, json};

use super::ApiError;
use super::request::{query_date_ms, query_pairs, query_u64};
use super::state::AppState;
use crate::telemetry::logs::{self, LogPage, LogQuery, TRANSPORT};

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "silent"];
const MAX_PER_PAGE: u64 = 1000;

fn parse_query(req: &Request, run_id: Option<String>) -> Result<LogQuery, ApiError> {
    let transport = req
        .query::<String>("transportId")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::required("transportId"))?;
    if transport != TRANSPORT {
        return Err(ApiError::not_found(format!(
            "Log transport \"{transport}\" not found (available: {TRANSPORT})"
        )));
    }
    let min_level = req.query::<String>("logLevel").filter(|l| !l.is_empty());
    if let Some(l) = &min_level
        && !LEVELS.contains(&l.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "`logLevel` must be one of {}, got {l:?}",
            LEVELS.join(", ")
        )));
    }
    let per_page = query_u64(req, "perPage")?.unwrap_or(100);
    if per_page == 0 || per_page > MAX_PER_PAGE {
        return Err(ApiError::bad_request(format!(
            "`perPage` must be between 1 and {MAX_PER_PAGE}"
        )));
    }
    Ok(LogQuery {
        run_id,
        from_ms: query_date_ms(req, "fromDate")?,
        to_ms: query_date_ms(req, "toDate")?,
        min_level,
        filters: query_pairs(req, "filters")?,
        // Pages are 1-based here (Mastra's default page is 1); 0 is read as the first page.
        page: query_u64(req, "page")?.unwrap_or(1).max(1),
        per_page,
    })
}

async fn run(depot: &Depot, q: LogQuery) -> Result<Json<LogPage>, ApiError> {
    let store = AppState::get(depot).store.clone();
    let page = tokio::task::spawn_blocking(move || logs::query(&store, &q))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(Json(page))
}

/// Log records, newest first.
#[endpoint(tags("logs"), operation_id = "getLogs")]
pub async fn list(req: &mut Request, depot: &mut Depot) -> Result<Json<LogPage>, ApiError> {
    let q = parse_query(req, None)?;
    run(depot, q).await
}

/// The log transports that can be read.
#[endpoint(tags("logs"), operation_id = "getLogTransports")]
pub async fn transports() -> Json<Value> {
    Json(json!({ "transports": [TRANSPORT] }))
}

/// Log records of one run, newest first.
#[endpoint(tags("logs"), operation_id = "getLogsByRunId", parameters(("runId" = String, Path, description = "The run id")))]
pub async fn by_run(req: &mut Request, depot: &mut Depot) -> Result<Json<LogPage>, ApiError> {
    let run_id = req.param::<String>("runId").unwrap_or_default();
    let q = parse_query(req, Some(run_id))?;
    run(depot, q).await
}

impl salvo::oapi::ToSchema for LogPage {
    fn to_schema(
        components: &mut salvo::oapi::Components,
    ) -> salvo::oapi::RefOr<salvo::oapi::schema::Schema> {
        <Value as salvo::oapi::ToSchema>::to_schema(components)
    }
}
