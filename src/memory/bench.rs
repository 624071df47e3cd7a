//! `edgestra bench memory`: with N messages in one resource (real MiniLM embeddings), the
//! latency of listing a thread page and of a semantic recall (query embedding included), p50
//! and p99, each next to a baseline measured in the same run: reading the resource's whole
//! history, and an exact scan over every stored message vector.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{MemoryConfig, Scope, SemanticRecall};
use super::engine::Memory;
use super::messages::{CoreMessage, Role};
use crate::inference::Embedder;

const SUBJECTS: &[&str] = &[
    "my sourdough starter",
    "the bicycle chain",
    "our puppy",
    "the tomato plants",
    "my guitar",
    "the kitchen tap",
    "retirement savings",
    "marathon training",
    "watercolour painting",
    "the home wifi",
    "a trip to Lisbon",
    "the tax return",
    "my cough",
    "the car battery",
    "learning Spanish",
    "the birthday party",
    "a chess opening",
    "the roof gutter",
];
const VERBS: &[&str] = &[
    "keeps failing",
    "needs attention",
    "made me happy today",
    "is confusing me",
    "costs too much",
    "got better after a week",
    "needs a plan",
    "broke again",
];

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[i.min(samples.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(what: &str, samples: &mut [Duration], baseline: &mut [Duration], baseline_name: &str) {
    let (p50, p99) = (percentile(samples, 0.5), percentile(samples, 0.99));
    let b50 = percentile(baseline, 0.5);
    println!(
        "{what}: p50 {:.2} ms, p99 {:.2} ms  (baseline, {baseline_name}: p50 {:.2} ms = {:.1}× this)",
        ms(p50),
        ms(p99),
        ms(b50),
        ms(b50) / ms(p50).max(1e-6)
    );
}

/// Runs the benchmark with `messages` messages over `threads` threads of one resource.
pub async fn run(messages: usize, threads: usize) -> Result<(), String> {
    {
        let dir = tempfile_dir()?;
        let store = crate::storage::Store::open(&dir).map_err(|e| e.to_string())?;
        let embedder: Arc<dyn Embedder> = crate::inference::local::LocalEmbedder::shared(
            crate::inference::embedded::EMBEDDING_MODEL,
            crate::inference::local::Source::Embedded(
                crate::inference::embedded::EMBEDDING_MODEL.into(),
            ),
        );
        let memory = Memory::new(store, Some(embedder.clone()), true);
        let threads = threads.max(1);
        let started = Instant::now();
        let mut i = 0usize;
        let batch = 100;
        while i < messages {
            let n = batch.min(messages - i);
            let thread = format!("thread-{}", (i / batch) % threads);
            let turn: Vec<CoreMessage> = (i..i + n)
                .map(|k| {
                    let text = format!(
                        "Message {k}: {} {}.",
                        SUBJECTS[k % SUBJECTS.len()],
                        VERBS[(k / SUBJECTS.len()) % VERBS.len()]
                    );
                    CoreMessage::text(
                        if k % 2 == 0 {
                            Role::User
                        } else {
                            Role::Assistant
                        },
                        text,
                    )
                })
                .collect();
            memory
                .remember(&thread, "bench-user", &turn)
                .await
                .map_err(|e| e.to_string())?;
            i += n;
        }
        println!(
            "stored and embedded {messages} messages in {threads} threads in {:.1} s ({:.0}/s)",
            started.elapsed().as_secs_f64(),
            messages as f64 / started.elapsed().as_secs_f64()
        );

        // Listing one page (the latest 40) of a thread, against reading the whole resource.
        let cfg = MemoryConfig {
            last_messages: 40,
            ..MemoryConfig::default()
        };
        let mut page = Vec::new();
        let mut whole = Vec::new();
        for k in 0..200 {
            let thread = format!("thread-{}", k % threads);
            let t = Instant::now();
            memory
                .recall(&cfg, &thread, "bench-user", "")
                .await
                .map_err(|e| e.to_string())?;
            page.push(t.elapsed());
            if k < 20 {
                let t = Instant::now();
                memory
                    .resource_messages("bench-user")
                    .await
                    .map_err(|e| e.to_string())?;
                whole.push(t.elapsed());
            }
        }
        report(
            "thread page (40 latest)",
            &mut page,
            &mut whole,
            "whole resource read",
        );

        // Semantic recall over the resource (topK 3, one neighbour each side, no recent
        // messages), against embedding the query and scanning every vector exactly.
        let cfg = MemoryConfig {
            last_messages: 0,
            semantic_recall: Some(SemanticRecall {
                top_k: 3,
                before: 1,
                after: 1,
                scope: Scope::Resource,
            }),
            ..MemoryConfig::default()
        };
        let all = memory
            .resource_messages("bench-user")
            .await
            .map_err(|e| e.to_string())?;
        let texts: Vec<String> = all.iter().map(super::engine::message_text).collect();
        let mut vectors = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            vectors.extend(
                embedder
                    .embed(chunk.to_vec())
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let mut recall = Vec::new();
        let mut exact = Vec::new();
        let mut found = 0usize;
        for k in 0..100 {
            let subject = SUBJECTS[k % SUBJECTS.len()];
            let query = format!("What did I say about {subject}?");
            let t = Instant::now();
            let r = memory
                .recall(&cfg, "thread-0", "bench-user", &query)
                .await
                .map_err(|e| e.to_string())?;
            recall.push(t.elapsed());
            if r.history.iter().any(|m| m.text_content().contains(subject)) {
                found += 1;
            }
            if k < 30 {
                let t = Instant::now();
                let q = embedder
                    .embed(vec![query])
                    .await
                    .map_err(|e| e.to_string())?;
                let q = &q[0];
                let mut best: Vec<(f32, usize)> = vectors
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum::<f32>(), i))
                    .collect();
                best.sort_by(|a, b| b.0.total_cmp(&a.0));
                std::hint::black_box(&best[..3]);
                exact.push(t.elapsed());
            }
        }
        report(
            "semantic recall (query embedding included)",
            &mut recall,
            &mut exact,
            "embed + exact scan",
        );
        println!("recalled a message on the asked subject in {found} of 100 queries");
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("edgestra-bench-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}
