//! Scorers declared under `scorers:` and the score rows they produce (spec §3.16, §4.11).
//!
//! A scorer is a jq expression over `{input, output}` (the user's text and the answer's text)
//! giving a number — or `{score, reason}` — or a judge agent asked for `{score, reason}` under a
//! JSON Schema. Agents list the scorers that score their answers (`scorers: [{scorer,
//! sampling_rate}]`); after a call, each one scores it with that probability, in the background.
//! Rows are kept in redb, by run, by scorer and by entity. Knows nothing of HTTP.

use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::agent::{Agent, Agents, CallObserver, options::CallOptions, run::RunResult};
use crate::config::Project;
use crate::expr::Expr;
use crate::storage::collection::{self, Order, Record, SCORES, Window};
use crate::storage::{StorageError, Store};

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How a scorer scores.
#[derive(Debug, Clone)]
pub enum Method {
    Jq(Arc<Expr>),
    /// The key of the agent that judges.
    Judge(String),
}

#[derive(Debug, Clone)]
pub struct Scorer {
    pub key: String,
    pub name: String,
    pub description: String,
    pub method: Method,
    /// Agents whose answers it scores, with the probability of scoring each answer.
    pub agents: Vec<(String, f64)>,
}

impl Scorer {
    /// The scorer entry of `/api/scores/scorers` (§3.16).
    pub fn to_wire(&self) -> Value {
        let mut v = json!({
            "scorer": {"config": {"name": self.name, "description": self.description}},
            "agentIds": self.agents.iter().map(|(a, _)| a).collect::<Vec<_>>(),
            "workflowIds": [],
        });
        if let Some((_, rate)) = self.agents.first() {
            v["sampling"] = json!({"type": "ratio", "rate": rate});
        }
        v
    }
}

/// A stored score row: the §3.16 object as is, with its creation time for ordering.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoreRecord {
    pub row: Map<String, Value>,
    pub created_ms: u64,
}

impl ScoreRecord {
    fn text(&self, field: &str) -> String {
        self.row
            .get(field)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// The `by_entity` index key.
fn entity_key(entity_type: &str, entity_id: &str) -> String {
    format!("{entity_type}\u{1f}{entity_id}")
}

impl Record for ScoreRecord {
    const COLLECTION: &'static collection::Collection = &SCORES;
    fn id(&self) -> &str {
        self.row
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
    fn index_keys(&self) -> Vec<(String, u64)> {
        vec![
            (self.text("runId"), self.created_ms),
            (self.text("scorerId"), self.created_ms),
            (
                entity_key(&self.text("entityType"), &self.text("entityId")),
                self.created_ms,
            ),
        ]
    }
}

/// Which rows a listing wants.
#[derive(Debug, Clone)]
pub enum Selection {
    Run(String),
    Scorer {
        scorer: String,
        entity_id: Option<String>,
        entity_type: Option<String>,
    },
    Entity {
        entity_type: String,
        entity_id: String,
    },
}

/// One page of rows, newest first: `{pagination: {total, page, perPage, hasMore}, scores}`.
pub struct Page {
    pub total: usize,
    pub rows: Vec<Value>,
}

/// The project's scorers and the score rows.
pub struct Scores {
    store: Store,
    scorers: IndexMap<String, Scorer>,
    /// The creation time of the last row: rows saved within one millisecond still get
    /// distinct, ordered times, so "newest first" is well defined.
    last_created: std::sync::Mutex<u64>,
}

/// Run ids of judges' calls start with this; those calls are not scored themselves (a judge
/// whose answers its own scorer judges would never stop).
const JUDGE_RUN: &str = "judge-";

fn now_ms() -> u64 {
    crate::workflow::engine::now_ms()
}

impl Scores {
    pub fn from_project(project: &Project, store: Store) -> Result<Scores, ScoreError> {
        let mut scorers = IndexMap::new();
        for (key, cfg) in &project.scorers {
            let method = match (&cfg.jq, &cfg.judge) {
                (Some(code), None) => {
                    Method::Jq(Arc::new(Expr::compile(code).map_err(|e| {
                        ScoreError::Invalid(format!("scorer `{key}`: jq: {e}"))
                    })?))
                }
                (None, Some(agent)) => Method::Judge(agent.clone()),
                _ => {
                    return Err(ScoreError::Invalid(format!(
                        "scorer `{key}` needs exactly one of `jq`, `judge`"
                    )));
                }
            };
            let agents = project
                .agents
                .iter()
                .flat_map(|(agent, a)| {
                    a.scorers
                        .iter()
                        .filter(|s| s.scorer == *key)
                        .map(|s| (agent.clone(), s.sampling_rate.unwrap_or(1.0)))
                })
                .collect();
            scorers.insert(
                key.clone(),
                Scorer {
                    key: key.clone(),
                    name: cfg.name.clone().unwrap_or_else(|| key.clone()),
                    description: cfg.description.clone().unwrap_or_default(),
                    method,
                    agents,
                },
            );
        }
        Ok(Scores {
            store,
            scorers,
            last_created: std::sync::Mutex::new(0),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Scorer> {
        self.scorers.values()
    }

    pub fn get(&self, key: &str) -> Option<&Scorer> {
        self.scorers.get(key)
    }

    /// Stores a score row given by a client: `scorerId`, `entityId`, `entityType` and `runId`
    /// (strings) and `score` (a number) are required; `id` and the times are made here.
    pub async fn save(&self, mut row: Map<String, Value>) -> Result<Value, ScoreError> {
        for field in ["scorerId", "entityId", "entityType", "runId"] {
            match row.get(field) {
                Some(Value::String(s)) if !s.is_empty() => {}
                _ => {
                    return Err(ScoreError::Invalid(format!(
                        "`{field}` is required (a non-empty string)"
                    )));
                }
            }
        }
        if !row.get("score").is_some_and(Value::is_number) {
            return Err(ScoreError::Invalid("`score` is required (a number)".into()));
        }
        let now = {
            let mut last = self.last_created.lock().unwrap_or_else(|p| p.into_inner());
            *last = now_ms().max(*last + 1);
            *last
        };
        let at = crate::memory::engine::iso(now);
        row.insert(
            "id".into(),
            json!(format!("score_{}", uuid::Uuid::new_v4().simple())),
        );
        for field in [
            "traceId",
            "reason",
            "additionalContext",
            "runtimeContext",
            "preprocessStepResult",
            "analyzeStepResult",
            "metadata",
            "resourceId",
            "threadId",
        ] {
            row.entry(field).or_insert(Value::Null);
        }
        row.insert("createdAt".into(), json!(at));
        row.insert("updatedAt".into(), json!(at));
        let record = ScoreRecord {
            row,
            created_ms: now,
        };
        let stored = record.row.clone();
        self.store
            .write(move |tx| collection::put(tx, &record).map(|_| ()))
            .await?;
        Ok(Value::Object(stored))
    }

    /// A page (0-based) of the selected rows, newest first.
    pub async fn list(
        &self,
        selection: Selection,
        page: usize,
        per_page: usize,
    ) -> Result<Page, ScoreError> {
        let (index, key) = match &selection {
            Selection::Run(run) => (0, run.clone()),
            Selection::Scorer { scorer, .. } => (1, scorer.clone()),
            Selection::Entity {
                entity_type,
                entity_id,
            } => (2, entity_key(entity_type, entity_id)),
        };
        // Only a scorer's rows narrowed to an entity need each row read to be counted.
        let filtered = matches!(
            &selection,
            Selection::Scorer { entity_id, entity_type, .. }
                if entity_id.is_some() || entity_type.is_some()
        );
        let wanted = move |r: &ScoreRecord| match &selection {
            Selection::Scorer {
                entity_id,
                entity_type,
                ..
            } => {
                entity_id.as_ref().is_none_or(|e| r.text("entityId") == *e)
                    && entity_type
                        .as_ref()
                        .is_none_or(|t| r.text("entityType") == *t)
            }
            _ => true,
        };
        let window = Window::new(Order::Newest, page.saturating_mul(per_page), per_page);
        let found = self
            .store
            .read(move |tx| {
                let keep: Option<&dyn Fn(&ScoreRecord) -> bool> =
                    if filtered { Some(&wanted) } else { None };
                collection::page_by::<ScoreRecord>(tx, index, &key, &window, keep)
            })
            .await?;
        let rows = found
            .items
            .into_iter()
            .map(|r| Value::Object(r.row))
            .collect();
        let total = found.total;
        Ok(Page { total, rows })
    }

    /// Scores an agent's answer with one scorer; `None` when the scorer gives no number.
    async fn score(
        &self,
        scorer: &Scorer,
        agents: &Agents,
        input: &str,
        output: &str,
    ) -> Result<(f64, Option<String>), String> {
        let judged = match &scorer.method {
            Method::Jq(expr) => {
                let expr = expr.clone();
                let env = json!({"input": input, "output": output});
                tokio::task::spawn_blocking(move || expr.eval(&env))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?
            }
            Method::Judge(judge) => {
                let prompt = format!(
                    "Rate how well the answer responds to the question, from 0 (not at all) to 1 \
                     (perfectly), and say why in one sentence.\nQuestion: {input}\nAnswer: {output}"
                );
                let schema = json!({
                    "type": "object",
                    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}, "reason": {"type": "string"}},
                    "required": ["score", "reason"],
                });
                let run_id = format!("{JUDGE_RUN}{}", uuid::Uuid::new_v4());
                agents
                    .ask(judge, prompt, Some(schema), &run_id)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        match &judged {
            Value::Number(n) => Ok((n.as_f64().unwrap_or(0.0), None)),
            Value::Object(o) if o.get("score").is_some_and(Value::is_number) => Ok((
                o["score"].as_f64().unwrap_or(0.0),
                o.get("reason").and_then(Value::as_str).map(String::from),
            )),
            other => Err(format!(
                "scorer `{}` gave {other}, not a number or {{score, reason}}",
                scorer.key
            )),
        }
    }

    /// Scores a finished agent call with the agent's scorers (each by its sampling rate).
    pub async fn score_call(
        &self,
        agents: &Agents,
        agent: &Agent,
        opts: &CallOptions,
        result: &RunResult,
    ) {
        let input = opts.last_user_text();
        for scorer in self.scorers.values() {
            let Some((_, rate)) = scorer.agents.iter().find(|(a, _)| *a == agent.key) else {
                continue;
            };
            if *rate < 1.0 && rand::random::<f64>() >= *rate {
                continue;
            }
            match self.score(scorer, agents, &input, &result.text).await {
                Ok((score, reason)) => {
                    let row = json!({
                        "scorerId": scorer.key,
                        "entityId": agent.key,
                        "entityType": "AGENT",
                        "runId": opts.run_id,
                        "score": score,
                        "reason": reason,
                        "input": input,
                        "output": result.text,
                        "scorer": {"name": scorer.name, "description": scorer.description},
                        "entity": {"id": agent.key, "name": agent.name},
                        "source": "LIVE",
                        "resourceId": opts.memory.as_ref().map(|m| m.resource_id.clone()),
                        "threadId": opts.memory.as_ref().map(|m| m.thread_id.clone()),
                    });
                    let Value::Object(row) = row else { continue };
                    if let Err(e) = self.save(row).await {
                        tracing::warn!(scorer = %scorer.key, run_id = %opts.run_id, error = %e, "could not store a score");
                    }
                }
                Err(e) => {
                    tracing::warn!(scorer = %scorer.key, run_id = %opts.run_id, error = %e, "scoring failed")
                }
            }
        }
    }
}

/// Scores agent calls as they finish.
pub struct LiveScoring {
    pub scores: Arc<Scores>,
}

impl CallObserver for LiveScoring {
    fn finished(
        &self,
        agents: &Agents,
        agent: &Arc<Agent>,
        opts: &CallOptions,
        result: &RunResult,
    ) {
        let scored = self
            .scores
            .iter()
            .any(|s| s.agents.iter().any(|(a, _)| *a == agent.key));
        if !scored || opts.run_id.starts_with(JUDGE_RUN) {
            return;
        }
        let (scores, agents, agent) = (self.scores.clone(), agents.clone(), agent.clone());
        let (opts, result) = (opts.clone(), result.clone());
        // Scoring is not part of the answer: it never delays or fails the call.
        tokio::spawn(async move {
            scores.score_call(&agents, &agent, &opts, &result).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_are_saved_checked_and_paged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let project =
            crate::config::load_str("scorers:\n  len:\n    jq: '.output | length'\n", "test")
                .unwrap();
        let scores = Scores::from_project(&project, store).unwrap();
        let row = |run: &str, score: f64| -> Map<String, Value> {
            let v = json!({"scorerId": "len", "entityId": "a", "entityType": "AGENT", "runId": run, "score": score});
            v.as_object().unwrap().clone()
        };
        for i in 0..3 {
            scores.save(row("r1", i as f64)).await.unwrap();
        }
        scores.save(row("r2", 9.0)).await.unwrap();
        let mut bad = row("r3", 1.0);
        bad.remove("score");
        assert!(matches!(
            scores.save(bad).await,
            Err(ScoreError::Invalid(_))
        ));
        let page = scores
            .list(Selection::Run("r1".into()), 0, 2)
            .await
            .unwrap();
        assert_eq!(page.total, 3);
        assert_eq!(page.rows.len(), 2);
        assert_eq!(page.rows[0]["score"], 2.0, "newest first");
        assert!(page.rows[0]["id"].as_str().unwrap().starts_with("score_"));
        let by_entity = scores
            .list(
                Selection::Entity {
                    entity_type: "AGENT".into(),
                    entity_id: "a".into(),
                },
                1,
                3,
            )
            .await
            .unwrap();
        assert_eq!((by_entity.total, by_entity.rows.len()), (4, 1));
        let filtered = scores
            .list(
                Selection::Scorer {
                    scorer: "len".into(),
                    entity_id: Some("b".into()),
                    entity_type: None,
                },
                0,
                10,
            )
            .await
            .unwrap();
        assert_eq!(filtered.total, 0);
    }
}
