//! Text generation and embeddings, local (candle, on the CPU) or remote (an OpenAI-compatible
//! server), behind the [`Generator`] and [`Embedder`] traits. Local models run on their own
//! threads behind bounded queues; a full queue is [`InferenceError::Busy`].

pub mod baseline;
pub mod bench;
pub mod chat;
pub mod choices;
pub mod constrained;
pub mod decoder;
pub mod embedded;
pub mod embedder;
pub mod engine;
pub mod grounding;
pub mod local;
pub mod remote;
pub mod sampling;
pub mod template;
pub mod tokenizer;
pub mod tool_format;
pub mod tool_protocol;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc::UnboundedSender;

pub use sampling::SamplingParams;

#[derive(Debug, Clone, thiserror::Error)]
pub enum InferenceError {
    #[error("{0}")]
    Busy(String),
    #[error("the model could not be loaded: {0}")]
    Load(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    Failed(String),
    #[error("the request was cancelled")]
    Cancelled,
    #[error("the model server answered {status}: {message}")]
    Remote { status: u16, message: String },
    #[error("the model did not answer within {0} ms")]
    Timeout(u64),
}

/// Why generation ended (AI SDK wording).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    Error,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// A chat turn. `tool_calls` (on assistant turns) and `tool_call_id` (on `tool` turns) carry
/// the tool loop for providers that take them natively.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            tool_calls: Vec::new(),
            tool_call_id: None,
        }
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments.
    pub parameters: Value,
    /// Requests the tool is for, in users' words (they help a router recognise it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
}

/// A call the model made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

/// Whether and which tool the model must call.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    Auto,
    None,
    Required,
    Tool(String),
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// When set, the output is JSON that validates against this schema.
    pub json_schema: Option<Value>,
    pub tools: Vec<ToolSpec>,
    pub tool_choice: ToolChoice,
}

impl GenerateRequest {
    pub fn new(messages: Vec<ChatMessage>) -> GenerateRequest {
        GenerateRequest {
            messages,
            sampling: SamplingParams::default(),
            max_tokens: 256,
            stop: Vec::new(),
            json_schema: None,
            tools: Vec::new(),
            tool_choice: ToolChoice::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
    pub tool_calls: Vec<ToolCall>,
}

/// Something that continues a conversation.
#[async_trait::async_trait]
pub trait Generator: Send + Sync {
    /// Model id as reported to clients (`modelId`).
    fn model_id(&self) -> &str;
    /// Provider name as reported to clients (`provider`).
    fn provider(&self) -> &str;
    /// Whether the model itself decides between calling a tool and answering when
    /// `tool_choice` is `Auto`. Local models whose template does not render tools do not (see
    /// [`tool_protocol`]): with `Auto` they answer in text, and the caller decides when a call
    /// is due; those whose template does decide in their own format ([`tool_format`]).
    fn decides_tool_use(&self) -> bool {
        true
    }
    /// Whether decoding itself is held to `json_schema`, so that a structured answer needs no
    /// schema in the prompt. Local models are (constrained decoding), and a schema shown to a
    /// small model biases its choices towards the values listed first; a remote provider may
    /// not enforce `response_format` and is shown the schema.
    fn holds_to_schema(&self) -> bool {
        false
    }
    /// Whether the model can serve: its files are there and, if it was loaded, loading
    /// succeeded. Cheap; nothing is loaded. Remote providers are not probed (that would be a
    /// network call per probe) and count as ready.
    fn readiness(&self) -> Result<(), InferenceError> {
        Ok(())
    }
    /// Generates; text deltas go to `stream` as they are produced. Dropping the returned future
    /// cancels the generation at the next token.
    async fn generate(
        &self,
        req: GenerateRequest,
        stream: Option<UnboundedSender<String>>,
    ) -> Result<Generation, InferenceError>;
    /// The log-probability the model gives each of `continuations` as the start of its answer
    /// to `req` (with `req.tools` presented as for a call), or `None` when it cannot say
    /// (remote providers do not expose prompt likelihoods).
    async fn score(
        &self,
        req: GenerateRequest,
        continuations: Vec<String>,
    ) -> Result<Option<Vec<f32>>, InferenceError> {
        let _ = (req, continuations);
        Ok(None)
    }
}

/// Something that turns texts into vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    fn dimensions(&self) -> usize;
    /// As [`Generator::readiness`].
    fn readiness(&self) -> Result<(), InferenceError> {
        Ok(())
    }
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, InferenceError>;
    /// As [`Embedder::embed`], with the number of input tokens when the model tells it.
    async fn embed_counted(
        &self,
        texts: Vec<String>,
    ) -> Result<(Vec<Vec<f32>>, Option<u64>), InferenceError> {
        Ok((self.embed(texts).await?, None))
    }
}

/// The models a project can use, by name: the embedded ones under their manifest names, and
/// the entries of the project's `models:` section. Workers start on first use.
#[derive(Clone, Default)]
pub struct Models {
    generators: std::collections::HashMap<String, std::sync::Arc<dyn Generator>>,
    embedders: std::collections::HashMap<String, std::sync::Arc<dyn Embedder>>,
}

impl Models {
    pub fn from_project(project: &crate::config::Project) -> Result<Models, InferenceError> {
        use local::{LocalChat, LocalEmbedder, Source};
        use std::sync::Arc;
        let mut models = Models::default();
        let builtin = |models: &mut Models, key: &str, name: &str| match embedded::manifest()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.kind.clone())
            .as_deref()
        {
            Some("chat") => {
                models.generators.insert(
                    key.to_string(),
                    LocalChat::shared(name, Source::Embedded(name.into())),
                );
            }
            Some(_) => {
                models.embedders.insert(
                    key.to_string(),
                    LocalEmbedder::shared(name, Source::Embedded(name.into())),
                );
            }
            None => {}
        };
        for m in embedded::manifest() {
            builtin(&mut models, &m.name, &m.name);
        }
        for (key, cfg) in &project.models {
            if let Some(name) = &cfg.local {
                builtin(&mut models, key, name);
            } else if let Some(path) = &cfg.path {
                let p = std::path::PathBuf::from(path);
                if p.is_dir() {
                    models
                        .embedders
                        .insert(key.clone(), LocalEmbedder::shared(key, Source::Path(p)));
                } else {
                    models
                        .generators
                        .insert(key.clone(), LocalChat::shared(key, Source::Path(p)));
                }
            } else if let Some(openai) = &cfg.openai {
                let remote = Arc::new(remote::RemoteModel::new(openai)?);
                models.generators.insert(key.clone(), remote.clone());
                models.embedders.insert(key.clone(), remote);
            }
        }
        Ok(models)
    }

    /// The text generator registered as `name`.
    pub fn generator(&self, name: &str) -> Option<std::sync::Arc<dyn Generator>> {
        self.generators.get(name).cloned()
    }

    /// The embedder registered as `name`.
    pub fn embedder(&self, name: &str) -> Option<std::sync::Arc<dyn Embedder>> {
        self.embedders.get(name).cloned()
    }

    /// The models that cannot serve, by name, with why (see [`Generator::readiness`]), in
    /// name order.
    pub fn not_ready(&self) -> Vec<(String, String)> {
        let generators = self.generators.iter().map(|(n, g)| (n, g.readiness()));
        let embedders = self.embedders.iter().map(|(n, e)| (n, e.readiness()));
        let mut failing: Vec<(String, String)> = generators
            .chain(embedders)
            .filter_map(|(n, r)| r.err().map(|e| (n.clone(), e.to_string())))
            .collect();
        failing.sort();
        failing.dedup();
        failing
    }
}
