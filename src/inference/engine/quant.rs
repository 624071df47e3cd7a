//! The engine's two weight forms and its activation form, and the one definition of their dot
//! product that every kernel reproduces bit for bit.
//!
//! Weights are rows of 32-value blocks, either 4-bit codes with a scale and a minimum per block
//! (`Q4`: value = d·q + m, q in 0..16 — what Q4_0, Q4_1 and Q4_K files hold) or 8-bit signed
//! codes with a scale (`Q8`: value = d·q, q in -127..=127). Activations are quantized per block
//! to 8 bits on the fly. The integer part of a block's dot product is exact; the float part is
//! accumulated in a fixed order ([`dot_reference`]) that the SIMD kernels follow exactly, so the
//! engine's numbers do not depend on which CPU runs it.

use candle_core::quantized::GgmlDType;
use half::f16;

use super::pool::{Disjoint, Pool};

/// Values per block.
pub const BLOCK: usize = 32;
/// Float lanes of the accumulators that define the summation order.
pub const LANES: usize = 8;

/// A weight matrix of `rows` × `cols` (cols a multiple of [`BLOCK`]).
#[derive(Debug, Clone)]
pub struct QMatrix {
    pub rows: usize,
    pub cols: usize,
    pub codes: Codes,
    /// Scale of each block, row-major: `rows × cols/32` (half precision, as GGUF files store
    /// it: decoding reads every weight once per token, so fewer bytes is faster).
    pub scale: Vec<f16>,
}

#[derive(Debug, Clone)]
pub enum Codes {
    /// 16 bytes per block: byte j holds value j in its low nibble and value j+16 in its high.
    Q4 { nibbles: Vec<u8>, min: Vec<f16> },
    /// 32 signed bytes per block.
    Q8(Vec<i8>),
}

impl QMatrix {
    pub fn blocks_per_row(&self) -> usize {
        self.cols / BLOCK
    }

    /// Bytes the matrix occupies.
    pub fn bytes(&self) -> usize {
        let codes = match &self.codes {
            Codes::Q4 { nibbles, min } => nibbles.len() + min.len() * 2,
            Codes::Q8(c) => c.len(),
        };
        codes + self.scale.len() * 2
    }

    /// Quantizes f32 rows to the 8-bit form (scale = max |value| / 127 per block).
    pub fn quantize_q8(data: &[f32], rows: usize, cols: usize) -> QMatrix {
        assert_eq!(data.len(), rows * cols);
        assert_eq!(cols % BLOCK, 0);
        let mut codes = vec![0i8; rows * cols];
        let mut scale = vec![f16::ZERO; rows * cols / BLOCK];
        for (b, (src, dst)) in data
            .chunks_exact(BLOCK)
            .zip(codes.chunks_exact_mut(BLOCK))
            .enumerate()
        {
            // The codes are made with the scale as it is stored.
            let d = f16::from_f32(amax(src) / 127.0);
            quantize_with(src, dst, d.to_f32());
            scale[b] = d;
        }
        QMatrix {
            rows,
            cols,
            codes: Codes::Q8(codes),
            scale,
        }
    }

    /// Reads a GGUF tensor's raw bytes. Q4_0, Q4_1 and Q8_0 are taken as they are (exactly);
    /// any other type is dequantized by `dequantize` and quantized to the 8-bit form.
    pub fn from_ggml(
        dtype: GgmlDType,
        raw: &[u8],
        rows: usize,
        cols: usize,
        dequantize: impl FnOnce() -> candle_core::Result<Vec<f32>>,
    ) -> candle_core::Result<QMatrix> {
        if !cols.is_multiple_of(BLOCK) {
            candle_core::bail!("a matrix with {cols} columns is not made of 32-value blocks");
        }
        let blocks = rows * cols / BLOCK;
        let need = |size: usize| -> candle_core::Result<()> {
            if raw.len() < blocks * size {
                candle_core::bail!("the tensor data is truncated");
            }
            Ok(())
        };
        let half = |b: &[u8]| f16::from_le_bytes([b[0], b[1]]);
        match dtype {
            GgmlDType::Q4_0 | GgmlDType::Q4_1 => {
                let size = if dtype == GgmlDType::Q4_0 { 18 } else { 20 };
                need(size)?;
                let mut nibbles = Vec::with_capacity(blocks * 16);
                let mut scale = Vec::with_capacity(blocks);
                let mut min = Vec::with_capacity(blocks);
                for block in raw.chunks_exact(size).take(blocks) {
                    let d = half(block);
                    scale.push(d);
                    if dtype == GgmlDType::Q4_0 {
                        // Exact: a power-of-two multiple of a half-precision number.
                        min.push(f16::from_f32(-8.0 * d.to_f32()));
                        nibbles.extend_from_slice(&block[2..18]);
                    } else {
                        min.push(half(&block[2..]));
                        nibbles.extend_from_slice(&block[4..20]);
                    }
                }
                Ok(QMatrix {
                    rows,
                    cols,
                    codes: Codes::Q4 { nibbles, min },
                    scale,
                })
            }
            GgmlDType::Q8_0 => {
                need(34)?;
                let mut codes = Vec::with_capacity(blocks * BLOCK);
                let mut scale = Vec::with_capacity(blocks);
                for block in raw.chunks_exact(34).take(blocks) {
                    scale.push(half(block));
                    // -128 would overflow the sign trick of the kernels; files written by
                    // llama.cpp never hold it.
                    codes.extend(block[2..].iter().map(|&c| (c as i8).max(-127)));
                }
                Ok(QMatrix {
                    rows,
                    cols,
                    codes: Codes::Q8(codes),
                    scale,
                })
            }
            _ => Ok(QMatrix::quantize_q8(&dequantize()?, rows, cols)),
        }
    }

    /// Row `r` as f32 values.
    pub fn row(&self, r: usize, out: &mut [f32]) {
        let nb = self.blocks_per_row();
        for b in 0..nb {
            let i = r * nb + b;
            let d = self.scale[i].to_f32();
            let dst = &mut out[b * BLOCK..(b + 1) * BLOCK];
            match &self.codes {
                Codes::Q4 { nibbles, min } => {
                    let q = &nibbles[i * 16..(i + 1) * 16];
                    for j in 0..16 {
                        let m = min[i].to_f32();
                        dst[j] = d.mul_add((q[j] & 15) as f32, m);
                        dst[j + 16] = d.mul_add((q[j] >> 4) as f32, m);
                    }
                }
                Codes::Q8(c) => {
                    for (o, &q) in dst.iter_mut().zip(&c[i * BLOCK..(i + 1) * BLOCK]) {
                        *o = d * q as f32;
                    }
                }
            }
        }
    }
}

fn amax(src: &[f32]) -> f32 {
    src.iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Codes in -127..=127 for `src` at scale `d`.
fn quantize_with(src: &[f32], dst: &mut [i8], d: f32) {
    let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
    for (o, v) in dst.iter_mut().zip(src) {
        *o = (v * inv).round().clamp(-127.0, 127.0) as i8;
    }
}

/// Quantizes one block of activations; returns its scale.
fn quantize_block(src: &[f32], dst: &mut [i8]) -> f32 {
    let d = amax(src) / 127.0;
    quantize_with(src, dst, d);
    d
}

/// Activations of `n` vectors, quantized per block.
#[derive(Debug, Default, Clone)]
pub struct QActs {
    pub n: usize,
    pub cols: usize,
    pub codes: Vec<i8>,
    pub scale: Vec<f32>,
    /// scale × the sum of the block's codes (the Q4 minimum's partner).
    pub sum: Vec<f32>,
}

impl QActs {
    /// Quantizes `x` (`n` rows of `cols`) on `pool`, reusing this buffer's memory.
    pub fn quantize_on(&mut self, pool: &Pool, x: &[f32], cols: usize) {
        assert_eq!(cols % BLOCK, 0);
        let blocks = x.len() / BLOCK;
        self.n = x.len() / cols;
        self.cols = cols;
        self.codes.resize(x.len(), 0);
        self.scale.resize(blocks, 0.0);
        self.sum.resize(blocks, 0.0);
        let codes = Disjoint::new(&mut self.codes);
        let scale = Disjoint::new(&mut self.scale);
        let sum = Disjoint::new(&mut self.sum);
        let chunks = blocks.div_ceil(BLOCKS_PER_CHUNK);
        pool.run(chunks, &|c| {
            // SAFETY: each chunk writes only its own blocks.
            let (codes, scale, sum) = unsafe { (codes.all(), scale.all(), sum.all()) };
            for b in c * BLOCKS_PER_CHUNK..((c + 1) * BLOCKS_PER_CHUNK).min(blocks) {
                let dst = &mut codes[b * BLOCK..(b + 1) * BLOCK];
                let d = quantize_block(&x[b * BLOCK..(b + 1) * BLOCK], dst);
                scale[b] = d;
                sum[b] = d * dst.iter().map(|&c| c as i32).sum::<i32>() as f32;
            }
        });
    }

    /// [`QActs::quantize_on`] on the calling thread alone.
    pub fn quantize(&mut self, x: &[f32], cols: usize) {
        self.quantize_on(&Pool::new(1), x, cols)
    }
}

/// Blocks of activations quantized per chunk of work.
const BLOCKS_PER_CHUNK: usize = 256;

/// The fixed reduction of eight lanes: (l0+l4 + l2+l6) + (l1+l5 + l3+l7), as the SIMD
/// kernels' halving adds produce it.
#[inline(always)]
pub fn hsum(l: [f32; LANES]) -> f32 {
    let a = [l[0] + l[4], l[1] + l[5], l[2] + l[6], l[3] + l[7]];
    let b = [a[0] + a[2], a[1] + a[3]];
    b[0] + b[1]
}

/// Dot product of weight row `r` with activation vector `t`: the definition every kernel
/// follows. Lane j of block b gets the exact integer sum of values 4j..4j+4 of the block,
/// scaled by the product of the two block scales and fused-added into float lane j, block
/// after block; the minimum terms go to lane b mod 8 likewise; both lane sets are reduced by
/// [`hsum`] and added.
pub fn dot_reference(w: &QMatrix, r: usize, x: &QActs, t: usize) -> f32 {
    let nb = w.blocks_per_row();
    let mut acc = [0f32; LANES];
    let mut macc = [0f32; LANES];
    for b in 0..nb {
        let wi = r * nb + b;
        let xi = t * nb + b;
        let xq = &x.codes[xi * BLOCK..(xi + 1) * BLOCK];
        let mut values = [0i32; BLOCK];
        match &w.codes {
            Codes::Q4 { nibbles, min } => {
                let q = &nibbles[wi * 16..(wi + 1) * 16];
                for j in 0..16 {
                    values[j] = (q[j] & 15) as i32;
                    values[j + 16] = (q[j] >> 4) as i32;
                }
                macc[b % LANES] = min[wi].to_f32().mul_add(x.sum[xi], macc[b % LANES]);
            }
            Codes::Q8(c) => {
                for (v, &q) in values.iter_mut().zip(&c[wi * BLOCK..(wi + 1) * BLOCK]) {
                    *v = q as i32;
                }
            }
        }
        let ds = w.scale[wi].to_f32() * x.scale[xi];
        for (j, lane) in acc.iter_mut().enumerate() {
            let isum: i32 = (0..4)
                .map(|i| values[4 * j + i] * xq[4 * j + i] as i32)
                .sum();
            *lane = ds.mul_add(isum as f32, *lane);
        }
    }
    match w.codes {
        Codes::Q4 { .. } => hsum(acc) + hsum(macc),
        Codes::Q8(_) => hsum(acc),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Deterministic values in about -1..1.
    pub fn noise(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// A Q4 matrix made from f32 values the way Q4_1 files are (scale and minimum per block).
    pub fn q4_from(data: &[f32], rows: usize, cols: usize) -> QMatrix {
        let mut nibbles = Vec::new();
        let mut scale = Vec::new();
        let mut min = Vec::new();
        for block in data.chunks_exact(BLOCK) {
            let lo = block.iter().cloned().fold(f32::MAX, f32::min);
            let hi = block.iter().cloned().fold(f32::MIN, f32::max);
            let d = f16::from_f32((hi - lo) / 15.0);
            let lo = f16::from_f32(lo);
            let inv = if d.to_f32() > 0.0 {
                1.0 / d.to_f32()
            } else {
                0.0
            };
            let q: Vec<u8> = block
                .iter()
                .map(|v| ((v - lo.to_f32()) * inv).round().clamp(0.0, 15.0) as u8)
                .collect();
            nibbles.extend((0..16).map(|j| q[j] | (q[j + 16] << 4)));
            scale.push(d);
            min.push(lo);
        }
        QMatrix {
            rows,
            cols,
            codes: Codes::Q4 { nibbles, min },
            scale,
        }
    }

    #[test]
    fn the_reference_dot_product_is_close_to_the_float_one() {
        let (rows, cols) = (3, 96);
        let w = noise(rows * cols, 1);
        let x = noise(cols, 2);
        let mut acts = QActs::default();
        acts.quantize(&x, cols);
        for m in [
            q4_from(&w, rows, cols),
            QMatrix::quantize_q8(&w, rows, cols),
        ] {
            let mut row = vec![0f32; cols];
            for r in 0..rows {
                m.row(r, &mut row);
                let exact: f32 = row.iter().zip(&x).map(|(a, b)| a * b).sum();
                let got = dot_reference(&m, r, &acts, 0);
                assert!((got - exact).abs() < 0.05, "{got} vs {exact}");
            }
        }
    }

    #[test]
    fn ggml_blocks_are_read_exactly() {
        // One Q4_1 block: d = 0.5, m = -1, codes 0..16 then 15..0.
        let mut raw = Vec::new();
        raw.extend(f16::from_f32(0.5).to_le_bytes());
        raw.extend(f16::from_f32(-1.0).to_le_bytes());
        raw.extend((0..16u8).map(|j| j | ((15 - j) << 4)));
        let m = QMatrix::from_ggml(GgmlDType::Q4_1, &raw, 1, 32, || unreachable!()).unwrap();
        let mut row = vec![0f32; 32];
        m.row(0, &mut row);
        assert_eq!(row[3], 0.5 * 3.0 - 1.0);
        assert_eq!(row[16], 0.5 * 15.0 - 1.0);
        // Too few bytes is an error, not a panic.
        assert!(QMatrix::from_ggml(GgmlDType::Q4_1, &raw[..10], 1, 32, || unreachable!()).is_err());
        assert!(QMatrix::from_ggml(GgmlDType::Q8_0, &raw, 1, 33, || unreachable!()).is_err());
    }
}
