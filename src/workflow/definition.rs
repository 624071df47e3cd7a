//! The declarative step grammar of `workflows:` in the project file, checked into [`Step`]s, and
//! the graph Mastra clients draw (`stepGraph`, spec §3.4) derived from it.
//!
//! ```yaml
//! steps:
//!   - { id: classify, agent: assistant, prompt: '"Classify: \(.input.text)"', output_schema: {…} }
//!   - { id: lookup, tool: order, input: '{id: .input.id}' }
//!   - { id: shape, map: '{value: .prev.value}' }
//!   - { sleep: 1000 }                       # ms, or a jq expression giving ms
//!   - { sleep_until: '.input.when' }         # jq giving an ISO date or epoch ms
//!   - { id: approval, wait_for_event: { event: approved, timeout_ms: 60000 } }
//!   - { id: review, suspend: { resume_schema: {…}, payload: '{reason: "…"}' }, output: '.resume' }
//!   - { parallel: [ {…}, {…} ] }
//!   - { branch: [ { when: '.prev.ok', steps: [ … ] }, { when: 'true', steps: [ … ] } ] }
//!   - { dowhile: { condition: '.prev.n < 3', steps: [ … ] } }      # or dountil
//!   - { id: each, foreach: { items: '.input.list', steps: [ … ], concurrency: 2 } }
//!   - { id: sub, workflow: other, input: '.prev' }
//!   - { id: maybe, map: '1', when: '.prev.ok' }   # any step: skipped unless the condition holds
//! ```
//!
//! Expressions are jq over `{input, prev, steps: {<id>: output}, resume?, item?}`.

use serde_json::{Map, Value, json};

use crate::expr::Expr;

/// A compiled jq expression, shared by every run of the workflow.
pub type Jq = std::sync::Arc<Expr>;
use crate::tools::schema::superjson;

/// What a leaf step does.
#[derive(Debug, Clone)]
pub enum Action {
    Map(Jq),
    Tool {
        tool: String,
        input: Option<Jq>,
    },
    Agent {
        agent: String,
        prompt: Jq,
        output_schema: Option<Value>,
    },
    Workflow {
        workflow: String,
        input: Option<Jq>,
    },
    Sleep(Duration),
    SleepUntil(Jq),
    WaitForEvent {
        event: String,
        timeout_ms: Option<u64>,
    },
    Suspend {
        resume_schema: Option<Value>,
        payload: Option<Jq>,
        output: Option<Jq>,
    },
}

/// A sleep's length: fixed, or computed.
#[derive(Debug, Clone)]
pub enum Duration {
    Ms(u64),
    Expr(Jq),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoopKind {
    DoWhile,
    DoUntil,
}

impl LoopKind {
    fn as_str(self) -> &'static str {
        match self {
            LoopKind::DoWhile => "dowhile",
            LoopKind::DoUntil => "dountil",
        }
    }
}

/// One entry of a workflow's step list.
// Definitions are built once at load and never moved in hot paths; boxing would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Step {
    Leaf {
        id: String,
        description: String,
        input_schema: Option<Value>,
        output_schema: Option<Value>,
        action: Action,
    },
    Parallel(Vec<Step>),
    Branch(Vec<(Jq, Vec<Step>)>),
    Loop {
        kind: LoopKind,
        condition: Jq,
        steps: Vec<Step>,
    },
    Foreach {
        id: String,
        items: Jq,
        steps: Vec<Step>,
        concurrency: usize,
    },
}

/// A problem in a definition: where (a JSON pointer below the workflow) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub pointer: String,
    pub message: String,
}

struct Parser {
    problems: Vec<Problem>,
    ids: Vec<String>,
    sleeps: usize,
}

const LEAF_KINDS: &[&str] = &[
    "map",
    "tool",
    "agent",
    "workflow",
    "sleep",
    "sleep_until",
    "wait_for_event",
    "suspend",
];
const FLOW_KINDS: &[&str] = &["parallel", "branch", "dowhile", "dountil", "foreach"];
const COMMON: &[&str] = &[
    "id",
    "description",
    "input_schema",
    "output_schema",
    "input",
    "prompt",
    "output",
    "when",
];

impl Parser {
    fn problem(&mut self, pointer: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            pointer: pointer.to_string(),
            message: message.into(),
        });
    }

    fn expr(&mut self, pointer: &str, v: Option<&Value>) -> Option<Jq> {
        match v {
            None => None,
            Some(Value::String(code)) => match Expr::compile(code) {
                Ok(e) => Some(std::sync::Arc::new(e)),
                Err(e) => {
                    self.problem(pointer, format!("invalid jq expression: {e}"));
                    None
                }
            },
            Some(_) => {
                self.problem(pointer, "must be a jq expression (a string)");
                None
            }
        }
    }

    fn schema(&mut self, pointer: &str, v: Option<&Value>) -> Option<Value> {
        let v = v?;
        if let Err(e) = crate::tools::schema::Schema::compile(v.clone()) {
            self.problem(pointer, format!("invalid JSON Schema: {e}"));
            return None;
        }
        Some(v.clone())
    }

    fn id(&mut self, at: &str, map: &Map<String, Value>, fallback: Option<String>) -> String {
        let id = match map.get("id") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => {
                self.problem(&format!("{at}/id"), "`id` must be a non-empty string");
                return String::new();
            }
            None => match fallback {
                Some(f) => f,
                None => {
                    self.problem(at, "this step needs an `id`");
                    return String::new();
                }
            },
        };
        if id.contains(['.', ':', '/', '>']) {
            // These characters separate the parts of execution keys and nested step paths.
            self.problem(
                &format!("{at}/id"),
                format!("step id `{id}` may not contain `.`, `:`, `/` or `>`"),
            );
        } else if self.ids.contains(&id) {
            self.problem(&format!("{at}/id"), format!("step id `{id}` is used twice"));
        } else {
            self.ids.push(id.clone());
        }
        id
    }

    fn steps(&mut self, at: &str, v: Option<&Value>) -> Vec<Step> {
        match v {
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.step(&format!("{at}/{i}"), s))
                .collect(),
            Some(Value::Array(_)) => {
                self.problem(at, "needs at least one step");
                Vec::new()
            }
            _ => {
                self.problem(at, "must be a list of steps");
                Vec::new()
            }
        }
    }

    /// A step; one with `when` runs only if its condition holds (a one-armed branch).
    fn step(&mut self, at: &str, v: &Value) -> Option<Step> {
        let when = v
            .get("when")
            .map(|w| self.expr(&format!("{at}/when"), Some(w)));
        let step = self.step_itself(at, v)?;
        match when {
            None => Some(step),
            Some(Some(cond)) => Some(Step::Branch(vec![(cond, vec![step])])),
            Some(None) => None,
        }
    }

    fn step_itself(&mut self, at: &str, v: &Value) -> Option<Step> {
        let Value::Object(map) = v else {
            self.problem(at, "a step must be an object");
            return None;
        };
        let kinds: Vec<&str> = map
            .keys()
            .map(String::as_str)
            .filter(|k| LEAF_KINDS.contains(k) || FLOW_KINDS.contains(k))
            .collect();
        if kinds.len() != 1 {
            self.problem(
                at,
                format!(
                    "a step needs exactly one of {}",
                    LEAF_KINDS
                        .iter()
                        .chain(FLOW_KINDS)
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        }
        let kind = kinds[0];
        for key in map.keys() {
            if key != kind && !COMMON.contains(&key.as_str()) {
                self.problem(
                    &format!("{at}/{key}"),
                    format!("unknown key `{key}` in a `{kind}` step"),
                );
            }
        }
        let body = &map[kind];
        let sub = |k: &str| format!("{at}/{kind}/{k}");
        match kind {
            "parallel" => {
                return Some(Step::Parallel(
                    self.steps(&format!("{at}/parallel"), Some(body)),
                ));
            }
            "branch" => {
                let Value::Array(arms) = body else {
                    self.problem(&format!("{at}/branch"), "must be a list of {when, steps}");
                    return None;
                };
                let mut out = Vec::new();
                for (i, arm) in arms.iter().enumerate() {
                    let aat = format!("{at}/branch/{i}");
                    let cond = self.expr(&format!("{aat}/when"), arm.get("when"));
                    if arm.get("when").is_none() {
                        self.problem(&aat, "a branch needs `when`");
                    }
                    let steps = self.steps(&format!("{aat}/steps"), arm.get("steps"));
                    if let Some(c) = cond {
                        out.push((c, steps));
                    }
                }
                return Some(Step::Branch(out));
            }
            "dowhile" | "dountil" => {
                let condition = self.expr(&sub("condition"), body.get("condition"));
                if body.get("condition").is_none() {
                    self.problem(&format!("{at}/{kind}"), "a loop needs a `condition`");
                }
                let steps = self.steps(&sub("steps"), body.get("steps"));
                return condition.map(|condition| Step::Loop {
                    kind: if kind == "dowhile" {
                        LoopKind::DoWhile
                    } else {
                        LoopKind::DoUntil
                    },
                    condition,
                    steps,
                });
            }
            "foreach" => {
                let id = self.id(at, map, None);
                let items = self.expr(&sub("items"), body.get("items"));
                if body.get("items").is_none() {
                    self.problem(&format!("{at}/foreach"), "`foreach` needs `items`");
                }
                let steps = self.steps(&sub("steps"), body.get("steps"));
                let concurrency = match body.get("concurrency") {
                    None => 1,
                    Some(v) => match v.as_u64() {
                        Some(n) if (1..=64).contains(&n) => n as usize,
                        _ => {
                            self.problem(&sub("concurrency"), "`concurrency` must be 1 to 64");
                            1
                        }
                    },
                };
                return items.map(|items| Step::Foreach {
                    id,
                    items,
                    steps,
                    concurrency,
                });
            }
            _ => {}
        }
        let fallback = matches!(kind, "sleep" | "sleep_until").then(|| {
            self.sleeps += 1;
            format!("{kind}_{}", self.sleeps)
        });
        let id = self.id(at, map, fallback);
        let text = |p: &mut Parser, k: &str| -> Option<String> {
            match body {
                Value::String(s) if k.is_empty() => Some(s.clone()),
                _ => match body.get(k) {
                    Some(Value::String(s)) => Some(s.clone()),
                    _ => {
                        p.problem(&format!("{at}/{kind}"), format!("`{kind}` needs `{k}`"));
                        None
                    }
                },
            }
        };
        let action = match kind {
            "map" => Action::Map(self.expr(&format!("{at}/map"), Some(body))?),
            "tool" => Action::Tool {
                tool: text(self, "")?,
                input: self.expr(&format!("{at}/input"), map.get("input")),
            },
            "agent" => {
                let agent = text(self, "")?;
                let prompt = match map.get("prompt") {
                    Some(_) => self.expr(&format!("{at}/prompt"), map.get("prompt"))?,
                    None => {
                        self.problem(at, "an `agent` step needs a `prompt` (a jq expression)");
                        return None;
                    }
                };
                Action::Agent {
                    agent,
                    prompt,
                    output_schema: self
                        .schema(&format!("{at}/output_schema"), map.get("output_schema")),
                }
            }
            "workflow" => Action::Workflow {
                workflow: text(self, "")?,
                input: self.expr(&format!("{at}/input"), map.get("input")),
            },
            "sleep" => Action::Sleep(match body {
                Value::Number(n) => match n.as_u64() {
                    Some(ms) => Duration::Ms(ms),
                    None => {
                        self.problem(
                            &format!("{at}/sleep"),
                            "a sleep is a whole number of ms or a jq expression",
                        );
                        return None;
                    }
                },
                other => Duration::Expr(self.expr(&format!("{at}/sleep"), Some(other))?),
            }),
            "sleep_until" => {
                Action::SleepUntil(self.expr(&format!("{at}/sleep_until"), Some(body))?)
            }
            "wait_for_event" => Action::WaitForEvent {
                event: text(self, "event")?,
                timeout_ms: body.get("timeout_ms").and_then(Value::as_u64),
            },
            "suspend" => {
                if !body.is_object() {
                    self.problem(
                        &format!("{at}/suspend"),
                        "`suspend` takes {resume_schema?, payload?}",
                    );
                    return None;
                }
                Action::Suspend {
                    resume_schema: self.schema(&sub("resume_schema"), body.get("resume_schema")),
                    payload: self.expr(&sub("payload"), body.get("payload")),
                    output: self.expr(&format!("{at}/output"), map.get("output")),
                }
            }
            _ => return None,
        };
        Some(Step::Leaf {
            id,
            description: map
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            input_schema: self.schema(&format!("{at}/input_schema"), map.get("input_schema")),
            output_schema: self.schema(&format!("{at}/output_schema"), map.get("output_schema")),
            action,
        })
    }
}

/// Checks a workflow's `steps`; problems carry pointers relative to the workflow entry.
pub fn parse(steps: &[Value]) -> Result<Vec<Step>, Vec<Problem>> {
    let mut p = Parser {
        problems: Vec::new(),
        ids: Vec::new(),
        sleeps: 0,
    };
    let list = Value::Array(steps.to_vec());
    let out = p.steps("/steps", Some(&list));
    if p.problems.is_empty() {
        Ok(out)
    } else {
        Err(p.problems)
    }
}

/// Names a step refers to (tools, agents, workflows), with their pointers, for reference checks.
pub fn references(steps: &[Step]) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    walk(steps, &mut |s| {
        if let Step::Leaf { action, .. } = s {
            match action {
                Action::Tool { tool, .. } => out.push(("tools", tool.clone())),
                Action::Agent { agent, .. } => out.push(("agents", agent.clone())),
                Action::Workflow { workflow, .. } => out.push(("workflows", workflow.clone())),
                _ => {}
            }
        }
    });
    out
}

/// A chain of workflows that includes its own start (`a → b → a`), if `nests` (each workflow's
/// nested workflows) has one.
pub fn nesting_cycle(nests: &indexmap::IndexMap<String, Vec<String>>) -> Option<Vec<String>> {
    fn visit(
        nests: &indexmap::IndexMap<String, Vec<String>>,
        key: &str,
        trail: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = trail.iter().position(|k| k == key) {
            let mut cycle = trail[at..].to_vec();
            cycle.push(key.to_string());
            return Some(cycle);
        }
        trail.push(key.to_string());
        for inner in nests.get(key).into_iter().flatten() {
            if let Some(cycle) = visit(nests, inner, trail) {
                return Some(cycle);
            }
        }
        trail.pop();
        None
    }
    nests.keys().find_map(|k| visit(nests, k, &mut Vec::new()))
}

/// Visits every step, depth first.
pub fn walk<'a>(steps: &'a [Step], f: &mut dyn FnMut(&'a Step)) {
    for s in steps {
        f(s);
        match s {
            Step::Leaf { .. } => {}
            Step::Parallel(inner) => walk(inner, f),
            Step::Branch(arms) => arms.iter().for_each(|(_, steps)| walk(steps, f)),
            Step::Loop { steps, .. } | Step::Foreach { steps, .. } => walk(steps, f),
        }
    }
}

/// Finds the steps of another workflow of the project (for nested workflow steps).
pub type Lookup<'r> = &'r dyn Fn(&str) -> Option<&'r [Step]>;

/// Draws graphs, following nested workflows (at most [`MAX_DRAWN_NESTING`] deep).
#[derive(Clone, Copy)]
struct Drawer<'r> {
    lookup: Lookup<'r>,
    depth: usize,
}

/// How deep nested workflows are drawn in a graph.
const MAX_DRAWN_NESTING: usize = 8;

impl Drawer<'_> {
    fn leaf_json(self, id: &str, description: &str, action: &Action) -> Value {
        let mut step = json!({"id": id, "description": description});
        match action {
            Action::Map(e) => step["mapConfig"] = json!(e.source()),
            Action::Workflow { workflow, .. } => {
                step["component"] = json!("WORKFLOW");
                if self.depth < MAX_DRAWN_NESTING
                    && let Some(steps) = (self.lookup)(workflow)
                {
                    let inner = Drawer {
                        depth: self.depth + 1,
                        ..self
                    };
                    step["serializedStepFlow"] = Value::Array(inner.graph(steps));
                }
            }
            _ => {}
        }
        step
    }

    /// A step sequence as one graph step (a branch arm or loop body of several steps).
    fn group_json(self, id: String, steps: &[Step]) -> Value {
        if let [single] = steps
            && let Some(entry) = self.entry_step(single)
        {
            return entry;
        }
        json!({"id": id, "description": "", "component": "WORKFLOW", "serializedStepFlow": self.graph(steps)})
    }

    /// The `step` object of an entry that is one step.
    fn entry_step(self, s: &Step) -> Option<Value> {
        match s {
            Step::Leaf {
                id,
                description,
                action,
                ..
            } => Some(self.leaf_json(id, description, action)),
            _ => None,
        }
    }

    fn graph(self, steps: &[Step]) -> Vec<Value> {
        steps
        .iter()
        .map(|s| match s {
            Step::Leaf { id, description, action, .. } => match action {
                Action::Sleep(Duration::Ms(ms)) => json!({"type": "sleep", "id": id, "duration": ms}),
                Action::Sleep(Duration::Expr(e)) => json!({"type": "sleep", "id": id, "fn": e.source()}),
                Action::SleepUntil(e) => json!({"type": "sleepUntil", "id": id, "fn": e.source()}),
                Action::WaitForEvent { event, timeout_ms } => json!({
                    "type": "waitForEvent", "event": event,
                    "step": self.leaf_json(id, description, action), "timeout": timeout_ms
                }),
                _ => json!({"type": "step", "step": self.leaf_json(id, description, action)}),
            },
            Step::Parallel(inner) => json!({
                "type": "parallel",
                "steps": inner.iter().map(|s| json!({"type": "step", "step": self.group_json(first_id(std::slice::from_ref(s)), std::slice::from_ref(s))})).collect::<Vec<_>>()
            }),
            Step::Branch(arms) => {
                let steps: Vec<Value> = arms
                    .iter()
                    .map(|(_, st)| json!({"type": "step", "step": self.group_json(first_id(st), st)}))
                    .collect();
                let conditions: Vec<Value> = arms
                    .iter()
                    .map(|(c, st)| json!({"id": format!("{}-condition", first_id(st)), "fn": c.source()}))
                    .collect();
                json!({"type": "conditional", "steps": steps, "serializedConditions": conditions})
            }
            Step::Loop { kind, condition, steps } => json!({
                "type": "loop",
                "step": self.group_json(first_id(steps), steps),
                "serializedCondition": {"id": format!("{}-condition", first_id(steps)), "fn": condition.source()},
                "loopType": kind.as_str(),
            }),
            Step::Foreach { id, steps, concurrency, .. } => json!({
                "type": "foreach",
                "step": self.group_json(id.clone(), steps),
                "opts": {"concurrency": concurrency},
            }),
        })
        .collect()
    }
}

/// The name a step's output is keyed by inside `parallel` and `branch` outputs.
pub fn name_of(step: &Step) -> String {
    first_id(std::slice::from_ref(step))
}

/// The name of a step sequence (its first named step).
pub fn first_step_name(steps: &[Step]) -> String {
    first_id(steps)
}

fn first_id(steps: &[Step]) -> String {
    steps
        .iter()
        .find_map(|s| match s {
            Step::Leaf { id, .. } | Step::Foreach { id, .. } => Some(id.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "steps".into())
}

/// The serialized step graph (§3.4); `lookup` finds nested workflows' steps.
pub fn graph(steps: &[Step], lookup: Lookup<'_>) -> Vec<Value> {
    Drawer { lookup, depth: 0 }.graph(steps)
}

/// The step entries of the workflow object: top-level `steps` and the flattened `allSteps`.
pub fn step_maps(steps: &[Step], lookup: Lookup<'_>) -> (Map<String, Value>, Map<String, Value>) {
    fn describe(s: &Step) -> Option<(String, Value)> {
        let Step::Leaf {
            id,
            description,
            input_schema,
            output_schema,
            action,
        } = s
        else {
            return None;
        };
        let any = json!({});
        let mut v = json!({
            "id": id,
            "description": description,
            "inputSchema": superjson(input_schema.as_ref().unwrap_or(&any)),
            "outputSchema": superjson(output_schema.as_ref().unwrap_or(&any)),
        });
        if let Action::Suspend {
            resume_schema: Some(r),
            ..
        } = action
        {
            v["resumeSchema"] = json!(superjson(r));
        }
        Some((id.clone(), v))
    }
    /// Adds the leaf steps of `steps` (and of the workflows they nest) as `prefix<id>`.
    fn flatten(
        steps: &[Step],
        prefix: &str,
        depth: usize,
        lookup: Lookup<'_>,
        all: &mut Map<String, Value>,
    ) {
        walk(steps, &mut |s| {
            let Some((id, mut v)) = describe(s) else {
                return;
            };
            let nested = match s {
                Step::Leaf {
                    action: Action::Workflow { workflow, .. },
                    ..
                } => Some(workflow),
                _ => None,
            };
            v["isWorkflow"] = json!(nested.is_some());
            all.insert(format!("{prefix}{id}"), v);
            if let Some(inner) = nested.and_then(|w| lookup(w))
                && depth < MAX_DRAWN_NESTING
            {
                flatten(inner, &format!("{prefix}{id}."), depth + 1, lookup, all);
            }
        });
    }
    let top: Map<String, Value> = steps.iter().filter_map(describe).collect();
    let mut all = Map::new();
    flatten(steps, "", 0, lookup, &mut all);
    (top, all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(src: &str) -> Vec<Value> {
        let project = crate::config::load_str(
            &format!("tools:\n  t: {{ builtin: calculator }}\nworkflows:\n  w:\n    steps:\n{src}"),
            "test",
        );
        match project {
            Ok(p) => p.workflows["w"].steps.clone(),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_kind_parses_and_graphs() {
        let steps = parse(&yaml(
            r#"      - { id: a, map: '{v: .input.v}' }
      - { sleep: 10 }
      - { sleep: '.prev.ms' }
      - { sleep_until: '.input.at' }
      - { id: ev, wait_for_event: { event: ok, timeout_ms: 500 } }
      - { id: hold, suspend: { resume_schema: { type: object } }, output: '.resume' }
      - parallel: [ { id: p1, map: '1' }, { id: p2, tool: t, input: '{expression: "1+1"}' } ]
      - branch: [ { when: '.prev.p1 == 1', steps: [ { id: b1, map: '"one"' } ] }, { when: 'true', steps: [ { id: b2, map: '2' }, { id: b3, map: '3' } ] } ]
      - dountil: { condition: '.prev.n > 2', steps: [ { id: inc, map: '{n: ((.prev.n // 0) + 1)}' } ] }
      - { id: each, foreach: { items: '[1,2,3]', concurrency: 2, steps: [ { id: sq, map: '.item * .item' } ] } }
"#,
        ))
        .unwrap();
        let g = graph(&steps, &|_| None);
        let types: Vec<&str> = g.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(
            types,
            [
                "step",
                "sleep",
                "sleep",
                "sleepUntil",
                "waitForEvent",
                "step",
                "parallel",
                "conditional",
                "loop",
                "foreach"
            ]
        );
        assert_eq!(g[0]["step"]["mapConfig"], "{v: .input.v}");
        assert_eq!(
            g[1],
            json!({"type": "sleep", "id": "sleep_1", "duration": 10})
        );
        assert_eq!(g[2]["fn"], ".prev.ms");
        assert_eq!(g[7]["serializedConditions"][0]["id"], "b1-condition");
        assert_eq!(g[7]["steps"][1]["step"]["component"], "WORKFLOW");
        assert_eq!(g[8]["loopType"], "dountil");
        assert_eq!(g[9]["opts"]["concurrency"], 2);
        let (top, all) = step_maps(&steps, &|_| None);
        assert!(top.contains_key("a") && !top.contains_key("p1"));
        assert!(all.contains_key("p1") && all.contains_key("sq"));
        assert!(
            top["hold"]["resumeSchema"]
                .as_str()
                .unwrap()
                .contains("object")
        );
        assert_eq!(references(&steps), vec![("tools", "t".to_string())]);
    }

    #[test]
    fn problems_are_located() {
        let problems = parse(&[
            json!({"map": "1"}),
            json!({"id": "x", "map": "1", "tool": "t"}),
            json!({"id": "y", "map": ".["}),
            json!({"id": "y", "map": "1"}),
            json!({"id": "z", "sleep": -5}),
            json!({"id": "q", "agent": "a"}),
            json!({"branch": [{"steps": []}]}),
            json!({"id": "f", "foreach": {"items": "[]", "steps": [{"id": "g", "map": "1"}], "concurrency": 0}}),
            json!({"id": "k", "map": "1", "colour": "red"}),
            json!(7),
        ])
        .unwrap_err();
        let find = |ptr: &str| {
            problems
                .iter()
                .find(|p| p.pointer == ptr)
                .map(|p| p.message.clone())
        };
        assert!(find("/steps/0").unwrap().contains("needs an `id`"));
        assert!(find("/steps/1").unwrap().contains("exactly one of"));
        assert!(find("/steps/2/map").unwrap().contains("invalid jq"));
        assert!(find("/steps/3/id").unwrap().contains("used twice"));
        assert!(find("/steps/4/sleep").is_some());
        assert!(find("/steps/5").unwrap().contains("prompt"));
        assert!(find("/steps/6/branch/0").unwrap().contains("`when`"));
        assert!(
            find("/steps/6/branch/0/steps")
                .unwrap()
                .contains("at least one")
        );
        assert!(find("/steps/7/foreach/concurrency").is_some());
        assert!(find("/steps/8/colour").unwrap().contains("unknown key"));
        assert!(find("/steps/9").unwrap().contains("object"));
    }
}
