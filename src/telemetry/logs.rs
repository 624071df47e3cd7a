//! Stored log records (Mastra's `BaseLogMessage` shape) and the queries `/api/logs` answers.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tracing::Level;

use crate::storage::journal::{self, Entry, Journal, LOGS};
use crate::storage::{Result, Store};

/// The name of the one log transport edgestra has: its own storage.
pub const TRANSPORT: &str = "redb";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    pub msg: String,
    pub level: String,
    pub time: String,
    #[serde(rename = "timeMs")]
    pub time_ms: u64,
    #[serde(rename = "runId", skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(rename = "requestId", skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    pub name: String,
    pub target: String,
    pub pid: u32,
    pub hostname: String,
    /// The remaining structured fields of the event and its spans.
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Entry for LogRecord {
    const JOURNAL: &'static Journal = &LOGS;
    fn time_ms(&self) -> u64 {
        self.time_ms
    }
    fn key(&self) -> Option<&str> {
        self.run_id.as_deref()
    }
}

pub fn now_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond().max(0) as u64
}

fn iso(ms: u64) -> String {
    jiff::Timestamp::from_millisecond(ms as i64)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::fs::read_to_string("/etc/hostname"))
            .map(|s| s.trim().to_string())
            .ok()
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into())
    })
}

fn take_string(fields: &mut Map<String, Value>, keys: &[&str]) -> Option<String> {
    let mut found = None;
    for k in keys {
        if let Some(v) = fields.remove(*k) {
            found = found.or(match v {
                Value::String(s) => Some(s),
                other => Some(other.to_string()),
            });
        }
    }
    found
}

impl LogRecord {
    pub(super) fn from_event(
        level: Level,
        target: &str,
        mut fields: Map<String, Value>,
    ) -> LogRecord {
        fields.remove("instance");
        let msg = take_string(&mut fields, &["message"]).unwrap_or_default();
        let run_id = take_string(&mut fields, &["run_id", "runId"]);
        let request_id = take_string(&mut fields, &["request_id", "requestId"]);
        let time_ms = now_ms();
        LogRecord {
            msg,
            level: level.as_str().to_ascii_lowercase(),
            time: iso(time_ms),
            time_ms,
            run_id,
            request_id,
            name: "edgestra".into(),
            target: target.to_string(),
            pid: std::process::id(),
            hostname: hostname().to_string(),
            fields,
        }
    }

    fn level_rank(&self) -> u8 {
        level_rank(&self.level)
    }
}

/// trace < debug < info < warn < error; unknown levels rank as info.
fn level_rank(level: &str) -> u8 {
    match level {
        "trace" => 0,
        "debug" => 1,
        "warn" => 3,
        "error" => 4,
        _ => 2,
    }
}

/// Which records `/api/logs` wants.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub run_id: Option<String>,
    pub from_ms: Option<u64>,
    pub to_ms: Option<u64>,
    /// Keep records at this level and above (`silent` keeps none).
    pub min_level: Option<String>,
    /// `key:value` pairs a record's fields must match (compared as text).
    pub filters: Vec<(String, String)>,
    /// 1-based.
    pub page: u64,
    pub per_page: u64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogPage {
    pub logs: Vec<LogRecord>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
    pub has_more: bool,
}

fn field_text(record: &LogRecord, key: &str) -> Option<String> {
    let v = serde_json::to_value(record).ok()?;
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Runs a query, newest records first.
pub fn query(store: &Store, q: &LogQuery) -> Result<LogPage> {
    let min_rank = q.min_level.as_deref().map(|l| {
        if l == "silent" {
            u8::MAX
        } else {
            level_rank(l)
        }
    });
    let page = q.page.max(1);
    let per_page = q.per_page.max(1);
    let result = store.read_blocking(|tx| {
        journal::scan::<LogRecord>(
            tx,
            q.run_id.as_deref(),
            |r| {
                q.from_ms.is_none_or(|f| r.time_ms >= f)
                    && q.to_ms.is_none_or(|t| r.time_ms <= t)
                    && min_rank.is_none_or(|m| r.level_rank() >= m)
                    && q.filters
                        .iter()
                        .all(|(k, v)| field_text(r, k).as_deref() == Some(v.as_str()))
            },
            (page - 1) * per_page,
            per_page,
        )
    })?;
    Ok(LogPage {
        has_more: page * per_page < result.total,
        logs: result.items,
        total: result.total,
        page,
        per_page,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(level: Level, msg: &str, run: Option<&str>) -> LogRecord {
        let mut fields = Map::new();
        fields.insert("message".into(), Value::from(msg));
        fields.insert("tool".into(), Value::from("calc"));
        if let Some(r) = run {
            fields.insert("run_id".into(), Value::from(r));
        }
        LogRecord::from_event(level, "edgestra::test", fields)
    }

    #[test]
    fn records_have_the_mastra_shape() {
        let r = rec(Level::WARN, "hello", Some("run-1"));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["msg"], "hello");
        assert_eq!(v["level"], "warn");
        assert_eq!(v["runId"], "run-1");
        assert_eq!(v["tool"], "calc");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
        assert!(v.get("message").is_none() && v.get("run_id").is_none());
        let back: LogRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn queries_filter_by_run_level_fields_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let items = vec![
            rec(Level::INFO, "a", Some("r1")),
            rec(Level::ERROR, "b", Some("r1")),
            rec(Level::DEBUG, "c", None),
            rec(Level::WARN, "d", Some("r2")),
        ];
        store
            .write_blocking(|tx| journal::append(tx, &items))
            .unwrap();
        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery {
                page: 1,
                per_page: 100,
                ..Default::default()
            };
            f(&mut q);
            query(&store, &q).unwrap()
        };
        let msgs = |p: LogPage| p.logs.into_iter().map(|l| l.msg).collect::<Vec<_>>();
        assert_eq!(msgs(q(&|_| {})), ["d", "c", "b", "a"]);
        assert_eq!(msgs(q(&|q| q.run_id = Some("r1".into()))), ["b", "a"]);
        assert_eq!(msgs(q(&|q| q.min_level = Some("warn".into()))), ["d", "b"]);
        assert!(msgs(q(&|q| q.min_level = Some("silent".into()))).is_empty());
        assert_eq!(
            msgs(q(&|q| q.filters = vec![("runId".into(), "r2".into())])),
            ["d"]
        );
        let p = q(&|q| {
            q.page = 2;
            q.per_page = 3
        });
        assert_eq!((p.total, p.has_more, p.logs.len()), (4, false, 1));
        let p = q(&|q| q.per_page = 3);
        assert!(p.has_more);
    }
}
