//! `vector_query:` tools (RAG): embed the input `query` with the store's embedder and return
//! the nearest chunks of an index, optionally filtered by metadata.

use std::sync::Arc;

use serde_json::{Value, json};

use super::ToolError;
use crate::config::{Project, VectorQueryToolConfig};
use crate::inference::{Embedder, Models};
use crate::vector::store::VectorStore;

/// What the engines give tools that need them.
#[derive(Clone, Default)]
pub struct ToolServices {
    pub models: Models,
    pub vectors: crate::vector::store::VectorStores,
}

pub struct VectorQueryTool {
    store: Arc<VectorStore>,
    index: String,
    top_k: usize,
    embedder: Arc<dyn Embedder>,
}

pub fn input_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "description": "What to look for"},
            "topK": {"type": "integer", "minimum": 1, "maximum": 100, "description": "How many results"},
            "filter": {"type": "object", "description": "Metadata filter (Mongo-style)"}
        },
        "required": ["query"],
        "additionalProperties": false
    })
}

impl VectorQueryTool {
    pub fn new(
        cfg: &VectorQueryToolConfig,
        project: &Project,
        services: &ToolServices,
    ) -> Result<Self, String> {
        let store = services
            .vectors
            .get(&cfg.store)
            .map_err(|e| e.to_string())?;
        let embedder_name = project
            .vector_stores
            .get(&cfg.store)
            .and_then(|s| s.embedder.clone())
            .unwrap_or_else(|| crate::inference::embedded::EMBEDDING_MODEL.to_string());
        let embedder = services
            .models
            .embedder(&embedder_name)
            .ok_or_else(|| format!("model `{embedder_name}` is not an embedding model"))?;
        Ok(VectorQueryTool {
            store,
            index: cfg.index.clone(),
            top_k: cfg.top_k.unwrap_or(5),
            embedder,
        })
    }

    pub async fn run(&self, input: &Value) -> Result<Value, ToolError> {
        let text = input["query"].as_str().unwrap_or_default().to_string();
        let top_k = input
            .get("topK")
            .and_then(Value::as_u64)
            .map(|k| k as usize)
            .unwrap_or(self.top_k);
        let filter = input.get("filter").cloned();
        let vector = self
            .embedder
            .embed(vec![text])
            .await
            .map_err(|e| ToolError::Failed(format!("embedding the query failed: {e}")))?
            .remove(0);
        let (store, index) = (self.store.clone(), self.index.clone());
        let query: Vec<f64> = vector.into_iter().map(f64::from).collect();
        let results = tokio::task::spawn_blocking(move || {
            store.query(&index, &query, top_k, filter.as_ref(), false)
        })
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .map_err(|e| ToolError::Failed(e.to_string()))?;
        Ok(json!({
            "results": results.into_iter().map(|r| json!({
                "id": r.id,
                "score": r.score,
                "text": r.metadata.get("text").cloned().unwrap_or(Value::Null),
                "metadata": r.metadata,
            })).collect::<Vec<_>>()
        }))
    }
}
