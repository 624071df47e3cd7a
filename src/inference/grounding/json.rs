//! The scalar values of a JSON text that is still being written (a call or an answer, token by
//! token): where each starts and ends, whether it is a key, how deep it lies.

/// One scalar value in JSON text: where its content starts and (if it has) ends, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub start: usize,
    pub end: Option<usize>,
    pub key: bool,
    /// Containers open around it (a call's name is at 2, its arguments' keys at 3).
    pub depth: usize,
    /// Whether it is an item of an array.
    pub in_array: bool,
}

impl Scalar {
    /// Its content in `json` (to the end of the text while it is still open).
    pub fn content<'a>(&self, json: &'a str) -> &'a str {
        &json[self.start..self.end.unwrap_or(json.len())]
    }
}

/// The scalar values (strings, numbers, literals) of a JSON text, complete or not, in order.
pub fn scalars(json: &str) -> Vec<Scalar> {
    let mut out: Vec<Scalar> = Vec::new();
    // Containers open at this point: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    // In an object, whether the next string is a key.
    let mut expect_key = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut bare: Option<usize> = None;
    for (i, c) in json.char_indices() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
                if let Some(last) = out.last_mut() {
                    last.end = Some(i);
                }
            }
            continue;
        }
        if let Some(start) = bare {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '+' | '.') {
                continue;
            }
            bare = None;
            out.push(Scalar {
                start,
                end: Some(i),
                key: false,
                depth: stack.len(),
                in_array: stack.last() == Some(&false),
            });
        }
        match c {
            '"' => {
                in_string = true;
                out.push(Scalar {
                    start: i + 1,
                    end: None,
                    key: expect_key,
                    depth: stack.len(),
                    in_array: stack.last() == Some(&false),
                });
            }
            '{' => {
                stack.push(true);
                expect_key = true;
            }
            '[' => {
                stack.push(false);
                expect_key = false;
            }
            '}' | ']' => {
                stack.pop();
                expect_key = false;
            }
            ':' => expect_key = false,
            ',' => expect_key = stack.last() == Some(&true),
            c if c.is_ascii_alphanumeric() || c == '-' => bare = Some(i),
            _ => {}
        }
    }
    if let Some(start) = bare {
        out.push(Scalar {
            start,
            end: None,
            key: false,
            depth: stack.len(),
            in_array: stack.last() == Some(&false),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_in_json_text() {
        let v = scalars(r#"[{"name": "f", "arguments": {"a": 3, "b": "Lo"#);
        let keys: Vec<bool> = v.iter().map(|s| s.key).collect();
        assert_eq!(keys, [true, false, true, true, false, true, false]);
        assert_eq!(v[4].end, Some(v[4].start + 1)); // 3
        assert_eq!(v[6].end, None); // "Lo… still open
        let nested = scalars(r#"{"a": [1, "x"], "b": {"c": true}}"#);
        assert_eq!(nested.iter().filter(|s| !s.key).count(), 3);
        let items: Vec<bool> = nested.iter().map(|s| s.in_array).collect();
        assert_eq!(items, [false, true, true, false, false, false]);
    }
}
