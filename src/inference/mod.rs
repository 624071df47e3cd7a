//! Text generation and embeddings, local (candle, on the CPU) or remote (an OpenAI-compatible
//! server), behind the [`Generator`] and [`Embedder`] traits. Local models run on their own
//! threads behind bounded queues; a full queue is [`InferenceError::Busy`].

pub mod bench;
pub mod constrained;
pub mod embedded;
pub mod embedder;
pub mod llama;
pub mod local;
pub mod sampling;
pub mod template;
pub mod tokenizer;

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

/// A chat turn as templates see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: &str, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into() }
    }
}

#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub messages: Vec<ChatMessage>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// When set, the output is JSON that validates against this schema.
    pub json_schema: Option<Value>,
}

impl GenerateRequest {
    pub fn new(messages: Vec<ChatMessage>) -> GenerateRequest {
        GenerateRequest { messages, sampling: SamplingParams::default(), max_tokens: 256, stop: Vec::new(), json_schema: None }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub text: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// Something that continues a conversation.
#[async_trait::async_trait]
pub trait Generator: Send + Sync {
    /// Model id as reported to clients (`modelId`).
    fn model_id(&self) -> &str;
    /// Provider name as reported to clients (`provider`).
    fn provider(&self) -> &str;
    /// Generates; text deltas go to `stream` as they are produced. Dropping the returned future
    /// cancels the generation at the next token.
    async fn generate(&self, req: GenerateRequest, stream: Option<UnboundedSender<String>>) -> Result<Generation, InferenceError>;
}

/// Something that turns texts into vectors.
#[async_trait::async_trait]
pub trait Embedder: Send + Sync {
    fn dimensions(&self) -> usize;
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, InferenceError>;
}
