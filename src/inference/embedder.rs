//! Sentence embeddings with a BERT model (all-MiniLM-L6-v2 by default): batched, truncated,
//! mean-pooled over the attention mask and L2-normalised.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::InferenceError;

/// Longest input in tokens; longer texts are truncated.
pub const MAX_TOKENS: usize = 256;

pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    pub dimensions: usize,
}

fn err(what: &str) -> impl Fn(Box<dyn std::fmt::Display>) -> InferenceError + '_ {
    move |e| InferenceError::Load(format!("{what}: {e}"))
}

impl BertEmbedder {
    /// Loads from the three files of a sentence-transformers folder.
    pub fn load(
        weights: &[u8],
        config: &[u8],
        tokenizer: &[u8],
    ) -> Result<BertEmbedder, InferenceError> {
        let config: Config =
            serde_json::from_slice(config).map_err(|e| err("config.json")(Box::new(e)))?;
        let vb = VarBuilder::from_slice_safetensors(weights, DType::F32, &Device::Cpu)
            .map_err(|e| err("model.safetensors")(Box::new(e)))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| err("the BERT weights")(Box::new(e)))?;
        let mut tokenizer =
            Tokenizer::from_bytes(tokenizer).map_err(|e| err("tokenizer.json")(Box::new(e)))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| err("tokenizer truncation")(Box::new(e)))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            ..Default::default()
        }));
        Ok(BertEmbedder {
            dimensions: config.hidden_size,
            model,
            tokenizer,
        })
    }

    /// Embeds a batch of texts; each vector has unit length.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, InferenceError> {
        Ok(self.embed_counted(texts)?.0)
    }

    /// As [`BertEmbedder::embed`], with the number of tokens the texts took (after truncation,
    /// special tokens included; padding not counted).
    pub fn embed_counted(&self, texts: &[&str]) -> Result<(Vec<Vec<f32>>, u64), InferenceError> {
        if texts.is_empty() {
            return Ok((Vec::new(), 0));
        }
        let run = || -> candle_core::Result<(Vec<Vec<f32>>, u64)> {
            let enc = self
                .tokenizer
                .encode_batch(texts.to_vec(), true)
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            let tokens: u64 = enc
                .iter()
                .map(|e| {
                    e.get_attention_mask()
                        .iter()
                        .map(|&m| m as u64)
                        .sum::<u64>()
                })
                .sum();
            let dev = Device::Cpu;
            let ids: Vec<Tensor> = enc
                .iter()
                .map(|e| Tensor::new(e.get_ids(), &dev))
                .collect::<candle_core::Result<_>>()?;
            let masks: Vec<Tensor> = enc
                .iter()
                .map(|e| Tensor::new(e.get_attention_mask(), &dev))
                .collect::<candle_core::Result<_>>()?;
            let ids = Tensor::stack(&ids, 0)?;
            let mask = Tensor::stack(&masks, 0)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norm = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            Ok((mean.broadcast_div(&norm)?.to_vec2::<f32>()?, tokens))
        };
        run().map_err(|e| InferenceError::Failed(format!("embedding failed: {e}")))
    }
}
