//! A decoder-only transformer read from GGUF: the shape and the per-architecture details from
//! the file's metadata and tensor names, the weights in the engine's quantized forms, and the
//! forward pass over a batch of tokens of one sequence with its own [`KvCache`].

use std::cell::RefCell;

use candle_core::quantized::gguf_file;

use super::matmul::matmul;
use super::ops::{self, Rope, RopeStyle};
use super::pool::{Disjoint, Pool};
use super::quant::{Codes, QActs, QMatrix};

/// Longest context the rotary tables and caches are sized for.
pub const MAX_CONTEXT: usize = 2048;

/// The architectures that load.
pub const ARCHITECTURES: &[&str] = &["llama", "qwen2", "qwen3", "gemma3", "phi3"];

/// How the feed-forward gate is activated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    GeluTanh,
}

/// Shape and per-architecture rules, from the metadata.
#[derive(Debug, Clone)]
pub struct Config {
    pub arch: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub vocab: usize,
    pub eps: f32,
    pub context: usize,
    pub rope_style: RopeStyle,
    /// Norm weights are stored as w - 1 (gemma).
    pub norm_plus_one: bool,
    /// The embedding is multiplied by this (gemma: sqrt(hidden)).
    pub embed_scale: f32,
    pub activation: Activation,
    /// Scores are multiplied by this before the softmax.
    pub attn_scale: f32,
    /// Layers that attend only to the last this many positions (gemma3), by layer.
    pub windows: Vec<Option<usize>>,
    /// Logits are squashed as cap·tanh(x/cap).
    pub final_softcap: Option<f32>,
}

struct Layer {
    attn_norm: Vec<f32>,
    /// q, k and v projections, fused (rows q | k | v).
    qkv: QMatrix,
    qkv_bias: Option<Vec<f32>>,
    q_norm: Option<Vec<f32>>,
    k_norm: Option<Vec<f32>>,
    wo: QMatrix,
    post_attn_norm: Option<Vec<f32>>,
    ffn_norm: Vec<f32>,
    /// gate and up projections, fused (rows gate | up).
    gate_up: QMatrix,
    down: QMatrix,
    post_ffn_norm: Option<Vec<f32>>,
    rope: usize,
}

pub struct Model {
    pub config: Config,
    embed: QMatrix,
    layers: Vec<Layer>,
    norm: Vec<f32>,
    /// None: tied to the embedding.
    output: Option<QMatrix>,
    ropes: Vec<Rope>,
}

/// Keys and values of one sequence, per layer, laid out `[position][kv_head][head_dim]`.
#[derive(Default)]
pub struct KvCache {
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
    pub len: usize,
}

impl KvCache {
    /// Forgets positions from `keep` on (a new prompt that shares the first `keep` tokens
    /// reuses them).
    pub fn truncate(&mut self, keep: usize) {
        self.len = self.len.min(keep);
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.keys
            .iter()
            .chain(&self.values)
            .map(|v| v.capacity() * 4)
            .sum()
    }
}

/// Buffers of a forward pass, kept between passes.
#[derive(Default)]
pub struct Scratch {
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    o: Vec<f32>,
    gu: Vec<f32>,
    act: Vec<f32>,
    acts: QActs,
    /// (step, position) of every token of the batch.
    owners: Vec<(usize, usize)>,
}

type Result<T> = candle_core::Result<T>;

struct Reader<'a> {
    ct: &'a gguf_file::Content,
    bytes: &'a [u8],
}

impl Reader<'_> {
    fn has(&self, name: &str) -> bool {
        self.ct.tensor_infos.contains_key(name)
    }

    fn floats(&self, name: &str) -> Result<Vec<f32>> {
        let mut cursor = std::io::Cursor::new(self.bytes);
        self.ct
            .tensor(&mut cursor, name, &candle_core::Device::Cpu)?
            .dequantize(&candle_core::Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()
    }

    fn optional(&self, name: &str) -> Result<Option<Vec<f32>>> {
        if self.has(name) {
            self.floats(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn matrix(&self, name: &str) -> Result<QMatrix> {
        let info =
            self.ct.tensor_infos.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("the model file has no `{name}`"))
            })?;
        let dims = info.shape.dims();
        let (rows, cols) = match dims {
            [rows, cols] => (*rows, *cols),
            _ => candle_core::bail!("`{name}` is not a matrix ({dims:?})"),
        };
        let start = (self.ct.tensor_data_offset + info.offset) as usize;
        let size = rows * cols / info.ggml_dtype.block_size() * info.ggml_dtype.type_size();
        let raw = self
            .bytes
            .get(start..start + size)
            .ok_or_else(|| candle_core::Error::Msg(format!("`{name}` lies outside the file")))?;
        QMatrix::from_ggml(info.ggml_dtype, raw, rows, cols, || self.floats(name))
    }

    /// Several matrices over the same input as one, rows stacked.
    fn fused(&self, names: &[String]) -> Result<QMatrix> {
        let parts: Vec<QMatrix> = names
            .iter()
            .map(|n| self.matrix(n))
            .collect::<Result<_>>()?;
        concat_rows(parts)
    }
}

/// Stacks matrices of equal width; mixed forms are brought to the 8-bit one.
fn concat_rows(mut parts: Vec<QMatrix>) -> Result<QMatrix> {
    if parts.len() == 1 {
        return Ok(parts.remove(0));
    }
    let cols = parts[0].cols;
    if parts.iter().any(|p| p.cols != cols) {
        candle_core::bail!("fused projections differ in width");
    }
    let all_q4 = parts.iter().all(|p| matches!(p.codes, Codes::Q4 { .. }));
    let all_q8 = parts.iter().all(|p| matches!(p.codes, Codes::Q8(_)));
    if !all_q4 && !all_q8 {
        parts = parts.into_iter().map(to_q8).collect();
    }
    let rows = parts.iter().map(|p| p.rows).sum();
    let mut scale = Vec::new();
    let mut codes = match &parts[0].codes {
        Codes::Q4 { .. } => Codes::Q4 {
            nibbles: Vec::new(),
            min: Vec::new(),
        },
        Codes::Q8(_) => Codes::Q8(Vec::new()),
    };
    for p in parts {
        scale.extend_from_slice(&p.scale);
        match (&mut codes, p.codes) {
            (Codes::Q4 { nibbles, min }, Codes::Q4 { nibbles: n, min: m }) => {
                nibbles.extend_from_slice(&n);
                min.extend_from_slice(&m);
            }
            (Codes::Q8(c), Codes::Q8(d)) => c.extend_from_slice(&d),
            _ => unreachable!("parts were brought to one form"),
        }
    }
    Ok(QMatrix {
        rows,
        cols,
        codes,
        scale,
    })
}

fn to_q8(m: QMatrix) -> QMatrix {
    if matches!(m.codes, Codes::Q8(_)) {
        return m;
    }
    let mut data = vec![0f32; m.rows * m.cols];
    for (r, row) in data.chunks_exact_mut(m.cols).enumerate() {
        m.row(r, row);
    }
    QMatrix::quantize_q8(&data, m.rows, m.cols)
}

fn meta<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("the model file has no `{key}`")))
}

fn meta_usize(ct: &gguf_file::Content, key: &str) -> Option<usize> {
    ct.metadata
        .get(key)
        .and_then(|v| v.to_u32().ok().map(|x| x as usize))
}

fn meta_f32(ct: &gguf_file::Content, key: &str) -> Option<f32> {
    ct.metadata.get(key).and_then(|v| v.to_f32().ok())
}

impl Model {
    /// Loads a model from the bytes of a GGUF file.
    pub fn load(bytes: &[u8]) -> Result<Model> {
        let mut cursor = std::io::Cursor::new(bytes);
        let ct = gguf_file::Content::read(&mut cursor)?;
        let arch = meta(&ct, "general.architecture")?.to_string()?.clone();
        if !ARCHITECTURES.contains(&arch.as_str()) {
            candle_core::bail!(
                "architecture `{arch}` is not supported (supported: {})",
                ARCHITECTURES.join(", ")
            );
        }
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = meta(&ct, &key("attention.head_count"))?.to_u32()? as usize;
        let hidden = meta(&ct, &key("embedding_length"))?.to_u32()? as usize;
        let n_layer = meta(&ct, &key("block_count"))?.to_u32()? as usize;
        let n_kv_head = meta_usize(&ct, &key("attention.head_count_kv")).unwrap_or(n_head);
        let head_dim = meta_usize(&ct, &key("attention.key_length")).unwrap_or(hidden / n_head);
        if n_head == 0
            || n_kv_head == 0
            || !n_head.is_multiple_of(n_kv_head)
            || !head_dim.is_multiple_of(2)
        {
            candle_core::bail!("the model has {n_head} heads over {n_kv_head} key/value heads");
        }
        let gemma = arch == "gemma3";
        let context = meta_usize(&ct, &key("context_length"))
            .unwrap_or(MAX_CONTEXT)
            .min(MAX_CONTEXT);
        let eps = meta_f32(&ct, &key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5);
        let rope_dim = meta_usize(&ct, &key("rope.dimension_count")).unwrap_or(head_dim);
        let rope_base = meta_f32(&ct, &key("rope.freq_base")).unwrap_or(if gemma {
            1_000_000.0
        } else {
            10_000.0
        });
        let rope_style = if arch == "llama" {
            RopeStyle::Interleaved
        } else {
            RopeStyle::Halves
        };
        let r = Reader { ct: &ct, bytes };
        let embed = r.matrix("token_embd.weight")?;
        let vocab = embed.rows;
        let mut ropes = vec![Rope::new(rope_dim, rope_base, context, rope_style)];
        let mut windows = vec![None; n_layer];
        let mut attn_scale = 1.0 / (head_dim as f32).sqrt();
        if gemma {
            // Five of six layers attend locally, with their own rotary base.
            let window = meta_usize(&ct, &key("attention.sliding_window")).unwrap_or(1024);
            let pattern = meta_usize(&ct, &key("attention.sliding_window_pattern"))
                .or_else(|| meta_usize(&ct, &key("attention.sliding_window_type")))
                .unwrap_or(6)
                .max(1);
            for (i, w) in windows.iter_mut().enumerate() {
                if (i + 1) % pattern != 0 {
                    *w = Some(window);
                }
            }
            let local_base = meta_f32(&ct, &key("rope.local_freq_base")).unwrap_or(10_000.0);
            ropes.push(Rope::new(rope_dim, local_base, context, rope_style));
            if let Some(s) = meta_f32(&ct, &key("attention.query_pre_attn_scalar")) {
                attn_scale = 1.0 / s.sqrt();
            }
        }
        let mut layers = Vec::with_capacity(n_layer);
        for (i, window) in windows.iter().enumerate() {
            let p = |s: &str| format!("blk.{i}.{s}");
            let names = |s: &[&str]| -> Vec<String> {
                s.iter().map(|n| p(&format!("{n}.weight"))).collect()
            };
            let qkv = if r.has(&p("attn_qkv.weight")) {
                r.matrix(&p("attn_qkv.weight"))?
            } else {
                r.fused(&names(&["attn_q", "attn_k", "attn_v"]))?
            };
            let qkv_bias = match (
                r.optional(&p("attn_q.bias"))?,
                r.optional(&p("attn_k.bias"))?,
                r.optional(&p("attn_v.bias"))?,
            ) {
                (Some(mut q), Some(k), Some(v)) => {
                    q.extend(k);
                    q.extend(v);
                    Some(q)
                }
                _ => None,
            };
            // Without a gate tensor, `ffn_up` holds gate and up stacked (phi3).
            let gate_up = if r.has(&p("ffn_gate.weight")) {
                r.fused(&names(&["ffn_gate", "ffn_up"]))?
            } else {
                r.matrix(&p("ffn_up.weight"))?
            };
            let expected = (n_head + 2 * n_kv_head) * head_dim;
            if qkv.rows != expected || qkv.cols != hidden || gate_up.rows % 2 != 0 {
                candle_core::bail!("layer {i} does not have the shape the metadata gives");
            }
            layers.push(Layer {
                attn_norm: r.floats(&p("attn_norm.weight"))?,
                qkv,
                qkv_bias,
                q_norm: r.optional(&p("attn_q_norm.weight"))?,
                k_norm: r.optional(&p("attn_k_norm.weight"))?,
                wo: r.matrix(&p("attn_output.weight"))?,
                post_attn_norm: r.optional(&p("post_attention_norm.weight"))?,
                ffn_norm: r.floats(&p("ffn_norm.weight"))?,
                gate_up,
                down: r.matrix(&p("ffn_down.weight"))?,
                post_ffn_norm: r.optional(&p("post_ffw_norm.weight"))?,
                rope: usize::from(window.is_some() && gemma),
            });
        }
        let output = if r.has("output.weight") {
            Some(r.matrix("output.weight")?)
        } else {
            None
        };
        let config = Config {
            arch: arch.clone(),
            n_layer,
            n_head,
            n_kv_head,
            head_dim,
            hidden,
            vocab,
            eps,
            context,
            rope_style,
            norm_plus_one: false,
            embed_scale: if gemma { (hidden as f32).sqrt() } else { 1.0 },
            activation: if gemma {
                Activation::GeluTanh
            } else {
                Activation::Silu
            },
            attn_scale,
            windows,
            final_softcap: meta_f32(&ct, &key("final_logit_softcapping")),
        };
        Ok(Model {
            config,
            embed,
            layers,
            norm: r.floats("output_norm.weight")?,
            output,
            ropes,
        })
    }

    /// Bytes of the weights.
    pub fn weight_bytes(&self) -> usize {
        let layers: usize = self
            .layers
            .iter()
            .map(|l| l.qkv.bytes() + l.wo.bytes() + l.gate_up.bytes() + l.down.bytes())
            .sum();
        layers + self.embed.bytes() + self.output.as_ref().map_or(0, QMatrix::bytes)
    }

    /// Runs `tokens` after the cache's positions and appends theirs; returns the logits of the
    /// last token.
    pub fn forward(
        &self,
        pool: &Pool,
        cache: &mut KvCache,
        tokens: &[u32],
        s: &mut Scratch,
    ) -> Result<Vec<f32>> {
        let mut steps = [Step { cache, tokens }];
        Ok(self.forward_batch(pool, &mut steps, s)?.remove(0))
    }

    /// One pass over several sequences at once: each step's tokens run after its own cache and
    /// are appended to it; the logits of each step's last token come back in order. The weights
    /// are read once for all of them, and every number is what a pass of that sequence alone
    /// would compute (no sum mixes tokens), so batching changes speed only.
    pub fn forward_batch(
        &self,
        pool: &Pool,
        steps: &mut [Step<'_>],
        s: &mut Scratch,
    ) -> Result<Vec<Vec<f32>>> {
        self.run(pool, steps, s, false)
    }

    /// Like [`Model::forward`], but returns the logits after every one of `tokens` (what the
    /// model expected at each position: the likelihood of a given continuation).
    pub fn forward_all(
        &self,
        pool: &Pool,
        cache: &mut KvCache,
        tokens: &[u32],
        s: &mut Scratch,
    ) -> Result<Vec<Vec<f32>>> {
        self.run(pool, &mut [Step { cache, tokens }], s, true)
    }

    /// The pass behind both: logits of each step's last token, or of every token.
    fn run(
        &self,
        pool: &Pool,
        steps: &mut [Step<'_>],
        s: &mut Scratch,
        every_token: bool,
    ) -> Result<Vec<Vec<f32>>> {
        let c = &self.config;
        for step in steps.iter() {
            if step.tokens.is_empty() {
                candle_core::bail!("no tokens to run");
            }
            if step.cache.len + step.tokens.len() > c.context {
                candle_core::bail!("the context is full ({} tokens)", c.context);
            }
            if let Some(&t) = step.tokens.iter().find(|&&t| t as usize >= c.vocab) {
                candle_core::bail!("token {t} is outside the vocabulary ({})", c.vocab);
            }
        }
        let (hd, nh, nkv) = (c.head_dim, c.n_head, c.n_kv_head);
        let q_dim = nh * hd;
        let kv_dim = nkv * hd;
        let qkv_dim = q_dim + 2 * kv_dim;
        let hidden = c.hidden;
        // Where each token of the batch belongs: (step, position in its sequence).
        s.owners.clear();
        for (i, step) in steps.iter_mut().enumerate() {
            if step.cache.keys.len() != c.n_layer {
                step.cache.keys = vec![Vec::new(); c.n_layer];
                step.cache.values = vec![Vec::new(); c.n_layer];
            }
            let pos0 = step.cache.len;
            s.owners
                .extend((0..step.tokens.len()).map(|j| (i, pos0 + j)));
        }
        let n = s.owners.len();
        s.x.resize(n * hidden, 0.0);
        let tokens = steps.iter().flat_map(|st| st.tokens.iter());
        for (row, &t) in s.x.chunks_exact_mut(hidden).zip(tokens) {
            self.embed.row(t as usize, row);
            if c.embed_scale != 1.0 {
                row.iter_mut().for_each(|v| *v *= c.embed_scale);
            }
        }
        s.h.resize(n * hidden, 0.0);
        s.o.resize(n * hidden, 0.0);
        s.qkv.resize(n * qkv_dim, 0.0);
        s.att.resize(n * q_dim, 0.0);
        for (li, layer) in self.layers.iter().enumerate() {
            norm_rows(&s.x, &layer.attn_norm, c, &mut s.h);
            s.acts.quantize_on(pool, &s.h, hidden);
            matmul(pool, &layer.qkv, &s.acts, &mut s.qkv);
            let rope = &self.ropes[layer.rope];
            for (row, &(_, pos)) in s.qkv.chunks_exact_mut(qkv_dim).zip(&s.owners) {
                if let Some(b) = &layer.qkv_bias {
                    row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
                }
                let (q, kv) = row.split_at_mut(q_dim);
                let k = &mut kv[..kv_dim];
                if let Some(w) = &layer.q_norm {
                    norm_heads(q, w, c);
                }
                if let Some(w) = &layer.k_norm {
                    norm_heads(k, w, c);
                }
                rope.apply(q, hd, pos);
                rope.apply(k, hd, pos);
            }
            for step in steps.iter_mut() {
                let end = (step.cache.len + step.tokens.len()) * kv_dim;
                step.cache.keys[li].resize(end, 0.0);
                step.cache.values[li].resize(end, 0.0);
            }
            for (row, &(i, pos)) in s.qkv.chunks_exact(qkv_dim).zip(&s.owners) {
                let cache = &mut *steps[i].cache;
                let at = pos * kv_dim..(pos + 1) * kv_dim;
                cache.keys[li][at.clone()].copy_from_slice(&row[q_dim..q_dim + kv_dim]);
                cache.values[li][at].copy_from_slice(&row[q_dim + kv_dim..]);
            }
            let caches: Vec<(&[f32], &[f32])> = steps
                .iter()
                .map(|st| (&st.cache.keys[li][..], &st.cache.values[li][..]))
                .collect();
            attention(pool, c, li, &s.qkv, &caches, &s.owners, &mut s.att);
            s.acts.quantize_on(pool, &s.att, q_dim);
            matmul(pool, &layer.wo, &s.acts, &mut s.o);
            if let Some(w) = &layer.post_attn_norm {
                norm_rows_in_place(&mut s.o, w, c);
            }
            s.x.iter_mut().zip(&s.o).for_each(|(x, o)| *x += o);

            norm_rows(&s.x, &layer.ffn_norm, c, &mut s.h);
            s.acts.quantize_on(pool, &s.h, hidden);
            let ffn = layer.gate_up.rows / 2;
            s.gu.resize(n * 2 * ffn, 0.0);
            matmul(pool, &layer.gate_up, &s.acts, &mut s.gu);
            s.act.resize(n * ffn, 0.0);
            let act = Disjoint::new(&mut s.act);
            let gu = &s.gu;
            pool.run(n, &|i| {
                let row = &gu[i * 2 * ffn..(i + 1) * 2 * ffn];
                // SAFETY: each chunk writes only its own token's row.
                let out = unsafe { &mut act.all()[i * ffn..(i + 1) * ffn] };
                out.copy_from_slice(&row[..ffn]);
                match c.activation {
                    Activation::Silu => ops::silu_mul(out, &row[ffn..]),
                    Activation::GeluTanh => ops::gelu_mul(out, &row[ffn..]),
                }
            });
            s.acts.quantize_on(pool, &s.act, ffn);
            matmul(pool, &layer.down, &s.acts, &mut s.o);
            if let Some(w) = &layer.post_ffn_norm {
                norm_rows_in_place(&mut s.o, w, c);
            }
            s.x.iter_mut().zip(&s.o).for_each(|(x, o)| *x += o);
        }
        // The last token of each step (or every token) goes through the head, in one matmul.
        let mut last = Vec::with_capacity(steps.len() * hidden);
        let mut end = 0;
        for step in steps.iter_mut() {
            end += step.tokens.len();
            step.cache.len += step.tokens.len();
            if !every_token {
                last.extend_from_slice(&s.x[(end - 1) * hidden..end * hidden]);
            }
        }
        if every_token {
            last.extend_from_slice(&s.x[..n * hidden]);
        }
        let mut normed = vec![0f32; last.len()];
        norm_rows(&last, &self.norm, c, &mut normed);
        s.acts.quantize_on(pool, &normed, hidden);
        let head = self.output.as_ref().unwrap_or(&self.embed);
        let mut logits = vec![0f32; last.len() / hidden * head.rows];
        matmul(pool, head, &s.acts, &mut logits);
        if let Some(cap) = c.final_softcap {
            logits
                .iter_mut()
                .for_each(|v| *v = cap * ops::tanh(*v / cap));
        }
        Ok(logits
            .chunks_exact(head.rows)
            .map(<[f32]>::to_vec)
            .collect())
    }
}

/// One sequence's part of a batched pass.
pub struct Step<'a> {
    pub cache: &'a mut KvCache,
    pub tokens: &'a [u32],
}

fn norm_rows(x: &[f32], w: &[f32], c: &Config, out: &mut [f32]) {
    for (src, dst) in x.chunks_exact(w.len()).zip(out.chunks_exact_mut(w.len())) {
        ops::rms_norm(src, w, c.eps, c.norm_plus_one, dst);
    }
}

fn norm_rows_in_place(x: &mut [f32], w: &[f32], c: &Config) {
    let mut tmp = vec![0f32; w.len()];
    for row in x.chunks_exact_mut(w.len()) {
        ops::rms_norm(row, w, c.eps, c.norm_plus_one, &mut tmp);
        row.copy_from_slice(&tmp);
    }
}

/// RMS norm of every head of `x` with one per-head weight.
fn norm_heads(x: &mut [f32], w: &[f32], c: &Config) {
    norm_rows_in_place(x, w, c);
}

thread_local! {
    static SCORES: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Causal attention of every token of the batch (its query in `qkv`) over its own sequence's
/// cache, one chunk per (token, head).
fn attention(
    pool: &Pool,
    c: &Config,
    layer: usize,
    qkv: &[f32],
    caches: &[(&[f32], &[f32])],
    owners: &[(usize, usize)],
    att: &mut [f32],
) {
    let (hd, nh, nkv) = (c.head_dim, c.n_head, c.n_kv_head);
    let q_dim = nh * hd;
    let qkv_dim = q_dim + 2 * nkv * hd;
    let group = nh / nkv;
    let window = c.windows[layer];
    let out = Disjoint::new(att);
    pool.run(owners.len() * nh, &|chunk| {
        let (i, h) = (chunk / nh, chunk % nh);
        let (seq, pos) = owners[i];
        let (keys, values) = caches[seq];
        let q = &qkv[i * qkv_dim + h * hd..][..hd];
        // SAFETY: each chunk writes only its own head of its own token.
        let dst = unsafe { &mut out.all()[i * q_dim + h * hd..][..hd] };
        SCORES.with_borrow_mut(|scores| {
            ops::attend(
                q,
                keys,
                values,
                h / group,
                nkv * hd,
                pos + 1,
                window,
                c.attn_scale,
                scores,
                dst,
            )
        });
    });
}
