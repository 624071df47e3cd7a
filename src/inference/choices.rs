//! Structured answers that choose: a field whose value is one of a few (an `enum`, a boolean)
//! is decided by how likely the model finds each whole value right after the input, before the
//! answer is written, and the answer's grammar then holds that value.
//!
//! Token by token under a grammar, a small model compares only the first tokens of the
//! allowed values and falls back on its prior: the embedded 135M model classified every review
//! written for the tests as "positive", while the likelihood of each complete value
//! (`{"sentiment": "negative"}` against `… "positive"`) picked the right label for most of them.
//! Each field is scored as the answer's first field, so that it is read against the input and
//! not against fields the model invented before it.

use serde_json::{Map, Value};

use super::constrained;

/// Most values a field may have to be decided by likelihood (one pass per value).
pub const MAX_OPTIONS: usize = 16;

/// A top-level field of an answer's schema that takes one of a few values.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub field: String,
    pub options: Vec<Value>,
}

impl Choice {
    /// The answer's opening if it held `option` in this field first, as the grammar writes it.
    pub fn opening(&self, option: &Value) -> String {
        let mut one = Map::new();
        one.insert(self.field.clone(), option.clone());
        let text = constrained::to_layout(&Value::Object(one));
        // Without the closing brace: the answer goes on with its other fields.
        text[..text.len() - 1].to_string()
    }
}

/// The fields of an object schema (its own `properties`) that take one of 2 to
/// [`MAX_OPTIONS`] scalar values: an `enum` or a boolean.
pub fn choices(schema: &Value) -> Vec<Choice> {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    props
        .iter()
        .filter_map(|(field, s)| {
            let options = match (s.get("enum"), s.get("type")) {
                (Some(Value::Array(values)), _) => values.clone(),
                (None, Some(Value::String(t))) if t == "boolean" => {
                    vec![Value::Bool(true), Value::Bool(false)]
                }
                _ => return None,
            };
            let scalar = |v: &Value| !v.is_array() && !v.is_object();
            ((2..=MAX_OPTIONS).contains(&options.len()) && options.iter().all(scalar)).then(|| {
                Choice {
                    field: field.clone(),
                    options,
                }
            })
        })
        .collect()
}

/// `schema` with `field` held to `value` (its description and other keywords kept).
pub fn settle(schema: &Value, field: &str, value: &Value) -> Value {
    let mut out = schema.clone();
    if let Some(Value::Object(s)) = out.get_mut("properties").and_then(|p| p.get_mut(field)) {
        s.insert("enum".into(), Value::Array(vec![value.clone()]));
    }
    out
}

/// The option with the highest score (the first of equals); `None` without options.
pub fn best<'a>(options: &'a [Value], scores: &[f32]) -> Option<&'a Value> {
    options
        .iter()
        .zip(scores)
        .fold(None, |best: Option<(&Value, f32)>, (o, &s)| match best {
            Some((_, b)) if b >= s => best,
            _ => Some((o, s)),
        })
        .map(|(o, _)| o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_and_booleans_are_choices() {
        let schema = json!({"type": "object", "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "spam": {"type": "boolean"},
            "stars": {"type": "integer", "enum": [1, 2, 3, 4, 5]},
            "name": {"type": "string"},
            "one": {"enum": ["only"]},
            "shapes": {"enum": [[1], [2]]}
        }});
        let found = choices(&schema);
        let fields: Vec<&str> = found.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["sentiment", "spam", "stars"]);
        assert_eq!(found[1].options, [json!(true), json!(false)]);
        assert!(choices(&json!({"type": "string"})).is_empty());
    }

    #[test]
    fn openings_are_written_as_the_grammar_writes_them() {
        let c = Choice {
            field: "sentiment".into(),
            options: vec![json!("negative"), json!(3)],
        };
        assert_eq!(c.opening(&json!("negative")), r#"{"sentiment": "negative""#);
        assert_eq!(c.opening(&json!(3)), r#"{"sentiment": 3"#);
    }

    #[test]
    fn a_settled_field_admits_its_value_only() {
        let schema = json!({"type": "object", "properties": {
            "sentiment": {"type": "string", "enum": ["a", "b"], "description": "d"}}});
        let settled = settle(&schema, "sentiment", &json!("b"));
        assert_eq!(
            settled["properties"]["sentiment"],
            json!({"type": "string", "enum": ["b"], "description": "d"})
        );
        assert_eq!(settle(&schema, "missing", &json!(1)), schema);
        let options = [json!("a"), json!("b"), json!("c")];
        assert_eq!(best(&options, &[-3.0, -1.0, -1.0]), Some(&json!("b")));
        assert_eq!(best(&[], &[]), None);
    }
}
