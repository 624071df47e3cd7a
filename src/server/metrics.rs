//! `GET /metrics`: Prometheus metrics (see [`crate::metrics`]), served only with `--metrics`.
//! Like the health probes it needs no API key, so that a scraper needs no secret; it tells
//! counts and timings, never request contents.

use salvo::http::HeaderValue;
use salvo::http::header::CONTENT_TYPE;
use salvo::prelude::*;

use super::ApiError;
use super::state::AppState;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[handler]
pub async fn metrics(depot: &mut Depot, res: &mut Response) -> Result<(), ApiError> {
    let state = AppState::get(depot).clone();
    if !state.metrics {
        return Err(ApiError::not_found(
            "metrics are off; start the server with --metrics (EDGESTRA_METRICS=true)",
        ));
    }
    let path = state.store.path().to_path_buf();
    let size = tokio::task::spawn_blocking(move || std::fs::metadata(path).map(|m| m.len()))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(0);
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
    res.render(crate::metrics::encode(size));
    Ok(())
}
