//! jq expressions (evaluated with the jaq crates): tool bodies, HTTP URLs and bodies, workflow
//! mappings and conditions. An [`Expr`] is compiled once, when the project is loaded, and then
//! run on JSON values.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Exn, Vars, data};
use jaq_json::Val;
use serde_json::Value;

type Program = jaq_core::Filter<data::JustLut<Val>>;

/// A compiled jq expression.
pub struct Expr {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("{0}")]
    Compile(String),
    #[error("jq error: {0}")]
    Runtime(String),
    #[error("the expression produced no value")]
    Empty,
    #[error("the expression produced a value that is not JSON: {0}")]
    NotJson(String),
}

/// Where `part` (a slice of `code`) starts, as "column N" text, if it is one.
fn column(code: &str, part: &str) -> String {
    let start = code.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at <= start + code.len() {
        format!(" at character {}", code[..at - start].chars().count() + 1)
    } else {
        String::new()
    }
}

impl Expr {
    /// Parses and compiles `code`; the error says what was expected and where.
    pub fn compile(code: &str) -> Result<Expr, ExprError> {
        let defs = jaq_core::defs()
            .chain(jaq_std::defs())
            .chain(jaq_json::defs());
        let funs = jaq_core::funs()
            .chain(jaq_std::funs())
            .chain(jaq_json::funs());
        let loader = Loader::new(defs);
        let arena = Arena::default();
        let modules = loader
            .load(&arena, File { code, path: () })
            .map_err(|errors| {
                let mut msgs = Vec::new();
                for (_, e) in errors {
                    match e {
                        jaq_core::load::Error::Io(v) => msgs.extend(v.into_iter().map(|(_, m)| m)),
                        jaq_core::load::Error::Lex(v) => {
                            msgs.extend(v.into_iter().map(|(expect, rest)| {
                                format!("expected {}{}", expect.as_str(), column(code, rest))
                            }))
                        }
                        jaq_core::load::Error::Parse(v) => {
                            msgs.extend(v.into_iter().map(|(expect, rest)| {
                                let found = if rest.is_empty() {
                                    "end of input".to_string()
                                } else {
                                    format!("`{}`", rest.chars().take(12).collect::<String>())
                                };
                                format!(
                                    "expected {}{}, found {found}",
                                    expect.as_str(),
                                    column(code, rest)
                                )
                            }))
                        }
                    }
                }
                ExprError::Compile(msgs.join("; "))
            })?;
        let program = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errors| {
                let msgs: Vec<String> = errors
                    .into_iter()
                    .flat_map(|(_, v)| v)
                    .map(|(name, undefined)| format!("undefined {} `{name}`", undefined.as_str()))
                    .collect();
                ExprError::Compile(msgs.join("; "))
            })?;
        Ok(Expr {
            source: code.to_string(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every output of the expression run on `input`.
    pub fn eval_all(&self, input: &Value) -> Result<Vec<Value>, ExprError> {
        let input: Val =
            serde_json::from_value(input.clone()).map_err(|e| ExprError::Runtime(e.to_string()))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.program.lut, Vars::new([]));
        let mut out = Vec::new();
        for item in self.program.id.run((ctx, input)).take(MAX_OUTPUTS) {
            let v = item.map_err(runtime)?;
            out.push(to_json(&v)?);
        }
        Ok(out)
    }

    /// The first output of the expression run on `input`.
    pub fn eval(&self, input: &Value) -> Result<Value, ExprError> {
        let input_val: Val =
            serde_json::from_value(input.clone()).map_err(|e| ExprError::Runtime(e.to_string()))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.program.lut, Vars::new([]));
        let first = self.program.id.run((ctx, input_val)).next();
        match first {
            None => Err(ExprError::Empty),
            Some(Err(e)) => Err(runtime(e)),
            Some(Ok(v)) => to_json(&v),
        }
    }
}

/// Most outputs one evaluation may produce (`repeat` and friends are infinite).
pub const MAX_OUTPUTS: usize = 10_000;

/// A jq error's text; `error("boom")` reads `boom`, not `"boom"`. `halt` is an error here:
/// jaq's own helper would exit the process.
fn runtime(e: Exn<Val>) -> ExprError {
    match e.get_err() {
        Ok(err) => {
            let text = err.into_val().to_string();
            match serde_json::from_str::<Value>(&text) {
                Ok(Value::String(s)) => ExprError::Runtime(s),
                _ => ExprError::Runtime(text),
            }
        }
        Err(_) => ExprError::Runtime("`halt` and `halt_error` are not supported".into()),
    }
}

fn to_json(v: &Val) -> Result<Value, ExprError> {
    let text = v.to_string();
    serde_json::from_str(&text).map_err(|_| ExprError::NotJson(text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn evaluates_on_json() {
        let e = Expr::compile("{sum: (.a + .b), names: [.items[].name]}").unwrap();
        let out = e
            .eval(&json!({"a": 1, "b": 2.5, "items": [{"name": "x"}, {"name": "y"}]}))
            .unwrap();
        assert_eq!(out, json!({"sum": 3.5, "names": ["x", "y"]}));
    }

    #[test]
    fn string_interpolation_and_std_functions() {
        let e = Expr::compile(r#""http://h/orders/\(.id)?q=\(.q | @uri)""#).unwrap();
        assert_eq!(
            e.eval(&json!({"id": 7, "q": "a b"})).unwrap(),
            json!("http://h/orders/7?q=a%20b")
        );
        let e = Expr::compile("[.[] | ascii_upcase] | sort | join(\",\")").unwrap();
        assert_eq!(e.eval(&json!(["b", "a"])).unwrap(), json!("A,B"));
    }

    #[test]
    fn all_outputs() {
        let e = Expr::compile(".[] | select(. > 1)").unwrap();
        assert_eq!(
            e.eval_all(&json!([1, 2, 3])).unwrap(),
            vec![json!(2), json!(3)]
        );
        assert_eq!(
            Expr::compile("empty").unwrap().eval(&json!(1)),
            Err(ExprError::Empty)
        );
    }

    #[test]
    fn compile_errors_are_readable() {
        let err = Expr::compile(".a | (").unwrap_err().to_string();
        assert!(err.contains("expected"), "{err}");
        let err = Expr::compile("nosuchfn(1)").unwrap_err().to_string();
        assert!(
            err.contains("undefined") && err.contains("nosuchfn"),
            "{err}"
        );
    }

    #[test]
    fn runtime_errors_are_errors() {
        let e = Expr::compile(".a + 1").unwrap();
        assert!(matches!(
            e.eval(&json!({"a": "x"})),
            Err(ExprError::Runtime(_))
        ));
        let e = Expr::compile("error(\"boom\")").unwrap();
        assert_eq!(e.eval(&json!(null)), Err(ExprError::Runtime("boom".into())));
    }

    #[test]
    fn halt_and_infinite_generators_do_not_take_the_process_down() {
        let e = Expr::compile("halt").unwrap();
        assert!(matches!(e.eval(&json!(1)), Err(ExprError::Runtime(_))));
        let e = Expr::compile("halt_error").unwrap();
        assert!(matches!(e.eval(&json!("x")), Err(ExprError::Runtime(_))));
        let e = Expr::compile("repeat(1)").unwrap();
        assert_eq!(e.eval_all(&json!(null)).unwrap().len(), MAX_OUTPUTS);
    }

    #[test]
    fn expressions_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Expr>();
    }
}
