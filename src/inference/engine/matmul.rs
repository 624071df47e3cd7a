//! `out = x · Wᵀ` for quantized weights and activations, on the pool: the weight rows are cut
//! into small chunks that the threads take in turn, and each chunk runs its rows against every
//! vector (so its weights stay in cache while the vectors stream by).

use super::pool::{Disjoint, Pool};
use super::quant::{QActs, QMatrix, dot_reference};
use super::simd::{self, Isa};

/// Weight rows per chunk of work.
const CHUNK_ROWS: usize = 16;
/// Vectors one weight row meets at a time when there are many (the x86-64 kernels' tile).
#[cfg(target_arch = "x86_64")]
const WIDE_VECS: usize = 8;

/// `out[t·rows + r] = Σ_c x[t][c] · w[r][c]` for every vector t of `x` and row r of `w`.
pub fn matmul(pool: &Pool, w: &QMatrix, x: &QActs, out: &mut [f32]) {
    matmul_with(simd::current(), pool, w, x, out)
}

/// [`matmul`] with a chosen instruction set (which must be available).
pub fn matmul_with(isa: Isa, pool: &Pool, w: &QMatrix, x: &QActs, out: &mut [f32]) {
    assert_eq!(w.cols, x.cols, "matrix and activations disagree on width");
    assert_eq!(out.len(), x.n * w.rows, "output has the wrong size");
    let shared = Disjoint::new(out);
    let chunks = w.rows.div_ceil(CHUNK_ROWS);
    pool.run(chunks, &|c| {
        let rows = c * CHUNK_ROWS..((c + 1) * CHUNK_ROWS).min(w.rows);
        // SAFETY: this chunk writes only elements (t, r) with r in `rows`, which no other chunk
        // writes, and the slice outlives `pool.run`.
        let out = unsafe { shared.all() };
        rows_times_vectors(isa, w, rows, x, out);
    });
}

fn rows_times_vectors(
    isa: Isa,
    w: &QMatrix,
    rows: std::ops::Range<usize>,
    x: &QActs,
    out: &mut [f32],
) {
    let ld = w.rows;
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Vnni => {
            use super::kernels::{TILE_ROWS, TILE_VECS, tile_avx2, tile_avxvnni, tile_vnni512};
            let evex = simd::vnni_evex();
            macro_rules! tile {
                ($r:literal, $t:literal, $r0:expr, $t0:expr) => {
                    // SAFETY: `isa` was detected on this CPU; the tile lies inside the data.
                    unsafe {
                        match isa {
                            Isa::Vnni if evex => tile_vnni512::<$r, $t>(w, $r0, x, $t0, out, ld),
                            Isa::Vnni => tile_avxvnni::<$r, $t>(w, $r0, x, $t0, out, ld),
                            _ => tile_avx2::<$r, $t>(w, $r0, x, $t0, out, ld),
                        }
                    }
                };
            }
            // Many vectors (prompts, batches): one row against up to eight vectors at a time
            // keeps every accumulator in a register.
            if x.n > TILE_VECS {
                for r in rows.clone() {
                    let mut t0 = 0;
                    while t0 < x.n {
                        let nt = (x.n - t0).min(WIDE_VECS);
                        match nt {
                            8 => tile!(1, 8, r, t0),
                            4..=7 => {
                                tile!(1, 4, r, t0);
                                t0 += 4;
                                continue;
                            }
                            2 | 3 => {
                                tile!(1, 2, r, t0);
                                t0 += 2;
                                continue;
                            }
                            _ => tile!(1, 1, r, t0),
                        }
                        t0 += nt;
                    }
                }
                return;
            }
            let mut t0 = 0;
            while t0 < x.n {
                let nt = (x.n - t0).min(TILE_VECS);
                let mut r0 = rows.start;
                while r0 < rows.end {
                    let nr = (rows.end - r0).min(TILE_ROWS);
                    // Decoding streams each weight once: ask for the rows two tiles ahead now,
                    // so they arrive while these are computed.
                    if x.n <= TILE_VECS {
                        prefetch_rows(w, r0 + 2 * TILE_ROWS, TILE_ROWS);
                    }
                    match (nr, nt) {
                        (4, 2) => tile!(4, 2, r0, t0),
                        (4, _) => tile!(4, 1, r0, t0),
                        (3, 2) => tile!(3, 2, r0, t0),
                        (3, _) => tile!(3, 1, r0, t0),
                        (2, 2) => tile!(2, 2, r0, t0),
                        (2, _) => tile!(2, 1, r0, t0),
                        (_, 2) => tile!(1, 2, r0, t0),
                        _ => tile!(1, 1, r0, t0),
                    }
                    r0 += nr;
                }
                t0 += nt;
            }
        }
        _ => {
            for t in 0..x.n {
                for r in rows.clone() {
                    out[t * ld + r] = dot_reference(w, r, x, t);
                }
            }
        }
    }
}

/// Hints the cache to load weight rows `first..first + count` (those that exist).
#[cfg(target_arch = "x86_64")]
fn prefetch_rows(w: &QMatrix, first: usize, count: usize) {
    use super::quant::Codes;
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let end = (first + count).min(w.rows);
    if first >= end {
        return;
    }
    let nb = w.blocks_per_row();
    let lines = |bytes: &[u8]| {
        for off in (0..bytes.len()).step_by(64) {
            // SAFETY: prefetching is only a hint; the address lies inside the slice.
            unsafe { _mm_prefetch(bytes.as_ptr().add(off) as *const i8, _MM_HINT_T0) };
        }
    };
    let as_bytes = |v: &[half::f16]| {
        // SAFETY: f16 is two bytes without padding; the view covers the same memory.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, v.len() * 2) }
    };
    lines(as_bytes(&w.scale[first * nb..end * nb]));
    match &w.codes {
        Codes::Q4 { nibbles, min } => {
            lines(&nibbles[first * nb * 16..end * nb * 16]);
            lines(as_bytes(&min[first * nb..end * nb]));
        }
        Codes::Q8(codes) => {
            // SAFETY: i8 and u8 have the same layout.
            let bytes =
                unsafe { std::slice::from_raw_parts(codes.as_ptr() as *const u8, codes.len()) };
            lines(&bytes[first * w.cols..end * w.cols]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::quant::tests::{noise, q4_from};
    use super::*;

    #[test]
    fn every_instruction_set_computes_the_same_bits() {
        let pool = Pool::new(2);
        // Sizes that leave remainders for every tile shape, and a row with no blocks left over
        // for the minimum lanes (cols/32 = 8) as well as with some (cols/32 = 11).
        for (rows, cols, n) in [
            (37, 352, 5),
            (16, 256, 1),
            (5, 32, 3),
            (70, 576, 7),
            (9, 64, 19),
            (3, 96, 2),
        ] {
            let data = noise(rows * cols, rows as u64);
            let mut acts = QActs::default();
            acts.quantize(&noise(n * cols, 7), cols);
            for w in [
                q4_from(&data, rows, cols),
                QMatrix::quantize_q8(&data, rows, cols),
            ] {
                let mut expected = vec![0f32; n * rows];
                matmul_with(Isa::Scalar, &pool, &w, &acts, &mut expected);
                for isa in simd::available() {
                    let mut got = vec![f32::NAN; n * rows];
                    matmul_with(isa, &pool, &w, &acts, &mut got);
                    let same = got
                        .iter()
                        .zip(&expected)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{isa:?} differs from scalar at {rows}x{cols}, n={n}");
                }
            }
        }
    }
}
