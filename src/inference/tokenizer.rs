//! The tokenizer of a GGUF model, built from its metadata (`tokenizer.ggml.*`): byte-level BPE
//! with the control tokens (`<|im_start|>`, …) registered as special tokens.

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::{AddedToken, Tokenizer};

/// A tokenizer and the ids that matter to generation.
pub struct GgufTokenizer {
    pub tokenizer: Tokenizer,
    pub bos: Option<u32>,
    /// Tokens that end a turn: the model's EOS, and ChatML's `<|im_end|>` / `<|endoftext|>`.
    pub eos: Vec<u32>,
}

fn strings(ct: &Content, key: &str) -> Result<Vec<String>, String> {
    match ct.metadata.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.to_string().cloned().map_err(|e| format!("{key}: {e}")))
            .collect(),
        _ => Err(format!("the model file has no `{key}`")),
    }
}

pub fn from_gguf(ct: &Content) -> Result<GgufTokenizer, String> {
    let model = ct
        .metadata
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    if model != "gpt2" {
        return Err(format!(
            "tokenizer model `{model}` is not supported (only byte-level BPE, `gpt2`)"
        ));
    }
    let tokens = strings(ct, "tokenizer.ggml.tokens")?;
    let merges = strings(ct, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => items.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let merges: Vec<(String, String)> = merges
        .iter()
        .filter_map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
        })
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| format!("BPE: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    // llama.cpp's pre-tokenizer "smollm" splits every digit on its own before the GPT-2 split.
    let pre = ct
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok().cloned())
        .unwrap_or_default();
    if pre == "smollm" {
        tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true)),
        ])));
    } else {
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    }
    tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));
    // Control (3) and user-defined (4) tokens are matched whole, never split by BPE.
    let special: Vec<AddedToken> = tokens
        .iter()
        .zip(&types)
        .filter(|(_, t)| **t == 3 || **t == 4)
        .map(|(tok, _)| AddedToken::from(tok.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);

    let id = |key: &str| ct.metadata.get(key).and_then(|v| v.to_u32().ok());
    let mut eos: Vec<u32> = id("tokenizer.ggml.eos_token_id").into_iter().collect();
    for name in [
        "<|im_end|>",
        "<|endoftext|>",
        "<|eot_id|>",
        "<|eom_id|>",
        "<|end|>",
    ] {
        if let Some(i) = tokenizer.token_to_id(name)
            && !eos.contains(&i)
        {
            eos.push(i);
        }
    }
    Ok(GgufTokenizer {
        tokenizer,
        bos: id("tokenizer.ggml.bos_token_id"),
        eos,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::embedded;

    fn tokenizer() -> GgufTokenizer {
        let bytes = embedded::file(&format!("{}/model.gguf", embedded::CHAT_MODEL)).unwrap();
        let ct = Content::read(&mut std::io::Cursor::new(bytes)).unwrap();
        from_gguf(&ct).unwrap()
    }

    #[test]
    fn matches_the_reference_tokenization() {
        let t = tokenizer();
        let ids = t
            .tokenizer
            .encode(
                "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n",
                false,
            )
            .unwrap();
        // The ids Hugging Face's SmolLM2 tokenizer gives for the same text.
        assert_eq!(
            ids.get_ids(),
            [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198]
        );
        assert_eq!(t.eos, vec![2, 0]);
        let digits = t.tokenizer.encode("2024", false).unwrap();
        assert_eq!(digits.get_ids().len(), 4, "digits are split one by one");
    }

    #[test]
    fn decoding_round_trips() {
        let t = tokenizer();
        for s in [
            "  leading spaces",
            "tabs\tand\r\nnewlines",
            "accents é à ü",
            "日本語 한국어",
            "emoji 👩‍💻🎉",
            "{\"json\": [1, 2.5]}",
            "",
        ] {
            let ids = t.tokenizer.encode(s, false).unwrap();
            assert_eq!(t.tokenizer.decode(ids.get_ids(), false).unwrap(), s);
        }
    }
}
