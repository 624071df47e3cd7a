//! The project file: YAML (or JSON) → typed [`Project`], with every problem reported at its line
//! and column. `edgestra serve` without a file uses the embedded default project.

mod model;
mod source;

pub use model::*;
pub use source::{Pos, Problem};

use serde::de::DeserializeOwned;
use serde_json::Value;
use source::{Document, pointer_segment};
use std::path::Path;

/// The project used when no file is given and `./edgestra.yaml` does not exist.
pub const DEFAULT_PROJECT: &str = include_str!("default.yaml");

/// Models embedded in the binary, usable by name without a `models:` entry.
pub const BUILTIN_MODELS: &[&str] = &["smollm2-135m-instruct", "all-minilm-l6-v2"];

/// Tools built into edgestra, usable as `builtin: <name>`.
pub const BUILTIN_TOOLS: &[&str] = &["calculator", "datetime"];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{} has {} problem(s):\n{}", .origin, .problems.len(), render(.problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn render(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Reads and checks the project file at `path`.
pub fn load_file(path: &Path) -> Result<Project, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Checks a project given as text; `origin` names it in messages.
pub fn load_str(text: &str, origin: &str) -> Result<Project, ConfigError> {
    check(text, &|name| std::env::var(name).ok()).map_err(|problems| ConfigError::Invalid {
        origin: origin.to_string(),
        problems,
    })
}

/// Parses and validates; returns every problem found, sorted by position.
pub fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Project, Vec<Problem>> {
    let doc = source::parse(text, env)?;
    let mut checker = Checker {
        doc: &doc,
        problems: Vec::new(),
    };
    let (project, typed) = checker.project();
    if let Some(project) = &project {
        // Entries that failed to type are left out of `project` but still count as declared,
        // so every other problem is reported without spurious "not defined" ones.
        crate::config::references::check(project, &mut checker);
    }
    let project = project.filter(|_| typed);
    let mut problems = checker.problems;
    problems.sort_by_key(|p| (p.pos.line, p.pos.col));
    problems.dedup();
    match project {
        Some(p) if problems.is_empty() => Ok(p),
        _ => Err(problems),
    }
}

mod references;

/// Collects problems while typing the document section by section, so that one bad entry does
/// not hide the problems of the others.
pub(crate) struct Checker<'d> {
    doc: &'d Document,
    problems: Vec<Problem>,
}

const SECTIONS: &[&str] = &[
    "server",
    "models",
    "tools",
    "agents",
    "workflows",
    "legacy_workflows",
    "networks",
    "mcp_servers",
    "mcp_clients",
    "scorers",
    "vector_stores",
];

impl Checker<'_> {
    /// Records a problem about the value at `pointer`.
    pub(crate) fn at(&mut self, pointer: &str, message: impl Into<String>) {
        let pos = self.doc.positions.value(pointer);
        self.problems.push(Problem {
            pos,
            message: message.into(),
        });
    }

    /// Whether `section` of the file declares an entry `name` (typed correctly or not).
    pub(crate) fn declared(&self, section: &str, name: &str) -> bool {
        self.doc
            .root
            .get(section)
            .and_then(|s| s.get(name))
            .is_some()
    }

    /// The typed project (with the entries that typed) and whether everything typed.
    fn project(&mut self) -> (Option<Project>, bool) {
        let root = match &self.doc.root {
            Value::Null => return (Some(Project::default()), true),
            Value::Object(map) => map,
            _ => {
                self.at(
                    "",
                    "a project file must be a mapping of sections (agents:, tools:, …)",
                );
                return (None, false);
            }
        };
        for key in root.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                let pointer = format!("/{}", pointer_segment(key));
                let pos = self.doc.positions.key(&pointer);
                self.problems.push(Problem {
                    pos,
                    message: format!(
                        "unknown section `{key}` (expected one of: {})",
                        SECTIONS.join(", ")
                    ),
                });
            }
        }
        let before = self.problems.len();
        let project = Project {
            server: self
                .typed("/server", root.get("server"))
                .unwrap_or_default(),
            models: self.entries(root, "models"),
            tools: self.entries(root, "tools"),
            agents: self.entries(root, "agents"),
            workflows: self.entries(root, "workflows"),
            legacy_workflows: self.entries(root, "legacy_workflows"),
            networks: self.entries(root, "networks"),
            mcp_servers: self.entries(root, "mcp_servers"),
            mcp_clients: self.entries(root, "mcp_clients"),
            scorers: self.entries(root, "scorers"),
            vector_stores: self.entries(root, "vector_stores"),
        };
        let typed = self.problems.len() == before;
        (Some(project), typed)
    }

    /// Types each entry of a `name → entry` section on its own.
    fn entries<T: DeserializeOwned>(
        &mut self,
        root: &serde_json::Map<String, Value>,
        section: &str,
    ) -> indexmap::IndexMap<String, T> {
        let mut out = indexmap::IndexMap::new();
        let pointer = format!("/{section}");
        match root.get(section) {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (name, value) in map {
                    let entry_pointer = format!("{pointer}/{}", pointer_segment(name));
                    if let Some(v) = self.typed(&entry_pointer, Some(value)) {
                        out.insert(name.clone(), v);
                    }
                }
            }
            Some(_) => self.at(
                &pointer,
                format!("`{section}` must be a mapping of names to entries"),
            ),
        }
        out
    }

    /// Types one value. Unknown keys are reported and dropped, then typing is tried again, so
    /// that one typo neither hides the entry's other problems nor its references.
    fn typed<T: DeserializeOwned>(&mut self, pointer: &str, value: Option<&Value>) -> Option<T> {
        let mut value = value.cloned().unwrap_or(Value::Null);
        if value.is_null() {
            value = Value::Object(Default::default());
        }
        for _ in 0..64 {
            let err = match serde_path_to_error::deserialize::<_, T>(value.clone()) {
                Ok(v) => return Some(v),
                Err(err) => err,
            };
            let mut inner = String::new();
            for seg in err.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Seq { index } => {
                        inner.push_str(&format!("/{index}"))
                    }
                    serde_path_to_error::Segment::Map { key } => {
                        inner.push_str(&format!("/{}", pointer_segment(key)))
                    }
                    _ => {}
                }
            }
            let message = err.inner().to_string();
            let unknown = unknown_field(&message).map(pointer_segment);
            // The path may or may not already end with the unknown key; normalise to the key's pointer.
            let (container, key_pointer) = match &unknown {
                Some(field) if inner.ends_with(&format!("/{field}")) => (
                    inner[..inner.len() - field.len() - 1].to_string(),
                    format!("{pointer}{inner}"),
                ),
                Some(field) => (inner.clone(), format!("{pointer}{inner}/{field}")),
                None => (inner.clone(), format!("{pointer}{inner}")),
            };
            let dotted = key_pointer.trim_start_matches('/').replace('/', ".");
            let pos = if unknown.is_some() {
                self.doc.positions.key(&key_pointer)
            } else {
                self.doc.positions.value(&key_pointer)
            };
            self.problems.push(Problem {
                pos,
                message: format!("{dotted}: {message}"),
            });
            let removed = unknown.and_then(|field| {
                let field = field.replace("~1", "/").replace("~0", "~");
                value
                    .pointer_mut(&container)
                    .and_then(Value::as_object_mut)
                    .and_then(|m| m.remove(&field))
            });
            removed.as_ref()?;
        }
        None
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests;
