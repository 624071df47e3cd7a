//! Tiny random-weight models that chat: the files of [`super::tiny`] with a byte-level
//! tokenizer and a chat template, and templates in the manner of each family's tool protocol
//! (written for these tests), so that every step of a conversation with tools runs as for a
//! real model of the family.

use candle_core::quantized::gguf_file::Value;

use super::tiny::{TinySpec, write};

/// Context of [`tiny_chat_gguf`] files: room for a prompt that lists tools, one byte a token.
pub const CHAT_CONTEXT: usize = 4096;

/// A tiny model that chats: `spec`'s random weights over a byte-level vocabulary (each of the
/// 256 bytes one token, no merges) followed by `specials` as control tokens, the last of which
/// is its end-of-sequence token, with `template` as its chat template. It writes nonsense, but
/// every step of a conversation — template, tokenizer, grammar, decoding — runs as for a real
/// model of its family.
pub fn tiny_chat_gguf(spec: &TinySpec, template: &str, specials: &[&str]) -> Vec<u8> {
    let mut tokens: Vec<Value> = byte_symbols().into_iter().map(Value::String).collect();
    let mut types: Vec<Value> = vec![Value::I32(1); tokens.len()];
    for s in specials {
        tokens.push(Value::String((*s).to_string()));
        types.push(Value::I32(3));
    }
    let vocab = tokens.len();
    let eos = u32::try_from(vocab - 1).expect("tiny vocabulary fits in u32");
    let metadata = vec![
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.tokens".into(), Value::Array(tokens)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        ("tokenizer.ggml.merges".into(), Value::Array(Vec::new())),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(eos)),
        (
            "tokenizer.chat_template".into(),
            Value::String(template.into()),
        ),
    ];
    write(spec, vocab, CHAT_CONTEXT, metadata)
}

/// The printable symbol byte-level BPE writes for each byte (GPT-2's scheme: printable
/// Latin-1 bytes stand for themselves, the others are moved past 255 in order).
fn byte_symbols() -> Vec<String> {
    let printable = |b: u32| (33..=126).contains(&b) || (161..=172).contains(&b) || b >= 174;
    let mut moved = 0;
    (0u32..256)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                moved += 1;
                255 + moved
            };
            char::from_u32(code)
                .expect("a valid code point")
                .to_string()
        })
        .collect()
}

/// A Hermes-style template (Qwen2.5, Qwen3): tools listed in the system turn, calls in
/// `<tool_call>` tags, results in user turns.
pub const HERMES: &str = r#"{%- if tools %}<|im_start|>system
{% if messages[0].role == 'system' %}{{ messages[0].content }}

{% endif %}Functions you may call, one signature a line:
<tools>
{% for t in tools %}{{ t | tojson }}
{% endfor %}</tools>
Call one by writing <tool_call>
{"name": name, "arguments": {...}}
</tool_call><|im_end|>
{% elif messages[0].role == 'system' %}<|im_start|>system
{{ messages[0].content }}<|im_end|>
{% endif %}
{%- for m in messages %}
{%- if m.role == 'system' %}
{%- elif m.role == 'tool' %}<|im_start|>user
<tool_response>
{{ m.content }}
</tool_response><|im_end|>
{% elif m.tool_calls %}<|im_start|>assistant
{{ m.content }}{% for c in m.tool_calls %}{% if c.function is defined %}{% set c = c.function %}{% endif %}<tool_call>
{"name": "{{ c.name }}", "arguments": {{ c.arguments | tojson }}}
</tool_call>{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"#;
pub const HERMES_SPECIALS: &[&str] = &["<|im_start|>", "<tool_call>", "</tool_call>", "<|im_end|>"];

/// A Llama 3.x-style template: a call is the whole answer, `{"name": …, "parameters": …}`.
pub const LLAMA: &str = r#"{%- if tools %}<|start_header_id|>system<|end_header_id|>

{% if messages[0].role == 'system' %}{{ messages[0].content }}
{% endif %}To call a function answer with only {"name": function name, "parameters": {argument: value}}. The functions:
{% for t in tools %}{{ t | tojson }}
{% endfor %}<|eot_id|>{% endif %}
{%- for m in messages %}{% if m.role == 'system' and tools %}{% elif m.role == 'tool' %}<|start_header_id|>ipython<|end_header_id|>

{{ m.content }}<|eot_id|>{% elif m.tool_calls %}<|start_header_id|>assistant<|end_header_id|>

{% for c in m.tool_calls %}{"name": "{{ c.function.name }}", "parameters": {{ c.function.arguments | tojson }}}{% endfor %}<|eot_id|>{% else %}<|start_header_id|>{{ m.role }}<|end_header_id|>

{{ m.content }}<|eot_id|>{% endif %}{% endfor %}
{%- if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>

{% endif %}"#;
pub const LLAMA_SPECIALS: &[&str] = &[
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|python_tag|>",
    "<|eot_id|>",
];

/// A Mistral-style template: tools before the last instruction, calls as a `[TOOL_CALLS]` list.
pub const MISTRAL: &str = r#"{%- if tools %}[AVAILABLE_TOOLS]{{ tools | tojson }}[/AVAILABLE_TOOLS]{% endif %}
{%- for m in messages %}{% if m.role == 'user' %}[INST]{{ m.content }}[/INST]{% elif m.tool_calls %}[TOOL_CALLS]{{ m.tool_calls | map(attribute='function') | list | tojson }}</s>{% elif m.role == 'tool' %}[TOOL_RESULTS]{{ m.content }}[/TOOL_RESULTS]{% elif m.role == 'assistant' %}{{ m.content }}</s>{% endif %}{% endfor %}"#;
pub const MISTRAL_SPECIALS: &[&str] = &[
    "[INST]",
    "[/INST]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_CALLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
    "</s>",
];

/// A template that does not render tools.
pub const PLAIN: &str = crate::inference::template::CHATML;
pub const PLAIN_SPECIALS: &[&str] = &["<|im_start|>", "<|im_end|>"];
