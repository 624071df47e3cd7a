//! JSON Schemas of tool inputs and outputs: compiled once, used to validate, and sent on the wire
//! as the superjson strings Mastra clients expect (`"{\"json\":{…}}"`).

use serde_json::{Value, json};

pub struct Schema {
    raw: Value,
    /// `None` for a schema that is shown but not checked (see [`Schema::unchecked`]).
    validator: Option<jsonschema::Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.raw)
    }
}

impl Schema {
    /// Compiles a schema; the error explains what is wrong with it.
    pub fn compile(raw: Value) -> Result<Schema, String> {
        if !raw.is_object() && !raw.is_boolean() {
            return Err("a schema must be an object".into());
        }
        let validator = jsonschema::validator_for(&raw).map_err(|e| e.to_string())?;
        Ok(Schema {
            raw,
            validator: Some(validator),
        })
    }

    /// A schema shown as it is but not checked here: an external server's schema that this
    /// validator cannot compile, which that server enforces itself.
    pub fn unchecked(raw: Value) -> Schema {
        Schema {
            raw,
            validator: None,
        }
    }

    pub fn raw(&self) -> &Value {
        &self.raw
    }

    /// Checks `value`; on failure returns one readable message per violation.
    pub fn validate(&self, value: &Value) -> Result<(), Vec<String>> {
        let Some(validator) = &self.validator else {
            return Ok(());
        };
        let messages: Vec<String> = validator
            .iter_errors(value)
            .map(|e| {
                let path = e.instance_path().to_string();
                if path.is_empty() {
                    e.to_string()
                } else {
                    format!("{path}: {e}")
                }
            })
            .collect();
        if messages.is_empty() {
            Ok(())
        } else {
            Err(messages)
        }
    }

    /// The superjson string form: `{"json": <schema with $schema draft-07>}` serialised.
    pub fn superjson(&self) -> String {
        superjson(&self.raw)
    }
}

/// Serialises a JSON Schema the way Mastra sends schemas: a string holding `{"json": schema}`.
pub fn superjson(schema: &Value) -> String {
    let mut schema = schema.clone();
    if let Value::Object(map) = &mut schema
        && !map.contains_key("$schema")
    {
        map.insert(
            "$schema".into(),
            json!("http://json-schema.org/draft-07/schema#"),
        );
    }
    json!({ "json": schema }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_and_explains() {
        let s = Schema::compile(json!({
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "maximum": 7}},
            "required": ["city"]
        }))
        .unwrap();
        assert!(s.validate(&json!({"city": "Rome"})).is_ok());
        let errs = s.validate(&json!({"days": 9})).unwrap_err();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert!(errs.iter().any(|e| e.contains("city")), "{errs:?}");
        assert!(errs.iter().any(|e| e.starts_with("/days")), "{errs:?}");
    }

    #[test]
    fn rejects_invalid_schemas() {
        assert!(Schema::compile(json!({"type": 12})).is_err());
        assert!(Schema::compile(json!("string")).is_err());
    }

    #[test]
    fn superjson_wraps_and_marks_the_draft() {
        let text = superjson(&json!({"type": "object"}));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["json"]["type"], "object");
        assert_eq!(
            back["json"]["$schema"],
            "http://json-schema.org/draft-07/schema#"
        );
    }
}
