//! The durable workflow engine.
//!
//! A run is interpreted from the start of its definition every time it is (re)started, but each
//! leaf step's outcome is recorded in the run's state (in redb) the moment it completes, and a
//! recorded step is never executed again: on a replay its recorded output is used. So a run
//! that was interrupted (a crash, a restart, a suspension, a wait) continues from its last
//! completed step; a sleep keeps the wake time recorded when it started; a suspended step is
//! completed by the resume data recorded for it; an awaited event by the event data. Steps inside
//! loops and `foreach` are recorded under their iteration, so replays follow the same path.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::watch;

use super::definition::{Action, Duration, Jq, LoopKind, Step};
use super::{Workflow, WorkflowError};
use crate::storage::collection::{self, Order, Record, WORKFLOW_RUNS};
use crate::storage::{StorageError, Store};

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
    /// Where the run stopped: the execution key of the suspended or waiting step.
    pub halted_at: Option<String>,
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

/// Runs of a workflow, newest first.
pub fn runs_of(store: &Store, workflow: &str) -> Result<Vec<RunState>, StorageError> {
    store.read_blocking(|tx| collection::list_by::<RunState>(tx, 0, workflow, Order::Newest))
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

/// One interpretation pass over a run.
pub struct Interpreter<'a> {
    pub workflow: &'a Workflow,
    pub state: RunState,
    pub store: Store,
    pub services: &'a dyn StepServices,
    pub cancel: watch::Receiver<bool>,
    /// Called after each recorded step result (for watch/stream events).
    pub on_step: &'a (dyn Fn(&str, &Value, &RunState) + Send + Sync),
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

impl Interpreter<'_> {
    fn canceled(&self) -> bool {
        *self.cancel.borrow()
    }

    async fn persist(&mut self) -> Result<(), Halt> {
        self.state.updated_ms = now_ms();
        let (store, state) = (self.store.clone(), self.state.clone());
        tokio::task::spawn_blocking(move || save(&store, &state))
            .await
            .map_err(|e| Halt::Failed(e.to_string()))?
            .map_err(|e| Halt::Failed(format!("the run could not be saved: {e}")))
    }

    fn env(&self, prev: &Value, extra: &[(&str, Value)]) -> Value {
        let outputs: Map<String, Value> = self
            .state
            .steps
            .iter()
            .filter_map(|(k, r)| r.get("output").map(|o| (k.clone(), o.clone())))
            .collect();
        let mut env = json!({"input": self.state.input, "prev": prev, "steps": outputs});
        for (k, v) in extra {
            env[*k] = v.clone();
        }
        env
    }

    /// Records a step's result under its id (and its output under its execution key).
    async fn record(&mut self, id: &str, key: &str, result: Value) -> Result<(), Halt> {
        if result["status"] == "success" {
            self.state
                .memo
                .insert(key.to_string(), result["output"].clone());
        }
        self.state.steps.insert(id.to_string(), result.clone());
        self.persist().await?;
        tracing::info!(run_id = %self.state.run_id, workflow = %self.state.workflow, step = id, status = result["status"].as_str().unwrap_or(""), "workflow step");
        (self.on_step)(id, &result, &self.state);
        Ok(())
    }

    /// Sleeps until `wake_ms`, waking early when the run is canceled.
    async fn sleep_until(&mut self, wake_ms: u64) -> Result<(), Halt> {
        let wait = wake_ms.saturating_sub(now_ms());
        let mut cancel = self.cancel.clone();
        tokio::select! {
            _ = tokio::time::sleep(StdDuration::from_millis(wait)) => Ok(()),
            _ = cancel.wait_for(|c| *c) => Err(Halt::Canceled),
        }
    }

    /// The wake time recorded for `key`, recording `compute()` the first time.
    async fn timer(&mut self, key: &str, compute: impl FnOnce() -> u64) -> Result<u64, Halt> {
        if let Some(t) = self.state.timers.get(key).and_then(Value::as_u64) {
            return Ok(t);
        }
        let t = compute();
        self.state.timers.insert(key.to_string(), json!(t));
        self.persist().await?;
        Ok(t)
    }

    async fn leaf(
        &mut self,
        key: &str,
        id: &str,
        action: &Action,
        prev: &Value,
        item: Option<&Value>,
    ) -> Result<Value, Halt> {
        if let Some(out) = self.state.memo.get(key) {
            return Ok(out.clone());
        }
        if self.canceled() {
            return Err(Halt::Canceled);
        }
        let mut extra: Vec<(&str, Value)> = Vec::new();
        if let Some(i) = item {
            extra.push(("item", i.clone()));
        }
        let env = self.env(prev, &extra);
        let started = now_ms();
        let running = json!({"status": "running", "payload": prev, "startedAt": started});
        (self.on_step)(id, &running, &self.state);
        let outcome: Result<Value, Halt> = match action {
            Action::Map(e) => eval(e, &env),
            Action::Tool { tool, input } => {
                let input = match input {
                    Some(e) => eval(e, &env)?,
                    None => prev.clone(),
                };
                let call = self.services.call_tool(tool, input, &self.state.run_id);
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
                let call = self.services.call_agent(
                    agent,
                    text,
                    output_schema.clone(),
                    &self.state.run_id,
                );
                until_canceled(self.cancel.clone(), call).await
            }
            Action::Workflow { workflow, .. } => Err(Halt::Failed(format!(
                "nested workflow `{workflow}`: nested workflows do not run in this build yet"
            ))),
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
                let at = eval(e, &env)?;
                let wake = match &at {
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
                if let Some(data) = self.state.events.remove(event) {
                    Ok(data)
                } else {
                    if let Some(t) = timeout_ms {
                        let deadline = self.timer(key, || now_ms() + t).await?;
                        if now_ms() >= deadline {
                            return self
                                .fail_step(
                                    id,
                                    prev,
                                    started,
                                    format!("timed out waiting for event `{event}`"),
                                )
                                .await;
                        }
                    }
                    self.state.halted_at = Some(key.to_string());
                    let waiting =
                        json!({"status": "waiting", "payload": prev, "startedAt": started});
                    self.state.steps.insert(id.to_string(), waiting);
                    return Err(Halt::Waiting {
                        key: key.to_string(),
                    });
                }
            }
            Action::Suspend {
                payload, output, ..
            } => match self.state.resumes.get(key).cloned() {
                Some(resume) => match output {
                    Some(e) => eval(e, &self.env(prev, &[("resume", resume)])),
                    None => Ok(resume),
                },
                None => {
                    let payload = match payload {
                        Some(e) => eval(e, &env)?,
                        None => json!({}),
                    };
                    self.state.halted_at = Some(key.to_string());
                    let suspended = json!({"status": "suspended", "payload": prev, "suspendPayload": payload, "startedAt": started, "suspendedAt": now_ms()});
                    self.record(id, key, suspended).await?;
                    return Err(Halt::Suspended {
                        key: key.to_string(),
                        payload,
                    });
                }
            },
        };
        match outcome {
            Ok(output) => {
                let mut result = json!({"status": "success", "payload": prev, "output": output, "startedAt": started, "endedAt": now_ms()});
                if let Some(r) = self.state.resumes.get(key) {
                    result["resumePayload"] = r.clone();
                }
                self.record(id, key, result).await?;
                Ok(output)
            }
            Err(Halt::Failed(e)) => self.fail_step(id, prev, started, e).await,
            Err(other) => Err(other),
        }
    }

    async fn fail_step(
        &mut self,
        id: &str,
        prev: &Value,
        started: u64,
        error: String,
    ) -> Result<Value, Halt> {
        let result = json!({"status": "failed", "payload": prev, "error": error, "startedAt": started, "endedAt": now_ms()});
        tracing::warn!(run_id = %self.state.run_id, workflow = %self.state.workflow, step = id, error = %error, "workflow step failed");
        self.state.steps.insert(id.to_string(), result.clone());
        (self.on_step)(id, &result, &self.state);
        Err(Halt::Failed(error))
    }

    /// Runs `steps` in order; returns the last output.
    fn sequence<'s>(
        &'s mut self,
        prefix: &'s str,
        steps: &'s [Step],
        prev: Value,
        item: Option<&'s Value>,
    ) -> futures_util::future::BoxFuture<'s, Result<Value, Halt>> {
        Box::pin(async move {
            let mut prev = prev;
            for (i, step) in steps.iter().enumerate() {
                prev = self.step(&format!("{prefix}{i}"), step, prev, item).await?;
            }
            Ok(prev)
        })
    }

    fn step<'s>(
        &'s mut self,
        path: &'s str,
        step: &'s Step,
        prev: Value,
        item: Option<&'s Value>,
    ) -> futures_util::future::BoxFuture<'s, Result<Value, Halt>> {
        Box::pin(async move {
            match step {
                Step::Leaf { id, action, .. } => {
                    // Top-level steps are keyed by id; nested ones by their path too.
                    let key = if path.contains('/') {
                        format!("{path}:{id}")
                    } else {
                        id.clone()
                    };
                    self.leaf(&key, id, action, &prev, item).await
                }
                Step::Parallel(inner) => {
                    let mut out = Map::new();
                    for (i, s) in inner.iter().enumerate() {
                        let v = self
                            .step(&format!("{path}/p{i}"), s, prev.clone(), item)
                            .await?;
                        out.insert(super::definition::name_of(s), v);
                    }
                    Ok(Value::Object(out))
                }
                Step::Branch(arms) => {
                    let env = self.env(&prev, &[]);
                    let mut out = Map::new();
                    for (i, (cond, steps)) in arms.iter().enumerate() {
                        if truthy(&eval(cond, &env)?) {
                            let v = self
                                .sequence(&format!("{path}/b{i}/"), steps, prev.clone(), item)
                                .await?;
                            out.insert(super::definition::first_step_name(steps), v);
                        }
                    }
                    Ok(Value::Object(out))
                }
                Step::Loop {
                    kind,
                    condition,
                    steps,
                } => {
                    let mut prev = prev;
                    for n in 0..MAX_ITERATIONS {
                        prev = self
                            .sequence(&format!("{path}/l{n}/"), steps, prev, item)
                            .await?;
                        let holds = truthy(&eval(condition, &self.env(&prev, &[]))?);
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
                    id, items, steps, ..
                } => {
                    let list = match eval(items, &self.env(&prev, &[]))? {
                        Value::Array(a) => a,
                        other => {
                            return Err(Halt::Failed(format!(
                                "foreach `{id}`: items must be an array, got {other}"
                            )));
                        }
                    };
                    let mut out = Vec::with_capacity(list.len());
                    for (i, it) in list.iter().enumerate() {
                        let v = self
                            .sequence(&format!("{path}/f{i}/"), steps, prev.clone(), Some(it))
                            .await?;
                        out.push(v);
                    }
                    let output = Value::Array(out);
                    let result = json!({"status": "success", "payload": prev, "output": output, "startedAt": now_ms(), "endedAt": now_ms()});
                    self.state.steps.insert(id.clone(), result);
                    Ok(output)
                }
            }
        })
    }

    /// Interprets the run to its end or to its next halt, recording its final state.
    pub async fn run(mut self) -> RunState {
        self.state.status = Status::Running;
        self.state.halted_at = None;
        if let Err(h) = self.persist().await {
            tracing::warn!(run_id = %self.state.run_id, halt = ?h, "run could not be saved");
        }
        let workflow = self.workflow;
        let outcome = self
            .sequence("", &workflow.steps, self.state.input.clone(), None)
            .await;
        match outcome {
            Ok(result) => {
                self.state.status = Status::Success;
                self.state.result = Some(result);
            }
            Err(Halt::Suspended { .. }) => self.state.status = Status::Suspended,
            Err(Halt::Waiting { .. }) => self.state.status = Status::Waiting,
            Err(Halt::Failed(e)) => {
                self.state.status = Status::Failed;
                self.state.error = Some(e);
            }
            Err(Halt::Canceled) => self.state.status = Status::Canceled,
        }
        if let Err(h) = self.persist().await {
            tracing::warn!(run_id = %self.state.run_id, halt = ?h, "run could not be saved");
        }
        tracing::info!(run_id = %self.state.run_id, workflow = %self.state.workflow, status = self.state.status.as_str(), "workflow run halted");
        self.state
    }
}

/// Checks resume data for the step a run is suspended at.
pub fn check_resume(
    workflow: &Workflow,
    state: &RunState,
    data: &Value,
) -> Result<String, WorkflowError> {
    let Some(key) = state
        .halted_at
        .clone()
        .filter(|_| state.status == Status::Suspended)
    else {
        return Err(WorkflowError::Invalid(
            "This workflow run was not suspended".into(),
        ));
    };
    let id = key.rsplit(':').next().unwrap_or(&key).to_string();
    let mut schema = None;
    super::definition::walk(&workflow.steps, &mut |s| {
        if let Step::Leaf {
            id: sid,
            action: Action::Suspend { resume_schema, .. },
            ..
        } = s
            && *sid == id
        {
            schema = resume_schema.clone();
        }
    });
    if let Some(schema) = schema {
        let compiled =
            crate::tools::schema::Schema::compile(schema).map_err(WorkflowError::Invalid)?;
        compiled.validate(data).map_err(|problems| {
            WorkflowError::Invalid(format!("Invalid resume data: {}", problems.join("; ")))
        })?;
    }
    Ok(key)
}

/// Shares a run's state across the tasks that watch it.
pub type Shared = Arc<tokio::sync::Mutex<Option<RunState>>>;
