//! Tools built into edgestra: `calculator` (arithmetic expressions) and `datetime` (the current
//! date and time in any IANA time zone).

use serde_json::{Value, json};

use super::ToolError;

/// What a built-in tool declares about itself when the project file does not say.
pub struct BuiltinSpec {
    pub description: &'static str,
    /// Requests the tool is for, in users' words.
    pub examples: &'static [&'static str],
    pub input_schema: fn() -> Value,
    pub output_schema: fn() -> Value,
}

pub fn spec(name: &str) -> Option<BuiltinSpec> {
    match name {
        "calculator" => Some(BuiltinSpec {
            description: "Evaluates an arithmetic expression: + - * / % ^, parentheses, and the functions \
                sqrt, cbrt, abs, floor, ceil, round, exp, ln, log10, log2, sin, cos, tan, asin, acos, atan, \
                min, max and the constants pi and e.",
            examples: &[
                "What is 12 * 7?",
                "Calculate 15 * 4",
                "How much is 250 / 5 + 3?",
                "What is 15% of 80?",
                "What is the square root of 144?",
            ],
            input_schema: || {
                json!({
                    "type": "object",
                    "properties": {"expression": {"type": "string", "maxLength": MAX_EXPRESSION, "description": "The expression, e.g. (2 + 3) * sqrt(16)"}},
                    "required": ["expression"],
                    "additionalProperties": false
                })
            },
            output_schema: || {
                json!({
                    "type": "object",
                    "properties": {"expression": {"type": "string"}, "result": {"type": "number"}},
                    "required": ["expression", "result"]
                })
            },
        }),
        "datetime" => Some(BuiltinSpec {
            description: "Tells the current date and time, in UTC or in the given IANA time zone (e.g. Europe/Berlin).",
            examples: &[
                "What time is it?",
                "What is the date today?",
                "What time is it in Tokyo?",
                "Which day of the week is it?",
            ],
            input_schema: || {
                json!({
                    "type": "object",
                    "properties": {"timezone": {"type": "string", "description": "IANA time zone name (Europe/Berlin) or a city (Tokyo); UTC when absent"}},
                    "additionalProperties": false
                })
            },
            output_schema: || {
                json!({
                    "type": "object",
                    "properties": {
                        "iso": {"type": "string"}, "timezone": {"type": "string"}, "date": {"type": "string"},
                        "time": {"type": "string"}, "weekday": {"type": "string"}, "utcOffset": {"type": "string"},
                        "unix": {"type": "integer"}, "unixMs": {"type": "integer"}
                    }
                })
            },
        }),
        _ => None,
    }
}

pub fn run(name: &str, input: &Value) -> Result<Value, ToolError> {
    match name {
        "calculator" => {
            let expression = input
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let result = calculate(expression).map_err(ToolError::Failed)?;
            Ok(json!({"expression": expression, "result": result}))
        }
        "datetime" => now(input.get("timezone").and_then(Value::as_str)),
        other => Err(ToolError::Failed(format!(
            "`{other}` is not a built-in tool"
        ))),
    }
}

/// Longest accepted expression. The parser recurses, so an unbounded expression could exhaust
/// the stack.
pub const MAX_EXPRESSION: usize = 1000;

/// Evaluates an arithmetic expression with real (not integer) division.
pub fn calculate(expression: &str) -> Result<f64, String> {
    use evalexpr::{
        ContextWithMutableFunctions, ContextWithMutableVariables, Function, HashMapContext,
        Value as V,
    };
    if expression.trim().is_empty() {
        return Err("the expression is empty".into());
    }
    if expression.chars().count() > MAX_EXPRESSION {
        return Err(format!(
            "the expression is longer than {MAX_EXPRESSION} characters"
        ));
    }
    if expression.contains('=') || expression.contains(';') || expression.contains('"') {
        return Err("only arithmetic is allowed: no assignments, sequences or strings".into());
    }
    let mut ctx = HashMapContext::<evalexpr::DefaultNumericTypes>::new();
    type Unary = (&'static str, fn(f64) -> f64);
    let unary: &[Unary] = &[
        ("sqrt", f64::sqrt),
        ("cbrt", f64::cbrt),
        ("abs", f64::abs),
        ("floor", f64::floor),
        ("ceil", f64::ceil),
        ("round", f64::round),
        ("exp", f64::exp),
        ("ln", f64::ln),
        ("log10", f64::log10),
        ("log2", f64::log2),
        ("sin", f64::sin),
        ("cos", f64::cos),
        ("tan", f64::tan),
        ("asin", f64::asin),
        ("acos", f64::acos),
        ("atan", f64::atan),
    ];
    let set = |ctx: &mut HashMapContext, name: &str, f: Function<evalexpr::DefaultNumericTypes>| {
        ctx.set_function(name.to_string(), f)
            .expect("fresh context accepts functions");
    };
    for (name, f) in unary {
        let f = *f;
        set(
            &mut ctx,
            name,
            Function::new(move |arg: &V| Ok(V::Float(f(arg.as_number()?)))),
        );
    }
    set(
        &mut ctx,
        "pow",
        Function::new(|arg: &V| {
            let t = arg.as_fixed_len_tuple(2)?;
            Ok(V::Float(t[0].as_number()?.powf(t[1].as_number()?)))
        }),
    );
    ctx.set_value("pi".into(), V::Float(std::f64::consts::PI))
        .expect("constant");
    ctx.set_value("e".into(), V::Float(std::f64::consts::E))
        .expect("constant");
    let value =
        evalexpr::eval_number_with_context(&floats(expression), &ctx).map_err(|e| e.to_string())?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(format!("the result is not a finite number ({value})"))
    }
}

/// Writes integer literals as floats (`7/2` → `7.0/2.0`) so division is real division.
fn floats(expression: &str) -> String {
    let chars: Vec<char> = expression.chars().collect();
    let mut out = String::with_capacity(expression.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = c.is_ascii_digit()
            && (i == 0
                || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '.'));
        if !starts_number {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        out.extend(&chars[start..i]);
        let next = chars.get(i).copied();
        if !matches!(next, Some('.') | Some('e') | Some('E')) {
            out.push_str(".0");
        }
    }
    out
}

/// The IANA zone a caller means: the name itself, or the zone named after a city
/// (`Tokyo`, `new york`, `Sao_Paulo` → `Asia/Tokyo`, `America/New_York`, `America/Sao_Paulo`).
fn zone_named(name: &str) -> Option<(String, jiff::tz::TimeZone)> {
    if let Ok(tz) = jiff::tz::TimeZone::get(name) {
        return Some((name.to_string(), tz));
    }
    let wanted = name.trim().replace(' ', "_").to_lowercase();
    let zone = jiff::tz::db().available().find(|z| {
        z.as_str()
            .rsplit('/')
            .next()
            .is_some_and(|city| city.to_lowercase() == wanted)
    })?;
    let zone = zone.as_str().to_string();
    let tz = jiff::tz::TimeZone::get(&zone).ok()?;
    Some((zone, tz))
}

fn now(timezone: Option<&str>) -> Result<Value, ToolError> {
    let asked = timezone
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or("UTC");
    let (tz_name, tz) = zone_named(asked).ok_or_else(|| {
        ToolError::Failed(format!(
            "unknown time zone `{asked}` (use an IANA name such as Europe/Berlin, or a city)"
        ))
    })?;
    let ts = jiff::Timestamp::now();
    let zoned = ts.to_zoned_datetime(tz);
    Ok(json!({
        "iso": zoned.strftime("%Y-%m-%dT%H:%M:%S%.3f%:z").to_string(),
        "timezone": tz_name,
        "date": zoned.strftime("%Y-%m-%d").to_string(),
        "time": zoned.strftime("%H:%M:%S").to_string(),
        "weekday": zoned.strftime("%A").to_string(),
        "utcOffset": zoned.strftime("%:z").to_string(),
        "unix": ts.as_second(),
        "unixMs": ts.as_millisecond(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calculator_does_real_arithmetic() {
        assert_eq!(calculate("7/2").unwrap(), 3.5);
        assert_eq!(calculate("(1 + 2) * 3").unwrap(), 9.0);
        assert_eq!(calculate("2^10").unwrap(), 1024.0);
        assert_eq!(calculate("sqrt(16) + abs(-1)").unwrap(), 5.0);
        assert_eq!(calculate("10 % 3").unwrap(), 1.0);
        assert_eq!(calculate("pow(2, 0.5) * pow(2, 0.5)").unwrap().round(), 2.0);
        assert_eq!(calculate("1.5e3 + 0.5").unwrap(), 1500.5);
        assert!((calculate("2 * pi").unwrap() - std::f64::consts::TAU).abs() < 1e-12);
        assert_eq!(calculate("max(3, 9, 4)").unwrap(), 9.0);
    }

    #[test]
    fn calculator_rejects_what_is_not_arithmetic() {
        assert!(calculate("").is_err());
        assert!(calculate("1 +").is_err());
        assert!(calculate("x = 3").is_err());
        assert!(calculate("\"a\" + 1").is_err());
        assert!(
            calculate("1/0")
                .unwrap_err()
                .contains("not a finite number")
        );
        assert!(calculate("nosuch(2)").is_err());
        assert!(
            calculate(&"1+".repeat(5000))
                .unwrap_err()
                .contains("longer than")
        );
        let nested = format!("{}1{}", "(".repeat(400), ")".repeat(400));
        assert_eq!(calculate(&nested).unwrap(), 1.0);
    }

    #[test]
    fn datetime_knows_time_zones() {
        let v = now(Some("Asia/Kolkata")).unwrap();
        assert_eq!(v["utcOffset"], "+05:30");
        assert_eq!(v["timezone"], "Asia/Kolkata");
        assert!(v["unix"].as_i64().unwrap() > 1_700_000_000);
        assert_eq!(now(None).unwrap()["utcOffset"], "+00:00");
        assert_eq!(now(Some("Tokyo")).unwrap()["timezone"], "Asia/Tokyo");
        assert_eq!(
            now(Some(" new york ")).unwrap()["timezone"],
            "America/New_York"
        );
        let err = now(Some("Mars/Olympus")).unwrap_err().to_string();
        assert!(err.contains("unknown time zone"), "{err}");
    }
}
