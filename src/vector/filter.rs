//! Mongo-style metadata filters: parsed once (with errors that name the operator), then
//! evaluated against each record's metadata.
//!
//! Field conditions: `$eq $ne $gt $gte $lt $lte $in $nin $all $elemMatch $exists $regex` (with
//! `$options` i, m, s, x) and `$not`; logical: `$and $or $nor` (and a top-level `$not`).
//! `{field: value}` is implicit equality; `a.b.c` reaches into nested objects. An array field
//! matches `$eq`/`$in`/… when any element does (as in MongoDB). Numbers compare as numbers,
//! strings as strings; an ISO date string compares with a date string by time.

use regex::Regex;
use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub String);

#[derive(Debug, Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Nor(Vec<Filter>),
    Not(Box<Filter>),
    Field(String, Vec<Cond>),
}

#[derive(Debug, Clone)]
pub enum Cond {
    Eq(Value),
    Ne(Value),
    Gt(Value),
    Gte(Value),
    Lt(Value),
    Lte(Value),
    In(Vec<Value>),
    Nin(Vec<Value>),
    All(Vec<Value>),
    ElemMatch(Box<ElemMatch>),
    Exists(bool),
    Regex(Regex),
    Not(Vec<Cond>),
}

/// `$elemMatch` takes either conditions on the element itself or a filter on element fields.
#[derive(Debug, Clone)]
pub enum ElemMatch {
    Conds(Vec<Cond>),
    Filter(Filter),
}

fn err(m: impl Into<String>) -> FilterError {
    FilterError(m.into())
}

impl Filter {
    /// Parses a filter object; `null` or `{}` matches everything.
    pub fn parse(v: &Value) -> Result<Filter, FilterError> {
        match v {
            Value::Null => Ok(Filter::And(Vec::new())),
            Value::Object(m) => parse_object(m),
            other => Err(err(format!("a filter must be an object, got {other}"))),
        }
    }

    pub fn matches(&self, metadata: &Value) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(metadata)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(metadata)),
            Filter::Nor(fs) => !fs.iter().any(|f| f.matches(metadata)),
            Filter::Not(f) => !f.matches(metadata),
            Filter::Field(path, conds) => {
                let value = lookup(metadata, path);
                conds.iter().all(|c| c.holds(value))
            }
        }
    }

    /// Whether the filter constrains nothing.
    pub fn is_empty(&self) -> bool {
        matches!(self, Filter::And(fs) if fs.is_empty())
    }
}

fn parse_object(m: &Map<String, Value>) -> Result<Filter, FilterError> {
    let mut parts = Vec::new();
    for (k, v) in m {
        let part = match k.as_str() {
            "$and" | "$or" | "$nor" => {
                let Value::Array(items) = v else {
                    return Err(err(format!("`{k}` takes an array of filters")));
                };
                if items.is_empty() {
                    return Err(err(format!("`{k}` needs at least one filter")));
                }
                let fs = items.iter().map(|i| match i {
                    Value::Object(o) => parse_object(o),
                    other => Err(err(format!(
                        "`{k}` takes an array of filter objects, found {other}"
                    ))),
                });
                let fs = fs.collect::<Result<Vec<_>, _>>()?;
                match k.as_str() {
                    "$and" => Filter::And(fs),
                    "$or" => Filter::Or(fs),
                    _ => Filter::Nor(fs),
                }
            }
            "$not" => match v {
                Value::Object(o) => Filter::Not(Box::new(parse_object(o)?)),
                _ => return Err(err("`$not` takes a filter object")),
            },
            op if op.starts_with('$') => {
                return Err(err(format!("unknown operator `{op}` at the top level")));
            }
            field => Filter::Field(field.to_string(), parse_conditions(field, v)?),
        };
        parts.push(part);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one part")
    } else {
        Filter::And(parts)
    })
}

fn is_operator_object(v: &Value) -> bool {
    matches!(v, Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

fn array_arg(field: &str, op: &str, v: &Value) -> Result<Vec<Value>, FilterError> {
    match v {
        Value::Array(a) => Ok(a.clone()),
        other => Err(err(format!(
            "`{op}` on `{field}` takes an array, got {other}"
        ))),
    }
}

fn scalar_arg(field: &str, op: &str, v: &Value) -> Result<Value, FilterError> {
    match v {
        Value::Number(_) | Value::String(_) | Value::Bool(_) => Ok(v.clone()),
        other => Err(err(format!(
            "`{op}` on `{field}` takes a number, string, boolean or date, got {other}"
        ))),
    }
}

fn parse_conditions(field: &str, v: &Value) -> Result<Vec<Cond>, FilterError> {
    if field.is_empty() {
        return Err(err("a field name must not be empty"));
    }
    let Value::Object(ops) = v else {
        return Ok(vec![Cond::Eq(v.clone())]);
    };
    if !is_operator_object(v) {
        if ops.keys().any(|k| k.starts_with('$')) {
            return Err(err(format!("`{field}` mixes operators and plain keys")));
        }
        return Ok(vec![Cond::Eq(v.clone())]);
    }
    let options = ops.get("$options").and_then(Value::as_str).unwrap_or("");
    if ops.contains_key("$options") && !ops.contains_key("$regex") {
        return Err(err(format!("`$options` on `{field}` needs `$regex`")));
    }
    let mut conds = Vec::new();
    for (op, arg) in ops {
        let c = match op.as_str() {
            "$eq" => Cond::Eq(arg.clone()),
            "$ne" => Cond::Ne(arg.clone()),
            "$gt" => Cond::Gt(scalar_arg(field, op, arg)?),
            "$gte" => Cond::Gte(scalar_arg(field, op, arg)?),
            "$lt" => Cond::Lt(scalar_arg(field, op, arg)?),
            "$lte" => Cond::Lte(scalar_arg(field, op, arg)?),
            "$in" => Cond::In(array_arg(field, op, arg)?),
            "$nin" => Cond::Nin(array_arg(field, op, arg)?),
            "$all" => Cond::All(array_arg(field, op, arg)?),
            "$exists" => match arg {
                Value::Bool(b) => Cond::Exists(*b),
                other => {
                    return Err(err(format!(
                        "`$exists` on `{field}` takes true or false, got {other}"
                    )));
                }
            },
            "$elemMatch" => match arg {
                Value::Object(_) if is_operator_object(arg) => {
                    Cond::ElemMatch(Box::new(ElemMatch::Conds(parse_conditions(field, arg)?)))
                }
                Value::Object(o) => Cond::ElemMatch(Box::new(ElemMatch::Filter(parse_object(o)?))),
                other => {
                    return Err(err(format!(
                        "`$elemMatch` on `{field}` takes an object, got {other}"
                    )));
                }
            },
            "$regex" => {
                let Value::String(pattern) = arg else {
                    return Err(err(format!("`$regex` on `{field}` takes a string")));
                };
                let mut flags = String::new();
                for c in options.chars() {
                    match c {
                        'i' | 'm' | 's' | 'x' => flags.push(c),
                        other => {
                            return Err(err(format!(
                                "`$options` on `{field}` has unknown flag `{other}`"
                            )));
                        }
                    }
                }
                let full = if flags.is_empty() {
                    pattern.clone()
                } else {
                    format!("(?{flags}){pattern}")
                };
                let re = regex::RegexBuilder::new(&full)
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| {
                        err(format!("`$regex` on `{field}` is not a valid pattern: {e}"))
                    })?;
                Cond::Regex(re)
            }
            "$options" => continue,
            "$not" => match arg {
                Value::Object(_) if is_operator_object(arg) => {
                    Cond::Not(parse_conditions(field, arg)?)
                }
                _ => return Err(err(format!("`$not` on `{field}` takes an operator object"))),
            },
            other => return Err(err(format!("unknown operator `{other}` on `{field}`"))),
        };
        conds.push(c);
    }
    Ok(conds)
}

/// The value at a dotted path; `None` when absent.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(direct) = v.get(path) {
        return Some(direct);
    }
    let mut cur = v;
    for part in path.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(part)?,
            Value::Array(a) => a.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

fn date_ms(s: &str) -> Option<i64> {
    if s.len() < 10 || !s.as_bytes()[..4].iter().all(u8::is_ascii_digit) || s.as_bytes()[4] != b'-'
    {
        return None;
    }
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    s.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned_datetime(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_millisecond())
}

/// Orders two scalars of comparable kinds; `None` when they are not comparable.
fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => match (date_ms(x), date_ms(y)) {
            (Some(dx), Some(dy)) => Some(dx.cmp(&dy)),
            _ => Some(x.cmp(y)),
        },
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether `field` (possibly an array) has an element, or is a value, for which `f` holds.
fn any_element(field: Option<&Value>, f: impl Fn(&Value) -> bool) -> bool {
    match field {
        None => false,
        Some(Value::Array(items)) => f(field.expect("some")) || items.iter().any(f),
        Some(v) => f(v),
    }
}

impl Cond {
    fn holds(&self, field: Option<&Value>) -> bool {
        match self {
            Cond::Eq(Value::Null) => field.is_none_or(Value::is_null),
            Cond::Eq(want) => any_element(field, |v| equal(v, want)),
            Cond::Ne(want) => !Cond::Eq(want.clone()).holds(field),
            Cond::Gt(w) => any_element(field, |v| {
                compare(v, w) == Some(std::cmp::Ordering::Greater)
            }),
            Cond::Gte(w) => any_element(field, |v| matches!(compare(v, w), Some(o) if o.is_ge())),
            Cond::Lt(w) => any_element(field, |v| compare(v, w) == Some(std::cmp::Ordering::Less)),
            Cond::Lte(w) => any_element(field, |v| matches!(compare(v, w), Some(o) if o.is_le())),
            Cond::In(set) => set.iter().any(|w| Cond::Eq(w.clone()).holds(field)),
            Cond::Nin(set) => !set.iter().any(|w| Cond::Eq(w.clone()).holds(field)),
            Cond::All(set) => match field {
                Some(Value::Array(items)) => set.iter().all(|w| items.iter().any(|i| equal(i, w))),
                Some(v) => set.iter().all(|w| equal(v, w)),
                None => false,
            },
            Cond::ElemMatch(m) => match field {
                Some(Value::Array(items)) => items.iter().any(|i| match m.as_ref() {
                    ElemMatch::Conds(cs) => cs.iter().all(|c| c.holds(Some(i))),
                    ElemMatch::Filter(f) => f.matches(i),
                }),
                _ => false,
            },
            Cond::Exists(want) => field.is_some() == *want,
            Cond::Regex(re) => any_element(field, |v| v.as_str().is_some_and(|s| re.is_match(s))),
            Cond::Not(cs) => !cs.iter().all(|c| c.holds(field)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Value, doc: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(&doc)
    }

    #[test]
    fn comparison_operators() {
        let d = json!({"n": 5, "s": "b", "t": true, "when": "2025-08-06T10:00:00Z"});
        assert!(m(json!({"n": 5}), d.clone()));
        assert!(m(json!({"n": 5.0}), d.clone()));
        assert!(m(json!({"n": {"$eq": 5}}), d.clone()));
        assert!(m(json!({"n": {"$ne": 4}}), d.clone()));
        assert!(m(json!({"n": {"$gt": 4, "$lte": 5}}), d.clone()));
        assert!(!m(json!({"n": {"$lt": 5}}), d.clone()));
        assert!(m(json!({"s": {"$gte": "a", "$lt": "c"}}), d.clone()));
        assert!(m(json!({"t": {"$eq": true}}), d.clone()));
        assert!(m(
            json!({"when": {"$gte": "2025-08-01", "$lt": "2025-08-07T00:00:00Z"}}),
            d.clone()
        ));
        assert!(!m(json!({"when": {"$gt": "2025-09-01"}}), d.clone()));
        // A number never equals the string with its digits.
        assert!(!m(json!({"n": "5"}), d));
    }

    #[test]
    fn array_operators() {
        let d = json!({"tags": ["a", "b"], "k": "x", "items": [{"q": 1, "name": "p"}, {"q": 7, "name": "z"}]});
        assert!(
            m(json!({"tags": "a"}), d.clone()),
            "implicit equality matches an element"
        );
        assert!(m(json!({"k": {"$in": ["x", "y"]}}), d.clone()));
        assert!(m(json!({"tags": {"$in": ["z", "b"]}}), d.clone()));
        assert!(m(json!({"k": {"$nin": ["y"]}}), d.clone()));
        assert!(!m(json!({"tags": {"$nin": ["a"]}}), d.clone()));
        assert!(m(json!({"tags": {"$all": ["b", "a"]}}), d.clone()));
        assert!(!m(json!({"tags": {"$all": ["a", "c"]}}), d.clone()));
        assert!(m(
            json!({"items": {"$elemMatch": {"q": {"$gt": 5}, "name": "z"}}}),
            d.clone()
        ));
        assert!(!m(
            json!({"items": {"$elemMatch": {"q": {"$gt": 5}, "name": "p"}}}),
            d.clone()
        ));
        assert!(m(
            json!({"tags": {"$elemMatch": {"$in": ["b"]}}}),
            d.clone()
        ));
        assert!(m(json!({"tags": ["a", "b"]}), d), "whole-array equality");
    }

    #[test]
    fn element_regex_and_paths() {
        let d = json!({"author": {"name": "Ada Lovelace", "born": 1815}, "none": null});
        assert!(m(
            json!({"author.name": {"$regex": "^ada", "$options": "i"}}),
            d.clone()
        ));
        assert!(!m(json!({"author.name": {"$regex": "^ada"}}), d.clone()));
        assert!(m(json!({"author.born": {"$lt": 1900}}), d.clone()));
        assert!(m(json!({"author": {"$exists": true}}), d.clone()));
        assert!(m(json!({"missing": {"$exists": false}}), d.clone()));
        assert!(m(json!({"none": null}), d.clone()));
        assert!(
            m(json!({"missing": null}), d.clone()),
            "null matches a missing field, as in MongoDB"
        );
        assert!(m(json!({"author.name": {"$not": {"$regex": "^Bob"}}}), d));
    }

    #[test]
    fn logical_operators() {
        let d = json!({"category": "news", "year": 2025, "draft": false});
        let f = json!({"$and": [{"category": {"$in": ["news", "blog"]}}, {"year": {"$gte": 2024}}, {"draft": {"$ne": true}}]});
        assert!(m(f, d.clone()));
        assert!(m(
            json!({"$or": [{"year": 1999}, {"category": "news"}]}),
            d.clone()
        ));
        assert!(!m(
            json!({"$nor": [{"year": 1999}, {"category": "news"}]}),
            d.clone()
        ));
        assert!(m(json!({"$not": {"category": "blog"}}), d.clone()));
        assert!(
            m(json!({"category": "news", "year": 2025}), d.clone()),
            "several fields are an implicit $and"
        );
        assert!(m(json!({}), d.clone()) && m(Value::Null, d));
    }

    #[test]
    fn invalid_filters_name_the_operator() {
        let e = |f: Value| Filter::parse(&f).unwrap_err().to_string();
        assert!(e(json!({"n": {"$near": 1}})).contains("`$near`"));
        assert!(e(json!({"$xor": []})).contains("`$xor`"));
        assert!(e(json!({"$and": {}})).contains("`$and`"));
        assert!(e(json!({"$or": []})).contains("`$or`"));
        assert!(e(json!({"n": {"$in": 3}})).contains("`$in`"));
        assert!(e(json!({"n": {"$gt": [1]}})).contains("`$gt`"));
        assert!(e(json!({"n": {"$exists": "yes"}})).contains("`$exists`"));
        assert!(e(json!({"n": {"$regex": "("}})).contains("`$regex`"));
        assert!(e(json!({"n": {"$regex": "a", "$options": "q"}})).contains("`$options`"));
        assert!(e(json!({"n": {"$options": "i"}})).contains("`$options`"));
        assert!(e(json!(["a"])).contains("object"));
    }
}
