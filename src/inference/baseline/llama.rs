//! A llama-architecture decoder over GGUF weights that keeps two forms of each projection:
//! dequantized (f32) matrices for prompt processing, where batched matmuls are compute-bound and
//! dense kernels win, and the quantized tensors for decoding one token at a time, where every
//! weight is read once per token and the smaller quantized form wins (DESIGN.md §3).

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor, gguf_file};
use candle_core::{DType, Device, IndexOp, Module, Result, Tensor};
use candle_nn::kv_cache::KvCache;
use candle_nn::{Embedding, Linear};

/// Longest context the rotary tables and caches are sized for.
pub const MAX_CONTEXT: usize = 2048;

/// One projection in both forms.
struct Projection {
    quantized: QMatMul,
    dense: Option<Linear>,
}

/// How the weights are held in memory.
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Keep f32 copies of the projections for batched (prompt) steps.
    pub dense_prefill: bool,
    /// Re-quantize the one-token path to this type when the file's type has no fast kernel on
    /// this CPU (candle has AVX2 kernels for Q4_0, Q8_0 and the K-quants, not for Q4_1/Q5_x).
    pub decode_dtype: Option<GgmlDType>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dense_prefill: true,
            decode_dtype: Some(GgmlDType::Q8_0),
        }
    }
}

fn slow_on_cpu(dtype: GgmlDType) -> bool {
    matches!(
        dtype,
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1
    )
}

impl Projection {
    /// Loads several projections that read the same input as one (their outputs concatenated),
    /// so each step runs one matmul instead of several.
    fn load_fused(
        ct: &gguf_file::Content,
        r: &mut Reader,
        names: &[String],
        opts: LoadOptions,
        dev: &Device,
    ) -> Result<Self> {
        let parts: Vec<QTensor> = names
            .iter()
            .map(|n| ct.tensor(r, n, dev))
            .collect::<Result<_>>()?;
        if parts.len() == 1 {
            return Self::from_qtensor(parts.into_iter().next().expect("one part"), opts, dev);
        }
        let full: Vec<Tensor> = parts
            .iter()
            .map(|q| q.dequantize(dev))
            .collect::<Result<_>>()?;
        let full = Tensor::cat(&full, 0)?;
        let dtype = match opts.decode_dtype {
            Some(t) if slow_on_cpu(parts[0].dtype()) => t,
            _ => parts[0].dtype(),
        };
        let quantized = QMatMul::from_qtensor(QTensor::quantize(&full, dtype)?)?;
        let dense = if opts.dense_prefill {
            Some(Linear::new(full, None))
        } else {
            None
        };
        Ok(Projection { quantized, dense })
    }

    fn from_qtensor(q: QTensor, opts: LoadOptions, dev: &Device) -> Result<Self> {
        let needs_dense =
            opts.dense_prefill || (opts.decode_dtype.is_some() && slow_on_cpu(q.dtype()));
        let full = if needs_dense {
            Some(q.dequantize(dev)?)
        } else {
            None
        };
        let quantized = match (opts.decode_dtype, &full) {
            (Some(target), Some(full))
                if slow_on_cpu(q.dtype()) && full.dim(1)? % target.block_size() == 0 =>
            {
                QMatMul::from_qtensor(QTensor::quantize(full, target)?)?
            }
            _ => QMatMul::from_qtensor(q)?,
        };
        let dense = if opts.dense_prefill {
            full.map(|w| Linear::new(w, None))
        } else {
            None
        };
        Ok(Projection { quantized, dense })
    }

    fn forward(&self, x: &Tensor, batched: bool) -> Result<Tensor> {
        match (&self.dense, batched) {
            (Some(d), true) => d.forward(x),
            _ => self.quantized.forward(x),
        }
    }
}

type Reader = std::io::Cursor<&'static [u8]>;

struct Layer {
    /// q, k and v projections, fused.
    qkv: Projection,
    wo: Projection,
    /// gate and up projections, fused.
    gate_up: Projection,
    down: Projection,
    attn_norm: Tensor,
    ffn_norm: Tensor,
    cache: KvCache,
}

/// Shape of the network, read from the GGUF metadata.
#[derive(Debug, Clone)]
pub struct Hyper {
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_head: usize,
    pub head_dim: usize,
    pub hidden: usize,
    pub eps: f32,
    pub rope_base: f32,
    pub context: usize,
}

pub struct Llama {
    pub hyper: Hyper,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    output: Projection,
    cos: Tensor,
    sin: Tensor,
    masks: HashMap<(usize, usize), Tensor>,
    device: Device,
    /// Tokens whose keys and values are in the caches.
    pub position: usize,
}

fn meta<'a>(ct: &'a gguf_file::Content, key: &str) -> Result<&'a gguf_file::Value> {
    ct.metadata
        .get(key)
        .ok_or_else(|| candle_core::Error::Msg(format!("the model file has no `{key}`")))
}

impl Llama {
    /// Loads from GGUF bytes.
    pub fn load(bytes: &'static [u8], opts: LoadOptions) -> Result<Llama> {
        let device = Device::Cpu;
        let mut r = std::io::Cursor::new(bytes);
        let ct = gguf_file::Content::read(&mut r)?;
        let arch = meta(&ct, "general.architecture")?.to_string()?.clone();
        if arch != "llama" {
            candle_core::bail!("architecture `{arch}` is not llama");
        }
        let n_head = meta(&ct, "llama.attention.head_count")?.to_u32()? as usize;
        let hidden = meta(&ct, "llama.embedding_length")?.to_u32()? as usize;
        let hyper = Hyper {
            n_layer: meta(&ct, "llama.block_count")?.to_u32()? as usize,
            n_head,
            n_kv_head: meta(&ct, "llama.attention.head_count_kv")?.to_u32()? as usize,
            head_dim: hidden / n_head,
            hidden,
            eps: meta(&ct, "llama.attention.layer_norm_rms_epsilon")?.to_f32()?,
            rope_base: meta(&ct, "llama.rope.freq_base")
                .and_then(|v| v.to_f32())
                .unwrap_or(10_000.),
            context: meta(&ct, "llama.context_length")
                .and_then(|v| v.to_u32())
                .map(|c| (c as usize).min(MAX_CONTEXT))
                .unwrap_or(MAX_CONTEXT),
        };
        let rope_dim = meta(&ct, "llama.rope.dimension_count")
            .and_then(|v| v.to_u32())
            .map(|d| d as usize)
            .unwrap_or(hyper.head_dim);
        let (cos, sin) = rope_tables(rope_dim, hyper.rope_base, hyper.context, &device)?;

        let embed_q = ct.tensor(&mut r, "token_embd.weight", &device)?;
        let embed = Embedding::new(embed_q.dequantize(&device)?, hidden);
        let output = match ct.tensor(&mut r, "output.weight", &device) {
            Ok(q) => Projection::from_qtensor(
                q,
                LoadOptions {
                    dense_prefill: false,
                    ..opts
                },
                &device,
            )?,
            // Tied embeddings: the output projection is the embedding matrix.
            Err(_) => Projection::from_qtensor(
                embed_q,
                LoadOptions {
                    dense_prefill: false,
                    ..opts
                },
                &device,
            )?,
        };
        let norm = ct
            .tensor(&mut r, "output_norm.weight", &device)?
            .dequantize(&device)?;
        let mut layers = Vec::with_capacity(hyper.n_layer);
        for i in 0..hyper.n_layer {
            let p = |s: &str| format!("blk.{i}.{s}.weight");
            let mut load = |s: &[&str]| {
                let names: Vec<String> = s.iter().map(|n| p(n)).collect();
                Projection::load_fused(&ct, &mut r, &names, opts, &device)
            };
            layers.push(Layer {
                qkv: load(&["attn_q", "attn_k", "attn_v"])?,
                wo: load(&["attn_output"])?,
                gate_up: load(&["ffn_gate", "ffn_up"])?,
                down: load(&["ffn_down"])?,
                attn_norm: ct
                    .tensor(&mut r, &p("attn_norm"), &device)?
                    .dequantize(&device)?,
                ffn_norm: ct
                    .tensor(&mut r, &p("ffn_norm"), &device)?
                    .dequantize(&device)?,
                cache: KvCache::new(2, hyper.context),
            });
        }
        Ok(Llama {
            hyper,
            embed,
            layers,
            norm,
            output,
            cos,
            sin,
            masks: HashMap::new(),
            device,
            position: 0,
        })
    }

    /// Forgets the cached context.
    pub fn reset(&mut self) {
        for l in &mut self.layers {
            l.cache.reset();
        }
        self.position = 0;
    }

    /// Drops cached positions from `keep` on, so a new prompt sharing a prefix reuses the rest.
    pub fn truncate(&mut self, keep: usize) -> Result<()> {
        if keep >= self.position {
            return Ok(());
        }
        if keep == 0 {
            self.reset();
            return Ok(());
        }
        for l in &mut self.layers {
            let (k, v) = match (l.cache.k()?, l.cache.v()?) {
                (Some(k), Some(v)) => (k.narrow(2, 0, keep)?, v.narrow(2, 0, keep)?),
                _ => continue,
            };
            l.cache.reset();
            l.cache.append(&k.contiguous()?, &v.contiguous()?)?;
        }
        self.position = keep;
        Ok(())
    }

    fn mask(&mut self, seq_len: usize, index_pos: usize) -> Result<Tensor> {
        let key = (seq_len, index_pos);
        if let Some(m) = self.masks.get(&key) {
            return Ok(m.clone());
        }
        let kv_len = index_pos + seq_len;
        let mask: Vec<f32> = (0..seq_len)
            .flat_map(|i| {
                (0..kv_len).map(move |j| {
                    if j > index_pos + i {
                        f32::NEG_INFINITY
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        let m = Tensor::from_vec(mask, (1, 1, seq_len, kv_len), &self.device)?;
        // One copy per query head of a group (see the attention in `forward`).
        let n_rep = self.hyper.n_head / self.hyper.n_kv_head;
        let m = Tensor::cat(&vec![&m; n_rep], 2)?;
        if self.masks.len() < 64 {
            self.masks.insert(key, m.clone());
        }
        Ok(m)
    }

    /// Runs `tokens` after the cached context; returns the logits of the last one (f32, vocab).
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        let seq_len = tokens.len();
        let index_pos = self.position;
        if index_pos + seq_len > self.hyper.context {
            candle_core::bail!("the context is full ({} tokens)", self.hyper.context);
        }
        let batched = seq_len > 1;
        let h = &self.hyper;
        let (n_head, n_kv, hd) = (h.n_head, h.n_kv_head, h.head_dim);
        let eps = h.eps;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(0)?;
        let mask = if batched {
            Some(self.mask(seq_len, index_pos)?)
        } else {
            None
        };
        let cos = self.cos.narrow(0, index_pos, seq_len)?;
        let sin = self.sin.narrow(0, index_pos, seq_len)?;
        let mut x = self.embed.forward(&input)?;
        for layer in &mut self.layers {
            let residual = x.clone();
            let hn = candle_nn::ops::rms_norm(&x, &layer.attn_norm, eps)?;
            let qkv = layer.qkv.forward(&hn, batched)?;
            let q = qkv
                .narrow(2, 0, n_head * hd)?
                .reshape((1, seq_len, n_head, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let k = qkv
                .narrow(2, n_head * hd, n_kv * hd)?
                .reshape((1, seq_len, n_kv, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let v = qkv
                .narrow(2, (n_head + n_kv) * hd, n_kv * hd)?
                .reshape((1, seq_len, n_kv, hd))?
                .transpose(1, 2)?
                .contiguous()?;
            let q = candle_nn::rotary_emb::rope_i(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope_i(&k, &cos, &sin)?;
            let (k, v) = layer.cache.append(&k, &v)?;
            // Grouped-query attention without copying keys and values per query head: the
            // query heads that share a kv head are stacked as rows of one matmul.
            let q = q.reshape((1, n_kv, (n_head / n_kv) * seq_len, hd))?;
            let att = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
            let att = match &mask {
                Some(m) => att.broadcast_add(m)?,
                None => att,
            };
            let att = candle_nn::ops::softmax_last_dim(&att)?;
            let y = att
                .matmul(&v)?
                .reshape((1, n_head, seq_len, hd))?
                .transpose(1, 2)?
                .reshape((1, seq_len, n_head * hd))?;
            let x1 = (layer.wo.forward(&y, batched)? + residual)?;
            let hn = candle_nn::ops::rms_norm(&x1, &layer.ffn_norm, eps)?;
            let gate_up = layer.gate_up.forward(&hn, batched)?;
            let ffn = gate_up.dim(2)? / 2;
            let gate = candle_nn::ops::silu(&gate_up.narrow(2, 0, ffn)?)?;
            let up = gate_up.narrow(2, ffn, ffn)?;
            x = (layer.down.forward(&(gate * up)?, batched)? + x1)?;
        }
        self.position += seq_len;
        let last = x.i((.., seq_len - 1, ..))?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, eps)?;
        self.output
            .forward(&last, false)?
            .squeeze(0)?
            .to_dtype(DType::F32)
    }
}

fn rope_tables(dim: usize, base: f32, context: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let theta: Vec<f32> = (0..dim)
        .step_by(2)
        .map(|i| 1.0 / base.powf(i as f32 / dim as f32))
        .collect();
    let theta = Tensor::new(theta.as_slice(), dev)?;
    let idx = Tensor::arange(0, context as u32, dev)?
        .to_dtype(DType::F32)?
        .reshape((context, 1))?;
    let freqs = idx.matmul(&theta.reshape((1, ()))?)?;
    Ok((freqs.cos()?, freqs.sin()?))
}
