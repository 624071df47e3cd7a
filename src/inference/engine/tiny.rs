//! Small random-weight GGUF files of every architecture the engine loads, written by the tests themselves (no weights are ever downloaded).
//!
//! Each file holds exactly the metadata keys and tensors that candle-transformers' quantized loader
//! for its architecture reads (`quantized_llama`, `quantized_qwen2`, `quantized_qwen3`,
//! `quantized_gemma3`, `quantized_phi3`), at a tiny size: a vocabulary of [`VOCAB`] tokens,
//! [`HEADS`] query heads sharing [`KV_HEADS`] key/value heads, [`LAYERS`] layers, a context of
//! [`CONTEXT`]. The width is [`hidden_size`] (64, or 256 for the K-quants, whose blocks are 256
//! values wide) and the feed-forward width twice that.
//!
//! Shapes follow candle's convention: a matrix is `(out_features, in_features)` (the GGUF file
//! lists the dimensions the other way round, which candle's writer and reader both handle), so
//! every row a quantized matmul reads is `in_features` long and a whole number of blocks.
//! Projections, the token embedding and the output head are quantized to the requested type;
//! norm weights and biases stay F32.
//!
//! The weights are pseudo-random but fixed by the seed and each tensor's name (the order in which
//! tensors are made does not matter), drawn with plain integer and float arithmetic, so the same
//! spec gives the same bytes on every machine.
//!
//! The files differ from each other where real files do: llama and gemma3 tie the output head to
//! the token embedding (no `output.weight`), qwen2, qwen3 and phi3 carry their own; qwen2 has
//! q/k/v biases; qwen3 and gemma3 have per-head q/k norms; gemma3 has post-attention and post-FFN
//! norms and a sliding window; phi3 has fused `attn_qkv` and a fused `ffn_up` (gate rows first,
//! then up rows).

use std::io::Cursor;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};

/// What to write: the architecture (`llama`, `qwen2`, `qwen3`, `gemma3` or `phi3`), the type of
/// the matrices, and the seed of the weights.
#[derive(Debug, Clone, Copy)]
pub struct TinySpec {
    pub arch: &'static str,
    pub dtype: GgmlDType,
    pub seed: u64,
}

/// The architectures [`tiny_gguf`] writes.
pub const ARCHS: [&str; 5] = ["llama", "qwen2", "qwen3", "gemma3", "phi3"];
/// Tokens in the vocabulary (rows of the embedding and of the output head).
pub const VOCAB: usize = 96;
/// Query heads.
pub const HEADS: usize = 4;
/// Key/value heads (grouped-query attention, two query heads per key/value head).
pub const KV_HEADS: usize = 2;
/// Transformer blocks.
pub const LAYERS: usize = 2;
/// `<arch>.context_length`.
pub const CONTEXT: usize = 256;
/// `gemma3.attention.sliding_window`. With two layers and candle's default pattern (every sixth
/// layer global) both gemma3 layers are sliding-window layers.
pub const GEMMA3_SLIDING_WINDOW: usize = 16;

/// The model width for `dtype`: 64 for 32-value blocks (and F32/F16), 256 for the K-quants.
pub fn hidden_size(dtype: GgmlDType) -> usize {
    if dtype.block_size() > 32 { 256 } else { 64 }
}

/// The feed-forward width for `dtype`: twice [`hidden_size`].
pub fn ffn_size(dtype: GgmlDType) -> usize {
    2 * hidden_size(dtype)
}

/// Per-architecture details.
struct Arch {
    rms_eps: f32,
    /// `<arch>.rope.freq_base`. For gemma3 this is the global layers' base (real files say 1e6);
    /// its sliding layers use `rope.local_freq_base`, absent here as in real files (candle then
    /// uses 10000).
    rope_base: f32,
    /// Whether the file carries `output.weight` (otherwise the loader ties it to the embedding).
    own_output: bool,
    qkv_bias: bool,
    qk_norm: bool,
    post_norms: bool,
    fused: bool,
}

fn arch_of(name: &str) -> Arch {
    let plain = Arch {
        rms_eps: 1e-5,
        rope_base: 10_000.0,
        own_output: true,
        qkv_bias: false,
        qk_norm: false,
        post_norms: false,
        fused: false,
    };
    match name {
        "llama" => Arch {
            own_output: false,
            ..plain
        },
        "qwen2" => Arch {
            rms_eps: 1e-6,
            qkv_bias: true,
            ..plain
        },
        "qwen3" => Arch {
            rms_eps: 1e-6,
            qk_norm: true,
            ..plain
        },
        "gemma3" => Arch {
            rms_eps: 1e-6,
            rope_base: 1_000_000.0,
            own_output: false,
            qk_norm: true,
            post_norms: true,
            ..plain
        },
        "phi3" => Arch {
            fused: true,
            ..plain
        },
        other => panic!("tiny_gguf: no tiny model for architecture {other:?} (one of {ARCHS:?})"),
    }
}

/// The splitmix64 generator.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly standard normal: the sum of four uniforms, centred and scaled to unit variance
    /// (bounded by ±2√3). Only additions and multiplications, so identical on every CPU.
    fn normal(&mut self) -> f64 {
        let sum = self.uniform() + self.uniform() + self.uniform() + self.uniform();
        (sum - 2.0) * 3f64.sqrt()
    }
}

/// FNV-1a of a tensor's name, which makes each tensor's values independent of the others.
fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xCBF2_9CE4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

struct Tensors {
    dtype: GgmlDType,
    seed: u64,
    list: Vec<(String, QTensor)>,
}

impl Tensors {
    fn values(&self, name: &str, len: usize, mean: f64, std: f64) -> Vec<f32> {
        let mut rng = SplitMix(self.seed ^ name_hash(name));
        rng.next_u64();
        (0..len)
            .map(|_| (mean + std * rng.normal()) as f32)
            .collect()
    }

    fn push(&mut self, name: String, values: Vec<f32>, shape: &[usize], dtype: GgmlDType) {
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu)
            .and_then(|t| QTensor::quantize(&t, dtype))
            .unwrap_or_else(|e| panic!("tiny_gguf: making {name} {shape:?} as {dtype:?}: {e}"));
        self.list.push((name, tensor));
    }

    /// A `(rows, cols)` matrix of the requested type, values ~ N(0, std).
    fn matrix(&mut self, name: &str, rows: usize, cols: usize, std: f64) {
        let values = self.values(name, rows * cols, 0.0, std);
        self.push(name.to_string(), values, &[rows, cols], self.dtype);
    }

    /// An F32 norm weight, values ~ 1 + N(0, 0.05).
    fn norm(&mut self, name: &str, len: usize) {
        let values = self.values(name, len, 1.0, 0.05);
        self.push(name.to_string(), values, &[len], GgmlDType::F32);
    }

    /// An F32 bias, values ~ N(0, 0.02).
    fn bias(&mut self, name: &str, len: usize) {
        let values = self.values(name, len, 0.0, 0.02);
        self.push(name.to_string(), values, &[len], GgmlDType::F32);
    }
}

/// Writes a tiny random-weight GGUF file of `spec.arch` whose matrices are `spec.dtype`.
///
/// Panics on an architecture not in [`ARCHS`] or a type candle cannot quantize to.
pub fn tiny_gguf(spec: &TinySpec) -> Vec<u8> {
    write(spec, VOCAB, CONTEXT, Vec::new())
}

/// The file of `spec` with a vocabulary of `vocab` tokens, a context of `context` and the
/// metadata `extra` besides the model's own.
pub(super) fn write(
    spec: &TinySpec,
    vocab: usize,
    context: usize,
    extra: Vec<(String, Value)>,
) -> Vec<u8> {
    let arch = arch_of(spec.arch);
    let name = spec.arch;
    let hidden = hidden_size(spec.dtype);
    let ffn = ffn_size(spec.dtype);
    let head_dim = hidden / HEADS;
    let q_dim = HEADS * head_dim;
    let kv_dim = KV_HEADS * head_dim;
    let u32_of = |n: usize| Value::U32(u32::try_from(n).expect("tiny sizes fit in u32"));

    let mut metadata: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(name.into())),
        ("general.name".into(), Value::String(format!("tiny-{name}"))),
    ];
    let mut key = |k: &str, v: Value| metadata.push((format!("{name}.{k}"), v));
    key("context_length", u32_of(context));
    key("embedding_length", u32_of(hidden));
    key("block_count", u32_of(LAYERS));
    key("feed_forward_length", u32_of(ffn));
    key("attention.head_count", u32_of(HEADS));
    key("attention.head_count_kv", u32_of(KV_HEADS));
    key("attention.key_length", u32_of(head_dim));
    key("attention.value_length", u32_of(head_dim));
    key("attention.layer_norm_rms_epsilon", Value::F32(arch.rms_eps));
    key("rope.dimension_count", u32_of(head_dim));
    key("rope.freq_base", Value::F32(arch.rope_base));
    if name == "gemma3" {
        key("attention.sliding_window", u32_of(GEMMA3_SLIDING_WINDOW));
    }

    let mut t = Tensors {
        dtype: spec.dtype,
        seed: spec.seed,
        list: Vec::new(),
    };
    t.matrix("token_embd.weight", vocab, hidden, 0.1);
    t.norm("output_norm.weight", hidden);
    if arch.own_output {
        t.matrix("output.weight", vocab, hidden, 0.05);
    }
    for layer in 0..LAYERS {
        let p = format!("blk.{layer}");
        t.norm(&format!("{p}.attn_norm.weight"), hidden);
        t.norm(&format!("{p}.ffn_norm.weight"), hidden);
        if arch.fused {
            // q rows, then k rows, then v rows.
            t.matrix(
                &format!("{p}.attn_qkv.weight"),
                q_dim + 2 * kv_dim,
                hidden,
                0.05,
            );
            // gate rows, then up rows.
            t.matrix(&format!("{p}.ffn_up.weight"), 2 * ffn, hidden, 0.05);
        } else {
            t.matrix(&format!("{p}.attn_q.weight"), q_dim, hidden, 0.05);
            t.matrix(&format!("{p}.attn_k.weight"), kv_dim, hidden, 0.05);
            t.matrix(&format!("{p}.attn_v.weight"), kv_dim, hidden, 0.05);
            t.matrix(&format!("{p}.ffn_gate.weight"), ffn, hidden, 0.05);
            t.matrix(&format!("{p}.ffn_up.weight"), ffn, hidden, 0.05);
        }
        t.matrix(&format!("{p}.attn_output.weight"), hidden, q_dim, 0.05);
        t.matrix(&format!("{p}.ffn_down.weight"), hidden, ffn, 0.05);
        if arch.qkv_bias {
            t.bias(&format!("{p}.attn_q.bias"), q_dim);
            t.bias(&format!("{p}.attn_k.bias"), kv_dim);
            t.bias(&format!("{p}.attn_v.bias"), kv_dim);
        }
        if arch.qk_norm {
            t.norm(&format!("{p}.attn_q_norm.weight"), head_dim);
            t.norm(&format!("{p}.attn_k_norm.weight"), head_dim);
        }
        if arch.post_norms {
            t.norm(&format!("{p}.post_attention_norm.weight"), hidden);
            t.norm(&format!("{p}.post_ffw_norm.weight"), hidden);
        }
    }

    metadata.extend(extra);
    let metadata: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<(&str, &QTensor)> = t.list.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let mut out = Cursor::new(Vec::new());
    gguf_file::write(&mut out, &metadata, &tensors)
        .unwrap_or_else(|e| panic!("tiny_gguf: writing the {name} file: {e}"));
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Result;
    use candle_transformers::models::{
        quantized_gemma3, quantized_llama, quantized_phi3, quantized_qwen2, quantized_qwen3,
    };

    /// A float type, a 32-block type and a K-quant (256-blocks, so the wider shapes).
    const DTYPES: [GgmlDType; 3] = [GgmlDType::F32, GgmlDType::Q8_0, GgmlDType::Q4K];

    fn open(arch: &'static str, dtype: GgmlDType) -> Result<(gguf_file::Content, Cursor<Vec<u8>>)> {
        let mut file = Cursor::new(tiny_gguf(&TinySpec {
            arch,
            dtype,
            seed: 7,
        }));
        let content = gguf_file::Content::read(&mut file)?;
        assert_eq!(content.metadata["general.architecture"].to_string()?, arch);
        let embd = &content.tensor_infos["token_embd.weight"];
        assert_eq!(embd.shape.dims(), [VOCAB, hidden_size(dtype)]);
        assert_eq!(embd.ggml_dtype, dtype);
        Ok((content, file))
    }

    fn check_logits(logits: &Tensor) -> Result<()> {
        assert_eq!(logits.dims(), [1, VOCAB]);
        let values = logits.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(values.len(), VOCAB);
        assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
        let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(hi - lo > 1e-3, "degenerate logits {values:?}");
        Ok(())
    }

    /// A three-token prompt at position 0, then one more token at position 3 (through the cache).
    fn run(mut forward: impl FnMut(&Tensor, usize) -> Result<Tensor>) -> Result<()> {
        let prompt = Tensor::new(&[[1u32, 5, 7]], &Device::Cpu)?;
        check_logits(&forward(&prompt, 0)?)?;
        let next = Tensor::new(&[[9u32]], &Device::Cpu)?;
        check_logits(&forward(&next, 3)?)
    }

    #[test]
    fn llama_loads_and_runs() -> Result<()> {
        for dtype in DTYPES {
            let (content, mut file) = open("llama", dtype)?;
            assert!(!content.tensor_infos.contains_key("output.weight"));
            let mut model =
                quantized_llama::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
            run(|x, pos| model.forward(x, pos))?;
        }
        Ok(())
    }

    #[test]
    fn qwen2_loads_and_runs() -> Result<()> {
        for dtype in DTYPES {
            let (content, mut file) = open("qwen2", dtype)?;
            assert!(content.tensor_infos.contains_key("blk.1.attn_v.bias"));
            let mut model =
                quantized_qwen2::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
            run(|x, pos| model.forward(x, pos))?;
        }
        Ok(())
    }

    #[test]
    fn qwen3_loads_and_runs() -> Result<()> {
        for dtype in DTYPES {
            let (content, mut file) = open("qwen3", dtype)?;
            let mut model =
                quantized_qwen3::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
            run(|x, pos| model.forward(x, pos))?;
        }
        Ok(())
    }

    #[test]
    fn gemma3_loads_and_runs() -> Result<()> {
        for dtype in DTYPES {
            let (content, mut file) = open("gemma3", dtype)?;
            assert!(!content.tensor_infos.contains_key("output.weight"));
            let mut model =
                quantized_gemma3::ModelWeights::from_gguf(content, &mut file, &Device::Cpu)?;
            run(|x, pos| model.forward(x, pos))?;
        }
        Ok(())
    }

    #[test]
    fn phi3_loads_and_runs() -> Result<()> {
        for dtype in DTYPES {
            let (content, mut file) = open("phi3", dtype)?;
            let mut model =
                quantized_phi3::ModelWeights::from_gguf(false, content, &mut file, &Device::Cpu)?;
            run(|x, pos| model.forward(x, pos))?;
        }
        Ok(())
    }

    #[test]
    fn the_seed_fixes_the_bytes() {
        let spec = TinySpec {
            arch: "qwen3",
            dtype: GgmlDType::Q4_0,
            seed: 1,
        };
        assert_eq!(tiny_gguf(&spec), tiny_gguf(&spec));
        assert_ne!(tiny_gguf(&spec), tiny_gguf(&TinySpec { seed: 2, ..spec }));
    }
}
