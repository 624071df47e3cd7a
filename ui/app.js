/* edgestra playground — app.js
 * Owns: the live-reload SSE connection, hash routing, and the Agents /
 * Workflows / Tools views, including the agent chat (threads kept in the
 * agent's memory under resource = agent id, answers read from the AI-SDK data
 * stream), the JSON-Schema-generated tool form and tool execution. Untrusted text only ever reaches the DOM through
 * textContent / text nodes / setAttribute (see h()); innerHTML is never used. */
'use strict';

/* ---------- DOM + formatting helpers ---------- */

// h('div', {class, text, onclick, 'data-x': ...}, ...children) — safe element builder.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = String(v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : String(c)); // strings become text nodes
  }
  return node;
}

const str = (v) => (typeof v === 'string' ? v : JSON.stringify(v));
const excerpt = (s, n) => (s.length > n ? s.slice(0, n).trimEnd() + '…' : s);
const empty = (msg) => h('p', { class: 'muted' }, msg);
const row = (label, ...value) => h('div', { class: 'row' }, h('dt', {}, label), h('dd', {}, ...value));
const chips = (list) => (list.length ? list.map((t) => h('span', { class: 'chip' }, t)) : '—');

// Accept either an id→item map or an array of items.
function entriesOf(data) {
  if (Array.isArray(data)) return data.map((it, i) => [String((it && it.id) ?? i), it || {}]);
  if (data && typeof data === 'object') return Object.entries(data).map(([k, v]) => [k, v || {}]);
  return [];
}

/* ---------- HTTP ---------- */

// Resolves to {ok, status, data} or {ok:false, status, error, details}; never throws.
// A server started with an API key answers 401 until the page sends it; the key is asked for
// once and kept in this browser.
const KEY_STORE = 'edgestra.apiKey';

async function api(method, path, body, retried) {
  const res = await apiOnce(method, path, body);
  if (res.status === 401 && !retried) {
    const key = window.prompt('This edgestra server needs its API key:');
    if (key) {
      localStorage.setItem(KEY_STORE, key.trim());
      return api(method, path, body, true);
    }
  }
  return res;
}

async function apiOnce(method, path, body) {
  const init = { method, headers: { accept: 'application/json' } };
  const key = localStorage.getItem(KEY_STORE);
  if (key) init.headers.authorization = 'Bearer ' + key;
  if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    return { ok: false, status: 0, error: 'Network error: ' + (e && e.message ? e.message : e) };
  }
  const text = await res.text().catch(() => '');
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (res.ok) return { ok: true, status: res.status, data };
  const obj = data && typeof data === 'object' ? data : {};
  const error = obj.error ?? obj.message ?? (typeof data === 'string' && data ? data : res.statusText || 'Request failed');
  return { ok: false, status: res.status, error: str(error), details: obj.details };
}

function fmtDetail(d) {
  if (typeof d === 'string') return d;
  if (d && typeof d === 'object' && d.message) {
    const path = Array.isArray(d.path) ? d.path.join('.') : d.path;
    return path ? `${path}: ${d.message}` : String(d.message);
  }
  return JSON.stringify(d);
}

function errorBox(res, testid) {
  const box = h('div', { class: 'error', role: 'alert', 'data-testid': testid },
    h('strong', {}, res.status ? `Error ${res.status}` : 'Error'), ': ', res.error);
  if (Array.isArray(res.details) && res.details.length) {
    box.append(h('ul', { class: 'details' }, res.details.map((d) => h('li', {}, fmtDetail(d)))));
  } else if (res.details != null) {
    box.append(h('pre', { class: 'details' }, JSON.stringify(res.details, null, 2)));
  }
  return box;
}

/* ---------- Live reload ---------- */

function setConn(text, ok) {
  document.getElementById('conn').textContent = text;
  document.getElementById('conn-dot').className = 'dot' + (ok ? ' ok' : '');
}

function connectLiveReload() {
  if (typeof EventSource === 'undefined') return setConn('no live reload', false);
  const es = new EventSource('/refresh-events');
  es.onopen = () => setConn('connected', true);
  es.onmessage = (e) => {
    const msg = String(e.data).trim();
    if (msg === 'refresh') location.reload();
    else if (msg === 'connected') setConn('connected', true);
  };
  es.onerror = () => setConn(es.readyState === EventSource.CLOSED ? 'offline' : 'reconnecting…', false);
}

/* ---------- Routing ---------- */

// '#/tools/<id>' wins; with no hash fall back to the path (/tools/<id>, /agents, …).
function currentRoute() {
  let r = location.hash.replace(/^#/, '');
  if (!r || r === '/') {
    const p = location.pathname;
    r = /^\/(agents|workflows|tools)(\/|$)/.test(p) ? p : '/agents';
  }
  const [, section = 'agents', ...rest] = r.split('/');
  let arg = rest.join('/') || null;
  if (arg != null) { try { arg = decodeURIComponent(arg); } catch { /* keep raw */ } }
  return { section: section || 'agents', arg };
}

let renderSeq = 0;
async function render() {
  const { section, arg } = currentRoute();
  const seq = ++renderSeq;
  document.querySelectorAll('[data-nav]').forEach((a) => a.classList.toggle('active', a.dataset.nav === section));
  const panel = document.getElementById('panel');
  const views = {
    agents: arg != null ? renderChat : renderAgents,
    workflows: arg != null ? renderWorkflowPage : renderWorkflows,
    tools: arg != null ? renderToolPage : renderTools,
  };
  const fn = views[section];
  const view = h('section', { class: 'view', 'data-view': section });
  if (!fn) {
    view.append(h('h1', {}, 'Not found'), empty(`Unknown section "${section}".`));
  } else {
    panel.replaceChildren(empty('Loading…'));
    try { await fn(view, arg); } catch (e) {
      view.append(errorBox({ status: 0, error: (e && e.message) || String(e) }, 'view-error'));
    }
  }
  if (seq === renderSeq) panel.replaceChildren(view); // ignore stale renders
}

/* ---------- Agents ---------- */

async function renderAgents(view) {
  view.append(h('h1', {}, 'Agents'));
  const res = await api('GET', '/api/agents');
  if (!res.ok) return view.append(errorBox(res, 'agents-error'));
  const list = entriesOf(res.data);
  if (!list.length) return view.append(empty('No agents registered.'));
  view.append(h('div', { class: 'cards', 'data-testid': 'agent-list' }, list.map(([id, a]) => {
    const model = [a.provider, a.modelId].filter(Boolean).join(' / ') || '—';
    const instr = a.instructions == null ? '' : str(a.instructions);
    return h('article', { class: 'card', 'data-testid': 'agent-' + id },
      h('h2', {}, h('a', { href: '#/agents/' + encodeURIComponent(id), 'data-testid': 'agent-link-' + id }, a.name || id)),
      h('dl', {},
        row('ID', h('code', {}, id)),
        row('Model', model),
        row('Tools', chips(Object.keys(a.tools || {})))),
      instr ? h('p', { class: 'excerpt', title: instr }, excerpt(instr, 240)) : null);
  })));
}

/* ---------- Agent chat ---------- */

// Reads an AI-SDK data stream (`<code>:<json>` lines), calling on(code, value) per part.
// Reads a streamed body piece by piece, each ending with `sep`.
async function readPieces(res, sep, on) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let at;
    while ((at = buf.indexOf(sep)) >= 0) {
      const piece = buf.slice(0, at);
      buf = buf.slice(at + sep.length);
      on(piece);
    }
  }
}

// AI-SDK data stream parts: `<code>:<json>\n`.
function readDataStream(res, on) {
  return readPieces(res, '\n', (line) => {
    const colon = line.indexOf(':');
    if (colon < 1) return;
    try { on(line.slice(0, colon), JSON.parse(line.slice(colon + 1))); } catch { /* skip a bad part */ }
  });
}

// Workflow stream records: JSON, each followed by \x1E.
function readRecords(res, on) {
  return readPieces(res, '\x1e', (text) => {
    if (!text.trim()) return;
    try { on(JSON.parse(text)); } catch { /* skip a bad record */ }
  });
}

// Headers for a raw fetch (streams), with the API key when the browser has one.
function authHeaders() {
  const headers = { 'content-type': 'application/json' };
  const key = localStorage.getItem(KEY_STORE);
  if (key) headers.authorization = 'Bearer ' + key;
  return headers;
}

// crypto.randomUUID exists only in secure contexts; a LAN address over http is not one.
function newId() {
  if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
  return 'thread-' + Date.now().toString(36) + '-' + Math.random().toString(36).slice(2, 10);
}

function bubble(role, testid) {
  const body = h('div', { class: 'body' });
  const node = h('div', { class: 'msg ' + role, 'data-testid': testid }, h('div', { class: 'who' }, role), body);
  return { node, body };
}

function toolNote(name, args, result) {
  return h('details', { class: 'toolcall', 'data-testid': 'chat-tool-' + name },
    h('summary', {}, `tool ${name}`),
    h('pre', {}, 'args: ' + JSON.stringify(args, null, 2) + (result === undefined ? '' : '\nresult: ' + JSON.stringify(result, null, 2))));
}

// One stored UI message (text parts and tool invocations) as a bubble.
function storedBubble(m) {
  const b = bubble(m.role === 'user' ? 'user' : 'assistant', 'chat-msg');
  for (const p of m.parts || []) {
    if (p.type === 'text') b.body.append(h('p', {}, p.text));
    else if (p.type === 'tool-invocation') {
      const t = p.toolInvocation || {};
      b.body.append(toolNote(t.toolName, t.args, t.result));
    }
  }
  if (!b.body.childNodes.length && m.content) b.body.append(h('p', {}, str(m.content)));
  return b.node;
}

async function renderChat(view, agentId) {
  view.append(h('p', { class: 'crumbs' }, h('a', { href: '#/agents' }, '← All agents')));
  const res = await api('GET', `/api/agents/${encodeURIComponent(agentId)}`);
  if (!res.ok) return view.append(h('h1', {}, agentId), errorBox(res, 'agent-error'));
  view.append(h('h1', {}, res.data.name || agentId));
  const mem = await api('GET', `/api/memory/status?agentId=${encodeURIComponent(agentId)}`);
  const hasMemory = mem.ok && mem.data && mem.data.result;
  // The playground keeps each agent's chats under resource = agent id, as Mastra's does.
  const threadKey = 'edgestra.thread.' + agentId;
  let threadId = hasMemory ? (localStorage.getItem(threadKey) || null) : null;
  const log = h('div', { class: 'chat-log', 'data-testid': 'chat-log' });
  const input = h('textarea', { class: 'chat-input', rows: 2, placeholder: 'Message the agent…', 'data-testid': 'chat-input' });
  const send = h('button', { type: 'submit', class: 'primary', 'data-testid': 'chat-send' }, 'Send');
  const newChat = h('button', { type: 'button', 'data-testid': 'chat-new' }, 'New chat');
  const form = h('form', { class: 'chat-form', autocomplete: 'off' }, input, h('div', { class: 'actions' }, newChat, send));
  view.append(
    h('p', { class: 'lead' }, hasMemory ? 'Conversations are kept in the agent\'s memory.' : 'This agent has no memory: each message stands alone.'),
    log, form);

  if (threadId) {
    const hist = await api('GET', `/api/memory/threads/${encodeURIComponent(threadId)}/messages?agentId=${encodeURIComponent(agentId)}`);
    if (hist.ok) for (const m of hist.data.uiMessages || []) log.append(storedBubble(m));
    else { threadId = null; localStorage.removeItem(threadKey); }
  }
  newChat.addEventListener('click', () => { threadId = null; localStorage.removeItem(threadKey); log.replaceChildren(); });
  input.addEventListener('keydown', (e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); } });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const text = input.value.trim();
    if (!text) return;
    input.value = '';
    const mine = bubble('user', 'chat-msg');
    mine.body.append(h('p', {}, text));
    const reply = bubble('assistant', 'chat-reply');
    let para = null;
    log.append(mine.node, reply.node);
    send.disabled = true;
    const body = { messages: [{ role: 'user', content: text }] };
    if (hasMemory) {
      if (!threadId) { threadId = newId(); localStorage.setItem(threadKey, threadId); }
      Object.assign(body, { threadId, resourceId: agentId });
    }
    try {
      const r = await fetch(`/api/agents/${encodeURIComponent(agentId)}/stream`, { method: 'POST', headers: authHeaders(), body: JSON.stringify(body) });
      if (!r.ok) {
        const t = await r.text();
        let e = t; try { e = JSON.parse(t).error || t; } catch { /* text */ }
        reply.body.append(errorBox({ status: r.status, error: str(e) }, 'chat-error'));
      } else {
        const calls = {};
        await readDataStream(r, (code, v) => {
          if (code === '0') {
            if (!para) { para = h('p', { 'data-testid': 'chat-text' }); reply.body.append(para); }
            para.textContent += v;
          } else if (code === '9') {
            calls[v.toolCallId] = toolNote(v.toolName, v.args);
            reply.body.append(calls[v.toolCallId]);
            para = null;
          } else if (code === 'a') {
            const old = calls[v.toolCallId];
            if (old) old.querySelector('pre').textContent += '\nresult: ' + JSON.stringify(v.result, null, 2);
          } else if (code === '3') {
            reply.body.append(errorBox({ status: 0, error: str(v) }, 'chat-error'));
          }
          log.scrollTop = log.scrollHeight;
        });
      }
    } catch (e) {
      reply.body.append(errorBox({ status: 0, error: (e && e.message) || String(e) }, 'chat-error'));
    }
    send.disabled = false;
    input.focus();
  });
}

/* ---------- Workflows ---------- */

async function renderWorkflows(view) {
  view.append(h('h1', {}, 'Workflows'));
  const res = await api('GET', '/api/workflows');
  if (!res.ok) return view.append(errorBox(res, 'workflows-error'));
  const list = entriesOf(res.data);
  if (!list.length) return view.append(empty('No workflows registered.'));
  view.append(h('div', { class: 'cards', 'data-testid': 'workflow-list' }, list.map(([id, w]) => {
    const steps = entriesOf(w.steps).map(([k, s]) => (Array.isArray(w.steps) && s.id) || k);
    return h('article', { class: 'card', 'data-testid': 'workflow-' + id },
      h('h2', {}, h('a', { href: '#/workflows/' + encodeURIComponent(id), 'data-testid': 'workflow-link-' + id }, w.name || id)),
      h('dl', {}, row('ID', h('code', {}, id)), row('Steps', chips(steps))),
      w.description ? h('p', { class: 'excerpt' }, excerpt(str(w.description), 240)) : null);
  })));
}

// A workflow's page: a form for its input, a run streamed step by step, and a form for the
// resume data when a step suspends (the same stream continues after the resume).
async function renderWorkflowPage(view, wanted) {
  view.append(h('p', { class: 'crumbs' }, h('a', { href: '#/workflows' }, '← All workflows')));
  const base = `/api/workflows/${encodeURIComponent(wanted)}`;
  const res = await api('GET', base);
  if (!res.ok) return view.append(h('h1', {}, wanted), errorBox(res, 'workflow-load-error'));
  const w = res.data;
  view.append(h('h1', {}, w.name || wanted), w.description ? h('p', { class: 'lead' }, str(w.description)) : null);
  const { inputs, fields } = schemaFields(w.inputSchema, 'This workflow takes no input.');
  const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'workflow-run' }, 'Run');
  const form = h('form', { class: 'tool-form', 'data-testid': 'workflow-form', autocomplete: 'off' },
    fields, h('div', { class: 'actions' }, btn));
  const steps = h('ol', { class: 'wf-steps', 'data-testid': 'workflow-steps' });
  const out = h('div', { class: 'output', 'data-testid': 'workflow-output' });
  const stepRow = {};
  const showStep = (id, status, detail) => {
    if (!stepRow[id]) {
      stepRow[id] = h('li', { 'data-testid': 'workflow-step-' + id });
      steps.append(stepRow[id]);
    }
    stepRow[id].dataset.status = status;
    stepRow[id].replaceChildren(h('code', {}, id), ' ', h('span', { class: 'chip' }, status),
      detail === undefined ? null : h('pre', { class: 'result' }, JSON.stringify(detail, null, 2)));
  };
  const askResume = (runId, id, payload) => {
    const step = (w.allSteps && w.allSteps[id]) || (w.steps && w.steps[id]) || {};
    const resume = schemaFields(step.resumeSchema, 'Nothing to fill in.');
    const go = h('button', { type: 'submit', class: 'primary', 'data-testid': 'workflow-resume' }, 'Resume');
    const note = h('div');
    const rf = h('form', { class: 'tool-form', 'data-testid': 'workflow-resume-form' },
      h('h2', {}, `Step “${id}” is waiting for you`),
      payload && Object.keys(payload).length ? h('pre', { class: 'result' }, JSON.stringify(payload, null, 2)) : null,
      resume.fields, note, h('div', { class: 'actions' }, go));
    rf.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let data;
      try { data = collect(resume.inputs); } catch (e) { return note.replaceChildren(errorBox({ status: 0, error: e.message }, 'workflow-error')); }
      go.disabled = true;
      const r = await api('POST', `${base}/resume?runId=${encodeURIComponent(runId)}`, { step: id.split('.'), resumeData: data });
      if (!r.ok) { go.disabled = false; return note.replaceChildren(errorBox(r, 'workflow-error')); }
      rf.remove();
    });
    out.append(rf);
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let inputData;
    try { inputData = collect(inputs); } catch (e) { return out.replaceChildren(errorBox({ status: 0, error: e.message }, 'workflow-error')); }
    btn.disabled = true;
    steps.replaceChildren();
    out.replaceChildren();
    for (const k of Object.keys(stepRow)) delete stepRow[k];
    const created = await api('POST', `${base}/create-run`, {});
    if (!created.ok) { btn.disabled = false; return out.replaceChildren(errorBox(created, 'workflow-error')); }
    const runId = created.data.runId;
    try {
      const r = await fetch(`${base}/stream?runId=${encodeURIComponent(runId)}`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ inputData }) });
      if (!r.ok) {
        const t = await r.text();
        let e = t; try { e = JSON.parse(t).error || t; } catch { /* text */ }
        out.replaceChildren(errorBox({ status: r.status, error: str(e) }, 'workflow-error'));
      } else {
        await readRecords(r, (rec) => {
          const p = rec.payload || {};
          if (rec.type === 'step-start') showStep(p.id, 'running');
          else if (rec.type === 'step-result') showStep(p.id, p.status, p.status === 'failed' ? p.error : p.output);
          else if (rec.type === 'step-waiting') showStep(p.id, 'waiting');
          else if (rec.type === 'step-suspended') { showStep(p.id, 'suspended', p.suspendPayload); askResume(runId, p.id, p.suspendPayload); }
        });
        const done = await api('GET', `${base}/runs/${encodeURIComponent(runId)}/execution-result`);
        if (!done.ok) out.append(errorBox(done, 'workflow-error'));
        else {
          const d = done.data;
          out.append(h('p', { class: 'meta', 'data-testid': 'workflow-status' }, `Run ${runId}: ${d.status}`),
            h('pre', { class: 'result', 'data-testid': 'workflow-result' }, JSON.stringify(d.status === 'failed' ? d.error : d.result, null, 2) ?? 'null'));
        }
      }
    } catch (e) {
      out.append(errorBox({ status: 0, error: (e && e.message) || String(e) }, 'workflow-error'));
    }
    btn.disabled = false;
  });
  view.append(form, steps, out);
}

/* ---------- Tools ---------- */

// inputSchema is a superjson string: {"json": <JSON Schema>}. Tolerate plain schemas too.
function parseSchema(raw) {
  let v = raw;
  if (typeof raw === 'string') { try { v = JSON.parse(raw); } catch { return null; } }
  if (v && typeof v === 'object' && 'json' in v) v = v.json;
  return v && typeof v === 'object' ? v : null;
}

// Effective scalar type of a property (handles ["x","null"] and anyOf nullable).
function propType(p) {
  if (!p || typeof p !== 'object') return 'any';
  let t = p.type;
  if (Array.isArray(t)) t = t.find((x) => x !== 'null');
  if (!t && Array.isArray(p.anyOf || p.oneOf)) {
    const alt = (p.anyOf || p.oneOf).find((x) => x && x.type !== 'null');
    if (alt) return propType(alt);
  }
  if (!t && Array.isArray(p.enum) && p.enum.every((x) => typeof x === 'string')) t = 'string';
  return t || 'any';
}

const toolId = (key, t) => (t && t.id) || key;

async function renderTools(view) {
  view.append(h('h1', {}, 'Tools'));
  const res = await api('GET', '/api/tools');
  if (!res.ok) return view.append(errorBox(res, 'tools-error'));
  const list = entriesOf(res.data);
  if (!list.length) return view.append(empty('No tools registered.'));
  view.append(h('div', { class: 'cards', 'data-testid': 'tool-list' }, list.map(([key, t]) => {
    const id = toolId(key, t);
    const schema = parseSchema(t.inputSchema);
    const params = Object.keys((schema && schema.properties) || {});
    return h('article', { class: 'card' },
      h('h2', {}, h('a', { href: '#/tools/' + encodeURIComponent(id), 'data-testid': 'tool-link-' + id }, id)),
      t.description ? h('p', { class: 'excerpt' }, excerpt(str(t.description), 200)) : null,
      h('dl', {}, row('Inputs', chips(params))));
  })));
}

// Build one labelled control per schema property; returns {node, input}.
function buildField(name, p, required) {
  const type = propType(p);
  const id = 'field-' + name;
  let input;
  let kind = type;
  if (type === 'string' && Array.isArray(p.enum)) {
    input = h('select', { name, id },
      required ? null : h('option', { value: '' }, '— none —'),
      p.enum.map((v) => h('option', { value: String(v) }, String(v))));
  } else if (type === 'string') {
    input = h('input', { type: 'text', name, id, required, minlength: p.minLength, maxlength: p.maxLength });
  } else if (type === 'number' || type === 'integer') {
    kind = 'number';
    input = h('input', { type: 'number', name, id, required, min: p.minimum ?? p.exclusiveMinimum,
      max: p.maximum ?? p.exclusiveMaximum, step: type === 'integer' ? '1' : 'any' });
  } else if (type === 'boolean') {
    input = h('input', { type: 'checkbox', name, id });
  } else {
    kind = 'json';
    input = h('textarea', { name, id, rows: 3, class: 'mono', required,
      placeholder: type === 'array' ? '[ … ]  (JSON)' : '{ … }  (JSON)' });
  }
  input.dataset.kind = kind;
  if (p.default !== undefined) fillInput(input, p.default);
  const label = h('label', { for: id }, h('span', { class: 'pname' }, name),
    h('span', { class: 'ptype' }, type), required ? h('span', { class: 'req', title: 'required' }, '*') : null);
  const help = p.description ? h('small', { class: 'help' }, str(p.description)) : null;
  const node = kind === 'boolean'
    ? h('div', { class: 'field check' }, input, label, help)
    : h('div', { class: 'field' }, label, input, help);
  return { node, input };
}

function fillInput(el, v) {
  if (el.dataset.kind === 'boolean') el.checked = !!v;
  else if (v === undefined || v === null) el.value = '';
  else el.value = el.dataset.kind === 'json' ? JSON.stringify(v, null, 2) : String(v);
}

// Read the generated form into an input object; throws on invalid JSON fields.
function collect(inputs) {
  const out = {};
  for (const [name, el] of Object.entries(inputs)) {
    const kind = el.dataset.kind;
    if (kind === 'boolean') { out[name] = el.checked; continue; }
    const v = el.value;
    if (v === '') continue; // omit empty optional values; the server reports missing required ones
    if (kind === 'number') out[name] = Number(v);
    else if (kind === 'json') {
      try { out[name] = JSON.parse(v); } catch (e) { throw new Error(`Field "${name}": invalid JSON (${e.message})`); }
    } else out[name] = v;
  }
  return out;
}

// One control per property of an object schema (a superjson string or a plain schema):
// {props (null without an object schema), inputs (name → control), fields (the fieldset)}.
function schemaFields(rawSchema, noInput) {
  const schema = parseSchema(rawSchema);
  const props = schema && (schema.properties || schema.type === 'object') ? schema.properties || {} : null;
  const required = new Set((schema && Array.isArray(schema.required)) ? schema.required : []);
  const inputs = {};
  const fields = h('fieldset', { class: 'fields' });
  if (props) {
    for (const [name, p] of Object.entries(props)) {
      const f = buildField(name, p || {}, required.has(name));
      inputs[name] = f.input;
      fields.append(f.node);
    }
    if (!Object.keys(props).length) fields.append(empty(noInput));
  } else {
    fields.append(empty('No object schema available — use raw JSON input.'));
  }
  return { props, inputs, fields };
}

async function renderToolPage(view, wanted) {
  view.append(h('p', { class: 'crumbs' }, h('a', { href: '#/tools' }, '← All tools')));
  const res = await api('GET', '/api/tools');
  if (!res.ok) return view.append(h('h1', {}, wanted), errorBox(res, 'tool-load-error'));
  const found = entriesOf(res.data).find(([k, t]) => k === wanted || toolId(k, t) === wanted);
  if (!found) return view.append(h('h1', {}, wanted), errorBox({ status: 404, error: `Tool "${wanted}" not found` }, 'tool-load-error'));
  const [key, tool] = found;
  const id = toolId(key, tool);
  view.append(h('h1', {}, id), tool.description ? h('p', { class: 'lead' }, str(tool.description)) : null);

  const { props, inputs, fields } = schemaFields(tool.inputSchema, 'This tool takes no input.');

  const raw = h('textarea', { id: 'raw-input', class: 'mono raw', rows: 10, 'data-testid': 'tool-raw', spellcheck: 'false' }, '{}');
  const rawToggle = h('input', { type: 'checkbox', id: 'raw-toggle', 'data-testid': 'tool-raw-toggle' });
  const rawWrap = h('div', { class: 'raw-wrap' }, raw);
  const note = h('p', { class: 'note' });
  const out = h('div', { class: 'output', 'data-testid': 'tool-output' });
  const btn = h('button', { type: 'submit', class: 'primary', 'data-testid': 'tool-execute' }, 'Execute');

  const setRaw = (on) => {
    rawToggle.checked = on;
    fields.disabled = on; // disabled controls are skipped by browser validation
    fields.hidden = on;
    rawWrap.hidden = !on;
  };
  rawToggle.addEventListener('change', () => {
    note.textContent = '';
    if (rawToggle.checked) {
      try { raw.value = JSON.stringify(collect(inputs), null, 2); } catch (e) { note.textContent = e.message; }
      return setRaw(true);
    }
    if (!props) { note.textContent = 'This tool has no form; raw JSON only.'; return setRaw(true); }
    try {
      const obj = JSON.parse(raw.value || '{}');
      for (const [name, el] of Object.entries(inputs)) fillInput(el, obj && obj[name]);
      setRaw(false);
    } catch (e) { note.textContent = 'Raw JSON is invalid: ' + e.message; setRaw(true); }
  });

  const form = h('form', { class: 'tool-form', 'data-testid': 'tool-form', autocomplete: 'off' },
    h('div', { class: 'toolbar' }, h('label', { class: 'toggle', for: 'raw-toggle' }, rawToggle, ' raw JSON')),
    fields, rawWrap, note, h('div', { class: 'actions' }, btn));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    let data;
    try { data = rawToggle.checked ? JSON.parse(raw.value || '{}') : collect(inputs); } catch (e) {
      return out.replaceChildren(errorBox({ status: 0, error: e.message }, 'tool-error'));
    }
    btn.disabled = true;
    btn.textContent = 'Running…';
    const t0 = performance.now();
    const r = await api('POST', `/api/tools/${encodeURIComponent(id)}/execute`, { data });
    const ms = Math.round(performance.now() - t0);
    btn.disabled = false;
    btn.textContent = 'Execute';
    out.replaceChildren(
      h('p', { class: 'meta', 'data-testid': 'tool-elapsed' }, `${r.ok ? 'OK' : 'Failed'} · HTTP ${r.status || '—'} · ${ms} ms`),
      r.ok ? h('pre', { class: 'result', 'data-testid': 'tool-result' }, JSON.stringify(r.data, null, 2) ?? 'null')
        : errorBox(r, 'tool-error'));
  });

  setRaw(!props);
  view.append(form, out);
}

/* ---------- Boot ---------- */

window.addEventListener('hashchange', render);
connectLiveReload();
render();
