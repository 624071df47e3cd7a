//! The durable workflow engine.
//!
//! A run is interpreted from the start of its definition every time it is (re)started, but each
//! leaf step's outcome is recorded in the run's state (in redb) the moment it completes, and a
//! recorded step is never executed again: on a replay its recorded output is used. So a run
//! that was interrupted (a crash, a restart, a suspension, a wait) continues from its last
//! completed step; a sleep keeps the wake time recorded when it started; a suspended step is
//! completed by the resume data recorded for it; an awaited event by the event data. Steps inside
//! loops and `foreach` are recorded under their iteration, and steps of a nested workflow under
//! the key of the step that runs it, so replays follow the same path.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use futures_util::future::{BoxFuture, join_all};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::definition::{Action, Duration, Jq, LoopKind, Step};
use super::resume::{resumption, step_path};
use super::{Workflow, Workflows};
use crate::storage::collection::{self, Page, Record, WORKFLOW_RUNS, Window};
use crate::storage::{StorageError, Store};
use crate::telemetry::spans::{OpenSpan, SpanRecord, append_spans};

/// Most iterations a loop may make (a guard against conditions that never change).
pub const MAX_ITERATIONS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Running,
    Waiting,
    Suspended,
    Success,
    Failed,
    Canceled,
}

impl Status {
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Success | Status::Failed | Status::Canceled)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Waiting => "waiting",
            Status::Suspended => "suspended",
            Status::Success => "success",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }
}

/// Everything a run has recorded; persisted at every step boundary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: String,
    pub workflow: String,
    pub resource_id: Option<String>,
    pub status: Status,
    pub input: Value,
    /// Step results by step id (§3.6), the last iteration's for steps in loops.
    pub steps: Map<String, Value>,
    /// Outputs of completed steps by their execution key (step id with iteration path).
    pub memo: Map<String, Value>,
    /// Wake times of sleeps and event timeouts, by execution key.
    pub timers: Map<String, Value>,
    /// Resume data by the execution key of the suspended step.
    pub resumes: Map<String, Value>,
    /// Events delivered and not yet consumed, by event name.
    pub events: Map<String, Value>,
    /// Where the run stopped: the execution key of the (first) suspended or waiting step.
    pub halted_at: Option<String>,
    /// Suspended steps by execution key: `{path, resumeSchema}`.
    #[serde(default)]
    pub suspended: Map<String, Value>,
    /// Step results inside nested workflows, by the execution key of the workflow step.
    #[serde(default)]
    pub nested: BTreeMap<String, Map<String, Value>>,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub runtime_context: Map<String, Value>,
    pub created_ms: u64,
    pub updated_ms: u64,
}

impl Record for RunState {
    const COLLECTION: &'static collection::Collection = &WORKFLOW_RUNS;
    fn id(&self) -> &str {
        &self.run_id
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![(self.workflow.clone(), self.created_ms)]
    }
}

pub fn now_ms() -> u64 {
    jiff::Timestamp::now().as_millisecond().max(0) as u64
}

impl RunState {
    pub fn new(
        workflow: &str,
        run_id: String,
        input: Value,
        resource_id: Option<String>,
    ) -> RunState {
        let now = now_ms();
        RunState {
            run_id,
            workflow: workflow.to_string(),
            resource_id,
            status: Status::Pending,
            input,
            steps: Map::new(),
            memo: Map::new(),
            timers: Map::new(),
            resumes: Map::new(),
            events: Map::new(),
            halted_at: None,
            suspended: Map::new(),
            nested: BTreeMap::new(),
            result: None,
            error: None,
            runtime_context: Map::new(),
            created_ms: now,
            updated_ms: now,
        }
    }
}

/// Reads a run.
pub fn load(store: &Store, run_id: &str) -> Result<Option<RunState>, StorageError> {
    store.read_blocking(|tx| collection::get::<RunState>(tx, run_id))
}

/// Writes a run (durably: the commit returns after the data is on disk).
pub fn save(store: &Store, state: &RunState) -> Result<(), StorageError> {
    store.write_blocking(|tx| collection::put(tx, state).map(|_| ()))
}

/// A page of a workflow's runs (those created within `window`'s times and, when given, of
/// `resource`), read without loading the others.
pub fn runs_page(
    store: &Store,
    workflow: &str,
    window: Window,
    resource: Option<&str>,
) -> Result<Page<RunState>, StorageError> {
    let of_resource = |r: &RunState| r.resource_id.as_deref() == resource;
    let keep: Option<&dyn Fn(&RunState) -> bool> = match resource {
        Some(_) => Some(&of_resource),
        None => None,
    };
    store.read_blocking(|tx| collection::page_by(tx, 0, workflow, &window, keep))
}

/// Why interpretation stopped before the end.
#[derive(Debug, Clone, PartialEq)]
pub enum Halt {
    Suspended { key: String, payload: Value },
    Waiting { key: String },
    Failed(String),
    Canceled,
}

/// What a leaf step needs from the rest of the server.
#[async_trait::async_trait]
pub trait StepServices: Send + Sync {
    async fn call_tool(&self, tool: &str, input: Value, run_id: &str) -> Result<Value, String>;
    async fn call_agent(
        &self,
        agent: &str,
        prompt: String,
        output_schema: Option<Value>,
        run_id: &str,
    ) -> Result<Value, String>;
}

/// Called after each step event (for watch/stream feeds): the step's id (`outer.inner` inside a
/// nested workflow), its §3.6 result and the run's state.
pub type OnStep = dyn Fn(&str, &Value, &RunState) + Send + Sync;

/// What an interpretation pass works with besides the run itself.
pub struct Environment<'a> {
    /// Every workflow of the project (nested workflow steps run them).
    pub workflows: &'a Workflows,
    pub store: Store,
    pub services: &'a dyn StepServices,
    /// Trace spans are stored with this retention (rows, age in ms); `None` records none.
    pub span_retention: Option<(u64, u64)>,
}

/// How deep workflows may nest (a guard against a workflow that includes itself).
pub const MAX_NESTING: usize = 8;

/// The workflow a step sequence belongs to: the run's own, or a nested one.
struct Frame<'a> {
    workflow: &'a Workflow,
    /// Prefix of the execution keys of its steps: "" at the top, `<workflow step key>>` inside.
    keys: String,
    /// Where its step results are kept: the run's `steps`, or `nested[<workflow step key>]`.
    scope: Option<String>,
    input: Value,
    /// Prefix of step ids in events: "" at the top, `outer.` inside.
    label: String,
    depth: usize,
}

/// One interpretation pass over a run. Branches of `parallel`, `branch` and `foreach` run
/// concurrently and share the run's state.
pub struct Interpreter<'a> {
    env: Environment<'a>,
    workflow: &'a Workflow,
    state: Mutex<RunState>,
    /// Saves happen one at a time, each with the state as it is then, so the stored state
    /// only ever grows.
    saving: tokio::sync::Mutex<()>,
    cancel: watch::Receiver<bool>,
    on_step: &'a OnStep,
    root: OpenSpan,
    spans: Mutex<Vec<SpanRecord>>,
}

/// Awaits a tool or agent call, giving up on it when the run is canceled.
async fn until_canceled(
    mut cancel: watch::Receiver<bool>,
    call: impl std::future::Future<Output = Result<Value, String>>,
) -> Result<Value, Halt> {
    tokio::select! {
        r = call => r.map_err(Halt::Failed),
        _ = cancel.wait_for(|c| *c) => Err(Halt::Canceled),
    }
}

fn truthy(v: &Value) -> bool {
    !matches!(v, Value::Null | Value::Bool(false))
}

fn eval(expr: &Jq, env: &Value) -> Result<Value, Halt> {
    expr.eval(env)
        .map_err(|e| Halt::Failed(format!("`{}`: {e}", expr.source())))
}

/// Checks `value` against an optional JSON Schema; `what` names it in the error.
pub fn conforms(schema: Option<&Value>, value: &Value, what: &str) -> Result<(), Halt> {
    let Some(schema) = schema else { return Ok(()) };
    let compiled = crate::tools::schema::Schema::compile(schema.clone())
        .map_err(|e| Halt::Failed(format!("{what}: the schema does not compile: {e}")))?;
    compiled
        .validate(value)
        .map_err(|problems| Halt::Failed(format!("{what}: {}", problems.join("; "))))
}

/// The halt that decides a group of concurrent branches: cancel, then failure, then suspension,
/// then waiting.
fn gather(results: Vec<Result<Value, Halt>>) -> Result<Vec<Value>, Halt> {
    fn rank(h: &Halt) -> u8 {
        match h {
            Halt::Canceled => 0,
            Halt::Failed(_) => 1,
            Halt::Suspended { .. } => 2,
            Halt::Waiting { .. } => 3,
        }
    }
    let mut out = Vec::with_capacity(results.len());
    let mut worst: Option<Halt> = None;
    for r in results {
        match r {
            Ok(v) => out.push(v),
            Err(h) => {
                if worst.as_ref().is_none_or(|w| rank(&h) < rank(w)) {
                    worst = Some(h);
                }
            }
        }
    }
    match worst {
        Some(h) => Err(h),
        None => Ok(out),
    }
}

/// The results map of a frame inside the run's state.
fn scope_steps<'s>(state: &'s mut RunState, scope: &Option<String>) -> &'s mut Map<String, Value> {
    match scope {
        None => &mut state.steps,
        Some(k) => state.nested.entry(k.clone()).or_default(),
    }
}

impl<'a> Interpreter<'a> {
    pub fn new(
        env: Environment<'a>,
        workflow: &'a Workflow,
        state: RunState,
        cancel: watch::Receiver<bool>,
        on_step: &'a OnStep,
    ) -> Interpreter<'a> {
        let mut attrs = Map::new();
        attrs.insert("runId".into(), json!(state.run_id));
        attrs.insert("workflowId".into(), json!(workflow.key));
        Interpreter {
            root: OpenSpan::start(&format!("workflow.{}", workflow.key), None, attrs),
            env,
            workflow,
            state: Mutex::new(state),
            saving: tokio::sync::Mutex::new(()),
            cancel,
            on_step,
            spans: Mutex::new(Vec::new()),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut RunState) -> R) -> R {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    fn canceled(&self) -> bool {
        *self.cancel.borrow()
    }

    fn run_id(&self) -> String {
        self.with_state(|s| s.run_id.clone())
    }

    async fn persist(&self) -> Result<(), Halt> {
        let _one_at_a_time = self.saving.lock().await;
        let state = self.with_state(|s| {
            s.updated_ms = now_ms();
            s.clone()
        });
        let store = self.env.store.clone();
        tokio::task::spawn_blocking(move || save(&store, &state))
            .await
            .map_err(|e| Halt::Failed(e.to_string()))?
            .map_err(|e| Halt::Failed(format!("the run could not be saved: {e}")))
    }

    fn emit(&self, frame: &Frame<'_>, id: &str, result: &Value) {
        let label = format!("{}{id}", frame.label);
        let guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (self.on_step)(&label, result, &guard);
    }

    fn env(&self, frame: &Frame<'_>, prev: &Value, extra: &[(&str, Value)]) -> Value {
        let outputs: Map<String, Value> = self.with_state(|s| {
            scope_steps(s, &frame.scope)
                .iter()
                .filter_map(|(k, r)| r.get("output").map(|o| (k.clone(), o.clone())))
                .collect()
        });
        let mut env = json!({"input": frame.input, "prev": prev, "steps": outputs});
        for (k, v) in extra {
            env[*k] = v.clone();
        }
        env
    }

    /// Puts a step's result in its frame (and a success's output under its execution key),
    /// saves the run and tells the watchers.
    async fn record(
        &self,
        frame: &Frame<'_>,
        id: &str,
        key: &str,
        result: Value,
    ) -> Result<(), Halt> {
        self.with_state(|s| {
            if result["status"] == "success" {
                s.memo.insert(key.to_string(), result["output"].clone());
            }
            scope_steps(s, &frame.scope).insert(id.to_string(), result.clone());
        });
        self.persist().await?;
        let run_id = self.run_id();
        tracing::info!(run_id = %run_id, workflow = %frame.workflow.key, step = id, status = result["status"].as_str().unwrap_or(""), "workflow step");
        self.emit(frame, id, &result);
        Ok(())
    }

    /// Sleeps until `wake_ms`, waking early when the run is canceled.
    async fn sleep_until(&self, wake_ms: u64) -> Result<(), Halt> {
        let wait = wake_ms.saturating_sub(now_ms());
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(StdDuration::from_millis(wait)) => Ok(()),
            _ = cancel.wait_for(|c| *c) => Err(Halt::Canceled),
        }
    }

    /// The wake time recorded for `key`, recording `compute()` the first time.
    async fn timer(&self, key: &str, compute: impl FnOnce() -> u64) -> Result<u64, Halt> {
        let recorded = self.with_state(|s| s.timers.get(key).and_then(Value::as_u64));
        if let Some(t) = recorded {
            return Ok(t);
        }
        let t = compute();
        self.with_state(|s| s.timers.insert(key.to_string(), json!(t)));
        self.persist().await?;
        Ok(t)
    }

    /// Runs one leaf step (or replays its recorded output).
    async fn leaf(
        &self,
        frame: &Frame<'_>,
        key: &str,
        step: &Step,
        prev: &Value,
        item: Option<&Value>,
    ) -> Result<Value, Halt> {
        let Step::Leaf {
            id,
            action,
            input_schema,
            output_schema,
            ..
        } = step
        else {
            return Err(Halt::Failed("not a leaf step".into()));
        };
        if let Some(out) = self.with_state(|s| s.memo.get(key).cloned()) {
            return Ok(out);
        }
        if self.canceled() {
            return Err(Halt::Canceled);
        }
        let resumed = self.with_state(|s| {
            let resume = s.resumes.get(key).cloned();
            resumption(scope_steps(s, &frame.scope).get(id), resume)
        });
        let started = now_ms();
        // Every result of this step carries its resumption, if it was resumed.
        let result_of = |fields: Value| {
            let mut result = fields;
            if let (Some(r), Some(extra)) = (result.as_object_mut(), &resumed) {
                for (k, v) in extra {
                    r.insert(k.clone(), v.clone());
                }
            }
            result
        };
        let running =
            result_of(json!({"status": "running", "payload": prev, "startedAt": started}));
        self.emit(frame, id, &running);
        let mut attrs = Map::new();
        attrs.insert("runId".into(), json!(self.run_id()));
        attrs.insert("workflowId".into(), json!(frame.workflow.key));
        attrs.insert("stepId".into(), json!(format!("{}{id}", frame.label)));
        let mut span = OpenSpan::start(&format!("step.{id}"), Some(&self.root), attrs);
        let outcome = async {
            conforms(input_schema.as_ref(), prev, "Invalid step input")?;
            let output = self
                .act(frame, key, id, action, prev, item, started)
                .await?;
            conforms(output_schema.as_ref(), &output, "Invalid step output")?;
            Ok(output)
        }
        .await;
        let status = match &outcome {
            Ok(_) => "success",
            Err(Halt::Failed(_)) => "failed",
            Err(Halt::Suspended { .. }) => "suspended",
            Err(Halt::Waiting { .. }) => "waiting",
            Err(Halt::Canceled) => "canceled",
        };
        span.attributes.insert("status".into(), json!(status));
        let error = match &outcome {
            Err(Halt::Failed(e)) => Some(e.as_str()),
            _ => None,
        };
        self.spans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(span.finish(error));
        match outcome {
            Ok(output) => {
                let result = result_of(
                    json!({"status": "success", "payload": prev, "output": output, "startedAt": started, "endedAt": now_ms()}),
                );
                self.record(frame, id, key, result).await?;
                Ok(output)
            }
            Err(Halt::Failed(e)) => {
                let result = result_of(
                    json!({"status": "failed", "payload": prev, "error": e, "startedAt": started, "endedAt": now_ms()}),
                );
                self.fail_step(frame, id, result, e)
            }
            Err(Halt::Canceled) => {
                // The step was stopped while it ran: its result says so, so watchers and
                // streams see it end rather than run forever.
                let result = result_of(
                    json!({"status": "canceled", "payload": prev, "startedAt": started, "endedAt": now_ms()}),
                );
                self.record(frame, id, key, result).await?;
                Err(Halt::Canceled)
            }
            Err(other) => Err(other),
        }
    }

    /// What a leaf step does; suspensions and waits are recorded here.
    #[allow(clippy::too_many_arguments)]
    async fn act(
        &self,
        frame: &Frame<'_>,
        key: &str,
        id: &str,
        action: &Action,
        prev: &Value,
        item: Option<&Value>,
        started: u64,
    ) -> Result<Value, Halt> {
        let extra: Vec<(&str, Value)> = item.map(|i| ("item", i.clone())).into_iter().collect();
        let env = self.env(frame, prev, &extra);
        match action {
            Action::Map(e) => eval(e, &env),
            Action::Tool { tool, input } => {
                let input = match input {
                    Some(e) => eval(e, &env)?,
                    None => prev.clone(),
                };
                let run_id = self.run_id();
                let call = self.env.services.call_tool(tool, input, &run_id);
                until_canceled(self.cancel.clone(), call).await
            }
            Action::Agent {
                agent,
                prompt,
                output_schema,
            } => {
                let text = match eval(prompt, &env)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                let run_id = self.run_id();
                let call =
                    self.env
                        .services
                        .call_agent(agent, text, output_schema.clone(), &run_id);
                until_canceled(self.cancel.clone(), call).await
            }
            Action::Workflow { workflow, input } => {
                let input = match input {
                    Some(e) => eval(e, &env)?,
                    None => prev.clone(),
                };
                self.nested(frame, key, id, workflow, input, prev, started)
                    .await
            }
            Action::Sleep(d) => {
                let ms = match d {
                    Duration::Ms(ms) => *ms,
                    Duration::Expr(e) => eval(e, &env)?.as_f64().unwrap_or(0.0).max(0.0) as u64,
                };
                let wake = self.timer(key, || now_ms() + ms).await?;
                self.sleep_until(wake).await?;
                Ok(prev.clone())
            }
            Action::SleepUntil(e) => {
                let wake = match eval(e, &env)? {
                    Value::Number(n) => n.as_f64().unwrap_or(0.0).max(0.0) as u64,
                    Value::String(s) => s
                        .parse::<jiff::Timestamp>()
                        .map(|t| t.as_millisecond().max(0) as u64)
                        .map_err(|err| {
                            Halt::Failed(format!("sleep_until: {s:?} is not a date: {err}"))
                        })?,
                    other => {
                        return Err(Halt::Failed(format!("sleep_until: {other} is not a date")));
                    }
                };
                let wake = self.timer(key, || wake).await?;
                self.sleep_until(wake).await?;
                Ok(prev.clone())
            }
            Action::WaitForEvent { event, timeout_ms } => {
                if let Some(data) = self.with_state(|s| s.events.remove(event)) {
                    return Ok(data);
                }
                if let Some(t) = timeout_ms {
                    let deadline = self.timer(key, || now_ms() + t).await?;
                    if now_ms() >= deadline {
                        return Err(Halt::Failed(format!(
                            "timed out waiting for event `{event}`"
                        )));
                    }
                }
                let waiting = json!({"status": "waiting", "payload": prev, "startedAt": started});
                self.halt_at(frame, id, key, waiting, None).await?;
                Err(Halt::Waiting {
                    key: key.to_string(),
                })
            }
            Action::Suspend {
                payload,
                output,
                resume_schema,
            } => {
                if let Some(resume) = self.with_state(|s| s.resumes.get(key).cloned()) {
                    return match output {
                        Some(e) => eval(e, &self.env(frame, prev, &[("resume", resume)])),
                        None => Ok(resume),
                    };
                }
                let payload = match payload {
                    Some(e) => eval(e, &env)?,
                    None => json!({}),
                };
                let suspended = json!({"status": "suspended", "payload": prev, "suspendPayload": payload, "startedAt": started, "suspendedAt": now_ms()});
                let schema = resume_schema.clone().unwrap_or(Value::Null);
                self.halt_at(frame, id, key, suspended, Some(schema))
                    .await?;
                Err(Halt::Suspended {
                    key: key.to_string(),
                    payload,
                })
            }
        }
    }

    /// Records a step that stops the run: waiting (no resume schema) or suspended.
    async fn halt_at(
        &self,
        frame: &Frame<'_>,
        id: &str,
        key: &str,
        result: Value,
        resume_schema: Option<Value>,
    ) -> Result<(), Halt> {
        self.with_state(|s| {
            if s.halted_at.is_none() {
                s.halted_at = Some(key.to_string());
            }
            if let Some(schema) = resume_schema {
                s.suspended.insert(
                    key.to_string(),
                    json!({"path": step_path(key), "resumeSchema": schema}),
                );
            }
        });
        self.record(frame, id, key, result).await
    }

    /// Runs a nested workflow inside this run: its steps are recorded like the run's own (under
    /// this step's key), and a suspension inside it suspends this step too.
    #[allow(clippy::too_many_arguments)]
    async fn nested(
        &self,
        frame: &Frame<'_>,
        key: &str,
        id: &str,
        name: &str,
        input: Value,
        prev: &Value,
        started: u64,
    ) -> Result<Value, Halt> {
        let child = self
            .env
            .workflows
            .get(name)
            .map_err(|_| Halt::Failed(format!("nested workflow `{name}` is not defined")))?;
        if frame.depth >= MAX_NESTING {
            return Err(Halt::Failed(format!(
                "workflows nest more than {MAX_NESTING} deep (does `{name}` include itself?)"
            )));
        }
        conforms(child.input_schema.as_ref(), &input, "Invalid input data")?;
        let inner = Frame {
            workflow: child,
            keys: format!("{key}>"),
            scope: Some(key.to_string()),
            input: input.clone(),
            label: format!("{}{id}.", frame.label),
            depth: frame.depth + 1,
        };
        let outcome = self.sequence(&inner, "", &child.steps, input, None).await;
        match outcome {
            Ok(output) => {
                conforms(child.output_schema.as_ref(), &output, "Invalid output data")?;
                Ok(output)
            }
            Err(Halt::Suspended {
                key: inner_key,
                payload,
            }) => {
                let mut shown = payload.clone();
                if let Value::Object(map) = &mut shown {
                    let path = step_path(&inner_key[inner.keys.len().min(inner_key.len())..]);
                    map.insert(
                        "__workflow_meta".into(),
                        json!({"runId": self.run_id(), "path": path}),
                    );
                }
                let result = json!({"status": "suspended", "payload": prev, "suspendPayload": shown, "startedAt": started, "suspendedAt": now_ms()});
                self.record(frame, id, key, result).await?;
                Err(Halt::Suspended {
                    key: inner_key,
                    payload,
                })
            }
            Err(Halt::Waiting { key: inner_key }) => {
                let result = json!({"status": "waiting", "payload": prev, "startedAt": started});
                self.record(frame, id, key, result).await?;
                Err(Halt::Waiting { key: inner_key })
            }
            Err(other) => Err(other),
        }
    }

    fn fail_step(
        &self,
        frame: &Frame<'_>,
        id: &str,
        result: Value,
        error: String,
    ) -> Result<Value, Halt> {
        let run_id = self.run_id();
        tracing::warn!(run_id = %run_id, workflow = %frame.workflow.key, step = id, error = %error, "workflow step failed");
        self.with_state(|s| scope_steps(s, &frame.scope).insert(id.to_string(), result.clone()));
        self.emit(frame, id, &result);
        Err(Halt::Failed(error))
    }

    /// Runs `steps` in order; returns the last output.
    fn sequence<'s>(
        &'s self,
        frame: &'s Frame<'s>,
        prefix: &'s str,
        steps: &'s [Step],
        prev: Value,
        item: Option<&'s Value>,
    ) -> BoxFuture<'s, Result<Value, Halt>> {
        Box::pin(async move {
            let mut prev = prev;
            for (i, step) in steps.iter().enumerate() {
                prev = self
                    .step(frame, format!("{prefix}{i}"), step, prev, item)
                    .await?;
            }
            Ok(prev)
        })
    }

    fn step<'s>(
        &'s self,
        frame: &'s Frame<'s>,
        path: String,
        step: &'s Step,
        prev: Value,
        item: Option<&'s Value>,
    ) -> BoxFuture<'s, Result<Value, Halt>> {
        Box::pin(async move {
            match step {
                Step::Leaf { id, .. } => {
                    // Top-level steps are keyed by id; nested ones by their path too.
                    let key = if path.contains('/') {
                        format!("{}{path}:{id}", frame.keys)
                    } else {
                        format!("{}{id}", frame.keys)
                    };
                    self.leaf(frame, &key, step, &prev, item).await
                }
                Step::Parallel(inner) => {
                    let paths: Vec<String> =
                        (0..inner.len()).map(|i| format!("{path}/p{i}")).collect();
                    let runs = inner
                        .iter()
                        .zip(&paths)
                        .map(|(s, p)| self.step(frame, p.clone(), s, prev.clone(), item));
                    let outputs = gather(join_all(runs).await)?;
                    Ok(Value::Object(
                        inner
                            .iter()
                            .map(super::definition::name_of)
                            .zip(outputs)
                            .collect(),
                    ))
                }
                Step::Branch(arms) => {
                    let env = self.env(frame, &prev, &[]);
                    let mut chosen = Vec::new();
                    for (i, (cond, steps)) in arms.iter().enumerate() {
                        if truthy(&eval(cond, &env)?) {
                            chosen.push((format!("{path}/b{i}/"), steps));
                        }
                    }
                    let runs = chosen
                        .iter()
                        .map(|(p, steps)| self.sequence(frame, p, steps, prev.clone(), item));
                    let outputs = gather(join_all(runs).await)?;
                    Ok(Value::Object(
                        chosen
                            .iter()
                            .map(|(_, steps)| super::definition::first_step_name(steps))
                            .zip(outputs)
                            .collect(),
                    ))
                }
                Step::Loop {
                    kind,
                    condition,
                    steps,
                } => {
                    let mut prev = prev;
                    for n in 0..MAX_ITERATIONS {
                        let prefix = format!("{path}/l{n}/");
                        prev = self.sequence(frame, &prefix, steps, prev, item).await?;
                        let holds = truthy(&eval(condition, &self.env(frame, &prev, &[]))?);
                        let again = match kind {
                            LoopKind::DoWhile => holds,
                            LoopKind::DoUntil => !holds,
                        };
                        if !again {
                            return Ok(prev);
                        }
                    }
                    Err(Halt::Failed(format!(
                        "the loop ran {MAX_ITERATIONS} times without its condition changing"
                    )))
                }
                Step::Foreach {
                    id,
                    items,
                    steps,
                    concurrency,
                } => {
                    let list = match eval(items, &self.env(frame, &prev, &[]))? {
                        Value::Array(a) => a,
                        other => {
                            return Err(Halt::Failed(format!(
                                "foreach `{id}`: items must be an array, got {other}"
                            )));
                        }
                    };
                    let started = now_ms();
                    let prefixes: Vec<String> =
                        (0..list.len()).map(|i| format!("{path}/f{i}/")).collect();
                    let mut out = Vec::with_capacity(list.len());
                    // Up to `concurrency` items at a time; a batch that halts stops the rest.
                    for batch in list
                        .iter()
                        .zip(&prefixes)
                        .collect::<Vec<_>>()
                        .chunks((*concurrency).max(1))
                    {
                        let runs = batch
                            .iter()
                            .map(|(it, p)| self.sequence(frame, p, steps, prev.clone(), Some(*it)));
                        out.extend(gather(join_all(runs).await)?);
                    }
                    let output = Value::Array(out);
                    let result = json!({"status": "success", "payload": prev, "output": output, "startedAt": started, "endedAt": now_ms()});
                    self.with_state(|s| scope_steps(s, &frame.scope).insert(id.clone(), result));
                    Ok(output)
                }
            }
        })
    }

    /// Interprets the run to its end or to its next halt, recording its final state.
    pub async fn run(self) -> RunState {
        let input = self.with_state(|s| {
            s.status = Status::Running;
            s.halted_at = None;
            // Suspensions are found again on each pass (those not resumed suspend again).
            s.suspended.clear();
            s.input.clone()
        });
        if let Err(h) = self.persist().await {
            tracing::warn!(run_id = %self.run_id(), halt = ?h, "run could not be saved");
        }
        let top = Frame {
            workflow: self.workflow,
            keys: String::new(),
            scope: None,
            input: input.clone(),
            label: String::new(),
            depth: 0,
        };
        let outcome = match self
            .sequence(&top, "", &self.workflow.steps, input, None)
            .await
        {
            Ok(result) => conforms(
                self.workflow.output_schema.as_ref(),
                &result,
                "Invalid output data",
            )
            .map(|_| result),
            Err(h) => Err(h),
        };
        self.with_state(|s| match outcome {
            Ok(result) => {
                s.status = Status::Success;
                s.result = Some(result);
            }
            Err(Halt::Suspended { .. }) => s.status = Status::Suspended,
            Err(Halt::Waiting { .. }) => s.status = Status::Waiting,
            Err(Halt::Failed(e)) => {
                s.status = Status::Failed;
                s.error = Some(e);
            }
            Err(Halt::Canceled) => s.status = Status::Canceled,
        });
        // The final state and the pass's spans go in one commit.
        let _one_at_a_time = self.saving.lock().await;
        let mut state = self.state.into_inner().unwrap_or_else(|p| p.into_inner());
        state.updated_ms = now_ms();
        tracing::info!(run_id = %state.run_id, workflow = %state.workflow, status = state.status.as_str(), "workflow run halted");
        let mut spans = self.spans.into_inner().unwrap_or_else(|p| p.into_inner());
        let mut root = self.root;
        root.attributes
            .insert("status".into(), json!(state.status.as_str()));
        spans.push(root.finish(state.error.as_deref()));
        let (store, saved) = (self.env.store.clone(), state.clone());
        let retention = self.env.span_retention;
        let written = tokio::task::spawn_blocking(move || {
            store.write_blocking(|tx| {
                collection::put(tx, &saved)?;
                if let Some((rows, age)) = retention
                    && let Err(e) = append_spans(tx, &spans, rows, age)
                {
                    // Tracing is best-effort: spans that cannot be kept must not fail the run.
                    tracing::warn!(run_id = %saved.run_id, error = %e, "could not store the run's spans");
                }
                Ok(())
            })
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(run_id = %state.run_id, error = %e, "run could not be saved")
            }
            Err(e) => tracing::warn!(run_id = %state.run_id, error = %e, "run could not be saved"),
        }
        state
    }
}
