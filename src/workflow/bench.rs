//! `edgestra bench workflow`: durable runs of a 10-step `map` workflow — every step result
//! committed to redb before the next step starts — reporting step transitions per second,
//! next to the same steps evaluated in memory without recording (the baseline, same run).

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::Workflows;
use super::engine::StepServices;
use super::runs::Runs;

/// Steps of the benchmark workflow.
pub const STEPS: usize = 10;

struct NoServices;

#[async_trait::async_trait]
impl StepServices for NoServices {
    async fn call_tool(&self, tool: &str, _: Value, _: &str) -> Result<Value, String> {
        Err(format!("no tool `{tool}` in the benchmark"))
    }
    async fn call_agent(
        &self,
        agent: &str,
        _: String,
        _: Option<Value>,
        _: &str,
    ) -> Result<Value, String> {
        Err(format!("no agent `{agent}` in the benchmark"))
    }
}

/// Runs `runs` durable runs (`concurrency` at a time) and prints the rates.
pub async fn run(runs: usize, concurrency: usize) -> Result<(), String> {
    let steps: String = (0..STEPS)
        .map(|i| format!("      - {{ id: s{i}, map: '{{n: ((.prev.n // 0) + 1)}}' }}\n"))
        .collect();
    let yaml = format!("workflows:\n  bench:\n    steps:\n{steps}");
    let project = crate::config::load_str(&yaml, "benchmark").map_err(|e| e.to_string())?;
    let workflows = Arc::new(Workflows::from_project(&project).map_err(|e| e.to_string())?);
    let dir = std::env::temp_dir().join(format!("edgestra-bench-workflow-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let store = crate::storage::Store::open(&dir).map_err(|e| e.to_string())?;
    let engine = Runs::new(
        store,
        workflows.clone(),
        Arc::new(NoServices),
        Some((100_000, 3_600_000)),
    );
    let workflow = workflows.get("bench").map_err(|e| e.to_string())?;

    // Baseline: the same expressions, evaluated in memory, nothing recorded.
    let exprs: Vec<&super::definition::Jq> = workflow
        .steps
        .iter()
        .filter_map(|s| match s {
            super::definition::Step::Leaf {
                action: super::definition::Action::Map(e),
                ..
            } => Some(e),
            _ => None,
        })
        .collect();
    let started = Instant::now();
    for _ in 0..runs {
        let mut prev = json!({});
        for e in &exprs {
            prev = e
                .eval(&json!({"input": {}, "prev": prev, "steps": {}}))
                .map_err(|e| e.to_string())?;
        }
    }
    let baseline = (runs * STEPS) as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut done = 0usize;
    let mut ok = 0usize;
    while done < runs {
        let batch = concurrency.min(runs - done);
        let mut ids = Vec::with_capacity(batch);
        for _ in 0..batch {
            let state = engine
                .create(workflow, None, None)
                .await
                .map_err(|e| e.to_string())?;
            ids.push(state.run_id.clone());
            engine
                .start(workflow, state, json!({}), Default::default())
                .await
                .map_err(|e| e.to_string())?;
        }
        for id in ids {
            let s = engine.wait(&id).await.map_err(|e| e.to_string())?;
            if s.result == Some(json!({"n": STEPS})) {
                ok += 1;
            }
        }
        done += batch;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let durable = (runs * STEPS) as f64 / elapsed;
    println!(
        "{runs} durable runs of {STEPS} steps ({concurrency} at a time) in {elapsed:.2} s: {durable:.0} step transitions/s, {:.0} runs/s; {ok} of {runs} correct",
        runs as f64 / elapsed
    );
    println!(
        "baseline, the same steps in memory without recording: {baseline:.0} steps/s ({:.1}× the durable rate)",
        baseline / durable
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
