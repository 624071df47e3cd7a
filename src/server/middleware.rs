//! Hoops that run on every request: request id and logging span, body-size pre-check,
//! `runtimeContext` extraction, and optional bearer-token auth.

use std::time::Instant;

use salvo::http::header;
use salvo::http::{Method, ParseError};
use salvo::prelude::*;
use serde_json::Value;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::ApiError;
use super::request::RuntimeContext;
use super::state::AppState;

/// Honours `x-request-id` (or makes one), echoes it, and runs the request inside a span that
/// carries it, so every log line of the request can be found by it.
#[handler]
pub async fn request_span(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let state = AppState::get(depot).clone();
    let id = req
        .header::<String>("x-request-id")
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let _ = res.add_header("x-request-id", &id, true);
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", instance = state.instance, request_id = %id);
    let started = Instant::now();
    async {
        ctrl.call_next(req, depot, res).await;
        let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
        if protected(&path) {
            tracing::info!(
                method,
                path,
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
        }
    }
    .instrument(span)
    .await;
}

/// Counts the request by method, route template and status, with its latency (when metrics
/// are on). Unmatched paths share one label, so the label set stays bounded.
#[handler]
pub async fn record_metrics(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if !AppState::get(depot).metrics {
        return;
    }
    let started = Instant::now();
    ctrl.call_next(req, depot, res).await;
    let method = match *req.method() {
        Method::GET | Method::POST | Method::PUT | Method::PATCH | Method::DELETE => {
            req.method().as_str()
        }
        _ => "other",
    };
    let route = match req.matched_path() {
        "" => "unmatched",
        template => template,
    };
    let status = res.status_code.unwrap_or(StatusCode::OK).as_u16();
    crate::metrics::request_answered(method, route, status, started.elapsed());
}

/// Rejects bodies announced as larger than the limit before reading them, and for JSON
/// POST/PUT bodies puts their `runtimeContext` into the depot.
#[handler]
pub async fn body_and_context(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let limit = AppState::get(depot).body_limit;
    let announced = req.header::<u64>(header::CONTENT_LENGTH).unwrap_or(0);
    if announced > limit as u64 {
        ApiError::too_large().render(res);
        ctrl.skip_rest();
        return;
    }
    let is_json = req
        .content_type()
        .map(|m| m.essence_str().contains("json"))
        .unwrap_or(false);
    if (req.method() == Method::POST || req.method() == Method::PUT) && is_json {
        match req.payload_with_max_size(limit).await {
            Ok(bytes) => {
                // A malformed body is reported by the handler that needs it.
                if let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(bytes)
                    && let Some(Value::Object(rc)) = body.remove("runtimeContext")
                {
                    depot.insert_typed(RuntimeContext(rc));
                }
            }
            Err(ParseError::PayloadTooLarge) => {
                ApiError::too_large().render(res);
                ctrl.skip_rest();
            }
            Err(_) => {}
        }
    }
}

/// Paths of the APIs (Mastra's, A2A, OpenAI's): the API key guards them, their errors are
/// JSON, and the playground never answers them.
pub(super) fn protected(path: &str) -> bool {
    path == "/api"
        || path.starts_with("/api/")
        || path.starts_with("/a2a/")
        || super::openai::is_openai_path(path)
}

/// When an API key is configured: `Authorization: Bearer <key>` or `?apiKey=<key>` on
/// `/api/*`, `/a2a/*` and `/v1/*`. Keys are compared in constant time.
#[handler]
pub async fn auth(req: &mut Request, depot: &mut Depot, res: &mut Response, ctrl: &mut FlowCtrl) {
    let Some(expected) = AppState::get(depot).api_key.clone() else {
        return;
    };
    if req.method() == Method::OPTIONS || !protected(req.uri().path()) {
        return;
    }
    let bearer = req
        .header::<String>(header::AUTHORIZATION)
        .and_then(|h| h.strip_prefix("Bearer ").map(|t| t.trim().to_string()));
    let token = bearer.or_else(|| req.query::<String>("apiKey"));
    let error = match token {
        None => Some("Authentication required"),
        Some(t) if !bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => {
            Some("Invalid or expired token")
        }
        Some(_) => None,
    };
    if let Some(message) = error {
        ApiError::new(StatusCode::UNAUTHORIZED, message).render(res);
        ctrl.skip_rest();
    }
}

/// Turns the empty error responses salvo makes itself (no route, wrong method) into the JSON
/// error body on API paths.
#[handler]
pub async fn json_errors(req: &mut Request, res: &mut Response, ctrl: &mut FlowCtrl) {
    let code = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
    let path = req.uri().path().to_string();
    if protected(&path) || path.starts_with("/.well-known/") {
        let message = match code {
            StatusCode::NOT_FOUND => format!("Not Found: {} {path}", req.method()),
            StatusCode::METHOD_NOT_ALLOWED => {
                format!("Method {} is not allowed on {path}", req.method())
            }
            StatusCode::INTERNAL_SERVER_ERROR => {
                "the server failed while handling this request; its log has the details".to_string()
            }
            other => other.canonical_reason().unwrap_or("Error").to_string(),
        };
        let error = ApiError::new(code, message);
        if super::openai::is_openai_path(&path) {
            super::openai::render_error(res, &error);
        } else {
            error.render(res);
        }
        ctrl.skip_rest();
    }
}

#[cfg(test)]
mod tests {
    use salvo::prelude::*;
    use salvo::test::{ResponseExt, TestClient};

    #[handler]
    async fn panicking() -> &'static str {
        panic!("a handler bug")
    }

    #[handler]
    async fn fine() -> &'static str {
        "fine"
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500_and_the_service_goes_on() {
        let router = Router::new()
            .push(Router::with_path("api/boom").get(panicking))
            .push(Router::with_path("api/fine").get(fine));
        let service = super::super::hardened(Service::new(router));
        let mut res = TestClient::get("http://127.0.0.1/api/boom")
            .send(&service)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::INTERNAL_SERVER_ERROR));
        let body: serde_json::Value = res.take_json().await.unwrap();
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("failed") && !e.contains("handler bug")),
            "{body}"
        );
        let mut res = TestClient::get("http://127.0.0.1/api/fine")
            .send(&service)
            .await;
        assert_eq!(res.take_string().await.unwrap(), "fine");
    }
}
