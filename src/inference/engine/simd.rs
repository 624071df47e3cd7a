//! Which instruction set the kernels use: the best the CPU has, unless `EDGESTRA_SIMD` names
//! another (`scalar`, `avx2`, `vnni`; `auto` is the default). Every choice computes the same
//! bits (see [`super::quant::dot_reference`]), so the switch changes speed only; it lets a
//! developer on one kind of machine run exactly what another kind runs.

use std::cell::Cell;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, the definition of the arithmetic.
    Scalar,
    /// x86-64 AVX2 + FMA: byte products summed by `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// x86-64 with AVX-512 VNNI (on 256-bit registers) or AVX-VNNI: `vpdpbusd`.
    Vnni,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Vnni => "vnni",
        }
    }

    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Some(Isa::Scalar),
            "avx2" => Some(Isa::Avx2),
            "vnni" | "avx512" | "avx512vnni" | "avxvnni" => Some(Isa::Vnni),
            _ => None,
        }
    }
}

/// The instruction sets this CPU can run, best last.
pub fn available() -> Vec<Isa> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut out = vec![Isa::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
        {
            out.push(Isa::Avx2);
            let evex = std::arch::is_x86_feature_detected!("avx512vnni")
                && std::arch::is_x86_feature_detected!("avx512vl");
            if evex || std::arch::is_x86_feature_detected!("avxvnni") {
                out.push(Isa::Vnni);
            }
        }
    }
    out
}

thread_local! {
    static THREAD_CHOICE: Cell<Option<Isa>> = const { Cell::new(None) };
}

/// Runs `f` with the kernels of `isa` for the matmuls this thread starts (tests compare them).
pub fn with<R>(isa: Isa, f: impl FnOnce() -> R) -> R {
    assert!(available().contains(&isa), "{isa:?} is not available here");
    let before = THREAD_CHOICE.replace(Some(isa));
    let out = f();
    THREAD_CHOICE.set(before);
    out
}

/// The instruction set in use: `EDGESTRA_SIMD` if it names one this CPU has, else the best.
pub fn current() -> Isa {
    if let Some(isa) = THREAD_CHOICE.get() {
        return isa;
    }
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let have = available();
        let best = *have.last().expect("scalar is always available");
        match std::env::var("EDGESTRA_SIMD") {
            Ok(v) if v.trim().is_empty() || v.eq_ignore_ascii_case("auto") => best,
            Ok(v) => match Isa::parse(&v) {
                Some(isa) if have.contains(&isa) => isa,
                Some(isa) => {
                    tracing::warn!(target: "edgestra::inference", wanted = isa.name(), using = best.name(), "EDGESTRA_SIMD names an instruction set this CPU lacks");
                    best
                }
                None => {
                    tracing::warn!(target: "edgestra::inference", value = %v, using = best.name(), "EDGESTRA_SIMD is not one of auto, scalar, avx2, vnni");
                    best
                }
            },
            Err(_) => best,
        }
    })
}

/// Whether the EVEX (AVX-512) form of VNNI is there; otherwise [`Isa::Vnni`] uses AVX-VNNI.
#[cfg(target_arch = "x86_64")]
pub fn vnni_evex() -> bool {
    static EVEX: OnceLock<bool> = OnceLock::new();
    *EVEX.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512vl")
    })
}
