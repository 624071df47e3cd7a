//! The float operations of a transformer step (norms, rotary embeddings, attention, gated
//! activations), written so that every sum runs in a fixed order: the compiler may vectorize
//! them but not reorder them, so they give the same bits on every CPU.

use super::quant::{LANES, hsum};

/// Σ a·b over eight lanes, reduced by [`hsum`]; `a.len()` a multiple of 8.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    for (ca, cb) in a.chunks_exact(LANES).zip(b.chunks_exact(LANES)) {
        for l in 0..LANES {
            acc[l] = ca[l].mul_add(cb[l], acc[l]);
        }
    }
    let mut s = hsum(acc);
    let tail = a.len() / LANES * LANES;
    for i in tail..a.len() {
        s = a[i].mul_add(b[i], s);
    }
    s
}

/// RMS normalisation of one vector: x / sqrt(mean(x²) + eps) · w (· (1 + w) for `plus_one`).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, plus_one: bool, out: &mut [f32]) {
    let mean = dot(x, x) / x.len() as f32;
    let scale = 1.0 / (mean + eps).sqrt();
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        let g = if plus_one { 1.0 + g } else { g };
        *o = v * scale * g;
    }
}

/// e^x to about one part in 10⁷, the same bits everywhere (no platform libm).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let k = (x * LOG2E + 0.5).floor();
    let r = k.mul_add(-LN2_HI, x);
    let r = k.mul_add(-LN2_LO, r);
    let mut p: f32 = 1.0 / 720.0;
    p = p.mul_add(r, 1.0 / 120.0);
    p = p.mul_add(r, 1.0 / 24.0);
    p = p.mul_add(r, 1.0 / 6.0);
    p = p.mul_add(r, 0.5);
    p = p.mul_add(r, 1.0);
    p = p.mul_add(r, 1.0);
    p * f32::from_bits(((k as i32 + 127) as u32) << 23)
}

/// tanh from [`exp`].
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    let t = (1.0 - e) / (1.0 + e);
    t.copysign(x)
}

/// SiLU(gate) · up, in place over `gate`.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + exp(-*g)) * u;
    }
}

/// GELU (tanh approximation)(gate) · up, in place over `gate`.
pub fn gelu_mul(gate: &mut [f32], up: &[f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/π)
    for (g, &u) in gate.iter_mut().zip(up) {
        let x = *g;
        *g = 0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x))) * u;
    }
}

/// How a head's dimensions are paired for the rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (2i, 2i+1): llama as GGUF files store it.
    Interleaved,
    /// Pairs (i, i + d/2): qwen, gemma, phi3.
    Halves,
}

/// Rotation tables: cos and sin of position × frequency, `context × dim/2` each.
#[derive(Debug, Clone)]
pub struct Rope {
    pub dim: usize,
    pub style: RopeStyle,
    cos: Vec<f32>,
    sin: Vec<f32>,
}

impl Rope {
    pub fn new(dim: usize, base: f32, context: usize, style: RopeStyle) -> Rope {
        let half = dim / 2;
        let theta: Vec<f64> = (0..half)
            .map(|i| 1.0 / libm::pow(base as f64, (2 * i) as f64 / dim as f64))
            .collect();
        let mut cos = Vec::with_capacity(context * half);
        let mut sin = Vec::with_capacity(context * half);
        for p in 0..context {
            for t in &theta {
                let a = p as f64 * t;
                cos.push(libm::cos(a) as f32);
                sin.push(libm::sin(a) as f32);
            }
        }
        Rope {
            dim,
            style,
            cos,
            sin,
        }
    }

    pub fn context(&self) -> usize {
        self.cos.len() / (self.dim / 2).max(1)
    }

    /// Rotates the first `dim` values of every head in `x` (heads of `head_dim`) for `pos`.
    pub fn apply(&self, x: &mut [f32], head_dim: usize, pos: usize) {
        let half = self.dim / 2;
        let cos = &self.cos[pos * half..(pos + 1) * half];
        let sin = &self.sin[pos * half..(pos + 1) * half];
        for head in x.chunks_exact_mut(head_dim) {
            for i in 0..half {
                let (a, b) = match self.style {
                    RopeStyle::Interleaved => (2 * i, 2 * i + 1),
                    RopeStyle::Halves => (i, i + half),
                };
                let (x0, x1) = (head[a], head[b]);
                head[a] = x0 * cos[i] - x1 * sin[i];
                head[b] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}

/// Softmax of `s` in place.
pub fn softmax(s: &mut [f32]) {
    let max = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut acc = [0f32; LANES];
    let mut chunks = s.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for l in 0..LANES {
            c[l] = exp(c[l] - max);
            acc[l] += c[l];
        }
    }
    let mut sum = hsum(acc);
    for v in chunks.into_remainder() {
        *v = exp(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in s.iter_mut() {
        *v *= inv;
    }
}

/// One query head against keys and values `0..len` of a cache laid out `[pos][kv_heads][dim]`:
/// writes Σ softmax(q·k·scale)·v to `out`. `window` keeps only the last that many positions;
/// `softcap` squashes the scores as cap·tanh(s/cap).
#[allow(clippy::too_many_arguments)]
pub fn attend(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    kv_head: usize,
    kv_stride: usize,
    len: usize,
    window: Option<usize>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let dim = q.len();
    let first = window.map_or(0, |w| len.saturating_sub(w));
    scores.clear();
    for p in first..len {
        let k = &keys[p * kv_stride + kv_head * dim..][..dim];
        scores.push(dot(q, k) * scale);
    }
    softmax(scores);
    out.fill(0.0);
    for (p, &w) in (first..len).zip(scores.iter()) {
        let v = &values[p * kv_stride + kv_head * dim..][..dim];
        for (o, &x) in out.iter_mut().zip(v) {
            *o = w.mul_add(x, *o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_tanh_are_accurate() {
        for i in -800..=800 {
            let x = i as f32 / 10.0;
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            if x > -80.0 {
                assert!(
                    ((got - want) / want).abs() < 1e-6,
                    "exp({x}) = {got}, want {want}"
                );
            }
            assert!(
                (tanh(x) as f64 - (x as f64).tanh()).abs() < 1e-6,
                "tanh({x})"
            );
        }
    }

    #[test]
    fn attention_weights_the_values_by_similarity() {
        // Two positions of one kv head: the query matches the second key.
        let keys = [0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 10.0];
        let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let q = [0.0, 0.0, 0.0, 1.0];
        let mut out = [0f32; 4];
        let mut scores = Vec::new();
        attend(
            &q,
            &keys,
            &values,
            0,
            4,
            2,
            None,
            1.0,
            &mut scores,
            &mut out,
        );
        assert!((out[0] - 5.0).abs() < 1e-3, "{out:?}");
        // A window of one sees only the last position.
        attend(
            &q,
            &keys,
            &values,
            0,
            4,
            2,
            Some(1),
            0.0,
            &mut scores,
            &mut out,
        );
        assert_eq!(out, [5.0, 6.0, 7.0, 8.0]);
        let mut s = vec![1.0, 2.0, 3.0];
        softmax(&mut s);
        assert!((s.iter().sum::<f32>() - 1.0).abs() < 1e-6 && s[2] > s[1]);
    }

    #[test]
    fn rotation_keeps_lengths_and_position_zero_is_identity() {
        for style in [RopeStyle::Interleaved, RopeStyle::Halves] {
            let rope = Rope::new(8, 10_000.0, 16, style);
            let orig: Vec<f32> = (0..16).map(|i| i as f32 / 7.0).collect();
            let mut x = orig.clone();
            rope.apply(&mut x, 8, 0);
            assert_eq!(x, orig);
            rope.apply(&mut x, 8, 5);
            let n = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>();
            assert!((n(&x) - n(&orig)).abs() < 1e-4);
        }
    }
}
