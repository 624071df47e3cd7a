//! A loaded chat model and the generations running on it. A [`Sequence`] is one generation as
//! a state machine — the tokens it needs run next, then what it does with the logits that come
//! back (sample under its own sampler, grammar and stop rules, hand text out, finish) — so that
//! one request alone ([`ChatEngine::generate`]) and many requests sharing each forward pass (the
//! batching worker in [`super::local`]) run the same code. Finished sequences leave their caches
//! behind, and a new prompt starts from the idle cache that shares its longest prefix (the
//! system prompt and tool list of an agent are the same on every call).

use std::sync::Arc;

use serde_json::Value;

use super::choices;
use super::constrained::{self, Constraint, Grammar};
use super::engine::{KvCache, Model, Pool, Scratch, Step};
use super::grounding::{self, AnswerFacts, Grounding};
use super::local::Source;
use super::sampling::{Sampler, SamplingParams};
use super::template::{CHATML, ChatTemplate};
use super::tool_format::{Scan, ToolFormat};
use super::{
    FinishReason, GenerateRequest, Generation, InferenceError, ToolChoice, ToolSpec, Usage,
    tool_format, tool_protocol,
};

/// Caches of finished sequences kept for their prefixes: at most this many, and this many
/// bytes in all (the oldest go first).
const IDLE_CACHES: usize = 4;
const IDLE_BYTES: usize = 128 << 20;
/// Prompt tokens a sequence runs per pass, so a long prompt does not stall the others.
pub const PREFILL_CHUNK: usize = 256;

/// The fewest tokens a forced tool call may use: enough for the longest string the call
/// grammar admits ([`constrained::MAX_STRING`] bytes) plus the call's JSON around it.
const CALL_TOKENS: usize = constrained::MAX_STRING as usize + 64;

/// A cache and the tokens whose keys and values it holds.
#[derive(Default)]
pub struct Cached {
    pub cache: KvCache,
    pub tokens: Vec<u32>,
}

/// A loaded chat model: weights, tokenizer, template, grammar, and idle caches.
pub struct ChatEngine {
    pub model: Arc<Model>,
    pub tokenizer: tokenizers::Tokenizer,
    template: ChatTemplate,
    /// How this model calls tools, from its template.
    pub format: ToolFormat,
    eos: Vec<u32>,
    pub grammar: Option<Grammar>,
    idle: Vec<Cached>,
    scratch: Scratch,
    pool: &'static Pool,
}

impl ChatEngine {
    pub fn load(source: &Source) -> Result<ChatEngine, InferenceError> {
        let bytes = source.bytes("model.gguf", None)?;
        let load = |e: candle_core::Error| InferenceError::Load(e.to_string());
        let mut cursor = std::io::Cursor::new(&bytes[..]);
        let content =
            candle_core::quantized::gguf_file::Content::read(&mut cursor).map_err(load)?;
        let tok = super::tokenizer::from_gguf(&content).map_err(InferenceError::Load)?;
        let template_src = template_source(&content);
        let token_text = |id: Option<u32>| {
            id.and_then(|i| tok.tokenizer.id_to_token(i))
                .unwrap_or_default()
        };
        let template = ChatTemplate::new(
            &template_src,
            &token_text(tok.bos),
            &token_text(tok.eos.first().copied()),
        )
        .map_err(InferenceError::Load)?;
        // The engine copies the weights into its own forms; the file's bytes go.
        let model = Model::load(&bytes).map_err(load)?;
        super::local::release(bytes);
        let grammar = Grammar::new(&tok.tokenizer, &tok.eos).ok();
        Ok(ChatEngine {
            model: Arc::new(model),
            tokenizer: tok.tokenizer,
            format: ToolFormat::of_template(&template_src),
            template,
            eos: tok.eos,
            grammar,
            idle: Vec::new(),
            scratch: Scratch::default(),
            pool: Pool::global(),
        })
    }

    pub fn context(&self) -> usize {
        self.model.config.context
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| InferenceError::Failed(format!("tokenizing failed: {e}")))
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, false).unwrap_or_default()
    }

    /// The prompt text for a request; when the request forces a tool call it ends inside the
    /// call (see [`tool_protocol`] and [`tool_format`]).
    pub fn prompt(&self, req: &GenerateRequest) -> Result<String, InferenceError> {
        let forced = tool_protocol::forced_tools(&req.tools, &req.tool_choice)?;
        let all: Vec<&ToolSpec> = req.tools.iter().collect();
        let mut prompt = self.render(req, self.presents_tools(req)?.then_some(&all[..]))?;
        if forced.is_some() {
            prompt.push_str(&self.format.forced_opening());
        }
        Ok(prompt)
    }

    /// Whether `req`'s prompt presents its tools. A model that decides sees them whenever they
    /// are offered; one that does not sees them only for a call, and then all of them (the
    /// grammar admits only the forced ones), so the prompt is the one the call was decided on.
    fn presents_tools(&self, req: &GenerateRequest) -> Result<bool, InferenceError> {
        Ok(if self.format.decides() {
            !req.tools.is_empty() && req.tool_choice != ToolChoice::None
        } else {
            tool_protocol::forced_tools(&req.tools, &req.tool_choice)?.is_some()
        })
    }

    /// `req`'s conversation up to where the answer begins, presenting `tools` when given.
    fn render(
        &self,
        req: &GenerateRequest,
        tools: Option<&[&ToolSpec]>,
    ) -> Result<String, InferenceError> {
        let rendered = if self.format.decides() {
            let messages = tool_format::template_messages(&req.messages);
            let tools = tools.map(tool_format::template_tools);
            self.template.render(&messages, tools.as_ref(), true)
        } else {
            let mut messages = tool_protocol::template_messages(&req.messages, tools.is_some());
            if let Some(tools) = tools {
                messages =
                    tool_protocol::with_system_text(&messages, &tool_protocol::system_text(tools));
            }
            self.template.render(&messages, None, true)
        };
        rendered.map_err(InferenceError::InvalidRequest)
    }

    /// How likely the model finds each of `continuations` as the start of its answer to
    /// `req`, with all of `req.tools` presented (log-probabilities, see
    /// [`ChatEngine::continuation_logprobs`]).
    pub fn score(
        &mut self,
        req: &GenerateRequest,
        continuations: &[String],
    ) -> Result<Vec<f32>, InferenceError> {
        let tools: Vec<&ToolSpec> = req.tools.iter().collect();
        let prompt = self.render(req, (!tools.is_empty()).then_some(&tools[..]))?;
        let prompt = self.encode(&prompt)?;
        let continuations = continuations
            .iter()
            .map(|c| self.encode(c))
            .collect::<Result<Vec<_>, _>>()?;
        let longest = continuations.iter().map(Vec::len).max().unwrap_or(0);
        if prompt.len() + longest >= self.context() {
            return Err(InferenceError::InvalidRequest(format!(
                "the prompt has {} tokens; the model's context holds {}",
                prompt.len(),
                self.context()
            )));
        }
        self.continuation_logprobs(&prompt, &continuations)
    }

    /// The idle cache sharing the longest prefix with `tokens` (a fresh one if none does),
    /// cut back to that prefix; at least one token is left to run.
    fn cache_for(&mut self, tokens: &[u32]) -> Cached {
        let shared = |c: &Cached| {
            c.tokens
                .iter()
                .zip(tokens)
                .take_while(|(a, b)| a == b)
                .count()
        };
        let best = (0..self.idle.len()).max_by_key(|&i| shared(&self.idle[i]));
        let mut cached = match best {
            Some(i) if shared(&self.idle[i]) > 0 => self.idle.swap_remove(i),
            _ => Cached::default(),
        };
        let keep = shared(&cached).min(tokens.len().saturating_sub(1));
        cached.cache.truncate(keep);
        cached.tokens.truncate(keep);
        cached
    }

    /// Gives a finished sequence's cache back for later prefixes.
    pub fn recycle(&mut self, cached: Cached) {
        if cached.tokens.is_empty() {
            return;
        }
        self.idle.push(cached);
        while self.idle.len() > IDLE_CACHES
            || self.idle.iter().map(|c| c.cache.bytes()).sum::<usize>() > IDLE_BYTES
        {
            self.idle.remove(0);
        }
    }

    /// Starts a generation: checks the request, renders and tokenizes its prompt, and takes
    /// the cache that shares most of it.
    pub fn begin(&mut self, req: &GenerateRequest) -> Result<Sequence, InferenceError> {
        let prompt = self.prompt(req)?;
        tracing::trace!(target: "edgestra::inference", %prompt, "generation starts");
        let prompt_tokens = self.encode(&prompt)?;
        let context = self.context();
        let room = context.saturating_sub(prompt_tokens.len());
        if room < 2 {
            return Err(InferenceError::InvalidRequest(format!(
                "the prompt has {} tokens; the model's context holds {context}",
                prompt_tokens.len()
            )));
        }
        // A forced tool call is constrained by the call schema and is not text: no deltas.
        let forced = tool_protocol::forced_tools(&req.tools, &req.tool_choice)?;
        // The budget is for the answer's text; a call gets room to close its JSON whatever the
        // budget, since a call cut short is no call at all.
        let budget = if forced.is_some() {
            req.max_tokens.max(CALL_TOKENS)
        } else {
            req.max_tokens
        };
        // Calls and structured answers are both written in the layout models were trained on.
        let schema = match (&forced, &req.json_schema) {
            (Some(tools), _) => Some(self.format.call_schema(tools)),
            (None, Some(answer)) => Some(self.settle_choices(answer, &prompt_tokens)?),
            (None, None) => None,
        };
        let call_tools: Vec<ToolSpec> = forced.iter().flatten().map(|t| (*t).clone()).collect();
        // A model that decides may open a call in the middle of a text answer; its grammar
        // starts there ([`Sequence::open_call`]). A structured answer is held to its own schema.
        let offered = (forced.is_none()
            && req.json_schema.is_none()
            && self.format.decides()
            && self.presents_tools(req)?)
        .then(|| req.tools.clone());
        // A text answer of a model that does not decide never contains a raw call (small models
        // imitate earlier ones).
        let mut stops = req.stop.clone();
        if forced.is_none() && !self.format.decides() {
            stops.push(tool_protocol::OPEN.to_string());
        }
        let constraint = schema.as_ref().map(|s| self.constraint(s)).transpose()?;
        // A call's arguments are taken from the request, not invented: the most likely tokens,
        // with no penalty on repeating one (JSON repeats its punctuation, and a request may
        // repeat a number).
        let sampling = match &forced {
            Some(_) => SamplingParams::greedy(),
            None => req.sampling.clone(),
        };
        // A small model that does not decide is helped to copy the user's words (names,
        // numbers, codes) into calls and structured answers, and the tool results into its
        // answer; a model that decides writes its own.
        let helped = !self.format.decides();
        let cached = self.cache_for(&prompt_tokens);
        let pending = prompt_tokens[cached.tokens.len()..].to_vec();
        Ok(Sequence {
            prompt_len: prompt_tokens.len(),
            cached,
            pending,
            facts: (helped && forced.is_none() && constraint.is_none())
                .then(|| AnswerFacts::from_turn(&req.messages))
                .flatten(),
            grounding: (helped && constraint.is_some())
                .then(|| Grounding::new(&req.messages, &call_tools)),
            call: forced.is_some().then_some(call_tools),
            offered,
            format: self.format,
            call_at: None,
            room: room - 1,
            max_tokens: budget.min(room - 1),
            stops,
            constraint,
            sampler: Sampler::new(sampling),
            out: Vec::new(),
            emitted: 0,
            text: String::new(),
            finish: FinishReason::Length,
        })
    }

    /// A matcher that holds decoding to `schema`.
    fn constraint(&self, schema: &Value) -> Result<Constraint, InferenceError> {
        self.grammar
            .as_ref()
            .ok_or_else(|| {
                InferenceError::Failed(
                    "constrained decoding is not available for this model".into(),
                )
            })?
            .matcher(schema)
            .map_err(InferenceError::InvalidRequest)
    }

    /// Runs one pass for `sequences` (each its next tokens, at most [`PREFILL_CHUNK`] of a
    /// prompt); returns each one's logits, `None` for one still in its prompt.
    pub fn step(
        &mut self,
        sequences: &mut [&mut Sequence],
    ) -> Result<Vec<Option<Vec<f32>>>, InferenceError> {
        let runs: Vec<Vec<u32>> = sequences
            .iter_mut()
            .map(|s| {
                let n = s.pending.len().min(PREFILL_CHUNK);
                s.pending.drain(..n).collect()
            })
            .collect();
        let mut steps: Vec<Step> = sequences
            .iter_mut()
            .zip(&runs)
            .map(|(s, tokens)| Step {
                cache: &mut s.cached.cache,
                tokens,
            })
            .collect();
        let logits = self
            .model
            .forward_batch(self.pool, &mut steps, &mut self.scratch)
            .map_err(|e| InferenceError::Failed(e.to_string()))?;
        Ok(sequences
            .iter_mut()
            .zip(runs)
            .zip(logits)
            .map(|((s, run), l)| {
                s.cached.tokens.extend_from_slice(&run);
                s.pending.is_empty().then_some(l)
            })
            .collect())
    }

    /// Generates for `req` alone. `on_delta` receives text as it becomes final and returns
    /// `false` to cancel.
    pub fn generate(
        &mut self,
        req: &GenerateRequest,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, InferenceError> {
        let mut seq = self.begin(req)?;
        let result = loop {
            let logits = match self.step(&mut [&mut seq]) {
                Ok(mut l) => l.remove(0),
                Err(e) => break Err(e),
            };
            let Some(mut logits) = logits else { continue };
            if let Some(done) = seq.advance(self, &mut logits, on_delta) {
                break done;
            }
        };
        self.recycle(seq.into_cache());
        result
    }

    /// The log-probability of each of `continuations` after `prompt`: the sum over its tokens
    /// of what the model gave each one. The prompt runs once (from the best idle cache); each
    /// continuation is one pass over its tokens from there.
    pub fn continuation_logprobs(
        &mut self,
        prompt: &[u32],
        continuations: &[Vec<u32>],
    ) -> Result<Vec<f32>, InferenceError> {
        let failed = |e: candle_core::Error| InferenceError::Failed(e.to_string());
        let mut cached = self.cache_for(prompt);
        let run = &prompt[cached.tokens.len()..];
        let result = (|| {
            let after_prompt = self
                .model
                .forward(self.pool, &mut cached.cache, run, &mut self.scratch)
                .map_err(failed)?;
            cached.tokens.extend_from_slice(run);
            let mut scores = Vec::with_capacity(continuations.len());
            for tokens in continuations {
                let Some((&first, _)) = tokens.split_first() else {
                    scores.push(0.0);
                    continue;
                };
                let mut total = log_softmax_at(&after_prompt, first);
                if tokens.len() > 1 {
                    let all = self
                        .model
                        .forward_all(
                            self.pool,
                            &mut cached.cache,
                            &tokens[..tokens.len() - 1],
                            &mut self.scratch,
                        )
                        .map_err(failed);
                    cached.cache.truncate(prompt.len());
                    for (logits, &next) in all?.iter().zip(&tokens[1..]) {
                        total += log_softmax_at(logits, next);
                    }
                }
                scores.push(total);
            }
            Ok(scores)
        })();
        self.recycle(cached);
        result
    }

    /// `schema` with each of its choice fields ([`choices`]) held to the value the model finds
    /// most likely after `prompt`.
    fn settle_choices(&mut self, schema: &Value, prompt: &[u32]) -> Result<Value, InferenceError> {
        let mut settled = schema.clone();
        for choice in choices::choices(schema) {
            let openings = choice
                .options
                .iter()
                .map(|o| self.encode(&choice.opening(o)))
                .collect::<Result<Vec<_>, _>>()?;
            let scores = self.continuation_logprobs(prompt, &openings)?;
            if let Some(best) = choices::best(&choice.options, &scores) {
                tracing::debug!(target: "edgestra::inference", field = %choice.field, %best, ?scores, "choice settled");
                settled = choices::settle(&settled, &choice.field, best);
            }
        }
        Ok(settled)
    }

    /// The next-token logits after `tokens` (run from the best idle cache).
    pub fn logits_after(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferenceError> {
        let mut cached = self.cache_for(tokens);
        let run = &tokens[cached.tokens.len()..];
        let result = self
            .model
            .forward(self.pool, &mut cached.cache, run, &mut self.scratch)
            .map_err(|e| InferenceError::Failed(e.to_string()));
        if result.is_ok() {
            cached.tokens.extend_from_slice(run);
        }
        self.recycle(cached);
        result
    }
}

/// Adds `bonus(token text)` ([`grounding`]) to the logits of the most likely allowed tokens.
fn favour(
    engine: &ChatEngine,
    logits: &mut [f32],
    allowed: &dyn Fn(u32) -> bool,
    bonus: &dyn Fn(&str) -> f32,
) {
    let mut top: Vec<u32> = (0..logits.len() as u32)
        .filter(|&t| allowed(t) && logits[t as usize].is_finite())
        .collect();
    let k = grounding::COPY_CANDIDATES.min(top.len());
    if k == 0 {
        return;
    }
    top.select_nth_unstable_by(k - 1, |a, b| {
        logits[*b as usize].total_cmp(&logits[*a as usize])
    });
    for &t in &top[..k] {
        logits[t as usize] += bonus(&engine.decode(&[t]));
    }
}

/// The chat template a model file carries (ChatML when it has none).
fn template_source(content: &candle_core::quantized::gguf_file::Content) -> String {
    content
        .metadata
        .get("tokenizer.chat_template")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_else(|| CHATML.to_string())
}

/// How the model at `source` calls tools, read from its file's metadata alone (the weights
/// are not loaded).
pub fn tool_format_of(source: &Source) -> Result<ToolFormat, InferenceError> {
    let load = |e: candle_core::Error| InferenceError::Load(e.to_string());
    let content = match source {
        Source::Path(path) => {
            let file = std::fs::File::open(path).map_err(|e| {
                InferenceError::Load(format!("cannot read {}: {e}", path.display()))
            })?;
            candle_core::quantized::gguf_file::Content::read(&mut std::io::BufReader::new(file))
                .map_err(load)?
        }
        Source::Embedded(_) => {
            let bytes = source.bytes("model.gguf", None)?;
            let content = candle_core::quantized::gguf_file::Content::read(
                &mut std::io::Cursor::new(&bytes[..]),
            )
            .map_err(load)?;
            super::local::release(bytes);
            content
        }
    };
    Ok(ToolFormat::of_template(&template_source(&content)))
}

/// `ln softmax(logits)[token]`.
pub fn log_softmax_at(logits: &[f32], token: u32) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |l| l - max - sum.ln())
}

/// One generation in progress.
pub struct Sequence {
    prompt_len: usize,
    cached: Cached,
    /// Tokens to run before the next logits.
    pending: Vec<u32>,
    /// The tools of the call being written (which is not streamed as text).
    call: Option<Vec<ToolSpec>>,
    /// The tools a model that decides may still open a call to, while it writes text.
    offered: Option<Vec<ToolSpec>>,
    format: ToolFormat,
    /// Where the call opened in `text`, and where its JSON starts (a call in the middle of an
    /// answer); `None` when the whole output is the call.
    call_at: Option<(usize, usize)>,
    /// Tokens the context has room for after the prompt.
    room: usize,
    /// The user's words, which the values of a call or a structured answer copy.
    grounding: Option<Grounding>,
    /// The tool results a text answer reports.
    facts: Option<AnswerFacts>,
    max_tokens: usize,
    stops: Vec<String>,
    constraint: Option<Constraint>,
    sampler: Sampler,
    out: Vec<u32>,
    /// Bytes of text already handed out.
    emitted: usize,
    text: String,
    finish: FinishReason,
}

impl Sequence {
    /// The cache this sequence leaves (its prompt and what it generated).
    pub fn into_cache(self) -> Cached {
        self.cached
    }

    /// Takes the logits of the last pass: picks the next tokens (queued for the next pass) or
    /// finishes, with the generation or its error.
    pub fn advance(
        &mut self,
        engine: &ChatEngine,
        logits: &mut [f32],
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Option<Result<Generation, InferenceError>> {
        match self.next(engine, logits, on_delta) {
            Ok(true) => None,
            Ok(false) => Some(self.finish(on_delta)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Ok(true): tokens are queued; Ok(false): generation ended.
    fn next(
        &mut self,
        engine: &ChatEngine,
        logits: &mut [f32],
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<bool, InferenceError> {
        if self.out.len() >= self.max_tokens {
            return Ok(false);
        }
        // Tokens the grammar forces are appended without sampling, in one batched step.
        let mut next: Vec<u32> = Vec::new();
        if let Some(c) = self.constraint.as_mut() {
            if c.is_stopped() {
                self.finish = FinishReason::Stop;
                return Ok(false);
            }
            next = c.forced_tokens();
        }
        if next.is_empty() {
            let token = match self.constraint.as_mut() {
                Some(c) => {
                    let mask = c.mask().map_err(InferenceError::Failed)?;
                    if let Some(grounding) = &self.grounding {
                        let written = &self.text;
                        favour(engine, logits, &|t| mask.is_allowed(t), &|token| {
                            grounding.bonus(written, token)
                        });
                    }
                    self.sampler.sample(logits, Some(&|t| mask.is_allowed(t)))
                }
                None => {
                    if let Some(facts) = &self.facts {
                        let written = &self.text;
                        favour(engine, logits, &|_| true, &|token| {
                            facts.bonus(written, token)
                        });
                    }
                    self.sampler.sample(logits, None)
                }
            };
            let Some(token) = token else {
                return Err(InferenceError::Failed(
                    "no token is allowed at this point".into(),
                ));
            };
            if engine.eos.contains(&token) {
                if let Some(c) = self.constraint.as_mut() {
                    c.consume(&[token]).map_err(InferenceError::Failed)?;
                }
                self.finish = FinishReason::Stop;
                return Ok(false);
            }
            next.push(token);
        }
        if let Some(c) = self.constraint.as_mut() {
            c.consume(&next).map_err(InferenceError::Failed)?;
        }
        for &t in &next {
            self.sampler.observe(t);
        }
        self.out.extend_from_slice(&next);
        self.text = engine.decode(&self.out);
        // Stop sequences end text; a call's JSON is held by its grammar alone.
        if self.call.is_none()
            && let Some((cut, _)) = self
                .stops
                .iter()
                .filter_map(|s| self.text.find(s.as_str()).map(|i| (i, s)))
                .min_by_key(|(i, _)| *i)
        {
            self.text.truncate(cut);
            self.finish = FinishReason::Stop;
            return Ok(false);
        }
        let mut ready = self.text.len();
        if self.offered.is_some() {
            match self.format.scan(&self.text) {
                Scan::Call { at, body } => {
                    if self.open_call(engine, at, body, &mut next)? {
                        self.emit(at, on_delta)?;
                        self.pending = next;
                        return Ok(true);
                    }
                }
                Scan::Text { ready: r } => ready = r,
            }
        }
        // Hold back an incomplete character and anything that may start a stop sequence.
        let text = &self.text;
        if text.ends_with('\u{FFFD}') {
            ready -= '\u{FFFD}'.len_utf8();
        }
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if s.is_char_boundary(k) && text[..ready].ends_with(&s[..k]) {
                    ready = ready.min(ready - k);
                    break;
                }
            }
        }
        if self.call.is_none() {
            self.emit(ready, on_delta)?;
        }
        if self.constraint.as_ref().is_some_and(|c| c.is_stopped()) {
            self.finish = FinishReason::Stop;
            return Ok(false);
        }
        if self.out.len() >= self.max_tokens {
            return Ok(false);
        }
        self.pending = next;
        Ok(true)
    }

    /// Hands out the text up to byte `ready` not handed out yet.
    fn emit(
        &mut self,
        ready: usize,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<(), InferenceError> {
        let text = &self.text;
        if ready > self.emitted
            && text.is_char_boundary(ready)
            && text.is_char_boundary(self.emitted)
        {
            if !on_delta(&text[self.emitted..ready]) {
                return Err(InferenceError::Cancelled);
            }
            self.emitted = ready;
        }
        Ok(())
    }

    /// The model opened a call at byte `at` of its text (its JSON starts at `body`): from here
    /// decoding is held to the call grammar of the offered tools. What the model already wrote
    /// of the JSON is fed to the grammar; the format's separator is written for it when
    /// nothing follows the opening yet (its tokens join `next`). `false` when what was written
    /// cannot begin a call, which leaves it text.
    fn open_call(
        &mut self,
        engine: &ChatEngine,
        at: usize,
        body: usize,
        next: &mut Vec<u32>,
    ) -> Result<bool, InferenceError> {
        let Some(tools) = self.offered.take() else {
            return Ok(false);
        };
        let refs: Vec<&ToolSpec> = tools.iter().collect();
        let mut constraint = engine.constraint(&self.format.call_schema(&refs))?;
        let after = &self.text[body..];
        let written = after.trim_start();
        let mut json_from = self.text.len() - written.len();
        if !written.is_empty() {
            if constraint.consume(&engine.encode(written)?).is_err() {
                return Ok(false);
            }
        } else if after.is_empty() && !self.format.separator().is_empty() {
            let separator = engine.encode(self.format.separator())?;
            self.out.extend_from_slice(&separator);
            next.extend_from_slice(&separator);
            self.text = engine.decode(&self.out);
            json_from = self.text.len();
        }
        tracing::debug!(target: "edgestra::inference", before = %&self.text[..at], "the model opened a tool call");
        self.call = Some(tools);
        self.constraint = Some(constraint);
        self.call_at = Some((at, json_from));
        self.max_tokens = self
            .max_tokens
            .max(self.out.len() + CALL_TOKENS)
            .min(self.room);
        Ok(true)
    }

    fn finish(
        &mut self,
        on_delta: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation, InferenceError> {
        let mut text = std::mem::take(&mut self.text);
        if let Some(missing) = self.facts.as_ref().and_then(|f| f.missing_from(&text)) {
            text.push_str(&missing);
        }
        if self.call.is_none()
            && self.emitted < text.len()
            && text.is_char_boundary(self.emitted)
            && !on_delta(&text[self.emitted..])
        {
            return Err(InferenceError::Cancelled);
        }
        if let Some(c) = &self.constraint
            && !c.is_accepting()
        {
            tracing::debug!(target: "edgestra::inference", %text, "structured output cut off");
            return Err(InferenceError::Failed(format!(
                "the structured output did not complete within {} tokens",
                self.max_tokens
            )));
        }
        let usage = Usage {
            prompt_tokens: self.prompt_len as u32,
            completion_tokens: self.out.len() as u32,
        };
        if let Some(tools) = &self.call {
            tracing::trace!(target: "edgestra::inference", %text, "call written");
            let (before, body) = match self.call_at {
                Some((at, json_from)) => (text[..at].to_string(), &text[json_from..]),
                None => (String::new(), &text[..]),
            };
            let mut calls = self.format.parse(body)?;
            for c in &mut calls {
                if let (Some(tool), Some(grounding)) =
                    (tools.iter().find(|t| t.name == c.name), &self.grounding)
                {
                    grounding.prune(c, tool);
                }
            }
            return Ok(Generation {
                text: before,
                finish_reason: FinishReason::ToolCalls,
                usage,
                tool_calls: calls,
            });
        }
        Ok(Generation {
            text,
            finish_reason: self.finish,
            usage,
            tool_calls: Vec::new(),
        })
    }
}
