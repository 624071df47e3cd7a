//! `edgestra bench`: speed and memory of a chat model (the embedded one, or `--model PATH`) and
//! of the embedded embedding model on this machine. Every figure is the median of several runs
//! and is printed next to a baseline measured in the same run: the previous decoder (candle's
//! kernels over a dense f32 copy), llama.cpp on the same file when its bench script is there,
//! and the memory-bandwidth ceiling of decoding from a measured copy rate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::baseline::Baseline;
use super::baseline::llama::LoadOptions;
use super::decoder::Decoder;
use super::embedded::{CHAT_MODEL, EMBEDDING_MODEL};
use super::engine::pool::Disjoint;
use super::engine::{KvCache, Pool, Scratch, Step};
use super::local::Source;
use super::{InferenceError, embedded};

/// Peak resident memory of this process so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib() -> f64 {
    status_mib("self", "VmHWM:")
}

/// Peak resident memory of the process `pid` so far, in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mib_of(pid: u32) -> f64 {
    status_mib(&pid.to_string(), "VmHWM:")
}

/// Resident memory of this process now, in MiB (Linux; 0 elsewhere).
pub fn rss_mib() -> f64 {
    status_mib("self", "VmRSS:")
}

fn status_mib(process: &str, key: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{process}/status")).unwrap_or_default();
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

/// What to measure.
pub struct Options {
    pub model: Option<PathBuf>,
    pub prompt_tokens: usize,
    pub decode_tokens: usize,
    /// Runs of each measurement (the median is printed).
    pub runs: usize,
}

/// The middle of `v` (which must not be empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn failed(e: candle_core::Error) -> InferenceError {
    InferenceError::Failed(e.to_string())
}

/// Tokens for a prompt of `n`: the vocabulary's first ordinary ids, cycled (any tokens do for
/// timing; the same ones go to every decoder).
fn prompt(vocab: usize, n: usize) -> Vec<u32> {
    // Past the special tokens at the start of most vocabularies, when there is room.
    let (first, span) = if vocab > 300 {
        (100, vocab - 200)
    } else {
        (0, vocab.max(1))
    };
    (0..n).map(|i| (first + (i * 37) % span) as u32).collect()
}

/// The two decoders measured side by side.
trait Timed {
    fn reset(&mut self) -> Result<(), InferenceError>;
    fn run(&mut self, tokens: &[u32]) -> Result<(), InferenceError>;
}

impl Timed for Decoder {
    fn reset(&mut self) -> Result<(), InferenceError> {
        self.truncate(0);
        Ok(())
    }
    fn run(&mut self, tokens: &[u32]) -> Result<(), InferenceError> {
        self.forward(tokens).map(drop).map_err(failed)
    }
}

impl Timed for Baseline {
    fn reset(&mut self) -> Result<(), InferenceError> {
        self.truncate(0).map_err(failed)
    }
    fn run(&mut self, tokens: &[u32]) -> Result<(), InferenceError> {
        self.forward(tokens).map(drop).map_err(failed)
    }
}

/// (prefill tokens/s, decode tokens/s), medians of `runs`.
fn speed(
    d: &mut dyn Timed,
    tokens: &[u32],
    decode: usize,
    runs: usize,
) -> Result<(f64, f64), InferenceError> {
    let (mut pre, mut dec) = (Vec::new(), Vec::new());
    d.reset()?;
    d.run(&tokens[..8])?; // warm up
    for _ in 0..runs {
        d.reset()?;
        let started = Instant::now();
        d.run(tokens)?;
        pre.push(tokens.len() as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        for i in 0..decode {
            d.run(&tokens[i % tokens.len()..][..1])?;
        }
        dec.push(decode as f64 / started.elapsed().as_secs_f64());
    }
    Ok((median(pre), median(dec)))
}

/// Decode tokens/s of the engine with `n` busy processes beside it.
fn decode_beside_busy(
    d: &mut Decoder,
    tokens: &[u32],
    decode: usize,
    runs: usize,
    busy: usize,
) -> Result<f64, InferenceError> {
    let mut hogs: Vec<std::process::Child> = (0..busy)
        .filter_map(|_| {
            std::process::Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .ok()
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let result = speed(d, &tokens[..32], decode, runs).map(|(_, dec)| dec);
    for h in &mut hogs {
        let _ = h.kill();
        let _ = h.wait();
    }
    result
}

/// Aggregate decode tokens/s of `streams` sequences sharing each pass.
fn batched_decode(
    d: &Decoder,
    tokens: &[u32],
    decode: usize,
    streams: usize,
    runs: usize,
) -> Result<f64, InferenceError> {
    let pool = Pool::global();
    let mut scratch = Scratch::default();
    let mut rates = Vec::new();
    for _ in 0..runs {
        let mut caches: Vec<KvCache> = (0..streams).map(|_| KvCache::default()).collect();
        for (i, cache) in caches.iter_mut().enumerate() {
            d.model
                .forward(pool, cache, &tokens[i..i + 32], &mut scratch)
                .map_err(failed)?;
        }
        let started = Instant::now();
        for k in 0..decode {
            let next: Vec<[u32; 1]> = (0..streams).map(|i| [tokens[(k + i) % 64]]).collect();
            let mut steps: Vec<Step> = caches
                .iter_mut()
                .zip(&next)
                .map(|(cache, t)| Step { cache, tokens: t })
                .collect();
            d.model
                .forward_batch(pool, &mut steps, &mut scratch)
                .map_err(failed)?;
        }
        rates.push((decode * streams) as f64 / started.elapsed().as_secs_f64());
    }
    Ok(median(rates))
}

/// Bytes per second of a large copy on all the inference threads (the bound of any decode,
/// which reads every weight once per token).
fn copy_rate() -> f64 {
    const SIZE: usize = 256 << 20;
    const CHUNK: usize = 4 << 20;
    let src = vec![1u8; SIZE];
    let mut dst = vec![0u8; SIZE];
    let mut rates = Vec::new();
    for _ in 0..3 {
        let out = Disjoint::new(&mut dst);
        let started = Instant::now();
        Pool::global().run(SIZE / CHUNK, &|c| {
            // SAFETY: each chunk writes only its own range.
            let dst = unsafe { &mut out.all()[c * CHUNK..(c + 1) * CHUNK] };
            dst.copy_from_slice(&src[c * CHUNK..(c + 1) * CHUNK]);
        });
        // A copy reads and writes every byte.
        rates.push(2.0 * SIZE as f64 / started.elapsed().as_secs_f64());
        std::hint::black_box(&dst);
    }
    median(rates)
}

/// llama.cpp's figures on `file`, from `../shared/bench/llamacpp/run.sh` when it is there.
fn llama_cpp(file: &Path, threads: usize) -> Option<(f64, f64, f64)> {
    let script = ["../shared/bench/llamacpp/run.sh", "bench/llamacpp/run.sh"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())?;
    println!(
        "running {} (llama.cpp on the same file) …",
        script.display()
    );
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(file)
        .arg(threads.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("llama.cpp"))?;
    let number_after = |key: &str| -> Option<f64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.trim_start()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    };
    Some((
        number_after("load")?,
        number_after("prefill")?,
        number_after("decode")?,
    ))
}

/// Runs the benchmark and prints one line per measurement.
pub fn run(opts: &Options) -> Result<(), InferenceError> {
    let pool = Pool::global();
    let isa = super::engine::simd::current();
    println!(
        "edgestra bench — {} inference threads, kernels: {} (EDGESTRA_SIMD), median of {} runs",
        pool.threads(),
        isa.name(),
        opts.runs
    );
    let (bytes, file): (&'static [u8], Option<PathBuf>) = match &opts.model {
        Some(path) => {
            let data = std::fs::read(path).map_err(|e| {
                InferenceError::Load(format!("cannot read {}: {e}", path.display()))
            })?;
            (Box::leak(data.into_boxed_slice()), Some(path.clone()))
        }
        None => {
            let bytes = embedded::file(&format!("{CHAT_MODEL}/model.gguf"))
                .ok_or_else(|| InferenceError::Load("the chat model is not embedded".into()))?;
            let on_disk = std::env::var("EDGESTRA_MODELS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models")))
                .join(CHAT_MODEL)
                .join("model.gguf");
            (bytes, on_disk.is_file().then_some(on_disk))
        }
    };

    // The engine: load, then memory with the embedding model loaded too.
    let mut loads = Vec::new();
    let mut decoder = None;
    for _ in 0..opts.runs {
        let started = Instant::now();
        decoder = Some(Decoder::load(bytes).map_err(failed)?);
        loads.push(started.elapsed().as_secs_f64());
    }
    let mut decoder = decoder.expect("at least one run");
    let config = decoder.model.config.clone();
    let room = config.context.saturating_sub(opts.decode_tokens + 1);
    let tokens = prompt(config.vocab, opts.prompt_tokens.min(room));
    if tokens.len() < 64 {
        return Err(InferenceError::InvalidRequest(format!(
            "the benchmark needs a prompt of at least 64 tokens and room to decode after it (prompt {}, decode {}, context {})",
            opts.prompt_tokens, opts.decode_tokens, config.context
        )));
    }
    embedded::release(bytes);
    let embedder = super::local::load_bert(&Source::Embedded(EMBEDDING_MODEL.into()))?;
    let (pre, dec) = speed(&mut decoder, &tokens, opts.decode_tokens, opts.runs)?;
    let rss = rss_mib();
    let weights = decoder.model.weight_bytes() as f64;
    println!(
        "model: {} ({} layers, {} wide, vocabulary {}), weights in memory {:.0} MiB",
        config.arch,
        config.n_layer,
        config.hidden,
        config.vocab,
        weights / (1 << 20) as f64
    );
    println!(
        "RSS with the chat and embedding models loaded: {rss:.0} MiB (target ≤ 400 for the defaults)"
    );

    let ceiling = copy_rate() / weights;
    let mut batched = Vec::new();
    for streams in [1, 4, 8] {
        batched.push((
            streams,
            batched_decode(
                &decoder,
                &tokens,
                opts.decode_tokens.min(64),
                streams,
                opts.runs,
            )?,
        ));
    }
    let busy = decode_beside_busy(&mut decoder, &tokens, opts.decode_tokens, opts.runs, 1)?;
    drop(decoder);

    // The previous decoder, same tokens.
    embedded::release(bytes);
    let started = Instant::now();
    let mut baseline = Baseline::load(bytes, LoadOptions::default()).map_err(failed)?;
    let base_load = started.elapsed().as_secs_f64();
    let (base_pre, base_dec) = speed(&mut baseline, &tokens, opts.decode_tokens, opts.runs)?;
    drop(baseline);
    embedded::release(bytes);

    let load = median(loads);
    println!(
        "chat model load: {load:.2} s (previous decoder {base_load:.2} s, ratio {:.2}x faster)",
        base_load / load
    );
    println!(
        "prefill ({} tokens): {pre:.0} tokens/s (previous {base_pre:.0}, ratio {:.2}x)",
        tokens.len(),
        pre / base_pre
    );
    println!(
        "decode ({} tokens): {dec:.1} tokens/s (previous {base_dec:.1}, ratio {:.2}x; bandwidth ceiling {ceiling:.0}, {:.0} % of it)",
        opts.decode_tokens,
        dec / base_dec,
        100.0 * dec / ceiling
    );
    let one = batched[0].1;
    for (streams, rate) in &batched {
        println!(
            "batched decode, {streams} streams: {rate:.1} tokens/s in all ({:.2}x one stream)",
            rate / one
        );
    }
    println!(
        "decode beside one busy process: {busy:.1} tokens/s ({:.0} % of idle; target ≥ 45 % on 2 cores)",
        100.0 * busy / dec
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
    let mut batch = Vec::new();
    let mut single = Vec::new();
    for _ in 0..opts.runs {
        let started = Instant::now();
        embedder.embed(&refs)?;
        batch.push(refs.len() as f64 / started.elapsed().as_secs_f64());
        let started = Instant::now();
        embedder.embed(&refs[..1])?;
        single.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "embeddings: {:.0} sentences/s at batch 32, {:.1} ms at batch 1",
        median(batch),
        median(single)
    );

    match file.as_deref().and_then(|f| llama_cpp(f, pool.threads())) {
        Some((l_load, l_pre, l_dec)) => println!(
            "llama.cpp, same file and threads: load {l_load:.2} s, prefill {l_pre:.0} tokens/s, decode {l_dec:.1} tokens/s — edgestra/llama.cpp: load {:.2}x faster, prefill {:.2}x, decode {:.2}x",
            l_load / load,
            pre / l_pre,
            dec / l_dec
        ),
        None => println!(
            "llama.cpp: not measured (needs ../shared/bench/llamacpp/run.sh and the model as a file)"
        ),
    }
    Ok(())
}
