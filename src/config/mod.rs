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
    Read { path: String, source: std::io::Error },
    #[error("{} has {} problem(s):\n{}", .origin, .problems.len(), render(.problems))]
    Invalid { origin: String, problems: Vec<Problem> },
}

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

/// Reads and checks the project file at `path`.
pub fn load_file(path: &Path) -> Result<Project, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    load_str(&text, &path.display().to_string())
}

/// Checks a project given as text; `origin` names it in messages.
pub fn load_str(text: &str, origin: &str) -> Result<Project, ConfigError> {
    check(text, &|name| std::env::var(name).ok())
        .map_err(|problems| ConfigError::Invalid { origin: origin.to_string(), problems })
}

/// Parses and validates; returns every problem found, sorted by position.
pub fn check(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Project, Vec<Problem>> {
    let doc = source::parse(text, env)?;
    let mut checker = Checker { doc: &doc, problems: Vec::new() };
    let project = checker.project();
    if let Some(project) = &project {
        crate::config::references::check(project, &mut checker);
    }
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
        self.problems.push(Problem { pos, message: message.into() });
    }

    fn project(&mut self) -> Option<Project> {
        let root = match &self.doc.root {
            Value::Null => return Some(Project::default()),
            Value::Object(map) => map,
            _ => {
                self.at("", "a project file must be a mapping of sections (agents:, tools:, …)");
                return None;
            }
        };
        for key in root.keys() {
            if !SECTIONS.contains(&key.as_str()) {
                let pointer = format!("/{}", pointer_segment(key));
                let pos = self.doc.positions.key(&pointer);
                self.problems.push(Problem {
                    pos,
                    message: format!("unknown section `{key}` (expected one of: {})", SECTIONS.join(", ")),
                });
            }
        }
        let before = self.problems.len();
        let project = Project {
            server: self.typed("/server", root.get("server")).unwrap_or_default(),
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
        (self.problems.len() == before).then_some(project)
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
            Some(_) => self.at(&pointer, format!("`{section}` must be a mapping of names to entries")),
        }
        out
    }

    fn typed<T: DeserializeOwned>(&mut self, pointer: &str, value: Option<&Value>) -> Option<T> {
        let value = value.cloned().unwrap_or(Value::Null);
        let value = if value.is_null() { Value::Object(Default::default()) } else { value };
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(err) => {
                let mut inner = String::new();
                for seg in err.path().iter() {
                    match seg {
                        serde_path_to_error::Segment::Seq { index } => inner.push_str(&format!("/{index}")),
                        serde_path_to_error::Segment::Map { key } => {
                            inner.push_str(&format!("/{}", pointer_segment(key)))
                        }
                        _ => {}
                    }
                }
                let message = err.inner().to_string();
                let full = format!("{pointer}{inner}");
                let dotted = full.trim_start_matches('/').replace('/', ".");
                // An unknown key is best shown where the key itself stands.
                let pos = match unknown_field(&message) {
                    Some(field) if !inner.ends_with(&format!("/{}", pointer_segment(field))) => {
                        self.doc.positions.key(&format!("{full}/{}", pointer_segment(field)))
                    }
                    Some(_) => self.doc.positions.key(&full),
                    None => self.doc.positions.value(&full),
                };
                self.problems.push(Problem { pos, message: format!("{dotted}: {message}") });
                None
            }
        }
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

#[cfg(test)]
mod tests;
