//! Constrained decoding with llguidance: given a JSON Schema, only tokens that keep the output a
//! valid prefix of a conforming document may be sampled, so everything that finishes validates.
//!
//! Generation runs against a strict copy of the schema — objects without `additionalProperties`
//! get `false`, strings without `maxLength` get [`MAX_STRING`], arrays without `maxItems` get
//! [`MAX_ITEMS`], integers without bounds get ±[`MAX_INTEGER`] — so that a small model cannot
//! wander forever inside an open-ended value — and in one fixed layout, [`LAYOUT`].

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::{Matcher, ParserFactory};
use serde_json::{Value, json};
use toktrie::{InferenceCapabilities, SimpleVob};

/// Longest string a constrained value may hold unless the schema says otherwise.
pub const MAX_STRING: u64 = 512;
/// Most items an array may hold unless the schema says otherwise.
pub const MAX_ITEMS: u64 = 32;
/// Largest magnitude of an integer unless the schema says otherwise.
pub const MAX_INTEGER: i64 = 999_999_999_999_999;

/// How generated JSON is spaced: one fixed layout (no optional whitespace), the one in which
/// models saw JSON and tool calls in training. Measured on the embedded model: after
/// `{"weight": ` the number it was asked about is its first choice (log-probability -0.1); after
/// the compact `{"weight":` it is not among its first eight.
pub const LAYOUT: (&str, &str) = (", ", ": ");

/// `value` as JSON text in [`LAYOUT`]: what a prompt shows matches what the grammar writes.
pub fn to_layout(value: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(LAYOUT.0);
                    }
                    write(item, out);
                }
                out.push(']');
            }
            Value::Object(map) => {
                out.push('{');
                for (i, (k, item)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(LAYOUT.0);
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(LAYOUT.1);
                    write(item, out);
                }
                out.push('}');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

fn layout() -> Value {
    json!({"whitespace_flexible": false, "item_separator": LAYOUT.0, "key_separator": LAYOUT.1})
}

/// The compiled token environment of one tokenizer, shared by all its requests.
pub struct Grammar {
    factory: Arc<ParserFactory>,
}

impl Grammar {
    pub fn new(tokenizer: &tokenizers::Tokenizer, eos: &[u32]) -> Result<Grammar, String> {
        let mut bt = toktrie_hf_tokenizers::ByteTokenizer::from_tokenizer(tokenizer.clone())
            .map_err(|e| e.to_string())?;
        bt.set_eos_tokens(eos);
        let env = bt.into_tok_env(None).map_err(|e| e.to_string())?;
        let caps = InferenceCapabilities {
            ff_tokens: true,
            ..Default::default()
        };
        let mut factory = ParserFactory::new(
            &env,
            caps,
            &llguidance::earley::SlicedBiasComputer::general_slices(),
        )
        .map_err(|e| e.to_string())?;
        factory.quiet();
        Ok(Grammar {
            factory: Arc::new(factory),
        })
    }

    /// A fresh matcher for one generation constrained by `schema`, written in [`LAYOUT`].
    pub fn matcher(&self, schema: &Value) -> Result<Constraint, String> {
        let mut strict = strict(schema);
        let layout = layout();
        if let Value::Object(m) = &mut strict {
            m.insert("x-guidance".into(), layout);
        } else if strict == Value::Bool(true) {
            strict = json!({ "x-guidance": layout });
        }
        let parser = self
            .factory
            .create_parser(TopLevelGrammar::from_json_schema(strict));
        let matcher = Matcher::new(parser);
        if let Some(e) = matcher.get_error() {
            return Err(format!(
                "the schema cannot be used for structured output: {e}"
            ));
        }
        Ok(Constraint { matcher })
    }
}

/// A copy of `schema` with bounds on open-ended values (see the module docs).
pub fn strict(schema: &Value) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        let v = match k.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas" => {
                match v {
                    Value::Object(props) => Value::Object(
                        props
                            .iter()
                            .map(|(pk, pv)| (pk.clone(), strict(pv)))
                            .collect(),
                    ),
                    other => other.clone(),
                }
            }
            "items" | "additionalItems" | "contains" | "not" | "if" | "then" | "else"
            | "propertyNames" => strict(v),
            "additionalProperties" if v.is_object() => strict(v),
            "anyOf" | "oneOf" | "allOf" | "prefixItems" => match v {
                Value::Array(items) => Value::Array(items.iter().map(strict).collect()),
                other => other.clone(),
            },
            _ => v.clone(),
        };
        out.insert(k.clone(), v);
    }
    let has_type = |t: &str| match map.get("type") {
        Some(Value::String(s)) => s == t,
        Some(Value::Array(a)) => a.iter().any(|x| x == t),
        None => false,
        _ => false,
    };
    if (has_type("object") || map.contains_key("properties"))
        && !map.contains_key("additionalProperties")
    {
        // An object with named fields has those alone; one without is a free mapping (a
        // `dict` of names to values), whose values are held to bounded scalars.
        let rest = if map.contains_key("properties") || map.contains_key("patternProperties") {
            Value::Bool(false)
        } else {
            strict(&json!({"type": ["string", "number", "boolean"]}))
        };
        out.insert("additionalProperties".into(), rest);
    }
    if has_type("string")
        && !map.contains_key("maxLength")
        && !map.contains_key("enum")
        && !map.contains_key("const")
    {
        out.insert("maxLength".into(), json!(MAX_STRING));
    }
    if has_type("array") && !map.contains_key("maxItems") {
        out.insert("maxItems".into(), json!(MAX_ITEMS));
    }
    // An unbounded integer lets a model emit digits forever; 15 digits is beyond any id.
    if has_type("integer") {
        if !map.contains_key("maximum") && !map.contains_key("exclusiveMaximum") {
            out.insert("maximum".into(), json!(MAX_INTEGER));
        }
        if !map.contains_key("minimum") && !map.contains_key("exclusiveMinimum") {
            out.insert("minimum".into(), json!(-MAX_INTEGER));
        }
    }
    Value::Object(out)
}

/// The state of one constrained generation.
pub struct Constraint {
    matcher: Matcher,
}

impl Constraint {
    /// Tokens allowed next.
    pub fn mask(&mut self) -> Result<SimpleVob, String> {
        self.matcher.compute_mask().map_err(|e| e.to_string())
    }

    /// Tokens the grammar forces next (possibly none).
    pub fn forced_tokens(&mut self) -> Vec<u32> {
        self.matcher.compute_ff_tokens()
    }

    pub fn consume(&mut self, tokens: &[u32]) -> Result<(), String> {
        self.matcher
            .consume_tokens(tokens)
            .map_err(|e| e.to_string())
    }

    /// The output so far is a complete document.
    pub fn is_accepting(&self) -> bool {
        let mut m = self.matcher.deep_clone();
        m.is_accepting().unwrap_or(false)
    }

    /// Nothing more may follow.
    pub fn is_stopped(&self) -> bool {
        self.matcher.is_stopped()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_bounds_open_ended_values() {
        let s = strict(&json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}},
                           "kind": {"type": "string", "enum": ["a", "b"]}, "nested": {"type": "object", "properties": {}}}
        }));
        assert_eq!(s["additionalProperties"], false);
        assert_eq!(s["properties"]["name"]["maxLength"], MAX_STRING);
        assert_eq!(s["properties"]["tags"]["maxItems"], MAX_ITEMS);
        assert_eq!(s["properties"]["tags"]["items"]["maxLength"], MAX_STRING);
        assert!(s["properties"]["kind"].get("maxLength").is_none());
        assert_eq!(s["properties"]["nested"]["additionalProperties"], false);
        let open = strict(&json!({"type": "object", "additionalProperties": true}));
        assert_eq!(open["additionalProperties"], true);
        // A mapping without named fields admits names with bounded scalar values.
        let mapping = strict(&json!({"type": "object", "description": "scores by subject"}));
        assert_eq!(
            mapping["additionalProperties"],
            json!({"type": ["string", "number", "boolean"], "maxLength": MAX_STRING})
        );
    }

    #[test]
    fn layout_text_matches_what_the_grammar_writes() {
        let v = json!({"a": [1, "x"], "b": {"c": null}});
        assert_eq!(to_layout(&v), r#"{"a": [1, "x"], "b": {"c": null}}"#);
        let engine = crate::inference::local::tests_support::engine();
        let mut c = engine
            .grammar
            .as_ref()
            .unwrap()
            .matcher(&json!({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "string"}}, "required": ["a", "b"]}))
            .unwrap();
        let text = to_layout(&json!({"a": 1, "b": "x"}));
        c.consume(&engine.encode(&text).unwrap()).unwrap();
        assert!(c.is_accepting());
    }
}
