//! Checks that go beyond types: exactly one kind per tool and model, expressions and schemas that
//! compile, and references (an agent naming a tool) that resolve.

use super::{BUILTIN_MODELS, BUILTIN_TOOLS, Checker, Project};
use crate::config::source::pointer_segment;
use serde_json::Value;

pub(super) fn check(project: &Project, c: &mut Checker<'_>) {
    let p = |section: &str, name: &str| format!("/{section}/{}", pointer_segment(name));

    for (name, model) in &project.models {
        let at = p("models", name);
        let kinds = [
            model.local.is_some(),
            model.path.is_some(),
            model.openai.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            c.at(
                &at,
                format!("model `{name}` needs exactly one of `local`, `path`, `openai`"),
            );
        }
        if let Some(local) = &model.local
            && !BUILTIN_MODELS.contains(&local.as_str())
        {
            c.at(
                &format!("{at}/local"),
                format!(
                    "`{local}` is not a built-in model (built-in: {})",
                    BUILTIN_MODELS.join(", ")
                ),
            );
        }
    }

    let mut ids = std::collections::HashMap::new();
    for (name, tool) in &project.tools {
        let at = p("tools", name);
        let id = tool.id.clone().unwrap_or_else(|| name.clone());
        if let Some(other) = ids.insert(id.clone(), name.clone()) {
            c.at(
                &at,
                format!("tool id `{id}` is already used by tool `{other}`"),
            );
        }
        let kinds = [
            tool.builtin.is_some(),
            tool.jq.is_some(),
            tool.http.is_some(),
            tool.command.is_some(),
            tool.vector_query.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() != 1 {
            c.at(
                &at,
                format!("tool `{name}` needs exactly one of `builtin`, `jq`, `http`, `command`, `vector_query`"),
            );
        }
        if let Some(vq) = &tool.vector_query
            && vq.store != "default"
            && !c.declared("vector_stores", &vq.store)
        {
            c.at(
                &format!("{at}/vector_query/store"),
                format!("vector store `{}` is not defined", vq.store),
            );
        }
        if let Some(b) = &tool.builtin
            && !BUILTIN_TOOLS.contains(&b.as_str())
        {
            c.at(
                &format!("{at}/builtin"),
                format!(
                    "`{b}` is not a built-in tool (built-in: {})",
                    BUILTIN_TOOLS.join(", ")
                ),
            );
        }
        if let Some(expr) = &tool.jq {
            expression(c, &format!("{at}/jq"), expr);
        }
        if let Some(http) = &tool.http {
            expression(c, &format!("{at}/http/url"), &http.url);
            if let Some(body) = &http.body {
                expression(c, &format!("{at}/http/body"), body);
            }
            if reqwest::Method::from_bytes(http.method.to_ascii_uppercase().as_bytes()).is_err() {
                c.at(
                    &format!("{at}/http/method"),
                    format!("`{}` is not an HTTP method", http.method),
                );
            }
        }
        if let Some(cmd) = &tool.command
            && cmd.program.trim().is_empty()
        {
            c.at(
                &format!("{at}/command/program"),
                "`program` must not be empty",
            );
        }
        for key in ["input_schema", "output_schema"] {
            let schema = if key == "input_schema" {
                &tool.input_schema
            } else {
                &tool.output_schema
            };
            if let Some(s) = schema {
                schema_problem(c, &format!("{at}/{key}"), s);
            }
        }
    }

    for (name, agent) in &project.agents {
        let at = p("agents", name);
        if !model_exists(c, &agent.model) {
            c.at(
                &format!("{at}/model"),
                format!(
                    "agent `{name}` uses model `{}`, which is not defined",
                    agent.model
                ),
            );
        }
        tool_refs(c, project, &at, &agent.tools);
        refs(
            c,
            &at,
            "workflows",
            &agent.workflows,
            "workflows",
            "workflow",
        );
        for (i, s) in agent.scorers.iter().enumerate() {
            let sat = format!("{at}/scorers/{i}");
            if !c.declared("scorers", &s.scorer) {
                c.at(
                    &format!("{sat}/scorer"),
                    format!("scorer `{}` is not defined", s.scorer),
                );
            }
            if let Some(rate) = s.sampling_rate
                && !(0.0..=1.0).contains(&rate)
            {
                c.at(
                    &format!("{sat}/sampling_rate"),
                    "`sampling_rate` must be between 0 and 1",
                );
            }
        }
    }

    let mut nests = indexmap::IndexMap::new();
    // Both kinds of workflow share the step grammar: (section, name, steps, schemas).
    let declared = project
        .workflows
        .iter()
        .map(|(name, wf)| {
            let schemas = vec![
                ("input_schema", &wf.input_schema),
                ("output_schema", &wf.output_schema),
            ];
            ("workflows", name, &wf.steps, schemas)
        })
        .chain(project.legacy_workflows.iter().map(|(name, wf)| {
            let schemas = vec![("trigger_schema", &wf.trigger_schema)];
            ("legacy_workflows", name, &wf.steps, schemas)
        }));
    for (section, name, steps, schemas) in declared {
        let at = p(section, name);
        match crate::workflow::definition::parse(steps) {
            Ok(steps) => {
                let refs = crate::workflow::definition::references(&steps);
                // Only `workflows:` can be nested, so only they can form a cycle.
                if section == "workflows" {
                    nests.insert(
                        name.clone(),
                        refs.iter()
                            .filter(|(section, _)| *section == "workflows")
                            .map(|(_, target)| target.clone())
                            .collect::<Vec<_>>(),
                    );
                }
                for (target_section, target) in refs {
                    let found = if target_section == "tools" {
                        tool_exists(c, project, &target, false)
                    } else {
                        c.declared(target_section, &target)
                    };
                    if !found {
                        let kind = target_section.trim_end_matches('s');
                        c.at(
                            &format!("{at}/steps"),
                            format!(
                                "workflow `{name}` uses {kind} `{target}`, which is not defined"
                            ),
                        );
                    }
                }
            }
            Err(problems) => {
                for problem in problems {
                    c.at(&format!("{at}{}", problem.pointer), problem.message);
                }
            }
        }
        for (key, schema) in schemas {
            if let Some(s) = schema {
                schema_problem(c, &format!("{at}/{key}"), s);
            }
        }
    }
    if let Some(cycle) = crate::workflow::definition::nesting_cycle(&nests) {
        c.at(
            &format!("{}/steps", p("workflows", &cycle[0])),
            format!(
                "workflow `{}` includes itself: {}",
                cycle[0],
                cycle.join(" → ")
            ),
        );
    }

    for (name, net) in &project.networks {
        let at = p("networks", name);
        if !model_exists(c, &net.model) {
            c.at(
                &format!("{at}/model"),
                format!(
                    "network `{name}` uses model `{}`, which is not defined",
                    net.model
                ),
            );
        }
        refs(c, &at, "agents", &net.agents, "agents", "agent");
        refs(c, &at, "workflows", &net.workflows, "workflows", "workflow");
        tool_refs(c, project, &at, &net.tools);
    }

    for (name, server) in &project.mcp_servers {
        let at = p("mcp_servers", name);
        tool_refs(c, project, &at, &server.tools);
        refs(c, &at, "agents", &server.agents, "agents", "agent");
        refs(
            c,
            &at,
            "workflows",
            &server.workflows,
            "workflows",
            "workflow",
        );
    }

    for (name, client) in &project.mcp_clients {
        let at = p("mcp_clients", name);
        if client.command.is_some() == client.url.is_some() {
            c.at(
                &at,
                format!("MCP client `{name}` needs exactly one of `command`, `url`"),
            );
        }
        if let Some(url) = &client.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            c.at(
                &format!("{at}/url"),
                format!("`{url}` is not an http(s) URL"),
            );
        }
        if client.url.is_none() && !client.headers.is_empty() {
            c.at(&format!("{at}/headers"), "`headers` need a `url`");
        }
        if c.declared("tools", name) {
            c.at(
                &at,
                format!(
                    "`{name}` names both a tool and an MCP client; a tool list could mean either"
                ),
            );
        }
    }

    for (name, scorer) in &project.scorers {
        let at = p("scorers", name);
        if scorer.jq.is_some() == scorer.judge.is_some() {
            c.at(
                &at,
                format!("scorer `{name}` needs exactly one of `jq`, `judge`"),
            );
        }
        if let Some(expr) = &scorer.jq {
            expression(c, &format!("{at}/jq"), expr);
        }
        if let Some(judge) = &scorer.judge
            && !c.declared("agents", judge)
        {
            c.at(
                &format!("{at}/judge"),
                format!("agent `{judge}` is not defined"),
            );
        }
    }

    for (name, store) in &project.vector_stores {
        if let Some(e) = &store.embedder
            && !model_exists(c, e)
        {
            c.at(
                &format!("{}/embedder", p("vector_stores", name)),
                format!("model `{e}` is not defined"),
            );
        }
    }
}

fn model_exists(c: &Checker<'_>, name: &str) -> bool {
    c.declared("models", name) || BUILTIN_MODELS.contains(&name)
}

/// Whether `name` is a project tool or a tool of a declared MCP client (`<client>_<tool>`); with
/// `whole_client`, a client's name (all of its tools) counts too. Which tools a client offers
/// is only known once connected.
fn tool_exists(c: &Checker<'_>, project: &Project, name: &str, whole_client: bool) -> bool {
    c.declared("tools", name)
        || project.mcp_clients.keys().any(|client| {
            (whole_client && name == client)
                || name
                    .strip_prefix(client.as_str())
                    .is_some_and(|rest| rest.len() > 1 && rest.starts_with('_'))
        })
}

/// Reports each entry of a `tools` list that names neither a tool nor an MCP client's tools.
fn tool_refs(c: &mut Checker<'_>, project: &Project, at: &str, list: &[String]) {
    for (i, name) in list.iter().enumerate() {
        if !tool_exists(c, project, name, true) {
            c.at(
                &format!("{at}/tools/{i}"),
                format!("tool `{name}` is not defined"),
            );
        }
    }
}

/// Reports each entry of `list` (at `{at}/{field}/{i}`) that names nothing under `section`.
fn refs(c: &mut Checker<'_>, at: &str, field: &str, list: &[String], section: &str, kind: &str) {
    for (i, name) in list.iter().enumerate() {
        if !c.declared(section, name) {
            c.at(
                &format!("{at}/{field}/{i}"),
                format!("{kind} `{name}` is not defined"),
            );
        }
    }
}

fn expression(c: &mut Checker<'_>, at: &str, expr: &str) {
    if let Err(e) = crate::expr::Expr::compile(expr) {
        c.at(at, format!("invalid jq expression: {e}"));
    }
}

fn schema_problem(c: &mut Checker<'_>, at: &str, schema: &Value) {
    if let Err(e) = crate::tools::schema::Schema::compile(schema.clone()) {
        c.at(at, format!("invalid JSON Schema: {e}"));
    }
}
