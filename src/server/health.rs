//! Probes for supervisors and container runtimes: `GET /health` (liveness: the process
//! serves) and `GET /ready` (storage answers, every model's files are there and none failed
//! to load, the server is not shutting down). Both live outside `/api`, so they need no API
//! key, and both are cheap: nothing is loaded, nothing is written.

use salvo::prelude::*;
use serde_json::{Value, json};

use super::state::AppState;

/// Liveness: answering at all is the answer.
#[handler]
pub async fn health(res: &mut Response) {
    res.render(Json(json!({"status": "ok"})));
}

/// Readiness: 200 with every check `ok`, else 503 with what failed.
#[handler]
pub async fn ready(depot: &mut Depot, res: &mut Response) {
    let state = AppState::get(depot).clone();
    let (serving, body) = readiness(&state).await;
    if !serving {
        res.status_code(StatusCode::SERVICE_UNAVAILABLE);
    }
    res.render(Json(body));
}

/// The checks, and whether all passed.
async fn readiness(state: &AppState) -> (bool, Value) {
    let storage = state.store.check().await.map_err(|e| e.to_string());
    let models = state.models.not_ready();
    let stopping = *state.shutdown.borrow();
    let all_ok = storage.is_ok() && models.is_empty() && !stopping;
    let failing: serde_json::Map<String, Value> = models
        .into_iter()
        .map(|(name, why)| (name, Value::String(why)))
        .collect();
    let body = json!({
        "status": if all_ok { "ready" } else { "not ready" },
        "checks": {
            "storage": match &storage {
                Ok(()) => Value::from("ok"),
                Err(e) => Value::from(e.as_str()),
            },
            "models": if failing.is_empty() { Value::from("ok") } else { Value::Object(failing) },
            "shuttingDown": stopping,
        }
    });
    (all_ok, body)
}
