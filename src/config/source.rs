//! Reads the text of a project file (YAML, or JSON, which is YAML too) into a JSON tree and
//! remembers where every node stands, so that later checks can point at a line and column.
//!
//! `${NAME}` in a string is replaced by the environment variable `NAME` (`${NAME:-fallback}` gives a
//! fallback, `$${` writes a literal `${`). Substitution happens after parsing, on string values
//! only, so a variable can never change the structure of the file.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A 1-based line and column in the project file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

impl From<&Marker> for Pos {
    fn from(m: &Marker) -> Self {
        Pos {
            line: m.line(),
            col: m.col() + 1,
        }
    }
}

/// One problem found in a project file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub pos: Pos,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pos, self.message)
    }
}

/// Positions of the nodes of a parsed document, by JSON pointer (`/agents/assistant/tools/0`).
#[derive(Debug, Default, Clone)]
pub struct Positions {
    values: HashMap<String, Pos>,
    keys: HashMap<String, Pos>,
}

impl Positions {
    /// Where the value at `pointer` starts; falls back to the nearest enclosing node.
    pub fn value(&self, pointer: &str) -> Pos {
        let mut p = pointer;
        loop {
            if let Some(pos) = self.values.get(p) {
                return *pos;
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return Pos { line: 1, col: 1 },
            }
        }
    }

    /// Where the key naming the value at `pointer` stands (for "unknown key" problems).
    pub fn key(&self, pointer: &str) -> Pos {
        self.keys
            .get(pointer)
            .copied()
            .unwrap_or_else(|| self.value(pointer))
    }
}

/// Escapes one segment of a JSON pointer.
pub fn pointer_segment(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A parsed document: the JSON tree and the positions of its nodes.
#[derive(Debug, Clone)]
pub struct Document {
    pub root: Value,
    pub positions: Positions,
}

/// Parses `text`; on failure returns every problem found (syntax errors stop at the first).
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Document, Vec<Problem>> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        positions: Positions::default(),
        anchors: HashMap::new(),
        problems: Vec::new(),
        env,
    };
    let root = builder.document().map_err(|p| vec![p])?;
    if builder.problems.is_empty() {
        Ok(Document {
            root,
            positions: builder.positions,
        })
    } else {
        Err(builder.problems)
    }
}

struct Builder<'a, 'e> {
    parser: Parser<std::str::Chars<'a>>,
    positions: Positions,
    anchors: HashMap<usize, Value>,
    problems: Vec<Problem>,
    env: &'e dyn Fn(&str) -> Option<String>,
}

impl Builder<'_, '_> {
    fn next(&mut self) -> Result<(Event, Marker), Problem> {
        self.parser.next_token().map_err(|e| Problem {
            pos: e.marker().into(),
            message: format!("invalid YAML: {}", e.info()),
        })
    }

    fn document(&mut self) -> Result<Value, Problem> {
        let mut root = None;
        loop {
            let (event, mark) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd | Event::Nothing => {}
                Event::DocumentStart => {
                    if root.is_some() {
                        return Err(Problem {
                            pos: (&mark).into(),
                            message: "a project file holds one YAML document, found a second"
                                .into(),
                        });
                    }
                }
                Event::StreamEnd => return Ok(root.unwrap_or(Value::Null)),
                other => {
                    let v = self.node(other, mark, String::new())?;
                    root = Some(v);
                }
            }
        }
    }

    fn node(&mut self, event: Event, mark: Marker, path: String) -> Result<Value, Problem> {
        self.positions.values.insert(path.clone(), (&mark).into());
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                let v = self.scalar(text, style, &mark);
                self.remember(anchor, &v);
                Ok(v)
            }
            Event::Alias(id) => Ok(self.anchors.get(&id).cloned().unwrap_or(Value::Null)),
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (ev, m) = self.next()?;
                    if matches!(ev, Event::SequenceEnd) {
                        break;
                    }
                    let child = format!("{path}/{}", items.len());
                    items.push(self.node(ev, m, child)?);
                }
                let v = Value::Array(items);
                self.remember(anchor, &v);
                Ok(v)
            }
            Event::MappingStart(anchor, _) => {
                let mut map = Map::new();
                loop {
                    let (ev, key_mark) = self.next()?;
                    let key = match ev {
                        Event::MappingEnd => break,
                        Event::Scalar(k, ..) => k,
                        _ => {
                            return Err(Problem {
                                pos: (&key_mark).into(),
                                message: "mapping keys must be plain strings".into(),
                            });
                        }
                    };
                    let child = format!("{path}/{}", pointer_segment(&key));
                    if map.contains_key(&key) {
                        self.problems.push(Problem {
                            pos: (&key_mark).into(),
                            message: format!("duplicate key `{key}`"),
                        });
                    }
                    self.positions
                        .keys
                        .insert(child.clone(), (&key_mark).into());
                    let (ev, m) = self.next()?;
                    let value = self.node(ev, m, child)?;
                    map.insert(key, value);
                }
                let v = Value::Object(map);
                self.remember(anchor, &v);
                Ok(v)
            }
            other => Err(Problem {
                pos: (&mark).into(),
                message: format!("unexpected YAML event {other:?}"),
            }),
        }
    }

    fn remember(&mut self, anchor: usize, v: &Value) {
        if anchor > 0 {
            self.anchors.insert(anchor, v.clone());
        }
    }

    /// Types a scalar the way YAML 1.2's core schema does; quoted and block scalars are strings.
    fn scalar(&mut self, text: String, style: TScalarStyle, mark: &Marker) -> Value {
        if style == TScalarStyle::Plain {
            match text.as_str() {
                "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
                "true" | "True" | "TRUE" => return Value::Bool(true),
                "false" | "False" | "FALSE" => return Value::Bool(false),
                _ => {}
            }
            if let Some(n) = parse_number(&text) {
                return Value::Number(n);
            }
        }
        match substitute_env(&text, self.env) {
            Ok(s) => Value::String(s),
            Err(message) => {
                self.problems.push(Problem {
                    pos: mark.into(),
                    message,
                });
                Value::String(text)
            }
        }
    }
}

fn parse_number(s: &str) -> Option<Number> {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if digits.is_empty() || !digits.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if let Some(hex) = s.strip_prefix("0x") {
        return i64::from_str_radix(hex, 16).ok().map(Number::from);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return i64::from_str_radix(oct, 8).ok().map(Number::from);
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::from(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(Number::from(u));
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Replaces `${NAME}` / `${NAME:-fallback}` with environment values; `$${` is a literal `${`.
pub fn substitute_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i - 1]);
            out.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unterminated `${{` in {text:?}"))?;
        let inner = &after[..end];
        let (name, fallback) = match inner.split_once(":-") {
            Some((n, f)) => (n, Some(f)),
            None => (inner, None),
        };
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(format!(
                "`${{{inner}}}` is not a valid environment variable reference"
            ));
        }
        match (env(name), fallback) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(f)) => out.push_str(f),
            (None, None) => return Err(format!("environment variable `{name}` is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn types_scalars_like_yaml_core_schema() {
        let d = parse(
            "a: 1\nb: 2.5\nc: true\nd: ~\ne: '1'\nf: hello\ng: 0x10\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(
            d.root,
            json!({"a":1,"b":2.5,"c":true,"d":null,"e":"1","f":"hello","g":16})
        );
    }

    #[test]
    fn accepts_json() {
        let d = parse(r#"{"a": [1, {"b": "x"}], "c": null}"#, &no_env).unwrap();
        assert_eq!(d.root, json!({"a":[1,{"b":"x"}],"c":null}));
    }

    #[test]
    fn records_positions_of_values_and_keys() {
        let d = parse("agents:\n  one:\n    tools: [calc, clock]\n", &no_env).unwrap();
        assert_eq!(d.positions.key("/agents/one"), Pos { line: 2, col: 3 });
        assert_eq!(
            d.positions.value("/agents/one/tools/1"),
            Pos { line: 3, col: 19 }
        );
        // Unknown pointers fall back to the nearest known ancestor.
        assert_eq!(
            d.positions.value("/agents/one/tools/1/zzz"),
            Pos { line: 3, col: 19 }
        );
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let err = parse("a: [1, 2\nb: 3\n", &no_env).unwrap_err();
        assert_eq!(err.len(), 1);
        assert!(err[0].pos.line >= 2, "{:?}", err[0]);
        assert!(err[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn duplicate_keys_are_problems() {
        let err = parse("a: 1\nb: 2\na: 3\n", &no_env).unwrap_err();
        assert_eq!(err[0].pos, Pos { line: 3, col: 1 });
        assert!(err[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn substitutes_environment_variables() {
        let env = |n: &str| (n == "KEY").then(|| "s3cret".to_string());
        assert_eq!(
            substitute_env("Bearer ${KEY}", &env).unwrap(),
            "Bearer s3cret"
        );
        assert_eq!(substitute_env("${MISSING:-dflt}", &env).unwrap(), "dflt");
        assert_eq!(substitute_env("$${KEY}", &env).unwrap(), "${KEY}");
        assert!(
            substitute_env("${MISSING}", &env)
                .unwrap_err()
                .contains("MISSING")
        );
        assert!(substitute_env("${BAD NAME}", &env).is_err());
        let err = parse("k: ${NOPE}\n", &no_env).unwrap_err();
        assert_eq!(err[0].pos, Pos { line: 1, col: 4 });
    }

    #[test]
    fn anchors_and_aliases_resolve() {
        let d = parse("base: &b {x: 1}\nother: *b\n", &no_env).unwrap();
        assert_eq!(d.root["other"], json!({"x":1}));
    }
}
