//! The x86-64 matrix kernels: a tile of weight rows × activation vectors, block after block,
//! in exactly the order of [`super::quant::dot_reference`]. One body serves AVX2 and VNNI; the
//! two differ only in how the 32 byte products of a block are summed to eight 32-bit lanes,
//! which is exact either way.

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use half::f16;

use super::quant::{BLOCK, Codes, LANES, QActs, QMatrix, hsum};

/// Rows × vectors computed together (registers permitting).
pub const TILE_ROWS: usize = 4;
pub const TILE_VECS: usize = 2;

macro_rules! tile_kernel {
    ($name:ident, $features:literal, $idot:ident) => {
        /// out[t·ld + r] = dot(row r, vector t) for r in r0..r0+R, t in t0..t0+T.
        ///
        /// # Safety
        /// The CPU must have the named features; the ranges must lie inside `w`, `x`, `out`.
        #[target_feature(enable = $features)]
        pub unsafe fn $name<const R: usize, const T: usize>(
            w: &QMatrix,
            r0: usize,
            x: &QActs,
            t0: usize,
            out: &mut [f32],
            ld: usize,
        ) {
            // SAFETY: as the caller promised.
            unsafe {
                let nb = w.blocks_per_row();
                let mut acc = [[_mm256_setzero_ps(); T]; R];
                let low = _mm_set1_epi8(0x0F);
                for b in 0..nb {
                    let mut xs = [_mm256_setzero_si256(); T];
                    let mut xd = [0f32; T];
                    for t in 0..T {
                        let xi = (t0 + t) * nb + b;
                        xs[t] =
                            _mm256_loadu_si256(x.codes.as_ptr().add(xi * BLOCK) as *const __m256i);
                        xd[t] = *x.scale.get_unchecked(xi);
                    }
                    for r in 0..R {
                        let wi = (r0 + r) * nb + b;
                        let wd = f16_to_f32(*w.scale.get_unchecked(wi));
                        match &w.codes {
                            Codes::Q4 { nibbles, .. } => {
                                let raw = _mm_loadu_si128(
                                    nibbles.as_ptr().add(wi * 16) as *const __m128i
                                );
                                let lo = _mm_and_si128(raw, low);
                                let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), low);
                                let wv = _mm256_set_m128i(hi, lo);
                                for t in 0..T {
                                    let i = $idot!(wv, xs[t]);
                                    let ds = _mm256_set1_ps(wd * xd[t]);
                                    acc[r][t] =
                                        _mm256_fmadd_ps(ds, _mm256_cvtepi32_ps(i), acc[r][t]);
                                }
                            }
                            Codes::Q8(codes) => {
                                let wq = _mm256_loadu_si256(
                                    codes.as_ptr().add(wi * BLOCK) as *const __m256i
                                );
                                let wabs = _mm256_sign_epi8(wq, wq);
                                for t in 0..T {
                                    let i = $idot!(wabs, _mm256_sign_epi8(xs[t], wq));
                                    let ds = _mm256_set1_ps(wd * xd[t]);
                                    acc[r][t] =
                                        _mm256_fmadd_ps(ds, _mm256_cvtepi32_ps(i), acc[r][t]);
                                }
                            }
                        }
                    }
                }
                for r in 0..R {
                    for t in 0..T {
                        let mut lanes = [0f32; LANES];
                        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r][t]);
                        let mut v = hsum(lanes);
                        if let Codes::Q4 { min, .. } = &w.codes {
                            v += min_terms(min, (r0 + r) * nb, &x.sum, (t0 + t) * nb, nb);
                        }
                        *out.get_unchecked_mut((t0 + t) * ld + r0 + r) = v;
                    }
                }
            }
        }
    };
}

/// A half-precision number as f32 (exact), with F16C.
#[inline(always)]
unsafe fn f16_to_f32(h: f16) -> f32 {
    unsafe { _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h.to_bits() as i32))) }
}

/// Sum of min·sum over the blocks, in lane b mod 8, reduced by [`hsum`].
#[inline(always)]
unsafe fn min_terms(min: &[f16], wi: usize, sum: &[f32], xi: usize, nb: usize) -> f32 {
    unsafe {
        let mut acc = _mm256_setzero_ps();
        let full = nb / LANES * LANES;
        let mut b = 0;
        while b < full {
            let m = _mm256_cvtph_ps(_mm_loadu_si128(min.as_ptr().add(wi + b) as *const __m128i));
            acc = _mm256_fmadd_ps(m, _mm256_loadu_ps(sum.as_ptr().add(xi + b)), acc);
            b += LANES;
        }
        let mut lanes = [0f32; LANES];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc);
        for k in 0..nb - full {
            lanes[k] = f16_to_f32(min[wi + full + k]).mul_add(sum[xi + full + k], lanes[k]);
        }
        hsum(lanes)
    }
}

macro_rules! idot_avx2 {
    ($u:expr, $s:expr) => {
        _mm256_madd_epi16(_mm256_maddubs_epi16($u, $s), _mm256_set1_epi16(1))
    };
}

macro_rules! idot_vnni512 {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

macro_rules! idot_avxvnni {
    ($u:expr, $s:expr) => {
        _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), $u, $s)
    };
}

tile_kernel!(tile_avx2, "avx2,fma,f16c", idot_avx2);
tile_kernel!(
    tile_vnni512,
    "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
    idot_vnni512
);
tile_kernel!(tile_avxvnni, "avx2,fma,f16c,avxvnni", idot_avxvnni);
