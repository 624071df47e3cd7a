//! The HTTP error body: every layer's error enum is mapped to a status and `{"error": "…"}` here,
//! and only here.

use salvo::http::StatusCode;
use salvo::oapi::{Components, EndpointOutRegister, Operation, ToSchema};
use salvo::prelude::*;
use serde_json::{Value, json};

use crate::expr::ExprError;
use crate::inference::InferenceError;
use crate::storage::StorageError;
use crate::tools::ToolError;
use crate::vector::VectorError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Extra machine-readable detail (e.g. the list of validation messages).
    pub details: Option<Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            details: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    /// Mastra's wording for a missing required field.
    pub fn required(field: &str) -> ApiError {
        Self::bad_request(format!("Argument \"{field}\" is required"))
    }
    pub fn too_large() -> ApiError {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }
    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status.as_u16(), self.message)
    }
}

impl Scribe for ApiError {
    fn render(self, res: &mut Response) {
        if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(status = self.status.as_u16(), error = %self.message, "request failed");
        }
        let mut body = json!({ "error": self.message });
        if let Some(d) = self.details {
            body["details"] = d;
        }
        res.status_code(self.status);
        res.render(Json(body));
    }
}

impl EndpointOutRegister for ApiError {
    fn register(components: &mut Components, operation: &mut Operation) {
        let schema = <Value as ToSchema>::to_schema(components);
        for (code, desc) in [
            ("400", "Bad request"),
            ("404", "Not found"),
            ("500", "Internal error"),
        ] {
            operation.responses.insert(
                code,
                salvo::oapi::Response::new(desc).add_content("application/json", schema.clone()),
            );
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<ToolError> for ApiError {
    fn from(e: ToolError) -> Self {
        match e {
            ToolError::NotFound => ApiError::not_found("Tool not found"),
            ToolError::InvalidInput(messages) => {
                ApiError::bad_request(ToolError::InvalidInput(messages.clone()).to_string())
                    .with_details(json!(messages))
            }
            ToolError::Timeout(_) => ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string()),
            ToolError::Failed(m) | ToolError::Config(m) => ApiError::internal(m),
        }
    }
}

impl From<InferenceError> for ApiError {
    fn from(e: InferenceError) -> Self {
        let status = match &e {
            InferenceError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
            InferenceError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            InferenceError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            InferenceError::Remote { .. } => StatusCode::BAD_GATEWAY,
            InferenceError::Load(_) | InferenceError::Failed(_) | InferenceError::Cancelled => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        ApiError::new(status, e.to_string())
    }
}

impl From<VectorError> for ApiError {
    fn from(e: VectorError) -> Self {
        match e {
            VectorError::StoreNotFound(_) | VectorError::IndexNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            VectorError::Invalid(_) | VectorError::Filter(_) => {
                ApiError::bad_request(e.to_string())
            }
            VectorError::Storage(m) => ApiError::internal(m),
        }
    }
}

impl From<ExprError> for ApiError {
    fn from(e: ExprError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

impl From<crate::agent::AgentError> for ApiError {
    fn from(e: crate::agent::AgentError) -> Self {
        use crate::agent::AgentError;
        match e {
            AgentError::NotFound(_) | AgentError::ModelNotFound(_) => {
                ApiError::not_found(e.to_string())
            }
            AgentError::InvalidRequest(m) => ApiError::bad_request(m),
            AgentError::Inference(e) => e.into(),
            AgentError::Tool(e) => e.into(),
            AgentError::Storage(e) => e.into(),
            AgentError::Memory(e) => e.into(),
            AgentError::Config(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::memory::engine::MemoryError> for ApiError {
    fn from(e: crate::memory::engine::MemoryError) -> Self {
        use crate::memory::engine::MemoryError;
        match e {
            MemoryError::ThreadNotFound => ApiError::not_found(e.to_string()),
            MemoryError::Invalid(m) => ApiError::bad_request(m),
            MemoryError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            MemoryError::Storage(e) => e.into(),
            MemoryError::Inference(e) => e.into(),
            MemoryError::Vector(e) => e.into(),
            MemoryError::Failed(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::workflow::WorkflowError> for ApiError {
    fn from(e: crate::workflow::WorkflowError) -> Self {
        use crate::workflow::WorkflowError;
        match e {
            WorkflowError::NotFound(_) | WorkflowError::RunNotFound => {
                ApiError::not_found(e.to_string())
            }
            WorkflowError::Invalid(m) => ApiError::bad_request(m),
            WorkflowError::Config(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::mcp::McpError> for ApiError {
    fn from(e: crate::mcp::McpError) -> ApiError {
        use crate::mcp::McpError;
        match e {
            McpError::ServerNotFound(_) | McpError::ToolNotFound { .. } => {
                ApiError::not_found(e.to_string())
            }
            McpError::InvalidArguments(ref problems) => {
                ApiError::bad_request(e.to_string()).with_details(json!(problems))
            }
            McpError::Failed(m) => ApiError::internal(m),
        }
    }
}

impl From<crate::scores::ScoreError> for ApiError {
    fn from(e: crate::scores::ScoreError) -> ApiError {
        match e {
            crate::scores::ScoreError::Invalid(m) => ApiError::bad_request(m),
            crate::scores::ScoreError::Storage(s) => s.into(),
        }
    }
}

impl From<crate::network::NetworkError> for ApiError {
    fn from(e: crate::network::NetworkError) -> ApiError {
        use crate::network::NetworkError;
        match e {
            NetworkError::NotFound(_) => ApiError::not_found(e.to_string()),
            NetworkError::Invalid(m) => ApiError::bad_request(m),
            NetworkError::Failed(m) | NetworkError::Config(m) => ApiError::internal(m),
        }
    }
}
