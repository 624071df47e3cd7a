//! Reading what a request carries: the JSON body (whatever the Content-Type, within the size
//! limit), query parameters with typed errors, and the `runtimeContext`.

use salvo::http::ParseError;
use salvo::prelude::*;
use serde_json::{Map, Value};

use super::ApiError;
use super::state::AppState;

/// The request's `runtimeContext` object, extracted once by the context hoop.
#[derive(Debug, Clone, Default)]
pub struct RuntimeContext(pub Map<String, Value>);

/// Reads the body as JSON. An empty body is `null`; a malformed one is a 400.
pub async fn json_body(req: &mut Request, depot: &Depot) -> Result<Value, ApiError> {
    let limit = AppState::get(depot).body_limit;
    let bytes = match req.payload_with_max_size(limit).await {
        Ok(b) => b,
        Err(ParseError::PayloadTooLarge) => return Err(ApiError::too_large()),
        Err(e) => {
            return Err(ApiError::bad_request(format!(
                "cannot read the request body: {e}"
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON in request body: {e}")))
}

/// The body as a JSON object (an empty body is an empty object).
pub async fn json_object(req: &mut Request, depot: &Depot) -> Result<Map<String, Value>, ApiError> {
    match json_body(req, depot).await? {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        other => Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            json_type(&other)
        ))),
    }
}

pub fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// JavaScript truthiness, which Mastra's "required" checks use.
pub fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => false,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// A query parameter parsed as a number, with a 400 naming it when it is not one.
pub fn query_u64(req: &Request, name: &str) -> Result<Option<u64>, ApiError> {
    match req.query::<String>(name) {
        None => Ok(None),
        Some(s) if s.is_empty() => Ok(None),
        Some(s) => s.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "query parameter `{name}` must be a non-negative integer, got {s:?}"
            ))
        }),
    }
}

/// All values of a repeatable query parameter.
pub fn query_all(req: &Request, name: &str) -> Vec<String> {
    req.queries().get_vec(name).cloned().unwrap_or_default()
}

/// A date query parameter (ISO 8601, or milliseconds since the epoch) as epoch milliseconds.
pub fn query_date_ms(req: &Request, name: &str) -> Result<Option<u64>, ApiError> {
    let Some(s) = req.query::<String>(name).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    parse_date_ms(&s).map(Some).ok_or_else(|| {
        ApiError::bad_request(format!("query parameter `{name}` is not a date: {s:?}"))
    })
}

pub fn parse_date_ms(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return u64::try_from(ts.as_millisecond()).ok();
    }
    // A plain date (2025-08-06) means its start, in UTC.
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .and_then(|z| u64::try_from(z.timestamp().as_millisecond()).ok())
}

/// `key:value` pairs of a repeatable query parameter.
pub fn query_pairs(req: &Request, name: &str) -> Result<Vec<(String, String)>, ApiError> {
    query_all(req, name)
        .into_iter()
        .map(|p| match p.split_once(':') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(ApiError::bad_request(format!(
                "query parameter `{name}` must look like key:value, got {p:?}"
            ))),
        })
        .collect()
}

pub fn runtime_context(depot: &Depot) -> Map<String, Value> {
    depot
        .get_typed::<RuntimeContext>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// Marks a deprecated alias (spec §1.4) and names the route that replaces it.
pub fn mark_deprecated(res: &mut salvo::Response, successor: &str) {
    use salvo::http::HeaderValue;
    let headers = res.headers_mut();
    headers.insert("deprecation", HeaderValue::from_static("true"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "299 - \"This endpoint is deprecated, use {successor} instead\""
    )) {
        headers.insert("warning", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("<{successor}>; rel=\"successor-version\"")) {
        headers.insert("link", v);
    }
}
