//! Deciding whether a local model's turn should start with a tool call.
//!
//! A 135M model left to choose between answering and calling a tool practically never calls
//! (DESIGN.md §3), so for models that do not decide themselves the agent decides: the user's
//! request is embedded and compared with each tool's name and description; when the closest
//! tool is similar enough, the model is asked to write a call (to that tool), else to answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::inference::{Embedder, InferenceError, ToolSpec};

/// Cosine similarity from which a request is taken to be about a tool. MiniLM puts unrelated
/// sentences around 0–0.2 and a request for what a tool does around 0.4–0.7.
pub const CALL_THRESHOLD: f32 = 0.3;

pub struct ToolRouter {
    embedder: Option<Arc<dyn Embedder>>,
    /// Embeddings of tool texts and examples, computed once each.
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

/// Sentences a built-in tool is for, beyond its description.
fn examples(tool: &str) -> &'static [&'static str] {
    match tool {
        crate::agent::run::WORKING_MEMORY_TOOL => &[
            "My name is",
            "I live in my home town",
            "My job is, I work as",
            "I like, I enjoy, my hobby is",
        ],
        _ => &[],
    }
}

/// The text a tool is recognised by.
fn tool_text(spec: &ToolSpec) -> String {
    let name = split_identifier(&spec.name);
    let args: Vec<String> = spec
        .parameters
        .get("properties")
        .and_then(|p| p.as_object())
        .map(|p| p.keys().map(|k| split_identifier(k)).collect())
        .unwrap_or_default();
    format!("{name}: {} ({})", spec.description, args.join(", "))
}

/// `weatherTool` / `get_weather` → `weather tool` / `get weather`.
fn split_identifier(id: &str) -> String {
    let mut out = String::new();
    for (i, c) in id.chars().enumerate() {
        if c == '_' || c == '-' {
            out.push(' ');
        } else if c.is_uppercase() && i > 0 {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl ToolRouter {
    pub fn new(embedder: Option<Arc<dyn Embedder>>) -> ToolRouter {
        ToolRouter {
            embedder,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Embeddings of `texts`, from the cache where possible.
    async fn embed_cached(
        &self,
        embedder: &Arc<dyn Embedder>,
        texts: &[String],
    ) -> Result<Vec<Vec<f32>>, InferenceError> {
        let missing: Vec<String> = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            texts
                .iter()
                .filter(|t| !cache.contains_key(*t))
                .cloned()
                .collect()
        };
        if !missing.is_empty() {
            let vectors = embedder.embed(missing.clone()).await?;
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            for (t, v) in missing.into_iter().zip(vectors) {
                cache.insert(t, v);
            }
        }
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        Ok(texts
            .iter()
            .map(|t| cache.get(t).cloned().unwrap_or_default())
            .collect())
    }

    /// Similarity of `request` to each tool (its best text), in the order of `tools`.
    pub async fn scores(
        &self,
        request: &str,
        tools: &[ToolSpec],
    ) -> Result<Vec<f32>, InferenceError> {
        let Some(embedder) = &self.embedder else {
            return Ok(vec![0.0; tools.len()]);
        };
        let per_tool: Vec<Vec<String>> = tools
            .iter()
            .map(|t| {
                std::iter::once(tool_text(t))
                    .chain(examples(&t.name).iter().map(|e| e.to_string()))
                    .collect()
            })
            .collect();
        let all: Vec<String> = per_tool.iter().flatten().cloned().collect();
        let vectors = self.embed_cached(embedder, &all).await?;
        let query = embedder.embed(vec![request.to_string()]).await?;
        let q = query.first().cloned().unwrap_or_default();
        let mut at = 0;
        Ok(per_tool
            .iter()
            .map(|texts| {
                let best = vectors[at..at + texts.len()]
                    .iter()
                    .map(|v| cosine(&q, v))
                    .fold(f32::MIN, f32::max);
                at += texts.len();
                best
            })
            .collect())
    }

    /// The tool `request` asks for, if any.
    pub async fn pick(
        &self,
        request: &str,
        tools: &[ToolSpec],
    ) -> Result<Option<String>, InferenceError> {
        if tools.is_empty() || request.trim().is_empty() {
            return Ok(None);
        }
        let scores = self.scores(request, tools).await?;
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .filter(|(_, s)| **s >= CALL_THRESHOLD);
        tracing::debug!(?scores, "tool routing");
        Ok(best.map(|(i, _)| tools[i].name.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_read_as_words() {
        assert_eq!(split_identifier("weatherTool"), "weather tool");
        assert_eq!(split_identifier("get_current-time"), "get current time");
        let spec = ToolSpec {
            name: "weatherTool".into(),
            description: "Current weather".into(),
            parameters: json!({"properties": {"cityName": {}}}),
        };
        assert_eq!(
            tool_text(&spec),
            "weather tool: Current weather (city name)"
        );
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[tokio::test]
    async fn requests_go_to_the_tool_they_are_about() {
        let embedder = crate::inference::local::LocalEmbedder::shared(
            crate::inference::embedded::EMBEDDING_MODEL,
            crate::inference::local::Source::Embedded(
                crate::inference::embedded::EMBEDDING_MODEL.into(),
            ),
        );
        let router = ToolRouter::new(Some(embedder));
        let tools = vec![
            ToolSpec {
                name: "weatherTool".into(),
                description: "Current weather for a city".into(),
                parameters: json!({"properties": {"city": {}}}),
            },
            ToolSpec {
                name: "calculator".into(),
                description: "Evaluates an arithmetic expression such as 2 * (3 + 4)".into(),
                parameters: json!({"properties": {"expression": {}}}),
            },
            ToolSpec {
                name: "datetime".into(),
                description: "The current date and time".into(),
                parameters: json!({"properties": {"timezone": {}}}),
            },
            ToolSpec {
                name: crate::agent::run::WORKING_MEMORY_TOOL.into(),
                description: crate::agent::run::WORKING_MEMORY_DESCRIPTION.into(),
                parameters: json!({"properties": {"memory": {}}}),
            },
        ];
        for (q, want) in [
            ("What is the weather in Berlin?", Some("weatherTool")),
            ("Will it rain in Paris today?", Some("weatherTool")),
            ("Calculate 17 * 23", Some("calculator")),
            ("What time is it?", Some("datetime")),
            (
                "My name is Ann and I live in Oslo.",
                Some("updateWorkingMemory"),
            ),
            (
                "I work as a nurse and I like hiking",
                Some("updateWorkingMemory"),
            ),
            ("Hello there, how are you today?", None),
            ("Please stream something back", None),
            ("Remember the word kiwi", None),
            ("Write a haiku about the sea", None),
        ] {
            let scores = router.scores(q, &tools).await.unwrap();
            let got = router.pick(q, &tools).await.unwrap();
            eprintln!("{q}: {scores:?} → {got:?}");
            assert_eq!(got.as_deref(), want, "{q}: {scores:?}");
        }
    }
}
