use super::*;

fn problems(text: &str) -> Vec<Problem> {
    check(text, &|_| None).expect_err("expected problems")
}

#[test]
fn the_default_project_is_valid() {
    let p = check(DEFAULT_PROJECT, &|_| None).unwrap();
    assert!(p.tools.contains_key("calculator"));
}

#[test]
fn empty_file_is_an_empty_project() {
    let p = check("", &|_| None).unwrap();
    assert!(p.agents.is_empty());
}

#[test]
fn unknown_keys_are_reported_at_the_key() {
    let ps = problems("tools:\n  calc:\n    builtin: calculator\n    colour: red\n");
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].pos, Pos { line: 4, col: 5 });
    assert!(
        ps[0].message.contains("unknown field `colour`"),
        "{}",
        ps[0].message
    );
}

#[test]
fn unknown_sections_are_reported() {
    let ps = problems("agentz: {}\n");
    assert_eq!(ps[0].pos, Pos { line: 1, col: 1 });
    assert!(ps[0].message.contains("unknown section `agentz`"));
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let text = "\
tools:
  a: { builtin: nope }
  b: { builtin: calculator, wrong: 1 }
agents:
  x:
    model: missing
    tools: [a, ghost]
";
    let ps = problems(text);
    let lines: Vec<usize> = ps.iter().map(|p| p.pos.line).collect();
    assert!(lines.contains(&3), "{ps:?}");
    // Entries that typed fine are still checked for references.
    assert!(
        ps.iter()
            .any(|p| p.message.contains("`nope` is not a built-in tool") && p.pos.line == 2),
        "{ps:?}"
    );
}

#[test]
fn dangling_references_point_at_the_reference() {
    let text = "\
agents:
  helper:
    model: smollm2-135m-instruct
    tools: [calculator]
tools:
  calc: { builtin: calculator }
";
    let ps = problems(text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!(ps[0].pos, Pos { line: 4, col: 13 });
    assert_eq!(ps[0].message, "tool `calculator` is not defined");
}

#[test]
fn type_errors_name_the_path() {
    let ps = problems("server:\n  port: eighty\n");
    assert_eq!(ps[0].pos, Pos { line: 2, col: 9 });
    assert!(
        ps[0].message.starts_with("server.port:"),
        "{}",
        ps[0].message
    );
}

#[test]
fn invalid_expressions_and_schemas_are_reported() {
    let text = "\
tools:
  t:
    jq: '.a | ('
    input_schema: { type: 12 }
";
    let ps = problems(text);
    assert!(
        ps.iter()
            .any(|p| p.pos.line == 3 && p.message.contains("invalid jq expression")),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.pos.line == 4 && p.message.contains("invalid JSON Schema")),
        "{ps:?}"
    );
}

#[test]
fn a_tool_needs_exactly_one_kind() {
    let ps = problems("tools:\n  t: { description: nothing to run }\n");
    assert!(ps[0].message.contains("exactly one of"));
}

#[test]
fn environment_variables_are_substituted() {
    let text = "server: { api_key: '${EDGE_KEY}' }\n";
    let p = check(text, &|n| (n == "EDGE_KEY").then(|| "k".into())).unwrap();
    assert_eq!(p.server.api_key.as_deref(), Some("k"));
    assert!(problems(text)[0].message.contains("EDGE_KEY"));
}

#[test]
fn workflow_steps_are_checked_with_locations() {
    let problems = |yaml: &str| -> Vec<String> {
        crate::config::check(yaml, &|_| None)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect()
    };
    let bad_jq = problems("workflows:\n  w:\n    steps:\n      - { id: a, map: '.[' }\n");
    assert!(
        bad_jq
            .iter()
            .any(|p| p.starts_with("4:") && p.contains("invalid jq")),
        "{bad_jq:?}"
    );
    let dangling = problems("workflows:\n  w:\n    steps:\n      - { id: b, tool: missing }\n");
    assert!(
        dangling.iter().any(|p| p.contains("tool `missing`")),
        "{dangling:?}"
    );
    let cycle = problems(
        "workflows:\n  a:\n    steps:\n      - { id: x, workflow: b }\n  b:\n    steps:\n      - { id: y, workflow: a }\n",
    );
    assert!(
        cycle
            .iter()
            .any(|p| p.starts_with("4:") && p.contains("includes itself: a → b → a")),
        "{cycle:?}"
    );
    let dotted = problems("workflows:\n  w:\n    steps:\n      - { id: a.b, map: '1' }\n");
    assert!(
        dotted
            .iter()
            .any(|p| p.starts_with("4:") && p.contains("may not contain")),
        "{dotted:?}"
    );
}

#[test]
fn mcp_client_tools_are_named_by_client() {
    let ok = "\
mcp_clients:
  files: { command: mcp-server-filesystem, args: [/srv] }
  web: { url: 'http://127.0.0.1:9/mcp', headers: { Authorization: Bearer x } }
agents:
  a: { model: smollm2-135m-instruct, tools: [files, web_fetch] }
workflows:
  w:
    steps:
      - { id: read, tool: files_read_file, input: '{path: \"/srv/a\"}' }
";
    check(ok, &|_| None).unwrap();

    let bad = "\
mcp_clients:
  files: { command: x, url: 'http://h/mcp' }
  web: { url: 'ftp://h/mcp' }
  calc: { command: y }
  local: { command: z, headers: { a: b } }
tools:
  calc: { builtin: calculator }
agents:
  a: { model: smollm2-135m-instruct, tools: [files_, nope_x] }
workflows:
  w:
    steps:
      - { id: s, tool: files, input: '{}' }
";
    let ps = problems(bad);
    let said = |line: usize, text: &str| {
        assert!(
            ps.iter()
                .any(|p| p.pos.line == line && p.message.contains(text)),
            "line {line}: {text}: {ps:?}"
        );
    };
    said(2, "needs exactly one of `command`, `url`");
    said(3, "`ftp://h/mcp` is not an http(s) URL");
    said(4, "names both a tool and an MCP client");
    said(5, "`headers` need a `url`");
    said(9, "tool `files_` is not defined");
    said(9, "tool `nope_x` is not defined");
    // A step runs one tool: a whole client is not one.
    assert!(
        ps.iter().any(|p| p
            .message
            .contains("uses tool `files`, which is not defined")),
        "{ps:?}"
    );
}
