//! Keeping a small model to what it was told: tool-call arguments to the user's words, and
//! answers after a tool call to the tool's result.
//!
//! A 135M model writing a call under a grammar gets the structure right but often invents
//! values: another number than the one in the request, a city it has seen more often, a value
//! for an optional field the request never mentions. Two rules keep it to the user's words
//! ([`Grounding`]):
//! - **Copying is preferred**: while a value is written, a token that keeps the value a copy of
//!   something the user wrote (from the start of a word, case aside) gets [`COPY_BONUS`] added
//!   to its logit. The model still chooses; it is only nudged towards what it can see.
//! - **Optional arguments need a source**: after the call is written, an optional argument
//!   whose value the user did not write (and which is not the field's default) is dropped, so
//!   the tool's own default applies — defaults only where the request is silent.
//!
//! After a call, the same model often answers around the result instead of with it. Its answer
//! ([`AnswerFacts`]) gets the same bonus for writing one of the result's values from the start
//! of a word, and an answer that still names none of them gets the result appended as a plain
//! sentence (a failed tool's error included), so what the tool said is always in the answer.

mod answer;
mod json;

pub use answer::AnswerFacts;

use serde_json::Value;

use super::{ChatMessage, ToolCall, ToolSpec};
use json::{Scalar, scalars};

/// Logit bonus of a token that continues a copy of the user's words.
pub const COPY_BONUS: f32 = 3.0;
/// The bonus in an optional argument. A value there that is not the user's is dropped after
/// the call ([`Grounding::prune`]), so a start that is no copy is worth nothing; and a small
/// model leans hard on a field's usual value ("UTC" over the "Tokyo" the user named).
pub const OPTIONAL_COPY_BONUS: f32 = 2.0 * COPY_BONUS;
/// Added for a number copied in the user's order (see [`Grounding::bonus`]): small models swap
/// coefficients and pairs of values ("a=1, b=-3" written as `"a": -3`).
pub const ORDER_BONUS: f32 = 1.5;
/// How many of the most likely allowed tokens are looked at for the bonus.
pub const COPY_CANDIDATES: usize = 32;

/// What the user wrote, prepared for matching.
#[derive(Debug, Clone)]
pub struct Grounding {
    /// The user's messages, one per line, case folded ([`fold`]).
    source: String,
    /// The same text as written (byte offsets agree with `source`).
    original: String,
    /// Byte offsets where a word (or a number, a sign, a quote) begins.
    starts: Vec<usize>,
    /// The required arguments of each tool the call may name.
    required: Vec<(String, Vec<String>)>,
}

impl Grounding {
    /// From the user turns of a conversation, for a call of one of `tools`.
    pub fn new(messages: &[ChatMessage], tools: &[ToolSpec]) -> Grounding {
        let original = messages
            .iter()
            .filter(|m| m.role == "user")
            .map(|m| without_thousands_separators(&m.content))
            .collect::<Vec<_>>()
            .join("\n");
        let source = fold(&original);
        let chars: Vec<(usize, char)> = source.char_indices().collect();
        let mut starts = Vec::new();
        for (k, &(i, c)) in chars.iter().enumerate() {
            let previous = k.checked_sub(1).map(|p| chars[p].1);
            let before_previous = k.checked_sub(2).map(|p| chars[p].1);
            let boundary = previous.is_none_or(|p| !p.is_alphanumeric());
            // The digits of "-2" and "9.8" are one number with their sign or integer part
            // (copying "2" out of "-2" drops the sign); those of "2019-12" are two.
            let inside_number = c.is_ascii_digit()
                && match previous {
                    Some('-') => before_previous.is_none_or(|b| !b.is_alphanumeric()),
                    Some('.') => before_previous.is_some_and(|b| b.is_ascii_digit()),
                    _ => false,
                };
            if boundary && !inside_number && !c.is_whitespace() {
                starts.push(i);
            }
        }
        let required = tools
            .iter()
            .map(|t| (t.name.clone(), required_of(t)))
            .collect();
        Grounding {
            source,
            original,
            starts,
            required,
        }
    }

    /// Where `text` is, from the start of a word, what the user wrote; `whole` also asks that
    /// it ends where a word ends.
    fn copied_from(&self, text: &str, whole: bool) -> impl Iterator<Item = usize> + '_ {
        let text = fold(text);
        self.starts.iter().copied().filter(move |&s| {
            !text.is_empty()
                && self.source[s..].starts_with(&text)
                && (!whole
                    || self.source[s + text.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_alphanumeric()))
        })
    }

    /// Whether a string copied from `at`, `len` bytes long, keeps to the phrase that starts
    /// there (all of it, when `closed`). A phrase is what the user quoted, or a name: words
    /// that start with a capital, joined by spaces or ", " ("Riga, Latvia", "San Francisco").
    /// A small model closes a string after the first word of a name; elsewhere any words do.
    fn within_phrase(&self, at: usize, len: usize, closed: bool) -> bool {
        match self.phrase_len(at) {
            None => true,
            Some(phrase) if closed => len == phrase,
            Some(phrase) => len <= phrase,
        }
    }

    fn phrase_len(&self, at: usize) -> Option<usize> {
        let text = &self.original[at..];
        let quote = self.original[..at]
            .chars()
            .next_back()
            .and_then(|q| match q {
                '\'' | '"' => Some(q),
                '“' => Some('”'),
                '‘' => Some('’'),
                _ => None,
            });
        if let Some(end) = quote.and_then(|q| text.find(q)) {
            return Some(end);
        }
        let capital = |w: &str| {
            let mut chars = w.chars();
            // "I" and "I'm" are no names.
            chars.next().is_some_and(char::is_uppercase)
                && chars.next().is_some_and(|c| c.is_alphanumeric())
        };
        let word_len = |w: &str| {
            w.find(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
                .unwrap_or(w.len())
        };
        if !text.starts_with(|c: char| c.is_uppercase()) {
            return None;
        }
        let mut end = word_len(text);
        loop {
            let rest = &text[end..];
            let gap = if rest.starts_with(", ") {
                2
            } else if rest.starts_with(' ') {
                1
            } else {
                break;
            };
            let next = &rest[gap..];
            if !capital(next) {
                break;
            }
            end += gap + word_len(next);
        }
        Some(end)
    }

    /// Whether the user's list goes on with another number at `at` (", 90", " and 90").
    fn list_continues(&self, at: usize) -> bool {
        let rest = &self.source[at..];
        [", and ", " and ", ", ", ",", " "]
            .iter()
            .find_map(|gap| rest.strip_prefix(gap))
            .is_some_and(is_number)
    }

    fn copies(&self, text: &str, whole: bool) -> bool {
        self.copied_from(text, whole).next().is_some()
    }

    /// The bonus for appending `token` to the call JSON `written` so far: [`COPY_BONUS`] when
    /// the value it writes stays a copy of the user's words, else 0.
    pub fn bonus(&self, written: &str, token: &str) -> f32 {
        let text = format!("{written}{token}");
        let all = scalars(&text);
        let (touched, before): (Vec<Scalar>, Vec<Scalar>) = all
            .iter()
            .filter(|v| !v.key)
            .cloned()
            .partition(|v| v.end.is_none_or(|e| e >= written.len()));
        if touched.is_empty() {
            return 0.0;
        }
        // Each earlier value used up one place it was copied from: a copy is fresh only from a
        // place not used yet (so that two fields do not get the same words, unless the user
        // wrote them twice).
        let mut used: Vec<usize> = Vec::new();
        // Where each earlier value was copied from, if it was.
        let mut used_by: Vec<Option<usize>> = Vec::new();
        for v in &before {
            let content = v.content(&text);
            let at = self
                .copied_from(content, true)
                .find(|at| !used.contains(at));
            used.extend(at);
            used_by.push(at);
        }
        let all_copies = touched.iter().all(|v| {
            let content = v.content(&text);
            match (content.is_empty(), v.end) {
                // A string just opened: every copy starts so. (Tokenizers also have tokens that
                // open and close at once, or open with punctuation; a small model prefers
                // those at a value's start, and then has nothing to copy into.)
                (true, None) => true,
                (true, Some(_)) => false,
                (false, end) => {
                    let string = text[..v.start].ends_with('"');
                    // A number that ends an item: the list goes on (", ") or closes ("]") as
                    // the user's list does; a small model otherwise repeats the last items.
                    let list_end = match end {
                        Some(e) if v.in_array && !string => {
                            Some(text[e..].trim_start().starts_with(']'))
                        }
                        _ => None,
                    };
                    self.copied_from(content, end.is_some()).any(|at| {
                        !used.contains(&at)
                            && (!string || self.within_phrase(at, content.len(), end.is_some()))
                            && list_end.is_none_or(|closes| {
                                closes != self.list_continues(at + content.len())
                            })
                    })
                }
            }
        });
        if !all_copies {
            return 0.0;
        }
        let copy = if self.in_optional(&text, &all, &touched[0]) {
            OPTIONAL_COPY_BONUS
        } else {
            COPY_BONUS
        };
        // Numbers are copied in the order the user wrote them: the next one after the number
        // the previous numeric value came from is preferred.
        let content = |v: &Scalar| v.content(&text);
        let cursor = before
            .iter()
            .zip(&used_by)
            .filter(|(v, _)| !text[..v.start].ends_with('"') && is_number(content(v)))
            .filter_map(|(_, at)| *at)
            .next_back();
        let next = self
            .starts
            .iter()
            .copied()
            .filter(|&at| cursor.is_none_or(|c| at > c) && !used.contains(&at))
            .find(|&at| is_number(&self.source[at..]));
        // (Numbers as JSON numbers: digits inside a string are part of a code or a text.)
        let in_order = touched.last().is_some_and(|v| {
            // A lone sign is where a negative number starts.
            !text[..v.start].ends_with('"')
                && (content(v) == "-" || is_number(content(v)))
                && self
                    .copied_from(content(v), v.end.is_some())
                    .any(|at| Some(at) == next)
        });
        if in_order { copy + ORDER_BONUS } else { copy }
    }

    /// Whether `value` of the call JSON `text` lies in an optional argument of the called tool
    /// (one of the tools this grounding knows).
    /// (`all` are the scalars of `text`.)
    fn in_optional(&self, text: &str, all: &[Scalar], value: &Scalar) -> bool {
        let before = all.iter().take_while(|s| s.start < value.start);
        let content = |s: &Scalar| s.content(text);
        let mut tool = None;
        let mut field = None;
        let mut previous_key: Option<&Scalar> = None;
        for s in before {
            if s.key {
                if s.depth == 3 {
                    field = Some(content(s));
                }
                previous_key = Some(s);
            } else if s.depth == 2
                && previous_key.is_some_and(|k| k.depth == 2 && content(k) == "name")
            {
                tool = Some(content(s));
                field = None;
            }
        }
        let (Some(tool), Some(field)) = (tool, field) else {
            return false;
        };
        value.depth >= 3
            && self
                .required
                .iter()
                .find(|(name, _)| name == tool)
                .is_some_and(|(_, required)| !required.iter().any(|r| r == field))
    }

    /// Drops the optional arguments of `call` that the user did not supply (see the module
    /// docs); `tool` is the called tool.
    pub fn prune(&self, call: &mut ToolCall, tool: &ToolSpec) {
        let required = required_of(tool);
        let props = tool.parameters.get("properties");
        let Value::Object(args) = &mut call.arguments else {
            return;
        };
        args.retain(|name, value| {
            if required.contains(name) {
                return true;
            }
            let default = props
                .and_then(|p| p.get(name))
                .and_then(|s| s.get("default"));
            if default == Some(value) {
                return false;
            }
            self.supplied(value)
        });
    }

    /// Whether the user wrote `value` (for a list or object: any of its values).
    fn supplied(&self, value: &Value) -> bool {
        match value {
            // A copy, or a value built on the user's words (`Asia/Tokyo` for "Tokyo").
            Value::String(s) => {
                self.copies(s.trim(), true)
                    || s.split(|c: char| !c.is_alphanumeric())
                        .filter(|w| w.chars().count() >= 3)
                        .any(|w| self.copies(w, true))
            }
            Value::Number(n) => {
                let text = n.to_string();
                self.copies(&text, true)
                    || n.as_f64().is_some_and(|f| {
                        f.fract() == 0.0 && self.copies(&format!("{}", f as i64), true)
                    })
            }
            // A flag is never written out; one that differs from the default is the model's
            // reading of the request and is kept.
            Value::Bool(_) => true,
            Value::Null => false,
            Value::Array(items) => items.iter().any(|v| self.supplied(v)),
            Value::Object(map) => map.values().any(|v| self.supplied(v)),
        }
    }
}

/// `text` lowercased where that keeps each character's length in bytes (so that offsets into
/// the folded text are offsets into the original).
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| {
            let mut lower = c.to_lowercase();
            match (lower.next(), lower.next()) {
                (Some(l), None) if l.len_utf8() == c.len_utf8() => l,
                _ => c,
            }
        })
        .collect()
}

/// Whether `text` starts with a number (a digit, or a minus sign and a digit).
fn is_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    digits.starts_with(|c: char| c.is_ascii_digit())
}

/// `text` with the commas of digit groups removed ("200,000" → "200000"): JSON numbers have
/// none. A comma counts as one when a digit precedes it and exactly three digits follow.
fn without_thousands_separators(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let digit = |k: usize| chars.get(k).is_some_and(|c| c.is_ascii_digit());
    chars
        .iter()
        .enumerate()
        .filter(|&(k, &c)| {
            !(c == ','
                && k > 0
                && digit(k - 1)
                && digit(k + 1)
                && digit(k + 2)
                && digit(k + 3)
                && !digit(k + 4))
        })
        .map(|(_, &c)| c)
        .collect()
}

/// The names of `tool`'s required arguments.
fn required_of(tool: &ToolSpec) -> Vec<String> {
    tool.parameters
        .get("required")
        .and_then(Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Grounding {
        Grounding::new(
            &[
                ChatMessage::new("system", "Answer in 5 words"),
                ChatMessage::new("user", text),
            ],
            &[],
        )
    }

    #[test]
    fn copies_of_the_users_words_get_the_bonus() {
        let g = user("Find the GCD of 36 and 48 in Los Angeles");
        let so_far = r#"[{"name": "gcd", "arguments": {"a": "#;
        let first = COPY_BONUS + ORDER_BONUS; // 36 is the first number the user wrote
        assert_eq!(g.bonus(so_far, "3"), first);
        assert_eq!(g.bonus(so_far, "2"), 0.0);
        assert_eq!(g.bonus(&format!("{so_far}3"), "6"), first);
        assert_eq!(g.bonus(&format!("{so_far}36"), ","), first);
        // 3 alone is not a number the user wrote.
        assert_eq!(g.bonus(&format!("{so_far}3"), ","), 0.0);
        let city = r#"[{"name": "gcd", "arguments": {"city": ""#;
        assert_eq!(g.bonus(city, "Los"), COPY_BONUS);
        assert_eq!(g.bonus(&format!("{city}Los"), " Angeles"), COPY_BONUS);
        assert_eq!(g.bonus(&format!("{city}Los"), " Gatos"), 0.0);
        // Inside a word is not a copy; keys and punctuation get nothing.
        assert_eq!(g.bonus(city, "ngeles"), 0.0);
        assert_eq!(g.bonus(r#"[{"name": "gcd", "arguments": {"#, "\"city"), 0.0);
        // Opening a string is the start of any copy; an empty one or junk is not.
        let open = r#"[{"name": "gcd", "arguments": {"city":"#;
        assert_eq!(g.bonus(open, " \""), COPY_BONUS);
        assert_eq!(g.bonus(open, " \"\""), 0.0);
        assert_eq!(g.bonus(open, " \"."), 0.0);
        // The system prompt is not the user's words.
        assert_eq!(g.bonus(so_far, "5"), 0.0);
        // Words another field already took are not copied again; words written twice are.
        let taken = r#"[{"name": "gcd", "arguments": {"a": 36, "b": "#;
        assert_eq!(g.bonus(taken, "3"), 0.0);
        assert_eq!(g.bonus(taken, "4"), COPY_BONUS + ORDER_BONUS);
        let twice = user("Add 5 and 5");
        assert_eq!(
            twice.bonus(r#"{"a": 5, "b": "#, "5"),
            COPY_BONUS + ORDER_BONUS
        );
        assert_eq!(twice.bonus(r#"{"a": 5, "b": 5, "c": "#, "5"), 0.0);
    }

    #[test]
    fn names_and_quoted_phrases_are_copied_whole() {
        let g = user(
            "I'm at Riga, Latvia. Change the 'chicken dish' to extra spicy, Ana Lopez, I'm 34",
        );
        let city = r#"{"city": "Riga"#;
        assert_eq!(g.bonus(city, "\""), 0.0);
        assert_eq!(g.bonus(city, ","), COPY_BONUS);
        assert_eq!(g.bonus(&format!("{city}, Latvia"), "\""), COPY_BONUS);
        assert_eq!(g.bonus(&format!("{city}, Latvia"), "."), 0.0);
        let item = r#"{"item": "chicken"#;
        assert_eq!(g.bonus(item, "\""), 0.0);
        assert_eq!(g.bonus(item, " dish"), COPY_BONUS);
        assert_eq!(g.bonus(&format!("{item} dish"), "\""), COPY_BONUS);
        // Lowercase words are no phrase; "I'm" does not continue a name.
        assert_eq!(g.bonus(r#"{"level": "extra"#, "\""), COPY_BONUS);
        assert_eq!(g.bonus(r#"{"name": "Ana Lopez"#, "\""), COPY_BONUS);
        // Case folding keeps byte offsets.
        assert_eq!(fold("İstanbul ÀB"), "İstanbul àb");
    }

    #[test]
    fn lists_close_where_the_users_list_ends() {
        let g = user("Scores: 85, 90 and 88, set bins to 5");
        let next = COPY_BONUS + ORDER_BONUS;
        let list = r#"{"data": [85, 90, 88"#;
        assert_eq!(g.bonus(list, "]"), next);
        assert_eq!(g.bonus(list, ", "), 0.0);
        let open = r#"{"data": [85, 90"#;
        assert_eq!(g.bonus(open, ", "), next);
        assert_eq!(g.bonus(open, "]"), 0.0);
        // Repeating an item the user wrote once is no copy.
        assert_eq!(g.bonus(r#"{"data": [85, 90, 88, "#, "8"), 0.0);
    }

    #[test]
    fn numbers_are_copied_whole_and_in_order() {
        let g =
            user("Coefficients 5, 20, and -25; from x = -2 to 9.8, costing $200,000 in 2019-12");
        let next = COPY_BONUS + ORDER_BONUS;
        // After 5, the next number is 20: it is preferred to -25, which is still a copy.
        assert_eq!(g.bonus(r#"{"a": 5, "b": "#, "2"), next);
        assert_eq!(g.bonus(r#"{"a": 5, "b": "#, "-"), COPY_BONUS);
        assert_eq!(g.bonus(r#"{"a": 5, "b": 20, "c": "#, "-"), next);
        // A sign and a decimal's integer part belong to their number.
        let range = user("from x = -2 to 9.8");
        assert_eq!(range.bonus(r#"{"start": "#, "2"), 0.0);
        assert_eq!(range.bonus(r#"{"start": "#, "-"), next);
        assert_eq!(range.bonus(r#"{"start": -2, "end": "#, "8"), 0.0);
        assert_eq!(range.bonus(r#"{"start": -2, "end": "#, "9"), next);
        // Digit groups are copied without their separators; a date's parts are numbers.
        assert_eq!(g.bonus(r#"{"cost": 200"#, "000"), COPY_BONUS);
        assert_eq!(g.bonus(r#"{"cost": 200"#, ","), 0.0);
        assert_eq!(g.bonus(r#"{"month": "#, "12"), COPY_BONUS);
        // Digits in a string are a code's, not a number in order.
        assert_eq!(user("Order B-2002").bonus(r#"{"id": ""#, "2"), COPY_BONUS);
        assert_eq!(
            without_thousands_separators("1,500,000 and 5,20 or 1,2345"),
            "1500000 and 5,20 or 1,2345"
        );
    }

    #[test]
    fn copies_in_optional_arguments_get_the_larger_bonus() {
        let tool = ToolSpec {
            name: "clock".into(),
            parameters: json!({"type": "object", "required": ["city"], "properties": {
                "city": {"type": "string"}, "zone": {"type": "string"}}}),
            ..Default::default()
        };
        let messages = [ChatMessage::new("user", "Time in Tokyo or Oslo?")];
        let g = Grounding::new(&messages, std::slice::from_ref(&tool));
        let head = r#"[{"name": "clock", "arguments": {"#;
        assert_eq!(g.bonus(&format!(r#"{head}"city": ""#), "Tok"), COPY_BONUS);
        let optional = format!(r#"{head}"city": "Oslo", "zone": ""#);
        assert_eq!(g.bonus(&optional, "Tok"), OPTIONAL_COPY_BONUS);
        assert_eq!(g.bonus(&optional, "UTC"), 0.0);
        // An argument called "name" is not the tool's name.
        let named = format!(r#"{head}"name": "x", "zone": ""#);
        assert_eq!(g.bonus(&named, "Tok"), OPTIONAL_COPY_BONUS);
        // A tool it does not know: every argument counts as required.
        let other = r#"[{"name": "other", "arguments": {"zone": ""#;
        assert_eq!(g.bonus(other, "Tok"), COPY_BONUS);
    }

    #[test]
    fn optional_arguments_the_user_did_not_give_are_dropped() {
        let g = user("Area of a circle with radius 4 inches, in metric");
        let tool = ToolSpec {
            name: "area".into(),
            description: String::new(),
            parameters: json!({"type": "object", "required": ["radius"], "properties": {
                "radius": {"type": "number"}, "unit": {"type": "string"},
                "precision": {"type": "integer", "default": 2}, "system": {"type": "string"},
                "verbose": {"type": "boolean"}, "round": {"type": "boolean", "default": false}}}),
            ..Default::default()
        };
        let mut call = ToolCall {
            id: "c".into(),
            name: "area".into(),
            arguments: json!({"radius": 9, "unit": "cm", "precision": 2, "system": "Metric",
                              "verbose": true, "round": false}),
        };
        g.prune(&mut call, &tool);
        assert_eq!(
            call.arguments,
            json!({"radius": 9, "system": "Metric", "verbose": true})
        );
        let mut zone = ToolCall {
            arguments: json!({"radius": 1, "unit": "America/Inches"}),
            ..call.clone()
        };
        g.prune(&mut zone, &tool);
        assert_eq!(zone.arguments["unit"], "America/Inches");
        let mut inches = ToolCall {
            arguments: json!({"radius": 4.0, "unit": "inches"}),
            ..call
        };
        g.prune(&mut inches, &tool);
        assert_eq!(inches.arguments, json!({"radius": 4.0, "unit": "inches"}));
    }
}
