//! The call protocol of each family end to end on tiny random-weight models (no HTTP): the
//! model file's template renders the tools and the history, a forced call is written in the
//! family's format under its grammar, and a model that decides opens a call in the middle of
//! its answer. The weights are random, so what the model writes is scripted where a decision
//! matters and left to the model where the grammar holds it.

use serde_json::json;

use super::ToolFormat;
use crate::inference::chat::ChatEngine;
use crate::inference::constrained::to_layout;
use crate::inference::engine::tiny::TinySpec;
use crate::inference::engine::tiny_chat::{
    HERMES, HERMES_SPECIALS, LLAMA, LLAMA_SPECIALS, MISTRAL, MISTRAL_SPECIALS, PLAIN,
    PLAIN_SPECIALS, tiny_chat_gguf,
};
use crate::inference::local::{LocalChat, Source};
use crate::inference::{
    ChatMessage, FinishReason, GenerateRequest, Generation, Generator, SamplingParams, ToolCall,
    ToolChoice, ToolSpec,
};
use candle_core::quantized::GgmlDType;

struct Family {
    arch: &'static str,
    template: &'static str,
    specials: &'static [&'static str],
    format: ToolFormat,
}

const FAMILIES: [Family; 6] = [
    Family {
        arch: "qwen2",
        template: HERMES,
        specials: HERMES_SPECIALS,
        format: ToolFormat::Hermes,
    },
    Family {
        arch: "qwen3",
        template: HERMES,
        specials: HERMES_SPECIALS,
        format: ToolFormat::Hermes,
    },
    Family {
        arch: "llama",
        template: LLAMA,
        specials: LLAMA_SPECIALS,
        format: ToolFormat::LlamaJson,
    },
    Family {
        arch: "llama",
        template: MISTRAL,
        specials: MISTRAL_SPECIALS,
        format: ToolFormat::Mistral,
    },
    Family {
        arch: "phi3",
        template: PLAIN,
        specials: PLAIN_SPECIALS,
        format: ToolFormat::Listed,
    },
    Family {
        arch: "gemma3",
        template: PLAIN,
        specials: PLAIN_SPECIALS,
        format: ToolFormat::Listed,
    },
];

/// The family's tiny model, written to a file in `dir`.
fn model_file(dir: &std::path::Path, family: &Family) -> std::path::PathBuf {
    let spec = TinySpec {
        arch: family.arch,
        dtype: GgmlDType::Q8_0,
        seed: 3,
    };
    let path = dir.join(format!("{}-{:?}.gguf", family.arch, family.format));
    std::fs::write(
        &path,
        tiny_chat_gguf(&spec, family.template, family.specials),
    )
    .unwrap();
    path
}

/// Small tools whose every value fits the call budget of a byte-level vocabulary.
fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "lookup_weather".into(),
            description: "The weather in a city".into(),
            parameters: json!({"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 8},
                "unit": {"type": "string", "enum": ["c", "f"]}
            }, "required": ["city", "unit"]}),
            ..Default::default()
        },
        ToolSpec {
            name: "add".into(),
            description: "Adds two numbers".into(),
            parameters: json!({"type": "object", "properties": {
                "a": {"type": "integer", "minimum": 0, "maximum": 99},
                "b": {"type": "integer", "minimum": 0, "maximum": 99}
            }, "required": ["a", "b"]}),
            ..Default::default()
        },
    ]
}

fn request(choice: ToolChoice, max_tokens: usize) -> GenerateRequest {
    let mut req = GenerateRequest::new(vec![
        ChatMessage::new("system", "You help."),
        ChatMessage::new("user", "Weather in Oslo?"),
    ]);
    req.sampling = SamplingParams::greedy();
    req.tools = tools();
    req.tool_choice = choice;
    req.max_tokens = max_tokens;
    req
}

/// Each call names an offered tool and its arguments validate against that tool's schema.
fn assert_valid(calls: &[ToolCall]) {
    assert!(!calls.is_empty());
    for call in calls {
        let tool = tools()
            .into_iter()
            .find(|t| t.name == call.name)
            .unwrap_or_else(|| panic!("{call:?} names no offered tool"));
        assert!(
            jsonschema::is_valid(&tool.parameters, &call.arguments),
            "{call:?}"
        );
    }
}

/// Runs `req` with the model's first choices replaced by `script` (token by token), then the
/// model's own; returns the generation and the text deltas handed out.
fn scripted(engine: &mut ChatEngine, req: &GenerateRequest, script: &str) -> (Generation, String) {
    let script = engine.encode(script).unwrap();
    let mut seq = engine.begin(req).unwrap();
    let mut deltas = String::new();
    let mut written = 0;
    loop {
        let Some(mut logits) = engine.step(&mut [&mut seq]).unwrap().remove(0) else {
            continue;
        };
        if let Some(&token) = script.get(written) {
            logits.iter_mut().for_each(|l| *l = -1e4);
            logits[token as usize] = 0.0;
            written += 1;
        }
        if let Some(done) = seq.advance(engine, &mut logits, &mut |d| {
            deltas.push_str(d);
            true
        }) {
            return (done.unwrap(), deltas);
        }
    }
}

#[test]
fn each_family_renders_tools_and_writes_forced_calls_in_its_format() {
    let dir = tempfile::tempdir().unwrap();
    for family in &FAMILIES {
        let path = model_file(dir.path(), family);
        let mut engine = ChatEngine::load(&Source::Path(path.clone())).unwrap();
        assert_eq!(engine.format, family.format, "{}", family.arch);
        // The file's format is known before its weights are loaded.
        assert_eq!(
            crate::inference::chat::tool_format_of(&Source::Path(path)).unwrap(),
            family.format
        );
        for choice in [ToolChoice::Required, ToolChoice::Tool("add".into())] {
            let req = request(choice.clone(), 16);
            let prompt = engine.prompt(&req).unwrap();
            assert!(
                prompt.contains("lookup_weather") && prompt.contains("Adds two numbers"),
                "{prompt}"
            );
            assert!(
                prompt.ends_with(&family.format.forced_opening()),
                "{prompt}"
            );
            if family.format.decides() {
                // Fields in the order they were given (the order models saw in training).
                assert!(
                    prompt.contains(r#"{"type": "function", "function": {"name": "add""#),
                    "{prompt}"
                );
            }
            let g = engine.generate(&req, &mut |_| true).unwrap();
            assert_eq!(
                g.finish_reason,
                FinishReason::ToolCalls,
                "{}: {g:?}",
                family.arch
            );
            assert_valid(&g.tool_calls);
            if let ToolChoice::Tool(name) = &choice {
                assert!(g.tool_calls.iter().all(|c| &c.name == name), "{g:?}");
            }
            // The call and its result are rendered back by the template.
            let mut assistant = ChatMessage::new("assistant", "");
            assistant.tool_calls = g.tool_calls.clone();
            let mut result = ChatMessage::new("tool", r#"{"temperature": 21}"#);
            result.tool_call_id = Some(g.tool_calls[0].id.clone());
            let mut follow = request(ToolChoice::Auto, 8);
            follow.messages.extend([assistant, result]);
            let prompt = engine.prompt(&follow).unwrap();
            assert!(
                prompt.contains("\"temperature\": 21") || prompt.contains("temperature: 21"),
                "{prompt}"
            );
            if family.format.decides() {
                let arguments = to_layout(&g.tool_calls[0].arguments);
                assert!(prompt.contains(&arguments), "{arguments} in {prompt}");
            }
        }
        // Offered tools are presented to a model that decides; none when the choice is none.
        let auto = engine.prompt(&request(ToolChoice::Auto, 8)).unwrap();
        assert_eq!(auto.contains("lookup_weather"), family.format.decides());
        let none = engine.prompt(&request(ToolChoice::None, 8)).unwrap();
        assert!(!none.contains("lookup_weather"), "{none}");
    }
}

#[test]
fn a_model_that_decides_opens_a_call_mid_answer() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (&FAMILIES[0], "Let me look.<tool_call>", "Let me look."),
        (&FAMILIES[1], "<tool_call>", ""),
        (&FAMILIES[2], "{", ""),
        (&FAMILIES[2], "Checking.<|python_tag|>", "Checking."),
        (&FAMILIES[3], "One moment. [TOOL_CALLS]", "One moment. "),
    ];
    for (family, script, before) in cases {
        let mut engine = ChatEngine::load(&Source::Path(model_file(dir.path(), family))).unwrap();
        // A small text budget: a call opened late still gets room to close.
        let req = request(ToolChoice::Auto, script.len() + 1);
        let (g, deltas) = scripted(&mut engine, &req, script);
        assert_eq!(g.finish_reason, FinishReason::ToolCalls, "{script}: {g:?}");
        assert_eq!(
            (g.text.as_str(), deltas.as_str()),
            (before, before),
            "{script}"
        );
        assert_valid(&g.tool_calls);
    }
}

#[test]
fn text_that_never_opens_a_call_stays_text() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (&FAMILIES[0], "a <tool and more"),
        (&FAMILIES[2], "Use {x} here"),
        (&FAMILIES[3], "[TOOL] is not it"),
    ];
    for (family, script) in cases {
        let mut engine = ChatEngine::load(&Source::Path(model_file(dir.path(), family))).unwrap();
        let req = request(ToolChoice::Auto, script.len());
        let (g, deltas) = scripted(&mut engine, &req, script);
        assert_eq!(g.finish_reason, FinishReason::Length);
        assert!(g.tool_calls.is_empty(), "{g:?}");
        assert_eq!((g.text.as_str(), deltas.as_str()), (script, script));
    }
    // A structured answer opens with a brace too, and is held to its own schema, not a call's.
    let mut engine = ChatEngine::load(&Source::Path(model_file(dir.path(), &FAMILIES[2]))).unwrap();
    let mut req = request(ToolChoice::Auto, 64);
    let schema =
        json!({"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]});
    req.json_schema = Some(schema.clone());
    let g = engine.generate(&req, &mut |_| true).unwrap();
    assert!(g.tool_calls.is_empty(), "{g:?}");
    let answer: serde_json::Value = serde_json::from_str(&g.text).unwrap();
    assert!(jsonschema::is_valid(&schema, &answer), "{answer}");
}

#[tokio::test]
async fn a_local_model_decides_when_its_template_renders_tools() {
    let dir = tempfile::tempdir().unwrap();
    for family in [&FAMILIES[0], &FAMILIES[2], &FAMILIES[4]] {
        let model = LocalChat::start("tiny", Source::Path(model_file(dir.path(), family)), 2, 1);
        assert_eq!(model.decides_tool_use(), family.format.decides());
        // Deciding by itself, the model answers an offered tool call or text; either is whole.
        let g = model
            .generate(request(ToolChoice::Auto, 12), None)
            .await
            .unwrap();
        if g.finish_reason == FinishReason::ToolCalls {
            assert_valid(&g.tool_calls);
        }
    }
    let missing = LocalChat::start("gone", Source::Path(dir.path().join("missing.gguf")), 2, 1);
    assert!(!missing.decides_tool_use());
    let err = missing
        .generate(request(ToolChoice::Auto, 4), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("missing.gguf"), "{err}");
}
