//! Tool calls in a model's own format. A model whose chat template presents tools — Qwen2.5 and
//! Qwen3 (Hermes `<tool_call>` tags), Llama 3.x (a bare JSON call), Mistral (`[TOOL_CALLS]`) —
//! was trained to decide by itself when to call one. Its template renders the tools and the
//! conversation's earlier calls and results; the model writes free text until it opens a call,
//! and from the opening on the call is decoded under a grammar that admits exactly one valid
//! call to one of the offered tools (a grammar applied lazily, once the opening is seen).
//!
//! A model whose template does not render tools (the embedded SmolLM2) is
//! [`ToolFormat::Listed`]: edgestra lists the tools itself and the agent's router decides when
//! a call is due ([`super::tool_protocol`]).

use serde_json::{Value, json};

use super::{ChatMessage, InferenceError, ToolCall, ToolSpec, tool_protocol};

/// Calls a Mistral-format model may write in one `[TOOL_CALLS]` list.
pub const MAX_PARALLEL_CALLS: u64 = 4;

/// How a model calls tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// The template does not render tools: edgestra lists them and the router decides.
    Listed,
    /// `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>` (Qwen2.5, Qwen3, Hermes,
    /// SmolLM3).
    Hermes,
    /// `{"name": …, "parameters": {…}}` as the whole answer, or after `<|python_tag|>`
    /// (Llama 3.1–3.3).
    LlamaJson,
    /// `[TOOL_CALLS][{"name": …, "arguments": {…}}, …]` (Mistral 7B v0.3, Mistral Nemo).
    Mistral,
}

/// Where a call begins in what the model writes.
#[derive(Debug, Clone, Copy)]
enum Opening {
    /// A tag anywhere in the answer; the call's JSON follows it.
    Tag(&'static str),
    /// Text at the very start of the answer (after whitespace) that is itself the start of the
    /// call's JSON.
    Start(&'static str),
}

/// What the answer written so far is.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Text; the first `ready` bytes cannot become part of a call's opening.
    Text { ready: usize },
    /// A call opens at byte `at`; its JSON starts at byte `body`.
    Call { at: usize, body: usize },
}

impl ToolFormat {
    /// The format a chat template's source speaks: the tags a template writes around calls
    /// tell the family apart; a template that never mentions tools is [`ToolFormat::Listed`].
    pub fn of_template(source: &str) -> ToolFormat {
        if !source.contains("tools") {
            ToolFormat::Listed
        } else if source.contains("<tool_call>") {
            ToolFormat::Hermes
        } else if source.contains("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if source.contains("<|python_tag|>") || source.contains("<|start_header_id|>") {
            ToolFormat::LlamaJson
        } else {
            ToolFormat::Listed
        }
    }

    /// Whether the model decides by itself between a call and text.
    pub fn decides(self) -> bool {
        self != ToolFormat::Listed
    }

    fn openings(self) -> &'static [Opening] {
        match self {
            ToolFormat::Listed => &[],
            ToolFormat::Hermes => &[Opening::Tag("<tool_call>")],
            ToolFormat::LlamaJson => &[Opening::Start("{"), Opening::Tag("<|python_tag|>")],
            ToolFormat::Mistral => &[Opening::Tag("[TOOL_CALLS]")],
        }
    }

    /// What the model writes between a call's opening tag and its JSON (Hermes models put the
    /// JSON on its own line); it is written for the model, so the grammar starts at the JSON.
    pub fn separator(self) -> &'static str {
        match self {
            ToolFormat::Hermes => "\n",
            _ => "",
        }
    }

    /// What the answer begins with when a call is forced: the opening, up to the JSON.
    pub fn forced_opening(self) -> String {
        match self.openings().first() {
            _ if self == ToolFormat::Listed => tool_protocol::OPEN.to_string(),
            Some(Opening::Tag(tag)) => format!("{tag}{}", self.separator()),
            Some(Opening::Start(_)) | None => String::new(),
        }
    }

    /// Whether a call has begun in `text` (the answer so far), and how much of the text is
    /// certainly not part of an opening.
    pub fn scan(self, text: &str) -> Scan {
        let lead = text.len() - text.trim_start().len();
        let mut first: Option<(usize, usize)> = None;
        for opening in self.openings() {
            let found = match *opening {
                Opening::Tag(tag) => text.find(tag).map(|at| (at, at + tag.len())),
                Opening::Start(start) => text[lead..].starts_with(start).then_some((lead, lead)),
            };
            if let Some(found) = found
                && first.is_none_or(|f| found.0 < f.0)
            {
                first = Some(found);
            }
        }
        if let Some((at, body)) = first {
            return Scan::Call { at, body };
        }
        let mut ready = text.len();
        for opening in self.openings() {
            match *opening {
                Opening::Tag(tag) => {
                    if let Some(k) = (1..tag.len())
                        .rev()
                        .find(|&k| tag.is_char_boundary(k) && text.ends_with(&tag[..k]))
                    {
                        ready = ready.min(text.len() - k);
                    }
                }
                // Until something other than whitespace is written, the answer may still
                // open with a call.
                Opening::Start(_) if lead == text.len() => ready = 0,
                Opening::Start(_) => {}
            }
        }
        Scan::Text { ready }
    }

    /// The schema of a call's JSON: one call to one of `tools` (a list of them for Mistral).
    pub fn call_schema(self, tools: &[&ToolSpec]) -> Value {
        match self {
            ToolFormat::Listed => tool_protocol::call_schema(tools),
            ToolFormat::Hermes => tool_protocol::one_call(tools, "arguments", false),
            ToolFormat::LlamaJson => tool_protocol::one_call(tools, "parameters", false),
            ToolFormat::Mistral => json!({
                "type": "array",
                "items": tool_protocol::one_call(tools, "arguments", false),
                "minItems": 1,
                "maxItems": MAX_PARALLEL_CALLS
            }),
        }
    }

    /// The calls in a call's JSON as the model wrote it.
    pub fn parse(self, body: &str) -> Result<Vec<ToolCall>, InferenceError> {
        match self {
            ToolFormat::Listed | ToolFormat::Mistral => tool_protocol::parse_calls(body),
            ToolFormat::Hermes | ToolFormat::LlamaJson => {
                let value: Value = serde_json::from_str(body.trim()).map_err(|e| {
                    InferenceError::Failed(format!("the model wrote a bad tool call: {e}"))
                })?;
                Ok(vec![tool_protocol::call_from(value)?])
            }
        }
    }
}

/// Tools in the form chat templates take (OpenAI's function form).
pub fn template_tools(tools: &[&ToolSpec]) -> Value {
    Value::Array(
        tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.parameters
                }})
            })
            .collect(),
    )
}

/// Messages in the form templates that render tools take: an assistant turn's calls in
/// `tool_calls` (arguments as an object), each result a `tool` turn naming its call.
pub fn template_messages(messages: &[ChatMessage]) -> Vec<Value> {
    let mut names = std::collections::HashMap::new();
    messages
        .iter()
        .map(|m| {
            for c in &m.tool_calls {
                names.insert(c.id.as_str(), c.name.as_str());
            }
            let mut turn = json!({"role": m.role, "content": m.content});
            if !m.tool_calls.is_empty() {
                turn["tool_calls"] = m
                    .tool_calls
                    .iter()
                    .map(|c| {
                        json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}})
                    })
                    .collect();
            }
            if let Some(id) = &m.tool_call_id {
                turn["tool_call_id"] = json!(id);
                turn["name"] = json!(names.get(id.as_str()).copied().unwrap_or_default());
            }
            turn
        })
        .collect()
}

#[cfg(test)]
mod engine_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::tool_protocol::tests::spec;

    #[test]
    fn the_template_tells_the_format() {
        let hermes = "{% if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools> answer in <tool_call></tool_call>{% endif %}";
        assert_eq!(ToolFormat::of_template(hermes), ToolFormat::Hermes);
        let llama =
            "{% if tools %}<|start_header_id|>user<|end_header_id|>{{ tools | tojson }}{% endif %}";
        assert_eq!(ToolFormat::of_template(llama), ToolFormat::LlamaJson);
        let mistral = "{% if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}{{ '[TOOL_CALLS]' }}";
        assert_eq!(ToolFormat::of_template(mistral), ToolFormat::Mistral);
        // Tags without tools (a ChatML template), or tools in an unknown form, are listed.
        assert_eq!(
            ToolFormat::of_template(super::super::template::CHATML),
            ToolFormat::Listed
        );
        assert_eq!(
            ToolFormat::of_template("{{ tools }} <call>"),
            ToolFormat::Listed
        );
        assert!(!ToolFormat::Listed.decides() && ToolFormat::Hermes.decides());
    }

    #[test]
    fn openings_are_found_and_their_prefixes_held_back() {
        let h = ToolFormat::Hermes;
        assert_eq!(h.scan("Sure. "), Scan::Text { ready: 6 });
        assert_eq!(h.scan("Sure. <tool"), Scan::Text { ready: 6 });
        assert_eq!(h.scan("a < b"), Scan::Text { ready: 5 });
        assert_eq!(h.scan("Sure. <tool_call>"), Scan::Call { at: 6, body: 17 });
        let l = ToolFormat::LlamaJson;
        assert_eq!(l.scan("  "), Scan::Text { ready: 0 });
        assert_eq!(l.scan(" {\"na"), Scan::Call { at: 1, body: 1 });
        // A brace later in a text answer is text.
        assert_eq!(l.scan("Use {x}"), Scan::Text { ready: 7 });
        assert_eq!(l.scan("Hi <|python"), Scan::Text { ready: 3 });
        assert_eq!(l.scan("Hi <|python_tag|>"), Scan::Call { at: 3, body: 17 });
        assert_eq!(ToolFormat::Mistral.forced_opening(), "[TOOL_CALLS]");
        assert_eq!(h.forced_opening(), "<tool_call>\n");
        assert_eq!(l.forced_opening(), "");
        assert_eq!(ToolFormat::Listed.forced_opening(), tool_protocol::OPEN);
    }

    #[test]
    fn call_schemas_admit_one_valid_call_in_the_format() {
        let tools = [spec("weather"), spec("time")];
        let refs: Vec<&ToolSpec> = tools.iter().collect();
        let valid = |format: ToolFormat, v: &Value| {
            jsonschema::validator_for(&format.call_schema(&refs))
                .unwrap()
                .is_valid(v)
        };
        let cases = [
            (
                ToolFormat::Hermes,
                json!({"name": "time", "arguments": {"x": 1}}),
                true,
            ),
            (
                ToolFormat::Hermes,
                json!({"name": "other", "arguments": {"x": 1}}),
                false,
            ),
            (
                ToolFormat::Hermes,
                json!({"name": "time", "arguments": {}}),
                false,
            ),
            (
                ToolFormat::LlamaJson,
                json!({"name": "time", "parameters": {"x": 1}}),
                true,
            ),
            (
                ToolFormat::LlamaJson,
                json!({"name": "time", "arguments": {"x": 1}}),
                false,
            ),
            (
                ToolFormat::Mistral,
                json!([{"name": "time", "arguments": {"x": 1}}, {"name": "weather", "arguments": {"x": 2}}]),
                true,
            ),
            (ToolFormat::Mistral, json!([]), false),
        ];
        for (format, call, expected) in cases {
            assert_eq!(valid(format, &call), expected, "{format:?} {call}");
        }
    }

    #[test]
    fn calls_are_parsed_per_format_and_bad_ones_rejected() {
        let c = ToolFormat::Hermes
            .parse("{\"name\": \"time\", \"arguments\": {\"city\": \"Oslo\"}}\n")
            .unwrap();
        assert_eq!(
            (c[0].name.as_str(), &c[0].arguments),
            ("time", &json!({"city": "Oslo"}))
        );
        let c = ToolFormat::LlamaJson
            .parse(r#"{"name": "time", "parameters": {"city": "Oslo"}}"#)
            .unwrap();
        assert_eq!(c[0].arguments, json!({"city": "Oslo"}));
        let c = ToolFormat::Mistral
            .parse(r#"[{"name": "a", "arguments": {}}, {"name": "b", "arguments": {}}]"#)
            .unwrap();
        assert_eq!(c.len(), 2);
        assert!(ToolFormat::Hermes.parse("{\"name\": \"a\"").is_err());
        assert!(ToolFormat::Hermes.parse(r#"{"arguments": {}}"#).is_err());
        assert!(
            ToolFormat::Hermes
                .parse(r#"{"name": "a", "arguments": 3}"#)
                .is_err()
        );
        assert!(
            ToolFormat::Mistral
                .parse(r#"{"name": "a", "arguments": {}}"#)
                .is_err()
        );
    }

    #[test]
    fn history_is_given_in_the_function_form() {
        let mut assistant = ChatMessage::new("assistant", "");
        assistant.tool_calls = vec![ToolCall {
            id: "c1".into(),
            name: "weather".into(),
            arguments: json!({"city": "Oslo"}),
        }];
        let mut result = ChatMessage::new("tool", r#"{"t": 3}"#);
        result.tool_call_id = Some("c1".into());
        let out = template_messages(&[ChatMessage::new("user", "Weather?"), assistant, result]);
        assert_eq!(
            out[1]["tool_calls"][0],
            json!({"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}})
        );
        assert_eq!(
            out[2],
            json!({"role": "tool", "content": "{\"t\": 3}", "tool_call_id": "c1", "name": "weather"})
        );
        let tools = [spec("weather")];
        let listed = template_tools(&[&tools[0]]);
        assert_eq!(listed[0]["function"]["name"], "weather");
        assert_eq!(listed[0]["type"], "function");
    }
}
