//! An agent's memory settings: read from the project file's `memory:` section (snake_case or
//! Mastra's camelCase), merged over the defaults, overridable per call, and shown by
//! `GET /api/memory/config` in Mastra's shape (§3.14).

use serde_json::{Map, Value, json};

/// Mastra's default working-memory template.
pub const DEFAULT_TEMPLATE: &str = "\n# User Information\n- **First Name**: \n- **Last Name**: \n- **Location**: \n- **Occupation**: \n- **Interests**: \n- **Goals**: \n- **Events**: \n- **Facts**: \n- **Projects**: \n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Thread,
    Resource,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Thread => "thread",
            Scope::Resource => "resource",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SemanticRecall {
    pub top_k: usize,
    pub before: usize,
    pub after: usize,
    pub scope: Scope,
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkingMemoryConfig {
    pub enabled: bool,
    pub scope: Scope,
    /// Markdown template (used when there is no schema).
    pub template: String,
    /// JSON Schema of a JSON working memory.
    pub schema: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// How many of the thread's latest messages a call sees (0: none).
    pub last_messages: usize,
    pub semantic_recall: Option<SemanticRecall>,
    pub working_memory: WorkingMemoryConfig,
    pub generate_title: bool,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        MemoryConfig {
            last_messages: 10,
            semantic_recall: None,
            working_memory: WorkingMemoryConfig {
                enabled: false,
                scope: Scope::Thread,
                template: DEFAULT_TEMPLATE.to_string(),
                schema: None,
            },
            generate_title: false,
        }
    }
}

/// `key` in snake_case or camelCase.
fn field<'a>(map: &'a Map<String, Value>, snake: &str) -> Option<&'a Value> {
    if let Some(v) = map.get(snake) {
        return Some(v);
    }
    let mut camel = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            camel.extend(c.to_uppercase());
            upper = false;
        } else {
            camel.push(c);
        }
    }
    map.get(&camel)
}

fn count(v: &Value, what: &str) -> Result<usize, String> {
    v.as_u64()
        .map(|n| n as usize)
        .ok_or_else(|| format!("`{what}` must be a non-negative whole number"))
}

fn scope(v: Option<&Value>, what: &str) -> Result<Option<Scope>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s == "thread" => Ok(Some(Scope::Thread)),
        Some(Value::String(s)) if s == "resource" => Ok(Some(Scope::Resource)),
        Some(_) => Err(format!("`{what}` must be thread or resource")),
    }
}

impl MemoryConfig {
    /// `self` with the settings in `value` applied (the project's section or a per-call override).
    pub fn apply(&self, value: &Value) -> Result<MemoryConfig, String> {
        let mut out = self.clone();
        let map = match value {
            Value::Null => return Ok(out),
            Value::Bool(true) => return Ok(out),
            Value::Object(m) => m,
            _ => return Err("memory settings must be an object".into()),
        };
        if let Some(v) = field(map, "last_messages") {
            out.last_messages = match v {
                Value::Bool(false) => 0,
                v => count(v, "last_messages")?,
            };
        }
        if let Some(v) = field(map, "semantic_recall") {
            out.semantic_recall = match v {
                Value::Bool(false) | Value::Null => None,
                Value::Bool(true) => Some(SemanticRecall {
                    top_k: 4,
                    before: 1,
                    after: 1,
                    scope: Scope::Thread,
                }),
                Value::Object(s) => {
                    let base = out.semantic_recall.clone().unwrap_or(SemanticRecall {
                        top_k: 4,
                        before: 1,
                        after: 1,
                        scope: Scope::Thread,
                    });
                    let (before, after) = match field(s, "message_range") {
                        None => (base.before, base.after),
                        Some(Value::Object(r)) => (
                            r.get("before")
                                .map(|v| count(v, "message_range.before"))
                                .transpose()?
                                .unwrap_or(base.before),
                            r.get("after")
                                .map(|v| count(v, "message_range.after"))
                                .transpose()?
                                .unwrap_or(base.after),
                        ),
                        Some(v) => {
                            let n = count(v, "message_range")?;
                            (n, n)
                        }
                    };
                    Some(SemanticRecall {
                        top_k: field(s, "top_k")
                            .map(|v| count(v, "top_k"))
                            .transpose()?
                            .unwrap_or(base.top_k),
                        before,
                        after,
                        scope: scope(s.get("scope"), "semantic_recall.scope")?
                            .unwrap_or(base.scope),
                    })
                }
                _ => return Err("`semantic_recall` must be true, false or an object".into()),
            };
        }
        if let Some(v) = field(map, "working_memory") {
            match v {
                Value::Bool(b) => out.working_memory.enabled = *b,
                Value::Object(w) => {
                    out.working_memory.enabled = match w.get("enabled") {
                        None => true,
                        Some(Value::Bool(b)) => *b,
                        Some(_) => {
                            return Err("`working_memory.enabled` must be true or false".into());
                        }
                    };
                    if let Some(s) = scope(w.get("scope"), "working_memory.scope")? {
                        out.working_memory.scope = s;
                    }
                    match w.get("template") {
                        None | Some(Value::Null) => {}
                        Some(Value::String(t)) => out.working_memory.template = t.clone(),
                        Some(_) => return Err("`working_memory.template` must be text".into()),
                    }
                    match w.get("schema") {
                        None | Some(Value::Null) => {}
                        Some(s @ Value::Object(_)) => {
                            jsonschema::validator_for(s).map_err(|e| {
                                format!("`working_memory.schema` is not a valid JSON Schema: {e}")
                            })?;
                            out.working_memory.schema = Some(s.clone());
                        }
                        Some(_) => {
                            return Err("`working_memory.schema` must be a JSON Schema".into());
                        }
                    }
                }
                Value::Null => {}
                _ => return Err("`working_memory` must be true, false or an object".into()),
            }
        }
        if let Some(v) = field(map, "threads") {
            let generate = match v {
                Value::Object(t) => field(t, "generate_title"),
                _ => return Err("`threads` must be an object".into()),
            };
            out.generate_title = match generate {
                None | Some(Value::Bool(false)) | Some(Value::Null) => false,
                Some(Value::Bool(true)) | Some(Value::Object(_)) => true,
                Some(_) => return Err("`threads.generate_title` must be true or false".into()),
            };
        }
        Ok(out)
    }

    /// The merged configuration as `GET /api/memory/config` shows it.
    pub fn to_wire(&self) -> Value {
        let semantic = match &self.semantic_recall {
            None => json!(false),
            Some(s) => json!({
                "topK": s.top_k,
                "messageRange": {"before": s.before, "after": s.after},
                "scope": s.scope.as_str(),
            }),
        };
        let mut working = json!({
            "enabled": self.working_memory.enabled,
            "scope": self.working_memory.scope.as_str(),
            "template": self.working_memory.template,
        });
        if let Some(schema) = &self.working_memory.schema {
            working["schema"] = schema.clone();
        }
        json!({
            "lastMessages": self.last_messages,
            "semanticRecall": semantic,
            "threads": {"generateTitle": self.generate_title},
            "workingMemory": working,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_merge_with_either_spelling() {
        let base = MemoryConfig::default();
        assert_eq!(base.to_wire()["semanticRecall"], json!(false));
        let c = base
            .apply(&json!({"last_messages": 5, "semanticRecall": {"topK": 3, "message_range": 2, "scope": "resource"}, "working_memory": {"enabled": true, "scope": "resource"}, "threads": {"generate_title": true}}))
            .unwrap();
        assert_eq!(c.last_messages, 5);
        assert_eq!(
            c.semantic_recall,
            Some(SemanticRecall {
                top_k: 3,
                before: 2,
                after: 2,
                scope: Scope::Resource
            })
        );
        assert!(c.working_memory.enabled);
        assert_eq!(c.working_memory.scope, Scope::Resource);
        assert!(c.generate_title);
        let w = c.to_wire();
        assert_eq!(
            w["semanticRecall"]["messageRange"],
            json!({"before": 2, "after": 2})
        );
        assert_eq!(w["workingMemory"]["template"], DEFAULT_TEMPLATE);
        // A per-call override changes only what it names.
        let o = c.apply(&json!({"lastMessages": false})).unwrap();
        assert_eq!(o.last_messages, 0);
        assert!(o.semantic_recall.is_some());
        assert!(
            c.apply(&json!({"working_memory": true}))
                .unwrap()
                .working_memory
                .enabled
        );
    }

    #[test]
    fn bad_values_are_explained() {
        let base = MemoryConfig::default();
        for (v, needle) in [
            (json!({"last_messages": -1}), "last_messages"),
            (json!({"semantic_recall": "yes"}), "semantic_recall"),
            (json!({"semantic_recall": {"scope": "galaxy"}}), "scope"),
            (json!({"working_memory": {"schema": {"type": 3}}}), "schema"),
            (json!(7), "object"),
        ] {
            let e = base.apply(&v).unwrap_err();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }
}
