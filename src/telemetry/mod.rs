//! Logs and traces kept in storage. A tracing [`CaptureLayer`] turns log events into
//! [`LogRecord`]s and hands them to the writer thread of the server instance they belong to
//! (found through the `instance` field of an enclosing span), which appends them in batches and
//! applies retention. Spans are stored by the same journal machinery (see [`spans`]).

pub mod logs;
pub mod spans;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{OnceLock, RwLock};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

pub use logs::LogRecord;

use crate::config::LogsConfig;
use crate::storage::{Store, journal};

/// Records waiting for the writer; beyond this, new records are dropped (and counted) rather
/// than slowing down the request that logs them.
const QUEUE: usize = 8192;
const BATCH: usize = 512;

struct Sink {
    tx: SyncSender<LogRecord>,
    min_level: Level,
}

fn sinks() -> &'static RwLock<HashMap<u64, Sink>> {
    static SINKS: OnceLock<RwLock<HashMap<u64, Sink>>> = OnceLock::new();
    SINKS.get_or_init(Default::default)
}

static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Parses a level name (`trace`, `debug`, `info`, `warn`, `error`).
pub fn parse_level(name: &str) -> Option<Level> {
    name.parse().ok()
}

/// The storage side of one server instance's logs; dropping it stops the writer after it has
/// written everything it was given.
pub struct LogCapture {
    pub instance: u64,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl LogCapture {
    /// Starts the writer thread for `store`, keeping records at `cfg.level` and above.
    pub fn start(store: Store, cfg: &LogsConfig) -> LogCapture {
        let instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = sync_channel(QUEUE);
        let min_level = parse_level(&cfg.level).unwrap_or(Level::INFO);
        sinks()
            .write()
            .expect("sink registry")
            .insert(instance, Sink { tx, min_level });
        let retention = Retention {
            max_rows: cfg.max_rows,
            max_age: Duration::from_secs(cfg.max_age_hours * 3600),
        };
        let writer = std::thread::Builder::new()
            .name(format!("edgestra-logs-{instance}"))
            .spawn(move || write_loop(store, rx, retention))
            .expect("spawn log writer");
        LogCapture {
            instance,
            writer: Some(writer),
        }
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        // Removing the sender closes the channel; the writer drains it and exits.
        sinks()
            .write()
            .expect("sink registry")
            .remove(&self.instance);
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

#[derive(Clone, Copy)]
struct Retention {
    max_rows: u64,
    max_age: Duration,
}

fn write_loop(store: Store, rx: Receiver<LogRecord>, retention: Retention) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_prune = Instant::now() - Duration::from_secs(3600);
    loop {
        let closed = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(r) => {
                batch.push(r);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(_) => break,
                    }
                }
                false
            }
            Err(RecvTimeoutError::Timeout) => false,
            Err(RecvTimeoutError::Disconnected) => true,
        };
        let prune_due = last_prune.elapsed() > Duration::from_secs(1) || closed;
        if !batch.is_empty() || prune_due {
            let items = std::mem::take(&mut batch);
            let min_time = logs::now_ms().saturating_sub(retention.max_age.as_millis() as u64);
            let result = store.write_blocking(|tx| {
                journal::append(tx, &items)?;
                if prune_due {
                    journal::prune::<LogRecord>(tx, retention.max_rows, min_time)?;
                }
                Ok(())
            });
            if prune_due {
                last_prune = Instant::now();
            }
            if let Err(e) = result {
                // Logging the failure would feed this very loop; stderr is the honest place.
                eprintln!("edgestra: could not store {} log records: {e}", items.len());
            }
        }
        if closed {
            return;
        }
    }
}

/// Fields recorded on a span, kept so events inside it can inherit `instance`, `run_id`, …
struct SpanFields(Map<String, Value>);

#[derive(Default)]
struct JsonVisitor(Map<String, Value>);

impl Visit for JsonVisitor {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(
            field.name().to_string(),
            Value::String(format!("{value:?}")),
        );
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0
            .insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), Value::from(value));
    }
}

/// The tracing layer that feeds stored logs. Install it once per process with [`install`].
pub struct CaptureLayer;

impl<S> tracing_subscriber::Layer<S> for CaptureLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut v = JsonVisitor::default();
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(v.0));
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        if let Some(span) = ctx.span(id) {
            let mut v = JsonVisitor::default();
            values.record(&mut v);
            let mut ext = span.extensions_mut();
            if let Some(fields) = ext.get_mut::<SpanFields>() {
                fields.0.extend(v.0);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    fields.extend(f.0.clone());
                }
            }
        }
        let mut v = JsonVisitor::default();
        event.record(&mut v);
        fields.extend(v.0);
        let sinks = sinks().read().expect("sink registry");
        let sink = match fields.get("instance").and_then(Value::as_u64) {
            Some(i) => sinks.get(&i),
            // Outside any server's span (start-up, shutdown) the only running server owns it.
            None if sinks.len() == 1 => sinks.values().next(),
            None => None,
        };
        let Some(sink) = sink else { return };
        if level > sink.min_level {
            return;
        }
        let record = LogRecord::from_event(level, event.metadata().target(), fields);
        if let Err(TrySendError::Full(_)) = sink.tx.try_send(record) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How many log records were dropped because the writer could not keep up.
pub fn dropped_records() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Stdout log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Installs the process-wide subscriber: human-readable (or JSON) stdout logs filtered by
/// `RUST_LOG` (default `info`), plus the capture layer. Safe to call more than once.
pub fn install(stdout: Option<LogFormat>) {
    use tracing_subscriber::prelude::*;
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let filter = || {
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        };
        let capture = CaptureLayer.with_filter(tracing_subscriber::filter::filter_fn(|m| {
            // Our own records and warnings from libraries; not every library's debug chatter.
            m.target().starts_with("edgestra") || *m.level() <= Level::WARN
        }));
        let registry = tracing_subscriber::registry().with(capture);
        let result = match stdout {
            Some(LogFormat::Pretty) => registry
                .with(tracing_subscriber::fmt::layer().with_filter(filter()))
                .try_init(),
            Some(LogFormat::Json) => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_filter(filter()),
                )
                .try_init(),
            None => registry.try_init(),
        };
        let _ = result;
    });
}
