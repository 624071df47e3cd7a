//! Deciding whether a local model's turn should start with a tool call, and with which tool.
//!
//! A 135M model left to choose between answering and calling a tool practically never calls
//! (DESIGN.md §3), so for models that do not decide themselves the agent decides, in three
//! steps:
//! 1. **Candidates**: the request is embedded and compared with each tool's name, description
//!    and argument names; the closest few above [`CANDIDATE_FLOOR`] are candidates. A tool whose
//!    required arguments include a number is a candidate only when the request holds one (the
//!    arguments come from the request; with no number there is nothing to fill them with).
//! 2. **The model's own view**: with the candidates presented in its tool format, the model
//!    scores how likely it is to open a call for this request, against the same for a greeting
//!    (its *lift*).
//! 3. **Decision**: the most similar candidate is called when its similarity plus
//!    [`CALL_WEIGHT`] × the lift reaches [`CALL_THRESHOLD`], or when the request is as close as
//!    [`EXAMPLE_THRESHOLD`] to one of the tool's example requests (`examples:` in the project
//!    file; the built-in tools have their own). The constants were calibrated on
//!    public function-calling data (README, "Tool calls of local models"). Asking the model
//!    which candidate it would name was measured too: on that data it picked worse than
//!    similarity alone, so it does not vote. With a model that cannot score, similarity alone
//!    decides against [`SIMILARITY_ONLY_THRESHOLD`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::inference::tool_protocol::OPEN;
use crate::inference::{
    ChatMessage, Embedder, GenerateRequest, Generator, InferenceError, ToolChoice, ToolSpec,
};

/// Cosine similarity below which a tool is not considered. MiniLM puts unrelated sentences
/// around 0–0.2 and a request for what a tool does around 0.4–0.8.
pub const CANDIDATE_FLOOR: f32 = 0.2;
/// Most candidates the model is asked about.
pub const MAX_CANDIDATES: usize = 3;
/// Weight of the model's lift (log-probability of opening a call for the request, less that
/// for [`NEUTRAL_REQUEST`]) relative to similarity.
pub const CALL_WEIGHT: f32 = 0.08;
/// Similarity plus weighted lift from which the call is made.
pub const CALL_THRESHOLD: f32 = 0.65;
/// The request the lift is measured against: one that no tool is for.
pub const NEUTRAL_REQUEST: &str = "Hello!";
/// Similarity to one of a tool's examples from which a request is taken to be for it (the
/// examples are the tool's own word on what it is for, so less is needed than of a description).
pub const EXAMPLE_THRESHOLD: f32 = 0.5;
/// The threshold when similarity alone decides (a model that cannot score; networks).
pub const SIMILARITY_ONLY_THRESHOLD: f32 = 0.3;

/// How similar a request is to a tool.
#[derive(Debug, Clone, Copy, Default)]
struct Similarity {
    /// To its name and description (the best of its texts).
    described: f32,
    /// To the closest of its examples (`f32::MIN` without examples).
    example: f32,
}

/// What the router decided for one turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The tool to call, if any.
    pub tool: Option<String>,
    /// The tools that were considered (presented to the model for the call).
    pub candidates: Vec<ToolSpec>,
    /// How far the best candidate's score was above (or below) the threshold.
    pub margin: f32,
}

pub struct ToolRouter {
    embedder: Option<Arc<dyn Embedder>>,
    /// Embeddings of tool texts and examples, computed once each.
    cache: Mutex<HashMap<String, Vec<f32>>>,
}

/// The texts a tool is recognised by: its whole description with name and argument names;
/// since a long description dilutes an embedding, its name and first sentence alone; and the
/// requests it is for, when the tool gives examples.
fn tool_texts(spec: &ToolSpec, short_too: bool) -> Vec<String> {
    let mut texts = vec![tool_text(spec)];
    let first = spec
        .description
        .split_inclusive(". ")
        .next()
        .unwrap_or_default()
        .trim();
    let short = format!("{}: {first}", split_identifier(&spec.name));
    if short_too
        && short.trim_end_matches('.') != texts[0].trim_end_matches('.')
        && !first.is_empty()
    {
        texts.push(short);
    }
    texts.extend(spec.examples.iter().cloned());
    texts
}

/// A tool's name, description and argument names in one text.
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

    /// Similarity of `request` to each tool (its whole text or an example), in the order of
    /// `tools` (what networks route by).
    pub async fn scores(
        &self,
        request: &str,
        tools: &[ToolSpec],
    ) -> Result<Vec<f32>, InferenceError> {
        Ok(self
            .similarities(request, tools, false)
            .await?
            .into_iter()
            .map(|s| s.described.max(s.example))
            .collect())
    }

    /// Similarity of `request` to each tool's description and to its closest example;
    /// `short_too` also compares it with the name and first sentence alone.
    async fn similarities(
        &self,
        request: &str,
        tools: &[ToolSpec],
        short_too: bool,
    ) -> Result<Vec<Similarity>, InferenceError> {
        let Some(embedder) = &self.embedder else {
            return Ok(vec![Similarity::default(); tools.len()]);
        };
        let per_tool: Vec<Vec<String>> = tools.iter().map(|t| tool_texts(t, short_too)).collect();
        let all: Vec<String> = per_tool.iter().flatten().cloned().collect();
        let vectors = self.embed_cached(embedder, &all).await?;
        let query = embedder.embed(vec![request.to_string()]).await?;
        let q = query.first().cloned().unwrap_or_default();
        let mut at = 0;
        Ok(per_tool
            .iter()
            .zip(tools)
            .map(|(texts, tool)| {
                let sims: Vec<f32> = vectors[at..at + texts.len()]
                    .iter()
                    .map(|v| cosine(&q, v))
                    .collect();
                at += texts.len();
                let (described, examples) = sims.split_at(texts.len() - tool.examples.len());
                let best = |s: &[f32]| s.iter().copied().fold(f32::MIN, f32::max);
                Similarity {
                    described: best(described),
                    example: best(examples),
                }
            })
            .collect())
    }

    /// The tool `request` (the last user message of `messages`) asks for, if any; `model`
    /// scores the candidates (see the module docs).
    pub async fn decide(
        &self,
        model: &dyn Generator,
        messages: &[ChatMessage],
        request: &str,
        tools: &[ToolSpec],
    ) -> Result<Decision, InferenceError> {
        let none = |candidates| Decision {
            tool: None,
            candidates,
            margin: f32::NEG_INFINITY,
        };
        if tools.is_empty() || request.trim().is_empty() {
            return Ok(none(Vec::new()));
        }
        let split = self.similarities(request, tools, true).await?;
        let similarity: Vec<f32> = split.iter().map(|s| s.described.max(s.example)).collect();
        let mut ranked: Vec<(usize, f32)> = similarity
            .iter()
            .copied()
            .enumerate()
            .filter(|&(i, s)| s >= CANDIDATE_FLOOR && fillable(&tools[i], request))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked.truncate(MAX_CANDIDATES);
        let candidates: Vec<ToolSpec> = ranked.iter().map(|&(i, _)| tools[i].clone()).collect();
        if candidates.is_empty() {
            tracing::debug!(?similarity, "tool routing: no candidate");
            return Ok(none(candidates));
        }
        let best = ranked[0];
        // The model's lift: how much likelier it is to open a call for this request than for a
        // greeting, with the same tools presented (the likelihood itself depends on how many
        // tools and how long their descriptions are).
        let probe = |messages: Vec<ChatMessage>| {
            let mut probe = GenerateRequest::new(messages);
            probe.tools = candidates.clone();
            probe.tool_choice = ToolChoice::Auto;
            model.score(probe, vec![OPEN.to_string()])
        };
        let mut neutral: Vec<ChatMessage> = messages
            .iter()
            .filter(|m| m.role == "system")
            .cloned()
            .collect();
        neutral.push(ChatMessage::new("user", NEUTRAL_REQUEST));
        let (asked, greeted) = (probe(messages.to_vec()).await?, probe(neutral).await?);
        let (Some(asked), Some(greeted)) = (asked, greeted) else {
            let tool = (best.1 >= SIMILARITY_ONLY_THRESHOLD).then(|| tools[best.0].name.clone());
            return Ok(Decision {
                tool,
                candidates,
                margin: best.1 - SIMILARITY_ONLY_THRESHOLD,
            });
        };
        let lift = asked[0] - greeted[0];
        // A request like one of the tool's own examples is for it; otherwise the description's
        // similarity and the lift decide.
        let by_example = split[best.0].example - EXAMPLE_THRESHOLD + CALL_THRESHOLD;
        let call = (split[best.0].described + CALL_WEIGHT * lift).max(by_example);
        let considered: Vec<&str> = candidates.iter().map(|t| t.name.as_str()).collect();
        tracing::debug!(
            ?similarity,
            open = asked[0],
            neutral = greeted[0],
            ?considered,
            call,
            "tool routing"
        );
        let tool = (call >= CALL_THRESHOLD).then(|| tools[best.0].name.clone());
        Ok(Decision {
            tool,
            candidates,
            margin: call - CALL_THRESHOLD,
        })
    }
}

/// Words that stand for a quantity when a request spells it out.
const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "fifteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "hundred",
    "thousand",
    "million",
    "billion",
    "dozen",
    "half",
    "once",
    "twice",
    "double",
    "triple",
    "single",
    "first",
    "second",
    "third",
    "today",
    "tomorrow",
    "yesterday",
    "minute",
    "hour",
    "day",
    "week",
    "month",
    "year",
    "decade",
    "century",
];

/// Whether `request` can supply what `tool` needs: a tool with a required number is fillable
/// only from a request that holds a digit or a quantity word.
fn fillable(tool: &ToolSpec, request: &str) -> bool {
    let props = tool.parameters.get("properties");
    let needs_number = tool
        .parameters
        .get("required")
        .and_then(|r| r.as_array())
        .into_iter()
        .flatten()
        .filter_map(|name| props.and_then(|p| p.get(name.as_str()?)))
        .any(|schema| matches!(schema["type"].as_str(), Some("integer" | "number")));
    if !needs_number || request.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    request
        .split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .any(|w| {
            let w = w.strip_suffix('s').unwrap_or(&w);
            NUMBER_WORDS.contains(&w)
        })
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
            ..Default::default()
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
        let model = crate::inference::local::LocalChat::shared(
            crate::inference::embedded::CHAT_MODEL,
            crate::inference::local::Source::Embedded(
                crate::inference::embedded::CHAT_MODEL.into(),
            ),
        );
        let builtin = |name: &str| {
            let b = crate::tools::builtin::spec(name).unwrap();
            ToolSpec {
                name: name.into(),
                description: b.description.into(),
                parameters: (b.input_schema)(),
                examples: b.examples.iter().map(|e| e.to_string()).collect(),
            }
        };
        let tools = vec![
            ToolSpec {
                name: "weatherTool".into(),
                description: "Current weather for a city".into(),
                parameters: json!({"properties": {"city": {}}}),
                ..Default::default()
            },
            builtin("calculator"),
            builtin("datetime"),
            ToolSpec {
                name: crate::agent::run::WORKING_MEMORY_TOOL.into(),
                description: crate::agent::run::WORKING_MEMORY_DESCRIPTION.into(),
                parameters: json!({"properties": {"memory": {}}}),
                examples: crate::agent::run::WORKING_MEMORY_EXAMPLES
                    .iter()
                    .map(|e| e.to_string())
                    .collect(),
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
            ("Tell me a fun fact about octopuses", None),
            ("Write a haiku about the sea", None),
        ] {
            let scores = router.scores(q, &tools).await.unwrap();
            let messages = [ChatMessage::new("user", q)];
            let got = router.decide(&*model, &messages, q, &tools).await.unwrap();
            eprintln!("{q}: {scores:?} → {:?} ({:.3})", got.tool, got.margin);
            assert_eq!(got.tool.as_deref(), want, "{q}: {scores:?}");
            if let Some(tool) = &got.tool {
                assert!(got.candidates.iter().any(|c| &c.name == tool));
            }
        }
    }

    #[test]
    fn a_required_number_needs_a_number_in_the_request() {
        let tool = ToolSpec {
            name: "area".into(),
            description: "Area of a square".into(),
            parameters: json!({"properties": {"side": {"type": "number"}, "unit": {"type": "string"}}, "required": ["side"]}),
            ..Default::default()
        };
        assert!(fillable(&tool, "Area of a square with side 4"));
        assert!(fillable(
            &tool,
            "Area of a square with sides of five meters"
        ));
        assert!(!fillable(&tool, "How do I compute the area of a square?"));
        let optional = ToolSpec {
            parameters: json!({"properties": {"side": {"type": "number"}}}),
            ..tool
        };
        assert!(fillable(
            &optional,
            "How do I compute the area of a square?"
        ));
    }
}
