//! Calls of the legacy AgentNetwork (`POST /api/networks/{id}/generate|stream`, spec §4.3.9):
//! the routing loop presented as one agent call, as Mastra's AgentNetwork presents its routing
//! agent. Each primitive the router hands the task to is a call of the tool `transmit` (the
//! routing agent's tool in Mastra) with its result; the last step's text is the loop's answer.

use std::sync::Mutex;

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::{Conversation, Iteration, Network, NetworkError, Networks, Progress};
use crate::agent::run::{
    AgentEvent, RunResult, StepResult, ToolCallRecord, ToolResultRecord, new_message_id, now_iso,
    tool_message,
};
use crate::inference::{FinishReason, Usage};
use crate::memory::messages::{CoreMessage, Part, Role, parse_input};

/// A legacy call's task: the last user message of `messages` (required, in any form an agent
/// call takes). `output` is refused: a network answers with text.
pub fn task_of_messages(body: &serde_json::Map<String, Value>) -> Result<String, NetworkError> {
    let messages = match body.get("messages") {
        None | Some(Value::Null) => {
            return Err(NetworkError::Invalid(
                "Argument \"messages\" is required".into(),
            ));
        }
        Some(m) => m,
    };
    if body.get("output").is_some_and(|o| !o.is_null()) {
        return Err(NetworkError::Invalid(
            "a network answers with text: `output` (structured output) is not supported".into(),
        ));
    }
    let parsed = parse_input(messages).map_err(|e| NetworkError::Invalid(e.to_string()))?;
    parsed
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text_content())
        .filter(|t| !t.trim().is_empty())
        .ok_or_else(|| NetworkError::Invalid("`messages` holds no user message with text".into()))
}

/// The tool through which the router hands a task on.
pub const TRANSMIT: &str = "transmit";

/// What `transmit` is called with for a decision: the primitive and what it is given.
fn transmit_args(d: &super::Decision) -> Value {
    let input = if d.resource_type == "agent" {
        Value::String(d.prompt.clone())
    } else {
        d.input.clone()
    };
    let mut action = serde_json::Map::new();
    action.insert(
        d.resource_type.clone(),
        Value::String(d.resource_id.clone()),
    );
    action.insert("input".into(), input);
    json!({"actions": [action]})
}

/// The agent-call records of one routed iteration.
fn transmitted(index: usize, i: &Iteration) -> (ToolCallRecord, ToolResultRecord) {
    let call = ToolCallRecord {
        tool_call_id: format!("call_{index}"),
        tool_name: TRANSMIT.into(),
        args: transmit_args(&i.decision),
    };
    let result = ToolResultRecord {
        tool_call_id: call.tool_call_id.clone(),
        tool_name: TRANSMIT.into(),
        args: call.args.clone(),
        result: Value::String(i.result.clone()),
        is_error: false,
    };
    (call, result)
}

/// Steps recorded as they happen, so a stream can send each one when it ends.
#[derive(Default)]
struct Steps {
    steps: Vec<StepResult>,
    messages: Vec<CoreMessage>,
    message_id: String,
}

impl Steps {
    fn step(&mut self, text: String, calls: Vec<ToolCallRecord>, results: Vec<ToolResultRecord>) {
        let mut parts = Vec::new();
        if !text.is_empty() {
            parts.push(Part::Text(text.clone()));
        }
        parts.extend(calls.iter().map(|c| Part::ToolCall {
            id: c.tool_call_id.clone(),
            name: c.tool_name.clone(),
            args: c.args.clone(),
        }));
        self.messages.push(CoreMessage {
            role: Role::Assistant,
            parts,
        });
        if !results.is_empty() {
            self.messages.push(tool_message(&results));
        }
        self.steps.push(StepResult {
            step_type: if self.steps.is_empty() {
                "initial"
            } else {
                "tool-result"
            },
            message_id: std::mem::take(&mut self.message_id),
            text,
            finish_reason: if calls.is_empty() {
                FinishReason::Stop
            } else {
                FinishReason::ToolCalls
            },
            tool_calls: calls,
            tool_results: results,
            usage: Usage::default(),
            timestamp: now_iso(),
            response_messages: self.messages.clone(),
        });
    }
}

impl Networks {
    /// Runs the routing loop on `task` as a legacy network call, reporting agent events to
    /// `events` as they happen.
    pub async fn converse(
        &self,
        net: &Network,
        task: &str,
        conversation: Option<&Conversation>,
        events: Option<UnboundedSender<AgentEvent>>,
    ) -> Result<RunResult, NetworkError> {
        let emit = |e: AgentEvent| {
            if let Some(tx) = &events {
                let _ = tx.send(e);
            }
        };
        let steps = Mutex::new(Steps::default());
        let start_step = || {
            let id = new_message_id();
            if let Ok(mut s) = steps.lock() {
                s.message_id = id.clone();
            }
            emit(AgentEvent::StepStart { message_id: id });
        };
        let progress = |p: Progress| match p {
            Progress::Routed(d) if d.resource_type != "none" => start_step(),
            Progress::Ran(i) if i.decision.resource_type != "none" => {
                let Ok(mut s) = steps.lock() else { return };
                let (call, result) = transmitted(s.steps.len(), &i);
                emit(AgentEvent::ToolCall(call.clone()));
                emit(AgentEvent::ToolResult(result.clone()));
                s.step(String::new(), vec![call], vec![result]);
                if let Some(done) = s.steps.last() {
                    emit(AgentEvent::StepFinish(Box::new(done.clone())));
                }
            }
            _ => {}
        };
        let outcome = self
            .run_loop(
                net,
                task,
                conversation,
                super::DEFAULT_MAX_ITERATIONS,
                &progress,
            )
            .await?;
        start_step();
        emit(AgentEvent::TextDelta(outcome.result.clone()));
        let mut recorded = steps
            .into_inner()
            .map_err(|_| NetworkError::Failed("the call's steps were lost".into()))?;
        recorded.step(outcome.result.clone(), Vec::new(), Vec::new());
        if let Some(done) = recorded.steps.last() {
            emit(AgentEvent::StepFinish(Box::new(done.clone())));
        }
        Ok(RunResult {
            run_id: uuid::Uuid::new_v4().to_string(),
            model_id: net.model.model_id().to_string(),
            text: outcome.result,
            object: None,
            finish_reason: FinishReason::Stop,
            usage: Usage::default(),
            response_messages: recorded.messages,
            steps: recorded.steps,
            input_messages: vec![CoreMessage::text(Role::User, task)],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Decision;

    fn iteration(kind: &str, id: &str) -> Iteration {
        Iteration {
            decision: Decision {
                resource_type: kind.into(),
                resource_id: id.into(),
                prompt: "Weather in Oslo?".into(),
                input: json!({"n": 2}),
                is_complete: false,
                reason: String::new(),
            },
            result: "done".into(),
        }
    }

    #[test]
    fn transmit_names_the_primitive_and_what_it_is_given() {
        let (call, result) = transmitted(0, &iteration("agent", "weather"));
        assert_eq!(call.tool_name, "transmit");
        assert_eq!(
            call.args,
            json!({"actions": [{"agent": "weather", "input": "Weather in Oslo?"}]})
        );
        assert_eq!(result.result, json!("done"));
        let (call, _) = transmitted(1, &iteration("workflow", "double"));
        assert_eq!(
            call.args,
            json!({"actions": [{"workflow": "double", "input": {"n": 2}}]})
        );
        assert_eq!(call.tool_call_id, "call_1");
    }

    #[test]
    fn steps_accumulate_the_response_messages() {
        let mut s = Steps::default();
        let (call, result) = transmitted(0, &iteration("agent", "weather"));
        s.step(String::new(), vec![call], vec![result]);
        s.step("All done".into(), Vec::new(), Vec::new());
        assert_eq!(s.steps[0].step_type, "initial");
        assert_eq!(s.steps[0].finish_reason, FinishReason::ToolCalls);
        assert_eq!(s.steps[1].step_type, "tool-result");
        assert_eq!(s.steps[1].finish_reason, FinishReason::Stop);
        // assistant call, tool result, assistant text
        assert_eq!(s.messages.len(), 3);
        assert_eq!(s.steps[1].response_messages.len(), 3);
    }
}
