//! The engine against candle-transformers' implementations (the previous decoders) on small
//! random-weight files of every architecture and on the embedded model: next-token logits agree
//! within a stated tolerance, and the engine's own results do not depend on how a sequence is
//! split into forward passes or which kernels run.

use candle_core::quantized::GgmlDType;

use super::model::{Activation, KvCache, Model, Scratch, Step};
use super::pool::Pool;
use super::simd::{self, Isa};
use super::tiny::{ARCHS, TinySpec, VOCAB, tiny_gguf};
use crate::inference::baseline::Baseline;
use crate::inference::baseline::llama::LoadOptions;

/// Largest logit difference allowed, relative to the largest logit: both sides quantize the
/// activations to 8 bits, but in different blocks and orders.
const TOLERANCE: f32 = 0.03;

fn leak(bytes: Vec<u8>) -> &'static [u8] {
    Box::leak(bytes.into_boxed_slice())
}

/// Logits after each of `steps` (token runs) from both implementations.
fn both(bytes: &'static [u8], steps: &[&[u32]]) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut model = Model::load(bytes).unwrap();
    // candle's gemma3 gates its feed-forward with SiLU where Gemma 3 (and llama.cpp) use GELU;
    // compare like with like.
    if model.config.arch == "gemma3" {
        model.config.activation = Activation::Silu;
    }
    let pool = Pool::new(2);
    let mut cache = KvCache::default();
    let mut scratch = Scratch::default();
    let ours = steps
        .iter()
        .map(|t| model.forward(&pool, &mut cache, t, &mut scratch).unwrap())
        .collect();
    let plain = LoadOptions {
        dense_prefill: false,
        decode_dtype: None,
    };
    let mut reference = Baseline::load(bytes, plain).unwrap();
    let theirs = steps
        .iter()
        .map(|t| reference.forward(t).unwrap().to_vec1::<f32>().unwrap())
        .collect();
    (ours, theirs)
}

/// The exact bits of logits, for comparisons that allow no difference at all.
fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

fn assert_close(ours: &[f32], theirs: &[f32], what: &str) {
    assert_eq!(ours.len(), theirs.len(), "{what}: vocabulary");
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
    let diff = ours
        .iter()
        .zip(theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff <= TOLERANCE * scale,
        "{what}: logits differ by {diff} (largest logit {scale})"
    );
    assert!(ours.iter().all(|v| v.is_finite()), "{what}: not finite");
}

#[test]
fn every_architecture_agrees_with_candle_on_random_weights() {
    let prompt: Vec<u32> = (0..7).map(|i| (i * 13 % VOCAB) as u32).collect();
    for arch in ARCHS {
        for dtype in [GgmlDType::Q8_0, GgmlDType::Q4_0, GgmlDType::Q4_1] {
            let bytes = leak(tiny_gguf(&TinySpec {
                arch,
                dtype,
                seed: 3,
            }));
            let steps: [&[u32]; 3] = [&prompt, &[5], &[77]];
            let (ours, theirs) = both(bytes, &steps);
            for (i, (o, t)) in ours.iter().zip(&theirs).enumerate() {
                assert_close(o, t, &format!("{arch} {dtype:?} step {i}"));
            }
        }
    }
}

#[test]
fn results_do_not_depend_on_batching_or_kernels() {
    let pool = Pool::new(2);
    let tokens: Vec<u32> = (0..11).map(|i| (i * 29 % VOCAB) as u32).collect();
    for arch in ARCHS {
        let bytes = tiny_gguf(&TinySpec {
            arch,
            dtype: GgmlDType::Q4_1,
            seed: 9,
        });
        let model = Model::load(&bytes).unwrap();
        let run = |splits: &[usize]| {
            let mut cache = KvCache::default();
            let mut scratch = Scratch::default();
            let mut start = 0;
            let mut last = Vec::new();
            for &end in splits {
                last = model
                    .forward(&pool, &mut cache, &tokens[start..end], &mut scratch)
                    .unwrap();
                start = end;
            }
            last
        };
        let whole = run(&[11]);
        assert_eq!(bits(&run(&[4, 5, 11])), bits(&whole), "{arch}: split");
        assert_eq!(
            bits(&run(&(1..=11).collect::<Vec<_>>())),
            bits(&whole),
            "{arch}: one by one"
        );
        // A cache cut back and run again gives the same logits.
        let mut cache = KvCache::default();
        let mut scratch = Scratch::default();
        model
            .forward(&pool, &mut cache, &tokens, &mut scratch)
            .unwrap();
        cache.truncate(6);
        let again = model
            .forward(&pool, &mut cache, &tokens[6..], &mut scratch)
            .unwrap();
        assert_eq!(bits(&again), bits(&whole), "{arch}: truncated cache");
        // The logits after every token are those of the prompt cut after that token.
        let mut cache = KvCache::default();
        let mut scratch = Scratch::default();
        let all = model
            .forward_all(&pool, &mut cache, &tokens, &mut scratch)
            .unwrap();
        assert_eq!(all.len(), tokens.len());
        assert_eq!(cache.len, tokens.len());
        assert_eq!(bits(&all[10]), bits(&whole), "{arch}: every token, last");
        assert_eq!(bits(&all[3]), bits(&run(&[4])), "{arch}: every token, 4th");
    }
}

#[test]
fn every_instruction_set_runs_a_whole_model_to_the_same_bits() {
    let pool = Pool::new(2);
    let tokens: Vec<u32> = (0..9).map(|i| (i * 31 % VOCAB) as u32).collect();
    for arch in ARCHS {
        let bytes = tiny_gguf(&TinySpec {
            arch,
            dtype: GgmlDType::Q4_0,
            seed: 5,
        });
        let model = Model::load(&bytes).unwrap();
        let run = |isa: Isa| {
            simd::with(isa, || {
                let mut cache = KvCache::default();
                let mut s = Scratch::default();
                let a = model.forward(&pool, &mut cache, &tokens, &mut s).unwrap();
                let b = model.forward(&pool, &mut cache, &[3], &mut s).unwrap();
                [a, b]
                    .concat()
                    .iter()
                    .map(|x| x.to_bits())
                    .collect::<Vec<_>>()
            })
        };
        let reference = run(Isa::Scalar);
        for isa in simd::available() {
            assert_eq!(run(isa), reference, "{arch}: {isa:?}");
        }
    }
}

#[test]
fn bad_files_and_inputs_are_errors() {
    assert!(Model::load(b"not a gguf file").is_err());
    let bytes = tiny_gguf(&TinySpec {
        arch: "llama",
        dtype: GgmlDType::Q8_0,
        seed: 1,
    });
    assert!(Model::load(&bytes[..bytes.len() / 2]).is_err(), "truncated");
    let model = Model::load(&bytes).unwrap();
    let pool = Pool::new(1);
    let mut cache = KvCache::default();
    let mut s = Scratch::default();
    assert!(model.forward(&pool, &mut cache, &[], &mut s).is_err());
    assert!(
        model
            .forward(&pool, &mut cache, &[VOCAB as u32], &mut s)
            .is_err()
    );
    let full: Vec<u32> = vec![1; model.config.context + 1];
    assert!(model.forward(&pool, &mut cache, &full, &mut s).is_err());
    assert_eq!(cache.len, 0, "a refused run leaves the cache as it was");
}

/// Largest difference of two logit vectors.
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn the_embedded_model_is_as_close_to_exact_weights_as_candles_quantized_path() {
    let bytes = crate::inference::embedded::file(&format!(
        "{}/model.gguf",
        crate::inference::embedded::CHAT_MODEL
    ))
    .unwrap();
    // "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n" and two more tokens.
    let prompt: Vec<u32> = vec![1, 4093, 198, 19556, 2, 198, 1, 520, 9531, 198];
    let steps: [&[u32]; 3] = [&prompt, &[19556], &[28]];
    let (ours, theirs) = both(bytes, &steps);
    // The exact weights: the previous decoder's dense f32 path over the whole sequence.
    let mut dense = Baseline::load(bytes, LoadOptions::default()).unwrap();
    let mut seq = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        seq.extend_from_slice(step);
        dense.truncate(0).unwrap();
        let exact = dense.forward(&seq).unwrap().to_vec1::<f32>().unwrap();
        let (engine, candle) = (max_diff(&ours[i], &exact), max_diff(&theirs[i], &exact));
        eprintln!("step {i}: from exact weights, engine {engine:.3}, candle quantized {candle:.3}");
        // Both quantize activations to 8 bits; the engine may not stray much further.
        assert!(
            engine <= 1.5 * candle + 0.1,
            "step {i}: {engine} vs {candle}"
        );
        let mut top: Vec<usize> = (0..ours[i].len()).collect();
        top.sort_by(|&a, &b| ours[i][b].total_cmp(&ours[i][a]));
        assert!(top[..3].contains(&argmax(&exact)), "step {i}: top choice");
    }
}

#[test]
fn a_batch_of_sequences_computes_what_each_computes_alone() {
    let pool = Pool::new(2);
    let bytes = tiny_gguf(&TinySpec {
        arch: "qwen2",
        dtype: GgmlDType::Q4_1,
        seed: 4,
    });
    let model = Model::load(&bytes).unwrap();
    let prompts: [&[u32]; 3] = [&[1, 2, 3, 4, 5], &[9], &[7, 7, 8]];
    let mut s = Scratch::default();
    let alone: Vec<Vec<f32>> = prompts
        .iter()
        .map(|p| {
            let mut cache = KvCache::default();
            model.forward(&pool, &mut cache, p, &mut s).unwrap();
            model.forward(&pool, &mut cache, &[11], &mut s).unwrap()
        })
        .collect();
    let mut caches: Vec<KvCache> = (0..3).map(|_| KvCache::default()).collect();
    // Prompts of different lengths in one pass, then one token each in the next.
    for round in 0..2 {
        let mut steps: Vec<Step> = caches
            .iter_mut()
            .zip(prompts)
            .map(|(cache, p)| Step {
                cache,
                tokens: if round == 0 { p } else { &[11] },
            })
            .collect();
        let out = model.forward_batch(&pool, &mut steps, &mut s).unwrap();
        if round == 1 {
            for (o, a) in out.iter().zip(&alone) {
                assert_eq!(bits(o), bits(a));
            }
        }
    }
    assert_eq!(caches.iter().map(|c| c.len).collect::<Vec<_>>(), [6, 2, 4]);
}
