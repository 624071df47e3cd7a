//! The decoders edgestra ran before its own engine, kept as the yardstick that `edgestra bench`
//! measures the engine against and the reference the engine's tests compare logits with: llama
//! with the earlier dual-weight implementation ([`Llama`]), and qwen2, qwen3, phi3 and gemma3
//! through candle-transformers' quantized models.

use candle_core::quantized::gguf_file;
use candle_core::{DType, Device, Result, Tensor};
use candle_transformers::models::{
    quantized_gemma3, quantized_phi3, quantized_qwen2, quantized_qwen3,
};

pub mod llama;

use llama::{Llama, LoadOptions};

/// The candle-transformers models, one variant per architecture.
pub enum Other {
    Qwen2(quantized_qwen2::ModelWeights),
    Qwen3(quantized_qwen3::ModelWeights),
    Phi3(quantized_phi3::ModelWeights),
    Gemma3(quantized_gemma3::ModelWeights),
}

pub enum Baseline {
    Llama(Llama),
    Other {
        model: Box<Other>,
        position: usize,
        context: usize,
    },
}

impl Baseline {
    pub fn load(bytes: &'static [u8], opts: LoadOptions) -> Result<Baseline> {
        let mut r = std::io::Cursor::new(bytes);
        let ct = gguf_file::Content::read(&mut r)?;
        let arch = ct
            .metadata
            .get("general.architecture")
            .and_then(|v| v.to_string().ok().cloned())
            .unwrap_or_default();
        if arch == "llama" {
            return Ok(Baseline::Llama(Llama::load(bytes, opts)?));
        }
        let context = ct
            .metadata
            .get(&format!("{arch}.context_length"))
            .and_then(|v| v.to_u32().ok())
            .map(|c| (c as usize).min(llama::MAX_CONTEXT))
            .unwrap_or(llama::MAX_CONTEXT);
        let dev = Device::Cpu;
        let model = match arch.as_str() {
            "qwen2" => Other::Qwen2(quantized_qwen2::ModelWeights::from_gguf(ct, &mut r, &dev)?),
            "qwen3" => Other::Qwen3(quantized_qwen3::ModelWeights::from_gguf(ct, &mut r, &dev)?),
            "phi3" => Other::Phi3(quantized_phi3::ModelWeights::from_gguf(
                false, ct, &mut r, &dev,
            )?),
            "gemma3" => Other::Gemma3(quantized_gemma3::ModelWeights::from_gguf(ct, &mut r, &dev)?),
            other => candle_core::bail!(
                "architecture `{other}` is not supported (supported: {})",
                super::decoder::ARCHITECTURES.join(", ")
            ),
        };
        Ok(Baseline::Other {
            model: Box::new(model),
            position: 0,
            context,
        })
    }

    pub fn context(&self) -> usize {
        match self {
            Baseline::Llama(l) => l.hyper.context,
            Baseline::Other { context, .. } => *context,
        }
    }

    /// How many of `wanted` cached positions can be kept (the rest is run again).
    pub fn reusable(&self, wanted: usize) -> usize {
        match self {
            Baseline::Llama(_) => wanted,
            // These models can only extend their cache, not cut it.
            Baseline::Other { position, .. } if wanted == *position => wanted,
            Baseline::Other { .. } => 0,
        }
    }

    /// Keeps the first `keep` cached positions (see [`Baseline::reusable`]).
    pub fn truncate(&mut self, keep: usize) -> Result<()> {
        match self {
            Baseline::Llama(l) => l.truncate(keep),
            Baseline::Other {
                model, position, ..
            } => {
                if keep == 0 {
                    match model.as_mut() {
                        Other::Qwen2(m) => m.clear_kv_cache(),
                        Other::Qwen3(m) => m.clear_kv_cache(),
                        // These reset their cache when run from position 0.
                        Other::Phi3(_) | Other::Gemma3(_) => {}
                    }
                    *position = 0;
                } else if keep != *position {
                    candle_core::bail!("this model cannot drop part of its cache");
                }
                Ok(())
            }
        }
    }

    /// Runs `tokens` after the cached context; returns the logits of the last one.
    pub fn forward(&mut self, tokens: &[u32]) -> Result<Tensor> {
        match self {
            Baseline::Llama(l) => l.forward(tokens),
            Baseline::Other {
                model,
                position,
                context,
            } => {
                if *position + tokens.len() > *context {
                    candle_core::bail!("the context is full ({context} tokens)");
                }
                let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
                let logits = match model.as_mut() {
                    Other::Qwen2(m) => m.forward(&input, *position)?,
                    Other::Qwen3(m) => m.forward(&input, *position)?,
                    Other::Phi3(m) => m.forward(&input, *position)?,
                    Other::Gemma3(m) => m.forward(&input, *position)?,
                };
                *position += tokens.len();
                let vocab = logits.dims().last().copied().unwrap_or(0);
                logits
                    .flatten_all()?
                    .narrow(0, logits.elem_count() - vocab, vocab)?
                    .to_dtype(DType::F32)
            }
        }
    }
}
