//! Answers after a tool call, kept to the call's result: tokens that write one of the result's
//! values get the copy bonus, and an answer that leaves a value out gets the result appended.

use serde_json::Value;

use super::COPY_BONUS;
use crate::inference::ChatMessage;

/// The results of the tool calls that answer the last user message, for grounding the answer.
#[derive(Debug, Clone)]
pub struct AnswerFacts {
    /// The results' values (strings and numbers), lowercased.
    values: Vec<String>,
    /// The results as one plain sentence.
    statement: String,
}

/// How far back in the answer a value being written may have started, in bytes.
const ANSWER_WINDOW: usize = 48;

impl AnswerFacts {
    /// The tool results after the last user message of `messages` (`tool` turns whose call
    /// ids name the tool), or `None` when there are none.
    pub fn from_turn(messages: &[ChatMessage]) -> Option<AnswerFacts> {
        let turn = messages
            .iter()
            .rposition(|m| m.role == "user")
            .map_or(messages, |i| &messages[i + 1..]);
        let mut values = Vec::new();
        let mut sentences = Vec::new();
        for m in turn.iter().filter(|m| m.role == "tool") {
            let name = messages
                .iter()
                .flat_map(|a| &a.tool_calls)
                .find(|c| Some(&c.id) == m.tool_call_id.as_ref())
                .map_or("the tool", |c| c.name.as_str());
            let result: Value = serde_json::from_str(&m.content)
                .unwrap_or_else(|_| Value::String(m.content.clone()));
            collect_values(&result, &mut values);
            sentences.push(match &result {
                Value::Object(map) if map.len() == 1 && map.contains_key("error") => {
                    format!("{name} failed: {}", plain(&map["error"]))
                }
                other => format!("{name} returned {}", plain(other)),
            });
        }
        (!sentences.is_empty()).then(|| AnswerFacts {
            values,
            statement: sentences.join("; "),
        })
    }

    /// The bonus for appending `token` to the answer `written` so far: [`COPY_BONUS`] when it
    /// writes (the start of) one of the results' values from the start of a word.
    pub fn bonus(&self, written: &str, token: &str) -> f32 {
        let text = format!("{written}{token}").to_lowercase();
        let written_len = written.to_lowercase().len();
        let from = written_len.saturating_sub(ANSWER_WINDOW);
        for (i, c) in text.char_indices().filter(|&(i, _)| i >= from) {
            let at_word = text[..i]
                .chars()
                .next_back()
                .is_none_or(|p| !p.is_alphanumeric());
            if c.is_whitespace() || !at_word {
                continue;
            }
            let tail = text[i..].trim_end();
            // The token must add to the value being written, not only follow it.
            if i + tail.len() > written_len && self.values.iter().any(|v| v.starts_with(tail)) {
                return COPY_BONUS;
            }
        }
        0.0
    }

    /// What to append to `answer` so that it states the results: nothing when it already
    /// names every one of their values.
    pub fn missing_from(&self, answer: &str) -> Option<String> {
        let answer = answer.to_lowercase();
        let named = self.values.iter().all(|v| answer.contains(v.as_str()));
        let sep = if answer.trim().is_empty() { "" } else { "\n\n" };
        (!named).then(|| format!("{sep}({}.)", self.statement))
    }
}

/// The strings and numbers in `value`, lowercased (single characters are too common to count).
fn collect_values(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.trim().chars().count() > 1 => out.push(s.trim().to_lowercase()),
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|v| collect_values(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_values(v, out)),
        _ => {}
    }
}

/// A result as `key: value` pairs, the way a person would read it.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", plain(v)))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Array(items) => items.iter().map(plain).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::ToolCall;
    use serde_json::json;

    fn turn_with_result(result: &str) -> Vec<ChatMessage> {
        let mut call = ChatMessage::new("assistant", "");
        call.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "weather".into(),
            arguments: json!({"city": "Oslo"}),
        }];
        let mut tool = ChatMessage::new("tool", result);
        tool.tool_call_id = Some("c1".into());
        vec![ChatMessage::new("user", "Weather in Oslo?"), call, tool]
    }

    #[test]
    fn answers_are_steered_to_the_result_and_completed_with_it() {
        let facts = AnswerFacts::from_turn(&turn_with_result(
            r#"{"temperatureC": 17, "conditions": "Light rain"}"#,
        ))
        .unwrap();
        assert_eq!(facts.bonus("It is", " 1"), COPY_BONUS);
        assert_eq!(facts.bonus("It is 1", "7"), COPY_BONUS);
        assert_eq!(facts.bonus("It is", " 2"), 0.0);
        assert_eq!(facts.bonus("It is sunny with", " light"), COPY_BONUS);
        assert_eq!(facts.bonus("It is sunny with light", " rain"), COPY_BONUS);
        assert_eq!(facts.bonus("It is sunny with", " heavy"), 0.0);
        // Inside a word is not the start of a value.
        assert_eq!(facts.bonus("It is x", "17"), 0.0);
        assert_eq!(facts.missing_from("17 degrees and LIGHT RAIN."), None);
        assert!(facts.missing_from("It is 17 degrees.").is_some());
        assert_eq!(
            facts.missing_from("It is nice.").unwrap(),
            "\n\n(weather returned temperatureC: 17, conditions: Light rain.)"
        );
        let failed =
            AnswerFacts::from_turn(&turn_with_result(r#"{"error": "no city Oslo"}"#)).unwrap();
        assert_eq!(
            failed.missing_from("").unwrap(),
            "(weather failed: no city Oslo.)"
        );
        // A new question starts a new turn: earlier results do not count.
        let mut later = turn_with_result(r#"{"t": 1}"#);
        later.push(ChatMessage::new("user", "Thanks!"));
        assert!(AnswerFacts::from_turn(&later).is_none());
    }
}
