//! `edgestra bench`: speed and memory of the default models on this machine, with the naive
//! quantized prefill measured in the same run as the baseline for the dense prefill.

use std::time::Instant;

use super::decoder::Decoder;
use super::embedded::{CHAT_MODEL, EMBEDDING_MODEL};
use super::llama::LoadOptions;
use super::local::{ChatEngine, Source};
use super::{InferenceError, embedded};

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    status_mib("VmHWM:")
}

/// Resident memory of this process now, in MiB (Linux; 0 elsewhere).
pub fn rss_mib() -> f64 {
    status_mib("VmRSS:")
}

fn status_mib(key: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_default();
    line.split_whitespace()
        .nth(1)
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn prompt_tokens(engine: &ChatEngine, n: usize) -> Result<Vec<u32>, InferenceError> {
    let text = "The quick brown fox jumps over the lazy dog while the farmer counts his sheep in the field. ";
    let mut tokens = engine.encode(&text.repeat(n / 10 + 2))?;
    tokens.truncate(n);
    Ok(tokens)
}

fn tokens_per_s(decoder: &mut Decoder, tokens: &[u32]) -> Result<f64, InferenceError> {
    let fail = |e: candle_core::Error| InferenceError::Failed(e.to_string());
    decoder.truncate(0).map_err(fail)?;
    let started = Instant::now();
    decoder.forward(tokens).map_err(fail)?;
    Ok(tokens.len() as f64 / started.elapsed().as_secs_f64())
}

/// Runs the benchmark and prints one line per measurement.
pub fn run(prompt_len: usize, decode_len: usize) -> Result<(), InferenceError> {
    let fail = |e: candle_core::Error| InferenceError::Failed(e.to_string());
    println!(
        "edgestra bench — {} threads",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    let started = Instant::now();
    let decode_dtype = match std::env::var("EDGESTRA_DECODE_DTYPE").as_deref() {
        Ok("q4_0") => Some(candle_core::quantized::GgmlDType::Q4_0),
        Ok("q4k") => Some(candle_core::quantized::GgmlDType::Q4K),
        Ok("q6k") => Some(candle_core::quantized::GgmlDType::Q6K),
        Ok("none") => None,
        _ => Some(candle_core::quantized::GgmlDType::Q8_0),
    };
    let opts = LoadOptions {
        dense_prefill: true,
        decode_dtype,
    };
    let mut engine = ChatEngine::load(&Source::Embedded(CHAT_MODEL.into()), opts)?;
    println!(
        "chat model load (dense prefill weights): {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let tokens = prompt_tokens(&engine, prompt_len)?;

    // Warm up once, then measure.
    tokens_per_s(&mut engine.decoder, &tokens[..32.min(tokens.len())])?;
    let dense = tokens_per_s(&mut engine.decoder, &tokens)?;

    let bytes = embedded::file(&format!("{CHAT_MODEL}/model.gguf")).expect("embedded chat model");
    let mut naive = Decoder::load(
        bytes,
        LoadOptions {
            dense_prefill: false,
            decode_dtype: None,
        },
    )
    .map_err(fail)?;
    let quantized = tokens_per_s(&mut naive, &tokens)?;
    drop(naive);
    embedded::release(bytes);
    println!(
        "prefill ({} tokens): {dense:.0} tokens/s dense, {quantized:.0} tokens/s quantized (baseline) — ratio {:.2}x",
        tokens.len(),
        dense / quantized
    );

    engine.decoder.truncate(0).map_err(fail)?;
    let mut logits_token = tokens[..16].to_vec();
    engine.decoder.forward(&logits_token).map_err(fail)?;
    let started = Instant::now();
    for i in 0..decode_len {
        logits_token = vec![tokens[(16 + i) % tokens.len()]];
        engine.decoder.forward(&logits_token).map_err(fail)?;
    }
    let decode = decode_len as f64 / started.elapsed().as_secs_f64();
    println!("decode ({decode_len} tokens): {decode:.1} tokens/s");

    let started = Instant::now();
    let embedder = super::local::load_bert(&Source::Embedded(EMBEDDING_MODEL.into()))?;
    println!(
        "embedding model load: {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let sentences: Vec<String> = (0..32)
        .map(|i| {
            format!(
                "Sentence number {i} talks about topic {} and a few other things.",
                i % 7
            )
        })
        .collect();
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    embedder.embed(&refs)?;
    let rounds = 5;
    let started = Instant::now();
    for _ in 0..rounds {
        embedder.embed(&refs)?;
    }
    let per_s = (rounds * refs.len()) as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for r in refs.iter().take(16) {
        embedder.embed(&[r])?;
    }
    let single_ms = started.elapsed().as_secs_f64() * 1000.0 / 16.0;
    println!("embeddings: {per_s:.0} sentences/s at batch 32, {single_ms:.1} ms at batch 1");
    println!(
        "RSS with both models loaded: {:.0} MiB (peak {:.0} MiB, including the baseline model)",
        rss_mib(),
        peak_rss_mib()
    );
    Ok(())
}
