//! Trace spans (the §3.18 shape): stored from OTLP/JSON ingest (`POST /api/telemetry`) and from
//! edgestra's own engines, and queried by `GET /api/telemetry`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::storage::journal::{self, Entry, Journal, SPANS};
use crate::storage::{Result, Store};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SpanRecord {
    pub id: String,
    pub parent_span_id: Option<String>,
    pub trace_id: String,
    pub name: String,
    pub scope: String,
    pub kind: i64,
    pub status: Value,
    pub events: Value,
    pub links: Value,
    pub attributes: Map<String, Value>,
    /// Microseconds since the epoch.
    pub start_time: u64,
    pub end_time: u64,
    pub other: Value,
    pub created_at: String,
}

impl Entry for SpanRecord {
    const JOURNAL: &'static Journal = &SPANS;
    fn time_ms(&self) -> u64 {
        self.start_time / 1000
    }
    fn key(&self) -> Option<&str> {
        Some(&self.trace_id)
    }
}

/// An OTLP attribute value (`{"stringValue": "x"}`, `{"intValue": "3"}`, …) as plain JSON.
fn otlp_value(v: &Value) -> Value {
    let Some(obj) = v.as_object() else {
        return v.clone();
    };
    if let Some(s) = obj.get("stringValue") {
        return s.clone();
    }
    if let Some(i) = obj.get("intValue") {
        return match i {
            Value::String(s) => s
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| i.clone()),
            other => other.clone(),
        };
    }
    if let Some(x) = obj.get("doubleValue").or_else(|| obj.get("boolValue")) {
        return x.clone();
    }
    if let Some(arr) = obj
        .get("arrayValue")
        .and_then(|a| a.get("values"))
        .and_then(Value::as_array)
    {
        return Value::Array(arr.iter().map(otlp_value).collect());
    }
    obj.values().next().cloned().unwrap_or(Value::Null)
}

fn nanos_to_micros(v: Option<&Value>) -> u64 {
    let n = match v {
        Some(Value::String(s)) => s.parse::<u128>().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0) as u128,
        _ => 0,
    };
    (n / 1000) as u64
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct IngestError(pub String);

/// Converts an OTLP/JSON export request into span records. Like Mastra, only the first
/// `resourceSpans` entry is read. Returns the spans and the number of `resourceSpans`.
pub fn from_otlp(body: &Value) -> std::result::Result<(Vec<SpanRecord>, usize), IngestError> {
    let resource_spans = match body.get("resourceSpans") {
        Some(Value::Array(a)) => a,
        None => return Ok((Vec::new(), 0)),
        Some(_) => return Err(IngestError("`resourceSpans` must be an array".into())),
    };
    let mut out = Vec::new();
    let now = super::logs::now_ms();
    let created_at = jiff::Timestamp::from_millisecond(now as i64)
        .map(|t| t.to_string())
        .unwrap_or_default();
    let scope_spans = resource_spans
        .first()
        .and_then(|r| r.get("scopeSpans"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for ss in &scope_spans {
        let scope = ss
            .pointer("/scope/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for span in ss
            .get("spans")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = |k: &str| span.get(k).and_then(Value::as_str).map(String::from);
            let (Some(id), Some(trace_id)) = (text("spanId"), text("traceId")) else {
                return Err(IngestError(
                    "every span needs `spanId` and `traceId`".into(),
                ));
            };
            let mut attributes = Map::new();
            for a in span
                .get("attributes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(k) = a.get("key").and_then(Value::as_str) {
                    attributes.insert(
                        k.to_string(),
                        a.get("value").map(otlp_value).unwrap_or(Value::Null),
                    );
                }
            }
            out.push(SpanRecord {
                id,
                parent_span_id: text("parentSpanId").filter(|p| !p.is_empty()),
                trace_id,
                name: text("name").unwrap_or_default(),
                scope: scope.clone(),
                kind: span.get("kind").and_then(Value::as_i64).unwrap_or(0),
                status: span.get("status").cloned().unwrap_or_else(|| json!({"code": 0})),
                events: span.get("events").cloned().unwrap_or_else(|| json!([])),
                links: span.get("links").cloned().unwrap_or_else(|| json!([])),
                attributes,
                start_time: nanos_to_micros(span.get("startTimeUnixNano")),
                end_time: nanos_to_micros(span.get("endTimeUnixNano")),
                other: json!({
                    "droppedAttributesCount": span.get("droppedAttributesCount").cloned().unwrap_or(json!(0)),
                    "droppedEventsCount": span.get("droppedEventsCount").cloned().unwrap_or(json!(0)),
                    "droppedLinksCount": span.get("droppedLinksCount").cloned().unwrap_or(json!(0)),
                }),
                created_at: created_at.clone(),
            });
        }
    }
    Ok((out, resource_spans.len()))
}

/// A span an engine is timing; [`OpenSpan::finish`] turns it into a record.
#[derive(Debug, Clone)]
pub struct OpenSpan {
    pub id: String,
    pub trace_id: String,
    parent: Option<String>,
    name: String,
    started_us: u64,
    pub attributes: Map<String, Value>,
}

fn now_us() -> u64 {
    (jiff::Timestamp::now().as_microsecond()).max(0) as u64
}

impl OpenSpan {
    /// Starts a span; a root span (no `parent`) starts a new trace.
    pub fn start(
        name: &str,
        parent: Option<&OpenSpan>,
        attributes: Map<String, Value>,
    ) -> OpenSpan {
        let hex = || uuid::Uuid::new_v4().simple().to_string();
        OpenSpan {
            id: hex()[..16].to_string(),
            trace_id: parent.map(|p| p.trace_id.clone()).unwrap_or_else(hex),
            parent: parent.map(|p| p.id.clone()),
            name: name.to_string(),
            started_us: now_us(),
            attributes,
        }
    }

    /// Ends the span now, with an error status when `error` is given.
    pub fn finish(self, error: Option<&str>) -> SpanRecord {
        let ended = now_us();
        SpanRecord {
            id: self.id,
            parent_span_id: self.parent,
            trace_id: self.trace_id,
            name: self.name,
            scope: "edgestra".into(),
            kind: 1,
            status: match error {
                None => json!({"code": 1}),
                Some(message) => json!({"code": 2, "message": message}),
            },
            events: json!([]),
            links: json!([]),
            attributes: self.attributes,
            start_time: self.started_us,
            end_time: ended.max(self.started_us),
            other: json!({}),
            created_at: jiff::Timestamp::from_microsecond(ended as i64)
                .map(|t| t.to_string())
                .unwrap_or_default(),
        }
    }
}

/// Which spans `GET /api/telemetry` wants.
#[derive(Debug, Clone, Default)]
pub struct SpanQuery {
    pub name: Option<String>,
    pub scope: Option<String>,
    /// `key:value` attribute matches.
    pub attributes: Vec<(String, String)>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// 0-based.
    pub page: u64,
    pub per_page: u64,
}

fn attribute_matches(span: &SpanRecord, key: &str, want: &str) -> bool {
    match span.attributes.get(key) {
        Some(Value::String(s)) => s == want,
        Some(other) => serde_json::from_str::<Value>(want).ok().as_ref() == Some(other),
        None => false,
    }
}

/// Spans matching `q`, newest first.
pub fn query(store: &Store, q: &SpanQuery) -> Result<Vec<SpanRecord>> {
    let per_page = q.per_page.max(1);
    let page = store.read_blocking(|tx| {
        journal::scan::<SpanRecord>(
            tx,
            None,
            |s| {
                q.name.as_deref().is_none_or(|n| s.name == n)
                    && q.scope.as_deref().is_none_or(|sc| s.scope == sc)
                    && q.from_ms.is_none_or(|f| s.start_time / 1000 >= f)
                    && q.to_ms.is_none_or(|t| s.start_time / 1000 <= t)
                    && q.attributes.iter().all(|(k, v)| attribute_matches(s, k, v))
            },
            q.page * per_page,
            per_page,
        )
    })?;
    Ok(page.items)
}

/// Stores spans and applies retention.
pub fn store_spans(
    store: &Store,
    spans: &[SpanRecord],
    max_rows: u64,
    max_age_ms: u64,
) -> Result<()> {
    store.write_blocking(|tx| append_spans(tx, spans, max_rows, max_age_ms))
}

/// Appends spans and applies retention inside a write transaction (so a caller can commit them
/// with its own data).
pub fn append_spans(
    tx: &redb::WriteTransaction,
    spans: &[SpanRecord],
    max_rows: u64,
    max_age_ms: u64,
) -> Result<()> {
    let min_time = super::logs::now_ms().saturating_sub(max_age_ms);
    journal::append(tx, spans)?;
    journal::prune::<SpanRecord>(tx, max_rows, min_time)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(name: &str, component: &str, start_ns: u64) -> Value {
        json!({"resourceSpans": [{"scopeSpans": [{"scope": {"name": "mastra-service"}, "spans": [{
            "spanId": format!("s-{name}"), "traceId": "t1", "parentSpanId": "", "name": name, "kind": 1,
            "attributes": [{"key": "componentName", "value": {"stringValue": component}},
                           {"key": "tokens", "value": {"intValue": "42"}}],
            "startTimeUnixNano": start_ns.to_string(), "endTimeUnixNano": (start_ns + 1_000_000).to_string()
        }]}]}]})
    }

    #[test]
    fn ingests_otlp_and_queries_by_attribute() {
        let now_ns = super::super::logs::now_ms() * 1_000_000;
        let (a, n) = from_otlp(&otlp("agent.generate", "Weather Agent", now_ns)).unwrap();
        assert_eq!(n, 1);
        assert_eq!(a[0].attributes["tokens"], 42);
        assert_eq!(a[0].parent_span_id, None);
        assert_eq!(a[0].start_time, now_ns / 1000);
        let (b, _) = from_otlp(&otlp("tool.call", "Other", now_ns + 1)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store_spans(&store, &a, 100, 3_600_000).unwrap();
        store_spans(&store, &b, 100, 3_600_000).unwrap();

        let all = query(
            &store,
            &SpanQuery {
                per_page: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["tool.call", "agent.generate"]
        );
        let q = SpanQuery {
            attributes: vec![("componentName".into(), "Weather Agent".into())],
            per_page: 10,
            ..Default::default()
        };
        assert_eq!(query(&store, &q).unwrap().len(), 1);
        let wire = serde_json::to_value(&all[0]).unwrap();
        for k in [
            "id",
            "parentSpanId",
            "traceId",
            "startTime",
            "endTime",
            "createdAt",
            "attributes",
        ] {
            assert!(wire.get(k).is_some(), "{k} missing");
        }
    }

    #[test]
    fn empty_and_malformed_bodies() {
        assert_eq!(from_otlp(&json!({"resourceSpans": []})).unwrap().1, 0);
        assert!(from_otlp(&json!({"resourceSpans": 3})).is_err());
        let bad = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]});
        assert!(from_otlp(&bad).is_err());
    }
}
