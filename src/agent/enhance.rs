//! Improving an agent's instructions with its own model (`instructions/enhance`): the model
//! plays a prompt engineer and answers `{new_prompt, explanation}` under constrained decoding.

use std::sync::Arc;

use serde_json::{Value, json};

use super::options::{CallOptions, DEFAULT_MAX_TOKENS};
use super::{Agent, AgentError};
use crate::inference::{SamplingParams, ToolChoice};
use crate::memory::messages::{CoreMessage, Role};

const ENGINEER: &str = "You are an expert prompt engineer. Improve the system prompt you are given: keep its intent, make it clear, specific and well structured, and say briefly what you changed and why.";

fn answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "new_prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
            "explanation": {"type": "string", "minLength": 1, "maxLength": 1000}
        },
        "required": ["new_prompt", "explanation"],
        "additionalProperties": false
    })
}

/// Asks `agent`'s model for better instructions; answers `{new_prompt, explanation}`.
pub async fn improve(
    agents: &super::Agents,
    agent: &Arc<Agent>,
    instructions: &str,
    comment: Option<&str>,
) -> Result<Value, AgentError> {
    let mut request = format!("The system prompt to improve:\n{instructions}");
    if let Some(c) = comment.filter(|c| !c.trim().is_empty()) {
        request.push_str(&format!("\n\nFeedback from the user: {c}"));
    }
    let opts = CallOptions {
        messages: vec![CoreMessage::text(Role::User, request)],
        instructions: Some(ENGINEER.to_string()),
        context: Vec::new(),
        max_steps: 1,
        tool_choice: ToolChoice::None,
        sampling: SamplingParams {
            temperature: 0.3,
            ..SamplingParams::default()
        },
        max_tokens: DEFAULT_MAX_TOKENS * 2,
        stop: Vec::new(),
        client_tools: Vec::new(),
        output: Some(answer_schema()),
        experimental_output: None,
        runtime_context: Default::default(),
        run_id: uuid::Uuid::new_v4().to_string(),
        memory: None,
    };
    let result = agents.call(agent, &opts, None).await?;
    result.object.ok_or_else(|| {
        AgentError::Inference(crate::inference::InferenceError::Failed(
            "the model gave no structured answer".into(),
        ))
    })
}
