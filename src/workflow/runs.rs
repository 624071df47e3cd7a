//! Runs in progress: starting, waiting for, resuming, cancelling and signalling runs from any
//! request, the live event feed that `watch` and `stream` connections follow, and recovery of
//! interrupted runs when the server starts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::{broadcast, watch};

use super::engine::{self, Interpreter, RunState, Status, StepServices};
use super::resume;
use super::{Workflow, WorkflowError, Workflows};
use crate::storage::Store;
use crate::storage::collection::{Page, Window};

/// What watchers of a run see.
#[derive(Debug, Clone)]
pub enum RunEvent {
    /// A step started, finished, failed, suspended or began waiting (its §3.6 result).
    Step {
        id: String,
        result: Value,
        state: Box<RunState>,
    },
    /// The run stopped (finished, suspended, waiting, failed or canceled).
    Halted(Box<RunState>),
}

struct Live {
    cancel: watch::Sender<bool>,
    done: watch::Receiver<Option<RunState>>,
    /// Set when the run was resumed or signalled while its task was finishing: run it again.
    again: Arc<std::sync::atomic::AtomicBool>,
}

/// The runs of a server.
pub struct Runs {
    store: Store,
    workflows: Arc<Workflows>,
    services: Arc<dyn StepServices>,
    /// Trace spans are kept with this retention (rows, age in ms); `None` records none.
    span_retention: Option<(u64, u64)>,
    live: Mutex<HashMap<String, Live>>,
    /// One event feed per run id, kept while anyone may listen.
    feeds: Mutex<HashMap<String, broadcast::Sender<RunEvent>>>,
}

fn storage(e: crate::storage::StorageError) -> WorkflowError {
    WorkflowError::Config(e.to_string())
}

impl Runs {
    pub fn new(
        store: Store,
        workflows: Arc<Workflows>,
        services: Arc<dyn StepServices>,
        span_retention: Option<(u64, u64)>,
    ) -> Arc<Runs> {
        Arc::new(Runs {
            store,
            workflows,
            services,
            span_retention,
            live: Mutex::new(HashMap::new()),
            feeds: Mutex::new(HashMap::new()),
        })
    }

    pub fn workflows(&self) -> &Workflows {
        &self.workflows
    }

    /// The event feed of a run (created on first use).
    pub fn subscribe(&self, run_id: &str) -> broadcast::Receiver<RunEvent> {
        let mut feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        feeds
            .entry(run_id.to_string())
            .or_insert_with(|| broadcast::channel(1024).0)
            .subscribe()
    }

    fn publish(&self, run_id: &str, event: RunEvent) {
        let feeds = self.feeds.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = feeds.get(run_id) {
            let _ = tx.send(event);
        }
    }

    pub async fn load(&self, run_id: &str) -> Result<Option<RunState>, WorkflowError> {
        let (store, id) = (self.store.clone(), run_id.to_string());
        tokio::task::spawn_blocking(move || engine::load(&store, &id))
            .await
            .map_err(|e| WorkflowError::Config(e.to_string()))?
            .map_err(storage)
    }

    async fn save(&self, state: &RunState) -> Result<(), WorkflowError> {
        let (store, state) = (self.store.clone(), state.clone());
        tokio::task::spawn_blocking(move || engine::save(&store, &state))
            .await
            .map_err(|e| WorkflowError::Config(e.to_string()))?
            .map_err(storage)
    }

    /// A run of `workflow` by id, or 404 `Workflow run not found`.
    pub async fn get(&self, workflow: &Workflow, run_id: &str) -> Result<RunState, WorkflowError> {
        self.load(run_id)
            .await?
            .filter(|r| r.workflow == workflow.key)
            .ok_or(WorkflowError::RunNotFound)
    }

    /// A page of a workflow's runs (see [`engine::runs_page`]).
    pub async fn page(
        &self,
        workflow: &str,
        window: Window,
        resource: Option<String>,
    ) -> Result<Page<RunState>, WorkflowError> {
        let (store, w) = (self.store.clone(), workflow.to_string());
        tokio::task::spawn_blocking(move || {
            engine::runs_page(&store, &w, window, resource.as_deref())
        })
        .await
        .map_err(|e| WorkflowError::Config(e.to_string()))?
        .map_err(storage)
    }

    /// Creates a pending run (or returns the existing one with that id).
    pub async fn create(
        &self,
        workflow: &Workflow,
        run_id: Option<String>,
        resource_id: Option<String>,
    ) -> Result<RunState, WorkflowError> {
        if let Some(id) = &run_id
            && let Some(existing) = self.load(id).await?
        {
            if existing.workflow != workflow.key {
                return Err(WorkflowError::Invalid(format!(
                    "run {id} belongs to workflow {}",
                    existing.workflow
                )));
            }
            return Ok(existing);
        }
        let id = run_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let state = RunState::new(&workflow.key, id, Value::Null, resource_id);
        self.save(&state).await?;
        Ok(state)
    }

    /// Starts (in the background) a pending run with its input.
    pub async fn start(
        self: &Arc<Self>,
        workflow: &Workflow,
        mut state: RunState,
        input: Value,
        runtime_context: Map<String, Value>,
    ) -> Result<(), WorkflowError> {
        if state.status != Status::Pending {
            return Err(WorkflowError::Invalid(format!(
                "This workflow run was already started (it is {})",
                state.status.as_str()
            )));
        }
        engine::conforms(workflow.input_schema.as_ref(), &input, "Invalid input data").map_err(
            |halt| match halt {
                engine::Halt::Failed(e) => WorkflowError::Invalid(e),
                other => WorkflowError::Invalid(format!("{other:?}")),
            },
        )?;
        state.input = input;
        state.runtime_context = runtime_context;
        state.status = Status::Running;
        self.save(&state).await?;
        self.execute(state);
        Ok(())
    }

    /// Interprets a run in its own task (replaying what it has recorded).
    pub fn execute(self: &Arc<Self>, state: RunState) {
        let run_id = state.run_id.clone();
        let (cancel_tx, cancel_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(None);
        let again = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(running) = live.get(&run_id) {
                // Its task is still finishing: it picks up the new state when it ends.
                running
                    .again
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                return;
            }
            live.insert(
                run_id.clone(),
                Live {
                    cancel: cancel_tx,
                    done: done_rx,
                    again: again.clone(),
                },
            );
        }
        let runs = self.clone();
        // The task keeps the caller's span, so its logs reach the server that started it.
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                crate::metrics::run_started();
                let final_state = match runs.workflows.of_run(&state.workflow) {
                    Some(workflow) => {
                        let publisher = runs.clone();
                        let id = run_id.clone();
                        let on_step = move |step: &str, result: &Value, s: &RunState| {
                            publisher.publish(
                                &id,
                                RunEvent::Step {
                                    id: step.to_string(),
                                    result: result.clone(),
                                    state: Box::new(s.clone()),
                                },
                            );
                        };
                        let env = engine::Environment {
                            workflows: &runs.workflows,
                            store: runs.store.clone(),
                            services: runs.services.as_ref(),
                            span_retention: runs.span_retention,
                        };
                        Interpreter::new(env, workflow, state, cancel_rx, &on_step)
                            .run()
                            .await
                    }
                    None => {
                        // The project no longer declares the workflow: the run cannot continue.
                        let mut s = state;
                        s.status = Status::Failed;
                        s.error = Some(format!("workflow `{}` is no longer defined", s.workflow));
                        let _ = runs.save(&s).await;
                        s
                    }
                };
                runs.live
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&run_id);
                crate::metrics::run_ended(final_state.status.as_str());
                if again.load(std::sync::atomic::Ordering::SeqCst)
                    && let Ok(Some(latest)) = runs.load(&run_id).await
                    && latest.status == Status::Running
                {
                    // Resumed or signalled while finishing: the new task takes over (and
                    // waiters follow it, see `wait`).
                    runs.execute(latest);
                    return;
                }
                runs.publish(&run_id, RunEvent::Halted(Box::new(final_state.clone())));
                let _ = done_tx.send(Some(final_state));
            },
            span,
        ));
    }

    /// Waits until a live run halts; a run not live in this process is returned as stored.
    pub async fn wait(&self, run_id: &str) -> Result<RunState, WorkflowError> {
        loop {
            let done = {
                let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
                live.get(run_id).map(|l| l.done.clone())
            };
            let Some(mut done) = done else { break };
            match done.wait_for(|s| s.is_some()).await {
                Ok(state) => {
                    if let Some(state) = state.clone() {
                        return Ok(state);
                    }
                }
                // The task handed over to a new one (see `execute`): wait for that.
                Err(_) => continue,
            }
        }
        self.load(run_id).await?.ok_or(WorkflowError::RunNotFound)
    }

    /// Records resume data for the suspended step and continues the run in the background.
    pub async fn resume(
        self: &Arc<Self>,
        workflow: &Workflow,
        run_id: &str,
        step: &Value,
        data: Value,
    ) -> Result<(), WorkflowError> {
        let mut state = self.get(workflow, run_id).await?;
        // `"outer.inner"`, `["outer", "inner"]` or one id.
        let wanted: Vec<String> = match step {
            Value::String(s) => s.split('.').map(String::from).collect(),
            Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        let key = resume::check_resume(workflow, &state, &wanted, &data)?;
        state.resumes.insert(key, data);
        state.status = Status::Running;
        self.save(&state).await?;
        self.execute(state);
        Ok(())
    }

    /// Stops a run: a live one at its next step boundary (or out of a sleep), a stored one
    /// that has not finished at once.
    pub async fn cancel(&self, workflow: &Workflow, run_id: &str) -> Result<(), WorkflowError> {
        let mut state = self.get(workflow, run_id).await?;
        let live = {
            let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
            live.get(run_id)
                .map(|l| l.cancel.send(true).is_ok())
                .unwrap_or(false)
        };
        if !live && !state.status.is_terminal() {
            state.status = Status::Canceled;
            self.save(&state).await?;
            self.publish(run_id, RunEvent::Halted(Box::new(state)));
        }
        Ok(())
    }

    /// Delivers an event; a run waiting for it continues.
    pub async fn send_event(
        self: &Arc<Self>,
        workflow: &Workflow,
        run_id: &str,
        event: &str,
        data: Value,
    ) -> Result<(), WorkflowError> {
        let mut state = self.get(workflow, run_id).await?;
        if state.status.is_terminal() {
            return Err(WorkflowError::Invalid(format!(
                "This workflow run has ended ({})",
                state.status.as_str()
            )));
        }
        state.events.insert(event.to_string(), data);
        let waiting = state.status == Status::Waiting;
        if waiting {
            state.status = Status::Running;
        }
        self.save(&state).await?;
        if waiting {
            self.execute(state);
        }
        Ok(())
    }

    /// Continues the runs an earlier process left running or sleeping.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, WorkflowError> {
        let store = self.store.clone();
        let unfinished = tokio::task::spawn_blocking(move || {
            store.read_blocking(|tx| {
                let mut out = Vec::new();
                let table = tx.open_table(crate::storage::collection::WORKFLOW_RUNS.records)?;
                for entry in redb::ReadableTable::iter(&table)? {
                    let (_, v) = entry?;
                    if let Ok(state) = serde_json::from_slice::<RunState>(v.value())
                        && matches!(state.status, Status::Running | Status::Waiting)
                    {
                        out.push(state);
                    }
                }
                Ok(out)
            })
        })
        .await
        .map_err(|e| WorkflowError::Config(e.to_string()))?
        .map_err(storage)?;
        let n = unfinished.len();
        for state in unfinished {
            // A waiting run continues only when its event comes or its timer is due; replaying
            // it re-arms the wait (and fails it if the timeout has passed).
            tracing::info!(run_id = %state.run_id, workflow = %state.workflow, "continuing an interrupted run");
            self.execute(state);
        }
        Ok(n)
    }
}

/// WorkflowResult (§3.8) of a halted run.
pub fn result_json(state: &RunState) -> Value {
    let mut steps = json!({"input": state.input});
    for (k, v) in &state.steps {
        steps[k] = v.clone();
    }
    let mut out = json!({"status": state.status.as_str(), "steps": steps});
    match state.status {
        Status::Success => out["result"] = state.result.clone().unwrap_or(Value::Null),
        Status::Failed => out["error"] = json!(state.error),
        Status::Suspended => {
            let paths: Vec<Value> = resume::suspensions(None, state)
                .into_values()
                .map(|v| v["path"].clone())
                .collect();
            out["suspended"] = Value::Array(paths);
        }
        _ => {}
    }
    out
}

/// The stored snapshot (§3.7) of a run.
pub fn snapshot_json(state: &RunState, workflows: &Workflows) -> Value {
    let workflow = workflows.of_run(&state.workflow);
    let mut context = json!({"input": state.input});
    for (k, v) in &state.steps {
        context[k] = v.clone();
    }
    let mut suspended = json!({});
    for entry in resume::suspensions(workflow, state).values() {
        if let Some(top) = entry["path"][0].as_str() {
            suspended[top] = json!([0]);
        }
    }
    let mut v = json!({
        "runId": state.run_id,
        "status": state.status.as_str(),
        "value": {},
        "activePaths": [],
        "context": context,
        "serializedStepGraph": workflow.map(|w| Value::Array(workflows.graph(w))).unwrap_or(json!([])),
        "suspendedPaths": suspended,
        "runtimeContext": state.runtime_context,
        "timestamp": state.updated_ms,
    });
    if let Some(r) = &state.result {
        v["result"] = r.clone();
    }
    if let Some(e) = &state.error {
        v["error"] = json!(e);
    }
    v
}
